// Named pipes (FIFO): reopened by path; their queued bytes go to fifo-data.img like a pipe's.
import fs from 'node:fs';
import { fcntl, F, O } from '../../kernel/index.ts';
import { peekPipe } from './pipe.ts';
import { FD_TYPE, S_IFMT, S_IFIFO, OPEN_FLAGS, fileKind } from './types.ts';

export const fifoFile = fileKind({
  type: FD_TYPE.FIFO,
  field: 'fifo',
  name: 'fifo',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => (p.mode & S_IFMT) === S_IFIFO && p.link.startsWith('/'),
  dump(p, id, ctx) {
    const key = `fifo:${p.ino}`;
    if (!ctx.seen.has(key)) {
      ctx.seen.add(key);
      const { data, size } = peekPipe(p);
      if (data.length) ctx.addEntry('fifo-data.img', 'pipe_data_entry', { pipe_id: p.ino, bytes: data.length, size }, data);
    }
    const regfId = ctx.regPath(p.link, p.flags);
    return { id, pipe_id: p.ino, regf_id: regfId };
  },
  open(fe, ctx) {
    const reg = fe.regf_id === undefined ? undefined : ctx.files.get(fe.regf_id)?.reg;
    if (!reg) throw new Error(`files.img: fifo ${fe.id} has no path entry`);
    const key = `fifo:${fe.pipe_id}`;
    // O_RDWR never blocks on a FIFO; it keeps the FIFO open while the real ends are made.
    let holder = ctx.memo.get(key) as number | undefined;
    if (holder === undefined) {
      holder = ctx.keep(fs.openSync(reg.name, O.RDWR | O.NONBLOCK | O.CLOEXEC));
      ctx.memo.set(key, holder);
      const rec = ctx.entries('fifo-data.img', 'pipe_data_entry').find((e) => e.entry.pipe_id === fe.pipe_id);
      if (rec?.extra?.length) {
        const size = rec.entry.size;
        if (size) try { fcntl(holder, F.SETPIPE_SZ, size); } catch { /* keep the default */ }
        let off = 0;
        while (off < rec.extra.length) off += fs.writeSync(holder, rec.extra, off, rec.extra.length - off);
      }
    }
    const flags = reg.flags;
    const fd = ctx.keep(fs.openSync(`/proc/self/fd/${holder}`, (flags & ~(O.CREAT | O.TRUNC)) | O.NONBLOCK | O.CLOEXEC));
    if (!(flags & O.NONBLOCK)) fcntl(fd, F.SETFL, flags & O.APPEND); // O_ASYNC: afterInstall
    return fd;
  },
});
