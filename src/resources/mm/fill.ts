// Page data into a restored task's fresh VMAs. What limits this is the first touch of fresh
// memory (0.2-0.3 GiB/s per CPU on this machine's kind of VM), not the copy, so both CPUs
// fill at once: the tracee preadv()s the first half of pages-N.img into itself, on its own,
// while criu-ts reads the second half and writes it in with process_vm_writev. The tracee's
// half is only waited for when the task is next needed (see FillInFlight), so the restore
// meanwhile goes on with other tasks.
import fs from 'node:fs';
import { processVmWritev, O, preadFully } from '../../kernel/index.ts';
import { pagesInfo, PagesStream, openImage } from '../../images/index.ts';
import type { PageSource, RestoreTask } from '../types.ts';
import { openPulled } from './shmem.ts';

/** Below this much page data the tracer writes it all: two CPUs would not pay for the extra syscalls. */
const SPLIT_MIN = 4 << 20;
const CHUNK = 4 << 20;
const IOV_MAX = 1024;

/** A piece of a run: `len` bytes at `vaddr`, found at `offset` in the pages file. */
interface Segment {
  vaddr: bigint;
  len: number;
  offset: number;
}

/** The tracee's share, still being read; `finish` waits for it (and reads any rest). */
export interface FillInFlight {
  finish(): void;
}

function offsetOf(r: PageSource): number {
  if (r.offset === undefined) throw new Error(`the pages at 0x${r.vaddr.toString(16)} have no data in the pages file`);
  return r.offset;
}

/** Fill `runs` (PE_PRESENT, with offsets in file order) from `pagesPath`. */
export function fillPages(t: RestoreTask, pagesPath: string, runs: PageSource[], key?: Buffer): FillInFlight | undefined {
  if (!runs.length) return undefined;
  if (pagesInfo(pagesPath).encoded) {
    fillFromStream(t, pagesPath, runs, key);
    return undefined;
  }
  const segs = runs.map((r) => ({ vaddr: r.vaddr, len: r.nrPages * 4096, offset: offsetOf(r) }));
  const total = bytesOf(segs);
  const [theirs, ours] = total >= SPLIT_MIN ? splitAt(segs, Math.floor(total / 2 / 4096) * 4096) : [[], segs];
  const inFlight = theirs.length ? startRemoteRead(t, pagesPath, theirs) : undefined;
  if (inFlight)
    t.log.debug(`task ${t.pid}: page data ${mib(total - bytesOf(ours))} MiB read by the task itself, ${mib(bytesOf(ours))} MiB by criu-ts`);
  writeLocal(t, pagesPath, ours);
  return inFlight;
}

/** One bounce buffer for the whole restore: a tree of many tasks would otherwise leave one per task to the GC. */
let chunkBuf: Buffer | undefined;
const chunk = (): Buffer => (chunkBuf ??= Buffer.allocUnsafe(CHUNK));

const bytesOf = (segs: Segment[]): number => segs.reduce((a, s) => a + s.len, 0);
const mib = (bytes: number): string => (bytes / (1 << 20)).toFixed(1);

/** The segments holding the first `bytes` bytes of data, and the rest; a segment may be cut in two. */
function splitAt(segs: Segment[], bytes: number): [Segment[], Segment[]] {
  const head: Segment[] = [],
    tail: Segment[] = [];
  let left = bytes;
  for (const s of segs) {
    if (left >= s.len) {
      head.push(s);
      left -= s.len;
      continue;
    }
    if (left > 0) {
      head.push({ vaddr: s.vaddr, len: left, offset: s.offset });
      tail.push({ vaddr: s.vaddr + BigInt(left), len: s.len - left, offset: s.offset + left });
      left = 0;
    } else tail.push(s);
  }
  return [head, tail];
}

