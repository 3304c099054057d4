// openat injected into a tracee, whose failure names the path: "openat /x in task N: ENOENT".
import { AT_FDCWD } from '../kernel/index.ts';
import { RemoteSysError, type Tracee } from './tracee.ts';
import type { InjectionArea } from './area.ts';

export function openInTask(t: Tracee, area: InjectionArea, path: string, flags: number, mode = 0): bigint {
  try {
    return t.syscall('openat', AT_FDCWD, area.putString(path), flags, mode);
  } catch (e) {
    if (e instanceof RemoteSysError) throw new RemoteSysError(e.tid, `openat ${path}`, e.errno);
    throw e;
  }
}
