// /proc/locks, read by a child while the caller goes on. Each read of it takes the kernel's
// file_rwsem for writing (percpu_down_write), which waits for an RCU grace period: sleep that a
// frozen tree's dump spends reading its VMAs meanwhile. The caller takes the text
// (and reaps the child) soon after: a child left to a killed criu-ts would go to its reaper.
import fs from 'node:fs';
import { O, W, close, pipe2, posixSpawn, waitpid, WALL } from '../kernel/index.ts';

export interface LocksRead {
  /** The text, once the child wrote it all; read directly if the child could not run. */
  text(): string;
  /** Stop the child if its text is no longer wanted. */
  drop(): void;
}

const CAT = ['/usr/bin/cat', '/bin/cat'].find((p) => fs.existsSync(p));

export function readProcLocksAhead(): LocksRead {
  const direct = (): string => fs.readFileSync('/proc/locks', 'latin1');
  if (!CAT) return { text: direct, drop: () => {} };
  const [r, w] = pipe2(O.CLOEXEC);
  let pid: number | undefined;
  try {
    pid = posixSpawn(
      CAT,
      ['cat', '/proc/locks'],
      [],
      [
        { fd: 1, dupFrom: w },
        { fd: 2, path: '/dev/null', flags: O.WRONLY },
      ],
    );
  } catch {
    close(r);
    return { text: direct, drop: () => {} };
  } finally {
    close(w);
  }
  const reap = (): boolean => {
    if (pid === undefined) return true;
    const st = waitpid(pid, WALL);
    pid = undefined;
    return W.exited(st.status) && W.exitStatus(st.status) === 0;
  };
  let done: string | undefined;
  return {
    text() {
      if (done !== undefined) return done;
      const chunks: Buffer[] = [];
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (let n; (n = fs.readSync(r, buf)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
      close(r);
      done = reap() ? Buffer.concat(chunks).toString('latin1') : direct();
      return done;
    },
    drop() {
      if (pid === undefined) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
      reap();
      close(r);
    },
  };
}
