import fs from 'node:fs';
import { openat2, RESOLVE } from './syscalls.ts';
import { O } from './constants.ts';
import { SysError } from './errors.ts';

/** pread until `b` is full; a short file is an error (`what` names it). */
export function preadFully(fd: number, b: Buffer, pos: number, what = 'file'): void {
  let off = 0;
  while (off < b.length) {
    const n = fs.readSync(fd, b, off, b.length - off, pos + off);
    if (n === 0) throw new Error(`${what} ends early at offset ${pos + off}`);
    off += n;
  }
}

/**
 * Open `name` under `dir` with openat2: no symlink anywhere in `name`, nothing outside `dir`
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). Kernels before 5.6 fall back to O_NOFOLLOW. Errors
 * carry the errno name in `code`, as fs.openSync's do.
 */
export function openBeneath(dir: string, name: string, flags: number, mode: number): number {
  if (!openat2Works) return fs.openSync(`${dir}/${name}`, flags | O.NOFOLLOW, mode);
  const dirfd = fs.openSync(dir, O.PATH | O.DIRECTORY);
  try {
    return openat2(dirfd, name, flags | O.CLOEXEC, mode, RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENOSYS') {
      openat2Works = false;
      return openBeneath(dir, name, flags, mode);
    }
    throw e;
  } finally {
    fs.closeSync(dirfd);
  }
}
let openat2Works = true;
