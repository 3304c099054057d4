// inotify instances with their watches. Each watched inode is found again by its path or the
// file handle fdinfo shows (fhandle.ts), and watched anew with the same watch descriptor number: the kernel hands
// them out in increasing order, so lower ones are taken and given back until it comes.
import fs from 'node:fs';
import { inotifyInit, inotifyAddWatch, inotifyRmWatch, close, fcntl, F, O } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { fhEntry, openHandle, checkHandle, watchedPath } from './fhandle.ts';
import { FD_TYPE, FASYNC, fown, fileKind } from './types.ts';

/** What inotify_add_watch takes back of a watch's mask: the events, IN_ONESHOT, IN_EXCL_UNLINK. */
const WATCH_BITS = 0xfff | 0x80000000 | 0x04000000;

export const inotifyFile = fileKind({
  type: FD_TYPE.INOTIFY,
  field: 'ify',
  name: 'inotify',
  claims: {
    flags: O.NONBLOCK | FASYNC,
    check(p, tree) {
      for (const w of p.info.inotify) {
        if (w.ignoredMask !== 0) return `watch ${w.wd} has an ignored mask`;
        const why = checkHandle(w.sdev, w.fhandle, p.pid, w.ino, tree ?? []);
        if (why) return `the inode of watch ${w.wd}: ${why}`;
      }
      return undefined;
    },
  },
  matches: (p) => p.link === 'anon_inode:inotify',
  dump(p, id, ctx) {
    const wd = p.info.inotify.map((w) => ({
      id,
      i_ino: w.ino,
      mask: w.mask,
      ignored_mask: w.ignoredMask,
      s_dev: w.sdev,
      wd: w.wd,
      f_handle: fhEntry(w.fhandle, watchedPath(p.pid, ctx.treePids, w.sdev, w.ino, w.fhandle, ctx.irmap)),
    }));
    return { id, flags: p.flags, fown: fown(), wd };
  },
  open(e, ctx) {
    const fd = ctx.keep(inotifyInit(O.NONBLOCK | O.CLOEXEC));
    for (const w of [...e.wd].sort((a, b) => a.wd - b.wd)) {
      const target = openHandle(w.s_dev, w.f_handle, ctx.nsPath, () => ctx.inodePath(w.s_dev, w.i_ino));
      if (typeof target === 'string') throw new CriuError(`inotify watch ${w.wd} (inode ${w.i_ino}): ${target}`);
      try {
        for (;;) {
          const got = inotifyAddWatch(fd, `/proc/self/fd/${target}`, w.mask & WATCH_BITS);
          if (got === w.wd) break;
          if (got > w.wd) throw new CriuError(`inotify watch ${w.wd} came back as ${got}`);
          inotifyRmWatch(fd, got);
        }
      } finally {
        close(target);
      }
    }
    drain(fd);
    if (!(e.flags & O.NONBLOCK)) fcntl(fd, F.SETFL, 0);
    return fd;
  },
});

/** Read away the IN_IGNORED events of the watches given back while the numbers were found. */
function drain(fd: number): void {
  const buf = Buffer.alloc(4096);
  for (;;) {
    try {
      if (fs.readSync(fd, buf) <= 0) return;
    } catch {
      return;
    }
  }
}
