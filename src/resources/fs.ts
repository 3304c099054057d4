// fs_entry: working directory, root and umask.
import { O } from '../kernel/index.ts';
import { NotSupportedError } from '../errors.ts';
import { deletedName } from './files/ghost.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { FileTable, Message } from './types.ts';
import { openInTask } from '../compel/open.ts';
import type { ResourceClaims } from './claims.ts';
import { readLink } from '../proc/index.ts';

export const fsClaims: ResourceClaims = { status: { Umask: true }, files: { root: true, cwd: true } };

type FsEntry = Message<'fs_entry'>;

export function dumpFs(pid: number, umask: number, files: FileTable): FsEntry {
  const dir = (what: 'cwd' | 'root'): number => {
    const link = readLink(pid, what);
    const deleted = deletedName(link);
    if (deleted === undefined) return files.regPath(link, O.RDONLY | O.DIRECTORY);
    if (what === 'root') throw new NotSupportedError(`task ${pid}: its root ${deleted} was deleted`);
    // An empty directory that no name leads to: made again as a ghost, entered, and removed.
    return files.regDeleted(deleted, `/proc/${pid}/cwd`, O.RDONLY | O.DIRECTORY);
  };
  return { cwd_id: dir('cwd'), root_id: dir('root'), umask };
}

/**
 * Root, cwd and umask. `inherited` is what the task has already when it was forked from
 * its restored parent: nothing is done when it is the same, and a chroot is only ever made
 * from the real root (a second one would resolve inside the first).
 */
export function restoreFs(t: Tracee, area: InjectionArea, e: FsEntry, pathOf: (id: number) => string, inherited?: FsEntry): void {
  if (inherited && inherited.root_id === e.root_id && inherited.cwd_id === e.cwd_id && inherited.umask === e.umask) return;
  const root = pathOf(e.root_id);
  const had = inherited ? pathOf(inherited.root_id) : '/';
  const cwd = pathOf(e.cwd_id);
  const openDir = (p: string): bigint => {
    area.reset();
    return openInTask(t, area, p, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  };
  // Paths are as criu-ts sees them, from its own root: the working directory is opened before
  // a chroot, or inside the root the task has already.
  let fd: bigint;
  if (root !== had) {
    if (had !== '/') throw new NotSupportedError(`a task with root ${root} is the child of one with root ${had}`);
    fd = openDir(cwd);
    try {
      area.reset();
      t.syscall('chroot', area.putString(root));
    } catch (err) {
      t.syscallRaw('close', fd);
      throw err;
    }
  } else {
    fd = openDir(within(had, cwd));
  }
  try {
    t.syscall('fchdir', fd);
  } finally {
    t.syscallRaw('close', fd);
  }
  if (e.umask !== undefined) t.syscall('umask', e.umask);
}

/** `p` (a path from criu-ts's root) as a task whose root is `root` names it. */
function within(root: string, p: string): string {
  if (root === '/') return p;
  if (p === root) return '/';
  if (p.startsWith(root + '/')) return p.slice(root.length);
  throw new NotSupportedError(`the working directory ${p} is outside the task's root ${root}`);
}
