// Named pipes (FIFO): reopened by path; their queued bytes go to fifo-data.img like a pipe's.
import fs from 'node:fs';
import { fcntl, F, O } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { peekPipe, refillPipe } from './pipe.ts';
import { deletedName } from './ghost.ts';
import { FD_TYPE, S_IFMT, S_IFIFO, OPEN_FLAGS, FASYNC, statefulKind } from './types.ts';

/** FIFOs, by inode (pipe_id): whose data a dump has saved, and the fd a restore keeps each open with. */
interface FifoState {
  saved: Set<number>;
  holders: Map<number, number>;
}

export const fifoFile = statefulKind({
  type: FD_TYPE.FIFO,
  field: 'fifo',
  name: 'fifo',
  // Reopened with its flags, but for O_ASYNC, whose owner fifo_entry has no place for.
  claims: { flags: OPEN_FLAGS & ~FASYNC },
  matches: (p) => (p.mode & S_IFMT) === S_IFIFO && p.link.startsWith('/'),
  state: (): FifoState => ({ saved: new Set(), holders: new Map() }),
  dump(p, id, ctx, state) {
    if (!state.saved.has(p.ino)) {
      state.saved.add(p.ino);
      const { data, size } = peekPipe(p);
      if (data.length) ctx.addEntry(IMG.FIFO_DATA, { pipe_id: p.ino, bytes: data.length, size }, data);
    }
    const deleted = deletedName(p.link);
    const regfId = deleted === undefined ? ctx.regPath(p.link, p.flags) : ctx.regDeleted(deleted, `/proc/${p.pid}/fd/${p.fd}`, p.flags);
    return { id, pipe_id: p.ino, regf_id: regfId };
  },
  open(fe, ctx, state) {
    const reg = fe.regf_id === undefined ? undefined : ctx.files.get(fe.regf_id)?.reg;
    if (!reg) throw new Error(`files.img: fifo ${fe.id} has no path entry`);
    // O_RDWR never blocks on a FIFO; it keeps the FIFO open while the real ends are made.
    let holder = state.holders.get(fe.pipe_id);
    if (holder === undefined) {
      holder = ctx.keep(fs.openSync(ctx.pathOf(reg), O.RDWR | O.NONBLOCK | O.CLOEXEC));
      state.holders.set(fe.pipe_id, holder);
      const rec = ctx.entries(IMG.FIFO_DATA).find((e) => e.entry.pipe_id === fe.pipe_id);
      if (rec) refillPipe(holder, rec.entry.size, rec.extra);
    }
    const flags = reg.flags;
    const fd = ctx.keep(fs.openSync(`/proc/self/fd/${holder}`, (flags & ~(O.CREAT | O.TRUNC)) | O.NONBLOCK | O.CLOEXEC));
    if (!(flags & O.NONBLOCK)) fcntl(fd, F.SETFL, flags & (O.APPEND | 0o20000));
    return fd;
  },
});
