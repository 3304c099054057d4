// fs_entry: working directory, root and umask.
import fs from 'node:fs';
import { AT_FDCWD, O } from '../kernel/index.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { FileTable, Msg } from './types.ts';

export function dumpFs(pid: number, umask: number, files: FileTable): Msg {
  const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
  const root = fs.readlinkSync(`/proc/${pid}/root`);
  for (const [what, p] of [['working directory', cwd], ['root', root]]) {
    if (p.endsWith(' (deleted)')) throw new Error(`task ${pid}: its ${what} ${p.slice(0, -10)} was deleted; not supported yet`);
  }
  return {
    cwd_id: files.regPath(cwd, O.RDONLY | O.DIRECTORY),
    root_id: files.regPath(root, O.RDONLY | O.DIRECTORY),
    umask,
  };
}

export function restoreFs(t: Tracee, area: InjectionArea, e: Msg, pathOf: (id: number) => string): void {
  const root = pathOf(e.root_id as number);
  area.reset();
  if (root !== '/') t.syscall('chroot', area.putString(root));
  area.reset();
  const cwd = pathOf(e.cwd_id as number);
  const fd = t.syscall('openat', AT_FDCWD, area.putString(cwd), O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0);
  try { t.syscall('fchdir', fd); } finally { t.syscallRaw('close', fd); }
  if (e.umask !== undefined) t.syscall('umask', e.umask as number);
}
