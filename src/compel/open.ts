// openat injected into a tracee, whose failure names the path: "openat /x in task N: ENOENT".
import fs from 'node:fs';
import { AT_FDCWD, O } from '../kernel/index.ts';
import { RemoteSysError, type SysArg, type Tracee } from './tracee.ts';
import type { InjectionArea } from './area.ts';

export function openInTask(t: Tracee, area: InjectionArea, path: string, flags: number, mode = 0): bigint {
  return openAtInTask(t, area, AT_FDCWD, path, flags, mode);
}

/** openat injected into a tracee, relative to its fd `dir`. */
export function openAtInTask(t: Tracee, area: InjectionArea, dir: SysArg, path: string, flags: number, mode = 0): bigint {
  try {
    return t.syscall('openat', dir, area.putString(path), flags, mode);
  } catch (e) {
    if (e instanceof RemoteSysError) throw new RemoteSysError(e.tid, `openat ${path}`, e.errno);
    throw e;
  }
}

/** Pull one of criu-ts's fds into a tracee (Tracee.takeFd); returns the tracee's fd. */
export function pullFd(t: Tracee, localFd: number): bigint {
  return t.takeFd(localFd);
}

/**
 * Open `path` as criu-ts sees it and pull it into a tracee: a task in a chroot (or about to
 * inherit one) would resolve the path in its own root.
 */
export function openPulled(t: Tracee, path: string, flags: number): bigint {
  const local = fs.openSync(path, flags | O.CLOEXEC);
  try {
    return pullFd(t, local);
  } finally {
    fs.closeSync(local);
  }
}
