// A disposable child that cannot outlive criu-ts: `cat` reading a pipe whose only write end
// criu-ts holds (close-on-exec, so no other child inherits it). Whenever criu-ts dies, even
// by SIGKILL before it has seized the child (whose PTRACE_O_EXITKILL then kills it), the
// child reads end-of-file and exits by itself.
import { existsSync } from 'node:fs';
import { posixSpawn } from './ffi.ts';
import { pipe2, close, kill, waitpid } from './syscalls.ts';
import { O, SIG, WALL } from './constants.ts';

const CAT = ['/bin/cat', '/usr/bin/cat'];

export interface Tethered {
  pid: number;
  /** The pipe's write end: closing it ends the child. */
  tether: number;
}

export function spawnTethered(): Tethered {
  const bin = CAT.find(existsSync);
  if (!bin) throw new Error('no helper program (cat) found');
  const [r, w] = pipe2(O.CLOEXEC);
  try {
    const pid = posixSpawn(
      bin,
      ['cat'],
      [],
      [
        { fd: 0, dupFrom: r },
        { fd: 1, path: '/dev/null', flags: O.RDWR },
        { fd: 2, path: '/dev/null', flags: O.RDWR },
      ],
    );
    return { pid, tether: w };
  } catch (e) {
    close(w);
    throw e;
  } finally {
    close(r);
  }
}

/** Kill and reap a tethered child, and drop its tether. */
export function endTethered(t: Tethered): void {
  try {
    kill(t.pid, SIG.KILL);
  } catch {
    /* gone */
  }
  try {
    waitpid(t.pid, WALL);
  } catch {
    /* reaped */
  }
  try {
    close(t.tether);
  } catch {
    /* closed */
  }
}
