// How the socket kinds reach a task's socket at dump time: its protocol name, which tells the
// kinds apart before anything is copied, and a pidfd_getfd copy for the time of one dump.
import fs from 'node:fs';
import { sock, pidfdOpen, pidfdGetfd, close, ioctl, SysError } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import type { FdProbe } from '../files/types.ts';
import { findFd } from '../../proc/index.ts';

/** The name the socket's "system.sockprotoname" xattr gives (TCP, PINGv6, NETLINK, PACKET...). */
export function protoNameOf(p: Pick<FdProbe, 'pid' | 'fd' | 'link'>): string | undefined {
  if (!p.link.startsWith('socket:')) return undefined;
  try {
    return sock.sockProtoName(`/proc/${p.pid}/fd/${p.fd}`);
  } catch {
    return undefined;
  }
}

/** Run `fn` on a copy of the task's socket (the same open file description), closed afterwards. */
export function withCopy<T>(p: Pick<FdProbe, 'pid' | 'fd'>, fn: (copy: number) => T): T {
  const pidfd = pidfdOpen(p.pid);
  let copy: number;
  try {
    copy = pidfdGetfd(pidfd, p.fd);
  } finally {
    close(pidfd);
  }
  try {
    return fn(copy);
  } finally {
    close(copy);
  }
}

/** The inode of a socket fd, from its link (socket:[N]). */
export const sockIno = (p: Pick<FdProbe, 'link' | 'ino'>): number => Number(/^socket:\[(\d+)\]$/.exec(p.link)?.[1] ?? p.ino);

/** A restore step whose failing syscall is said with the socket it was for (`what`). */
export function forSocket<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SysError) throw new CriuError(`${what}: ${err.message}`);
    throw err;
  }
}

/**
 * Is the socket in the network namespace criu-ts works in (the tree's own, when it has one),
 * the one sock_diag shows and the restore makes sockets in?
 */
export function inOwnNetns(copy: number): boolean {
  const ns = ioctl(copy, sock.SIOCGSKNS);
  try {
    return fs.fstatSync(ns).ino === fs.statSync('/proc/thread-self/ns/net').ino;
  } finally {
    close(ns);
  }
}

/** The sockets the tasks `pids` hold, by inode: the first task and fd that hold each. */
export function socketHolders(pids: readonly number[]): Map<number, { pid: number; fd: number }> {
  const inos = new Map<number, { pid: number; fd: number }>();
  findFd(pids, (pid, fd) => {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    if (m && !inos.has(Number(m[1]))) inos.set(Number(m[1]), { pid, fd: Number(fd) });
    return false; // every fd
  });
  return inos;
}
