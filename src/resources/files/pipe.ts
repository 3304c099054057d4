// Pipes: both ends are PIPE entries sharing pipe_id (the inode); the queued bytes are saved
// once per pipe in pipes-data.img, read with tee so the task's own reader still gets them.
import fs from 'node:fs';
import { pipe2, tee, fcntl, F, O, SPLICE_F_NONBLOCK } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { FD_TYPE, S_IFMT, S_IFIFO, FASYNC, fown, statefulKind, type FdProbe, type DumpFileCtx } from './types.ts';

const MAX_PIPE = 1 << 20; // pipes cannot grow past 1 MiB for us (no CAP_SYS_RESOURCE)

function pipeIno(p: FdProbe): number {
  const m = /^pipe:\[(\d+)\]$/.exec(p.link);
  if (!m) throw new Error(`fd ${p.fd} of task ${p.pid}: not a pipe link: ${p.link}`);
  return Number(m[1]);
}

/** Copy the bytes queued in a pipe without consuming them. */
export function peekPipe(p: FdProbe): { data: Buffer; size: number } {
  // Opening /proc/PID/fd/N of a pipe gives a fresh end of the same pipe, like a FIFO.
  const src = fs.openSync(`/proc/${p.pid}/fd/${p.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
  const [r, w] = pipe2(O.CLOEXEC | O.NONBLOCK);
  try {
    const size = fcntl(src, F.GETPIPE_SZ);
    fcntl(w, F.SETPIPE_SZ, Math.min(Math.max(size, 4096), MAX_PIPE));
    const n = tee(src, w, size, SPLICE_F_NONBLOCK);
    const data = Buffer.alloc(n);
    let got = 0;
    while (got < n) got += fs.readSync(r, data, got, n - got, null);
    return { data, size };
  } finally {
    for (const fd of [src, r, w]) fs.closeSync(fd);
  }
}

/**
 * Pipes, by pipe_id: whose data a dump has saved, the kernel pipe a restore made for both
 * ends, and which of its ends ("ID:r", "ID:w") a file of the restore has already.
 */
interface PipeState {
  saved: Set<number>;
  ends: Map<number, [number, number]>;
  used: Set<string>;
}

function savePipeData(p: FdProbe, ctx: DumpFileCtx, saved: Set<number>): void {
  const ino = pipeIno(p);
  if (saved.has(ino)) return;
  saved.add(ino);
  const { data, size } = peekPipe(p);
  ctx.addEntry(IMG.PIPES_DATA, { pipe_id: ino, bytes: data.length, size }, data);
}

/**
 * Give a new pipe (or FIFO) its dumped buffer size and queued bytes, written through `w`, a
 * non-blocking write end.
 */
export function refillPipe(w: number, size: number | undefined, data: Buffer | undefined): void {
  if (size && size !== fcntl(w, F.GETPIPE_SZ)) fcntl(w, F.SETPIPE_SZ, Math.min(size, MAX_PIPE));
  if (!data) return;
  for (let off = 0; off < data.length; ) off += fs.writeSync(w, data, off, data.length - off);
}

export const pipeFile = statefulKind({
  type: FD_TYPE.PIPE,
  field: 'pipe',
  name: 'pipe',
  // Not O_DIRECT (a packet-mode pipe): only pipe2() makes one.
  claims: { flags: O.NONBLOCK | O.APPEND | FASYNC },
  matches: (p) => (p.mode & S_IFMT) === S_IFIFO && p.link.startsWith('pipe:'),
  state: (): PipeState => ({ saved: new Set(), ends: new Map(), used: new Set() }),
  dump(p, id, ctx, state) {
    savePipeData(p, ctx, state.saved);
    return { id, pipe_id: pipeIno(p), flags: p.flags, fown: fown() };
  },
  open(pe, ctx, state) {
    const pipeId = pe.pipe_id;
    let ends = state.ends.get(pipeId);
    if (!ends) {
      const [r, w] = pipe2(O.CLOEXEC | O.NONBLOCK);
      ctx.keep(r);
      ctx.keep(w);
      const rec = ctx.entries(IMG.PIPES_DATA).find((e) => e.entry.pipe_id === pipeId);
      if (rec) refillPipe(w, rec.entry.size, rec.extra);
      // The kernel keeps O_NONBLOCK per open file description; put back what the task had.
      fcntl(r, F.SETFL, 0);
      fcntl(w, F.SETFL, 0);
      ends = [r, w];
      state.ends.set(pipeId, ends);
    }
    const flags = pe.flags;
    const write = (flags & O.ACCMODE) === O.WRONLY;
    // Each file id is an open file description of its own, with its own flags: the second
    // one of the same end is the pipe opened again through /proc.
    const end = `${pipeId}:${write ? 'w' : 'r'}`;
    let fd = write ? ends[1] : ends[0];
    if (state.used.has(end)) fd = ctx.keep(fs.openSync(`/proc/self/fd/${fd}`, (write ? O.WRONLY : O.RDONLY) | O.NONBLOCK | O.CLOEXEC));
    state.used.add(end);
    fcntl(fd, F.SETFL, flags & (O.NONBLOCK | O.APPEND)); // O_ASYNC: afterInstall
    return fd;
  },
});
