// pidfds: made again with pidfd_open of the same pid, which the restore has brought back at
// its number (a task of the tree) or which is still there (a process outside it).
import fs from 'node:fs';
import { pidfdOpen2, O } from '../../kernel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { FD_TYPE, FASYNC, fown, fileKind } from './types.ts';

/** The parent of `pid`, from /proc/PID/stat, or 0 when it is gone. */
function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch { return 0; }
}

/** Is `pid` a descendant of `of`? */
function descendantOf(pid: number, of: number): boolean {
  for (let p = parentOf(pid); p > 1; p = parentOf(p)) if (p === of) return true;
  return false;
}

export const pidfdFile = fileKind({
  type: FD_TYPE.PIDFD,
  field: 'pidfd',
  name: 'pidfd',
  claims: {
    flags: O.NONBLOCK | FASYNC,
    fields: ['Pid', 'NSpid'],
    check(p) {
      const pid = p.info.pidfdPid;
      if (pid === undefined || pid <= 0) return 'a pidfd of a process that has exited';
      // Tasks are made again parents first: a pidfd of a descendant would be opened before it exists.
      if (descendantOf(pid, p.pid)) return `a pidfd of its descendant ${pid}`;
      return undefined;
    },
  },
  matches: (p) => p.link === 'anon_inode:[pidfd]' || p.link.startsWith('pidfd:'),
  dump(p, id) {
    return { id, ino: p.ino, flags: p.flags, nspid: p.info.pidfdPid ?? -1, fown: fown() };
  },
  open(e, ctx) {
    try {
      return ctx.keep(pidfdOpen2(e.nspid, e.flags & O.NONBLOCK));
    } catch (err) {
      if (e.nspid <= 0) throw new NotSupportedError(`pidfd ${e.id} of a process that had exited`);
      throw new CriuError(`pidfd ${e.id}: process ${e.nspid} is not there: ${(err as Error).message}`);
    }
  },
});
