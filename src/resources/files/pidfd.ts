// pidfds. A pidfd names a process, which may be a task of the tree made after the one that
// holds it (its child): each fd is made by the task itself with pidfd_open once every task
// exists. A pidfd of a process that had exited is one of a process that exits at once.
import { pidfdOpen2, posixSpawn, kill, waitpid, getpid, SIG, O } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { FD_TYPE, FASYNC, fown, fileKind } from './types.ts';

const F_GETFD = 1;

/** A pidfd of a process that has exited: a child spawned, opened, killed and reaped. */
function deadPidfd(flags: number): number {
  const pid = posixSpawn('/bin/sleep', ['sleep', '1000'], []);
  try { return pidfdOpen2(pid, flags); } finally {
    kill(pid, SIG.KILL);
    waitpid(pid, 0);
  }
}

export const pidfdFile = fileKind({
  type: FD_TYPE.PIDFD,
  field: 'pidfd',
  name: 'pidfd',
  claims: {
    flags: O.NONBLOCK | FASYNC,
    fields: ['Pid', 'NSpid'],
  },
  matches: (p) => p.link === 'anon_inode:[pidfd]' || p.link.startsWith('pidfd:'),
  dump(p, id) {
    return { id, ino: p.ino, flags: p.flags, nspid: p.info.pidfdPid ?? -1, fown: fown() };
  },
  // Until every task exists: a pidfd of a dead process, or of criu-ts (replaced in afterInstall).
  open(e, ctx) {
    return ctx.keep(e.nspid > 0 ? pidfdOpen2(getpid(), e.flags & O.NONBLOCK) : deadPidfd(e.flags & O.NONBLOCK));
  },
  eachFd: true,
  afterInstall(e, fd, t) {
    if (e.nspid <= 0) return;
    const cloexec = Number(t.syscall('fcntl', fd, F_GETFD, 0)) & 1;
    const raw = t.syscallRaw('pidfd_open', e.nspid, e.flags & O.NONBLOCK);
    if (raw < 0n) throw new CriuError(`pidfd ${fd} of task ${t.tid}: process ${e.nspid} is not there (errno ${-raw})`);
    t.syscall('dup3', raw, fd, cloexec ? O.CLOEXEC : 0);
    t.syscall('close', raw);
  },
});
