/**
 * A guardian for sockets put in repair mode in another process: if whoever froze them dies
 * before it says it is done (SIGKILL, a crash), the guardian turns repair off on each of
 * them, so that their owner can use its connections again.
 *
 * The guardian is a process of its own, in its own session, that reads lines on a pipe:
 * `pid fd ino reuseaddr` for each socket before it is frozen, and `done` at the end. At
 * end of file without `done`, it takes a copy of each socket from its process (pidfd_getfd),
 * checks that it is still the same socket (inode), and turns repair off.
 *
 * ```ts
 * const g = RepairGuard.start([process.execPath, 'guardian-entry.js']); // runs runGuardian(0)
 * g.note(pid, fd, ino, reuseaddr);  // before freezing that socket
 * g.done();                          // once every frozen socket is resumed or its owner dead
 * ```
 */
import fs from 'node:fs';
import { posixSpawn, pipe2, close, pidfdOpen, pidfdGetfd, waitpid, O } from '../kernel/index.ts';
import { heal } from './index.ts';

const WNOHANG = 1;

export class RepairGuard {
  private readonly fd: number;
  /** The guardian's pid. */
  readonly pid: number;
  private constructor(fd: number, pid: number) { this.fd = fd; this.pid = pid; }

  /** Start the guardian: `argv` runs a program that calls runGuardian(0). */
  static start(argv: string[]): RepairGuard {
    const [r, w] = pipe2(O.CLOEXEC);
    let pid: number;
    try {
      pid = posixSpawn(argv[0], argv, [], [{ fd: 0, dupFrom: r }, { fd: 1, path: '/dev/null', flags: O.RDWR }, { fd: 2, path: '/dev/null', flags: O.RDWR }], true);
    } finally {
      close(r);
    }
    return new RepairGuard(w, pid);
  }

  /** Record a socket about to be put in repair mode. */
  note(pid: number, fd: number, ino: number, reuseaddr: number): void {
    fs.writeSync(this.fd, `${pid} ${fd} ${ino} ${reuseaddr}\n`);
  }

  /** Give up as if the freezer had died: the guardian turns repair off on every noted socket. */
  abandon(): void {
    close(this.fd);
    try { waitpid(this.pid, 0); } catch { /* reaped elsewhere */ }
  }

  /**
   * Nothing is left in repair mode: the guardian exits without touching anything. It is not
   * waited for now (it may still be starting); it is reaped when this process exits.
   */
  done(): void {
    try { fs.writeSync(this.fd, 'done\n'); } finally { close(this.fd); }
    const pid = this.pid;
    let gone = false;
    try { gone = waitpid(pid, WNOHANG).pid === pid; } catch { gone = true; }
    if (!gone) process.once('exit', () => { try { waitpid(pid, 0); } catch { /* reaped elsewhere */ } });
  }
}

/** The guardian's body: read the notes from `input` until end of file, heal unless done. */
export function runGuardian(input: number): number {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n: number;
    try { n = fs.readSync(input, buf, 0, buf.length, null); } catch { break; }
    if (n <= 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  const lines = Buffer.concat(chunks).toString().split('\n').filter((l) => l);
  if (lines[lines.length - 1] === 'done') return 0;
  for (const l of lines) {
    const [pid, fd, ino, reuseaddr] = l.split(' ').map(Number);
    let pidfd = -1, copy = -1;
    try {
      pidfd = pidfdOpen(pid);
      copy = pidfdGetfd(pidfd, fd);
      if (fs.fstatSync(copy).ino === ino) heal(copy, reuseaddr);
    } catch { /* the task or its socket is gone: nothing left to heal */ }
    if (copy >= 0) close(copy);
    if (pidfd >= 0) close(pidfd);
  }
  return 0;
}
