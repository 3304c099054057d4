// The owner of an open file (F_SETOWN_EX), the signal it is sent (F_SETSIG) and O_ASYNC:
// fown_entry, part of every kind's entry. Read on a copy of the task's fd (pidfd_getfd: the
// same open file description); set on criu-ts's fd, and O_ASYNC by the task itself.
import { fcntl, F, O, close, pidfdGetfd, withThreadUids } from '../../kernel/index.ts';
import { FASYNC, type FdProbe } from './types.ts';
import type { Tracee } from '../../compel/index.ts';
import type { MessageInput } from '../types.ts';
import { NotSupportedError } from '../../errors.ts';
import { readStatus } from '../../proc/index.ts';

type Fown = MessageInput<'fown_entry'>;

/** fown_entry.pid_type is F_OWNER_TID 0, F_OWNER_PID 1 or F_OWNER_PGRP 2, as in CRIU. */
const OWNER_TYPES = ['thread', 'process', 'process group'];

export const noFown = (): Fown => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });

/**
 * The owner of fd `fd` of the task behind `pidfd`, with the uids of whoever set it (they
 * decide who may be signalled). Throws a one-line reason for an owner outside the dumped
 * tree (`inTree`).
 */
export function dumpFown(pidfd: number, p: FdProbe, inTree: (id: number) => boolean): Fown {
  if (p.flags & O.PATH) return noFown();
  const local = pidfdGetfd(pidfd, p.fd);
  try {
    const owner = Buffer.alloc(8);
    fcntl(local, F.GETOWN_EX, owner);
    const type = owner.readInt32LE(0),
      pid = owner.readInt32LE(4);
    const signum = fcntl(local, F.GETSIG);
    if (pid === 0) return { ...noFown(), signum };
    const uids = Buffer.alloc(8);
    fcntl(local, F.GETOWNER_UIDS, uids);
    const uid = uids.readUInt32LE(0),
      euid = uids.readUInt32LE(4);
    const who = `the ${OWNER_TYPES[type] ?? 'owner'} ${pid}`;
    const at = `task ${p.pid}: fd ${p.fd} (${p.link})`;
    if (!inTree(pid)) throw new NotSupportedError(`${at}: its owner (F_SETOWN) is ${who}, outside the dumped tree`);
    // The owner's id in its own PID namespace (the tree's), as the images keep every pid.
    return { uid, euid, signum, pid_type: type, pid: innermost(pid) };
  } finally {
    close(local);
  }
}

function innermost(pid: number): number {
  try {
    return readStatus(pid).nsPid.at(-1) ?? pid;
  } catch {
    return pid; // a group whose leader is gone: its id as criu-ts sees it
  }
}

/**
 * Owner and signal, on criu-ts's fd of the file; the owner set with the uids that set it.
 * `hostPid`: the id in criu-ts's PID namespace of a task or group of the tree.
 */
export function restoreFown(fd: number, fown: Fown | undefined, hostPid: (pid: number) => number = (p) => p): void {
  const signum = fown?.signum ?? 0;
  if (signum) fcntl(fd, F.SETSIG, signum);
  const pid = fown?.pid ? hostPid(fown.pid) : 0;
  if (pid) {
    const owner = Buffer.alloc(8);
    owner.writeInt32LE(fown!.pid_type ?? 0, 0);
    owner.writeInt32LE(pid, 4);
    const uid = fown!.uid ?? 0,
      euid = fown!.euid ?? 0;
    if (uid || euid) withThreadUids(uid, euid, () => fcntl(fd, F.SETOWN_EX, owner));
    else fcntl(fd, F.SETOWN_EX, owner);
  }
}

/**
 * O_ASYNC, set by the task on its own fd: the kernel sends the owner the fd number of the
 * F_SETFL call that set it (si_fd), which must be the task's, not criu-ts's.
 */
export function setAsync(t: Tracee, fd: number): void {
  const now = Number(t.syscall('fcntl', fd, F.GETFL));
  t.syscall('fcntl', fd, F.SETFL, now | FASYNC);
}
