/**
 * A guardian for sockets put in repair mode in another process: if whoever froze them dies
 * before it says it is done (SIGKILL, a crash), the guardian turns repair off on each of
 * them, so that their owner can use its connections again.
 *
 * The guardian is a process of its own, in its own session, that reads lines on a pipe:
 * `pid fd ino reuseaddr` for each socket before it is frozen, and `done` at the end. For each
 * socket it takes a copy from its process (pidfd_getfd), checks that it is still that socket
 * (inode), and acknowledges on another pipe, where it first says that it runs. At end of
 * file without `done`, it turns repair off on each socket whose process still has it. A
 * socket whose process is gone stays in repair mode and closes silently with the guardian's
 * copy.
 *
 * The freezer may also leave a line of its own (`extra(text)`, e.g. firewall rules that lock
 * the connections): the last one is handed to the guardian's `onGiveUp` when it heals.
 *
 * ```ts
 * const g = RepairGuard.start([process.execPath, 'guardian-entry.js']); // runs runGuardian(0, 1)
 * g.note(pid, fd, ino, reuseaddr);  // before freezing that socket (noteMany: many at once)
 * g.done(true);                      // once every frozen socket is resumed or its owner dead
 * ```
 */
import fs from 'node:fs';
import { posixSpawn, pipe2, close, pidfdOpen, pidfdGetfd, waitpid, O, WNOHANG } from '../kernel/index.ts';
import { heal } from './index.ts';

export class RepairGuard {
  private readonly fd: number;
  private readonly acks: number;
  /** The guardian's pid. */
  readonly pid: number;
  private constructor(fd: number, acks: number, pid: number) {
    this.fd = fd;
    this.acks = acks;
    this.pid = pid;
  }

  /** Start the guardian: `argv` runs a program that calls runGuardian(0, 1). */
  static start(argv: string[]): RepairGuard {
    const [r, w] = pipe2(O.CLOEXEC);
    const [ar, aw] = pipe2(O.CLOEXEC);
    let pid: number;
    try {
      pid = posixSpawn(
        argv[0],
        argv,
        [],
        [
          { fd: 0, dupFrom: r },
          { fd: 1, dupFrom: aw },
          { fd: 2, path: '/dev/null', flags: O.RDWR },
        ],
        true,
      );
    } finally {
      close(r);
      close(aw);
    }
    const g = new RepairGuard(w, ar, pid);
    // It says first that it runs: the first note or extra waits for that, so that it is up
    // before anything is frozen (and heals at once whenever this process dies), while the
    // caller does something else meanwhile.
    g.unacked = 1;
    return g;
  }

  /** Lines written whose ack is not read yet. */
  private unacked = 0;

  /**
   * Record a socket about to be put in repair mode. The guardian gets every note written
   * before this process dies (the pipe keeps them until it reads them), and takes a copy of
   * each socket as it reads its note.
   */
  note(pid: number, fd: number, ino: number, reuseaddr: number): void {
    this.noteMany([{ pid, fd, ino, reuseaddr }]);
  }

  /**
   * Record many sockets at once. Neither waits for the guardian to take its copies, which it
   * does meanwhile (a round trip per socket costs more than the rest of its dump); acks are
   * read a slice behind, so that the ack pipe never fills while notes are written.
   */
  noteMany(socks: ReadonlyArray<{ pid: number; fd: number; ino: number; reuseaddr: number }>): void {
    for (let k = 0; k < socks.length; k += 4096) {
      const part = socks.slice(k, k + 4096);
      const before = this.unacked;
      fs.writeSync(this.fd, part.map((s) => `${s.pid} ${s.fd} ${s.ino} ${s.reuseaddr}\n`).join(''));
      this.unacked += part.length;
      this.readAcks(before);
    }
  }

  /** Something else to undo if this process dies while a socket of a live task is frozen (one line, replaces the last). */
  extra(text: string): void {
    fs.writeSync(this.fd, `extra ${text.replace(/\n/g, ' ')}\n`);
    this.unacked++;
    this.readAcks(this.unacked);
  }

  /** Wait for `n` acks: the guardian has read (and taken a copy for) that many more lines. */
  private readAcks(n: number): void {
    const ack = Buffer.alloc(n);
    for (let got = 0; got < n; ) {
      const r = fs.readSync(this.acks, ack, got, n - got, null);
      if (r <= 0) throw new Error('the TCP repair guardian is gone');
      got += r;
    }
    this.unacked -= n;
  }

