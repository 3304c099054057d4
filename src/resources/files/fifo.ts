// Named pipes (FIFO): reopened by path; their queued bytes go to fifo-data.img like a pipe's.
import fs from 'node:fs';
import { fcntl, F, O } from '../../kernel/index.ts';
import { peekPipe } from './pipe.ts';
import { FD_TYPE, S_IFMT, S_IFIFO, OPEN_FLAGS, type FileKind } from './types.ts';

export const fifoFile: FileKind = {
  type: FD_TYPE.FIFO,
  name: 'fifo',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => (p.mode & S_IFMT) === S_IFIFO && p.link.startsWith('/'),
  dump(p, id, ctx) {
    const key = `fifo:${p.ino}`;
    if (!ctx.seen.has(key)) {
      ctx.seen.add(key);
      const { data, size } = peekPipe(p);
      if (data.length) ctx.addEntry('fifo-data.img', { pipe_id: p.ino, bytes: data.length, size }, data);
    }
    const regfId = ctx.regPath(p.link, p.flags);
    return { fifo: { id, pipe_id: p.ino, regf_id: regfId } };
  },
  open(file, ctx) {
    const fe = file.fifo as Record<string, unknown>;
    const reg = ctx.files.get(fe.regf_id as number)?.reg as Record<string, unknown> | undefined;
    if (!reg) throw new Error(`files.img: fifo ${fe.id as number} has no path entry`);
    const key = `fifo:${fe.pipe_id as number}`;
    // O_RDWR never blocks on a FIFO; it keeps the FIFO open while the real ends are made.
    let holder = ctx.memo.get(key) as number | undefined;
    if (holder === undefined) {
      holder = ctx.keep(fs.openSync(reg.name as string, O.RDWR | O.NONBLOCK | O.CLOEXEC));
      ctx.memo.set(key, holder);
      const rec = ctx.entries('fifo-data.img').find((e) => e.entry.pipe_id === fe.pipe_id);
      if (rec?.extra?.length) {
        const size = rec.entry.size as number | undefined;
        if (size) try { fcntl(holder, F.SETPIPE_SZ, size); } catch { /* keep the default */ }
        let off = 0;
        while (off < rec.extra.length) off += fs.writeSync(holder, rec.extra, off, rec.extra.length - off);
      }
    }
    const flags = reg.flags as number;
    const fd = ctx.keep(fs.openSync(`/proc/self/fd/${holder}`, (flags & ~(O.CREAT | O.TRUNC)) | O.NONBLOCK | O.CLOEXEC));
    if (!(flags & O.NONBLOCK)) fcntl(fd, F.SETFL, flags & O.APPEND); // O_ASYNC: afterInstall
    return fd;
  },
};
