// Joining another task's namespaces with Node's main thread, and coming back. Only net, uts,
// ipc and cgroup: the kernel refuses user and time to a multithreaded process, and a mount
// namespace change would move the fs_struct every Node thread shares.
import fs from 'node:fs';
import { CLONE } from './constants.ts';
import { setns, pidfdOpen, close } from './syscalls.ts';

const JOINABLE: Array<[number, string]> = [
  [CLONE.NEWNET, 'net'],
  [CLONE.NEWUTS, 'uts'],
  [CLONE.NEWIPC, 'ipc'],
  [CLONE.NEWCGROUP, 'cgroup'],
];

/**
 * Run `fn` on the main thread inside the `flags` namespaces of `pid` (one setns through a
 * pidfd: all or nothing), then go back. Sockets and sysctl files opened meanwhile keep
 * the namespace they were opened in.
 */
export function inNamespaces<T>(pid: number, flags: number, fn: () => T): T {
  const unknown = flags & ~JOINABLE.reduce((a, [f]) => a | f, 0);
  if (unknown) throw new Error(`inNamespaces: namespace flags 0x${unknown.toString(16)} cannot be joined by criu-ts itself`);
  const home = JOINABLE.filter(([f]) => flags & f).map(([f, n]) => [f, fs.openSync(`/proc/thread-self/ns/${n}`, 'r')] as const);
  try {
    const pidfd = pidfdOpen(pid);
    try {
      setns(pidfd, flags);
    } finally {
      close(pidfd);
    }
    try {
      return fn();
    } finally {
      for (const [f, fd] of home) setns(fd, f);
    }
  } finally {
    for (const [, fd] of home) fs.closeSync(fd);
  }
}

/** Run `fn` on the main thread inside the network namespace of the file `nsFd`, then go back. */
export function inNetNsFd<T>(nsFd: number, fn: () => T): T {
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  try {
    setns(nsFd, CLONE.NEWNET);
    try {
      return fn();
    } finally {
      setns(home, CLONE.NEWNET);
    }
  } finally {
    fs.closeSync(home);
  }
}