/** Batched reads here, one process_vm_writev per batch of runs that follow each other in the file. */
function writeLocal(t: RestoreTask, pagesPath: string, segs: Segment[]): void {
  if (!segs.length) return;
  const local = openImage(pagesPath);
  const buf = chunk();
  let batch: Segment[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (!batch.length) return;
    preadFully(local, buf.subarray(0, bytes), batch[0].offset, `pages image ${pagesPath}`);
    const n = processVmWritev(
      t.pid,
      buf.subarray(0, bytes),
      batch.map((s) => ({ addr: s.vaddr, len: s.len })),
    );
    if (n !== bytes) throw new Error(`short write of pages into task ${t.pid}`);
    batch = [];
    bytes = 0;
  };
  try {
    for (const s of segs) {
      // A segment larger than the buffer goes in buffer-sized pieces.
      for (let done = 0; done < s.len; ) {
        const piece = Math.min(s.len - done, CHUNK);
        const p = { vaddr: s.vaddr + BigInt(done), len: piece, offset: s.offset + done };
        const last = batch.at(-1);
        if (last && (last.offset + last.len !== p.offset || bytes + piece > CHUNK || batch.length === IOV_MAX)) flush();
        batch.push(p);
        bytes += piece;
        done += piece;
      }
    }
    flush();
  } finally {
    fs.closeSync(local);
  }
}

/**
 * The tracee opens pages-N.img and preadv()s its segments into itself: one call for each
 * stretch of the file its segments cover without a gap, the first one started at once and
 * left running, the others done when the tracer comes back for the task.
 */
function startRemoteRead(t: RestoreTask, pagesPath: string, segs: Segment[]): FillInFlight {
  const tr = t.leader;
  const fd = openPulled(tr, pagesPath, O.RDONLY);
  const calls = contiguousCalls(segs);
  // iovecs live in the injection area, which nothing else touches until finish().
  const start = (c: Segment[]): number => {
    t.area.reset();
    const iov = Buffer.alloc(16 * c.length);
    c.forEach((s, i) => {
      iov.writeBigUInt64LE(s.vaddr, i * 16);
      iov.writeBigUInt64LE(BigInt(s.len), i * 16 + 8);
    });
    tr.startSyscall('preadv', fd, t.area.put(iov), c.length, c[0].offset, 0); // pos_l, pos_h
    return bytesOf(c);
  };
  let want = start(calls[0]);
  return {
    finish(): void {
      try {
        for (let k = 0; ; k++) {
          const got = tr.finishSyscall();
          if (got < 0n) throw new Error(`task ${t.pid}: preadv of ${pagesPath} failed (errno ${-got})`);
          // A short read (the file ends early) leaves the rest to the tracer, which reports it.
          if (Number(got) < want) writeLocal(t, pagesPath, splitAt(calls[k], Number(got))[1]);
          if (k + 1 === calls.length) break;
          want = start(calls[k + 1]);
        }
      } finally {
        tr.syscallRaw('close', fd);
      }
    },
  };
}

/** Groups of at most IOV_MAX segments whose data follow each other in the file. */
function contiguousCalls(segs: Segment[]): Segment[][] {
  const calls: Segment[][] = [];
  for (const s of segs) {
    const cur = calls.at(-1);
    const last = cur?.at(-1);
    if (cur && last && last.offset + last.len === s.offset && cur.length < IOV_MAX) cur.push(s);
    else calls.push([s]);
  }
  return calls;
}

/** Encoded (compressed or encrypted) pages: decode in file order, write with process_vm_writev. */
function fillFromStream(t: RestoreTask, pagesPath: string, runs: PageSource[], key?: Buffer): void {
  const stream = new PagesStream(pagesPath, key);
  const buf = chunk();
  try {
    for (const r of runs) {
      stream.skipTo(offsetOf(r), buf);
      const bytes = r.nrPages * 4096;
      for (let done = 0; done < bytes; done += CHUNK) {
        const n = Math.min(CHUNK, bytes - done);
        stream.readInto(buf.subarray(0, n));
        const w = processVmWritev(t.pid, buf.subarray(0, n), [{ addr: r.vaddr + BigInt(done), len: n }]);
        if (w !== n) throw new Error(`short write of pages into task ${t.pid}`);
      }
    }
  } finally {
    stream.close();
  }
}
