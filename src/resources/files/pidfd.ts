// pidfds. A pidfd names a process, which may be a task of the tree made after the one that
// holds it (its child): each fd is made by the task itself with pidfd_open once every task
// exists. A pidfd of a process that had exited is one of a process that exits at once.
import { pidfdOpen2, spawnTethered, endTethered, getpid, O } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { FD_TYPE, FASYNC, fown, statefulKind } from './types.ts';

const F_GETFD = 1;

/**
 * Pidfds of a process that has exited, one per flags value asked: a child spawned, opened,
 * killed and reaped. The pidfds of one dead process share its inode, so all of them are
 * opened from the same child.
 */
function deadPidfds(flags: number[]): number[] {
  const child = spawnTethered();
  const out: number[] = [];
  try {
    for (const f of flags) out.push(pidfdOpen2(child.pid, f));
    return out;
  } finally {
    endTethered(child);
  }
}

/** Per restore: pidfds of dead processes opened ahead, by the inode they had, for the files still to open. */
type DeadPidfds = Map<number, Map<number, number>>;

export const pidfdFile = statefulKind({
  type: FD_TYPE.PIDFD,
  field: 'pidfd',
  name: 'pidfd',
  claims: {
    flags: O.NONBLOCK | FASYNC,
    fields: ['Pid', 'NSpid'],
  },
  matches: (p) => p.link === 'anon_inode:[pidfd]' || p.link.startsWith('pidfd:'),
  dump(p, id) {
    // The pid inside the target's own PID namespace (NSpid's last), which the tree's tasks see.
    const pid = p.info.pidfdPid ?? -1;
    return { id, ino: p.ino, flags: p.flags, nspid: pid > 0 ? (p.info.pidfdNsPid?.at(-1) ?? pid) : pid, fown: fown() };
  },
  state: (): DeadPidfds => new Map(),
  // Until every task exists: a pidfd of criu-ts (replaced in afterInstall), or of a dead process.
  open(e, ctx, dead) {
    if (e.nspid > 0) return ctx.keep(pidfdOpen2(getpid(), e.flags & O.NONBLOCK));
    let byFile = dead.get(e.ino);
    if (!byFile) {
      const same = [...ctx.files.values()].flatMap((f) => (f.pidfd && f.pidfd.nspid <= 0 && f.pidfd.ino === e.ino ? [f.pidfd] : []));
      const fds = deadPidfds(same.map((f) => f.flags & O.NONBLOCK)).map((fd) => ctx.keep(fd));
      byFile = new Map(same.map((f, i) => [f.id, fds[i]]));
      dead.set(e.ino, byFile);
    }
    const fd = byFile.get(e.id);
    if (fd === undefined) throw new CriuError(`files.img: pidfd ${e.id} was not found among those of inode ${e.ino}`);
    return fd;
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