  /** Give up as if the freezer had died: the guardian turns repair off on every noted socket. */
  abandon(): void {
    close(this.acks);
    close(this.fd);
    try {
      waitpid(this.pid, 0);
    } catch {
      /* reaped elsewhere */
    }
  }

  /**
   * Nothing is left in repair mode: the guardian closes its copies and exits without touching
   * anything. `wait` when the sockets' owners are dead: their 4-tuples are free only once the
   * guardian's copies are closed too. Otherwise it is reaped when this process exits.
   */
  done(wait: boolean): void {
    try {
      fs.writeSync(this.fd, 'done\n');
    } finally {
      close(this.fd);
      close(this.acks);
    }
    const pid = this.pid;
    let gone = false;
    try {
      gone = waitpid(pid, wait ? 0 : WNOHANG).pid === pid;
    } catch {
      gone = true;
    }
    if (!gone)
      process.once('exit', () => {
        try {
          waitpid(pid, 0);
        } catch {
          /* reaped elsewhere */
        }
      });
  }
}

/** A noted socket: a copy taken as soon as the note is read, so that healing is one call. */
interface Noted {
  pid: number;
  fd: number;
  ino: number;
  reuseaddr: number;
  copy: number;
}

/** pidfds of the noted sockets' tasks, one per task (a dead task's gives ESRCH). */
const pidfds = new Map<number, number>();

/**
 * Turn repair off on fd `fd` of task `pid` if it is still socket `ino` (the task lives);
 * false if there was nothing to heal.
 */
export function healIn(pid: number, fd: number, ino: number, reuseaddr: number): boolean {
  const copy = copyOf(pid, fd, ino);
  if (copy < 0) return false;
  try {
    return heal(copy, reuseaddr);
  } finally {
    close(copy);
  }
}

/** A copy of fd `fd` of task `pid` if it is still socket `ino`, else -1. */
function copyOf(pid: number, fd: number, ino: number): number {
  try {
    let pidfd = pidfds.get(pid);
    if (pidfd === undefined) {
      pidfd = pidfdOpen(pid);
      pidfds.set(pid, pidfd);
    }
    const copy = pidfdGetfd(pidfd, fd);
    if (fs.fstatSync(copy).ino === ino) return copy;
    close(copy);
  } catch {
    /* the task or its socket is gone */
  }
  return -1;
}

/**
 * The guardian's body: read the notes from `input` until end of file, taking a copy of each
 * socket as its note comes; unless the last line is `done`, turn repair off on each. The
 * freezer's tracees run again a moment after its pipe closes: one of their calls may still
 * meet repair mode (send EINVAL, recv EPERM) before the guardian gets to it.
 */
export function runGuardian(input: number, acks: number, onGiveUp?: (extra: string) => void): number {
  const noted: Noted[] = [];
  let extra: string | undefined;
  const buf = Buffer.alloc(4096);
  let rest = '',
    last = '';
  try {
    fs.writeSync(acks, 'r');
  } catch {
    /* the freezer is gone: its EOF comes next */
  }
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(input, buf, 0, buf.length, null);
    } catch {
      break;
    }
    if (n <= 0) break;
    const lines = (rest + buf.toString('latin1', 0, n)).split('\n');
    rest = lines.pop() ?? '';
    let taken = 0;
    for (const l of lines) {
      last = l;
      if (l === 'done') continue;
      if (l.startsWith('extra ')) extra = l.slice(6);
      else {
        const [pid, fd, ino, reuseaddr] = l.split(' ').map(Number);
        noted.push({ pid, fd, ino, reuseaddr, copy: copyOf(pid, fd, ino) });
      }
      taken++;
    }
    // One ack per line, all the lines of this read at once.
    if (taken)
      try {
        fs.writeSync(acks, 'k'.repeat(taken));
      } catch {
        /* the freezer is gone: its EOF comes next */
      }
  }
  let healed = 0;
  for (const s of noted) {
    if (last !== 'done') {
      // Only where the task still has its socket: a dead task's connection waits for its
      // restore, and must close in repair mode, without a word to the peer.
      if (healIn(s.pid, s.fd, s.ino, s.reuseaddr)) healed++;
    }
    // Closed in repair mode after done: the socket's owner is dead or has it back.
    if (s.copy >= 0) close(s.copy);
  }
  if (last !== 'done' && extra !== undefined && (healed || !noted.length)) onGiveUp?.(extra);
  return 0;
}
