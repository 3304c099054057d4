/**
 * pidfds. A pidfd comes back naming the same process (itself, or one outside
 * the tree that is still there) and still tells when that process exits; a pidfd of a
 * process that had exited names none. (A parent's pidfd of its child: ZDTM's pidfd_child.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, signal, waitForLine, readLines, SIGUSR1 } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const SIGUSR2 = 12;

e2e('pidfds of itself and of a process outside the tree come back', async (c) => {
  const outside = spawn('/usr/bin/sleep', ['1000'], { stdio: 'ignore' });
  try {
    const t = startTarget([workload('pidfd'), '-p', String(outside.pid)], { logFile: join(c.dir, 'pidfd.log') });
    await waitForLine(t.log, /^tick n=2$/);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    restoreDetached(img, t.pid);
    let from = readLines(t.log).length;
    signal(t.pid, SIGUSR1);
    assert.equal((await waitForLine(t.log, /^CHECK /, 10_000, from)).line, 'CHECK ok');
    const gone = new Promise((resolve) => outside.once('exit', resolve));
    outside.kill('SIGKILL');
    await gone;
    from = readLines(t.log).length;
    signal(t.pid, SIGUSR2);
    assert.equal(
      (await waitForLine(t.log, /^EXITED /, 10_000, from)).line,
      'EXITED yes',
      'the restored pidfd tells that its process exited',
    );
    killAndReap(t.pid);
  } finally {
    outside.kill('SIGKILL');
  }
});

e2e('a pidfd of a process that has exited comes back as one', async (c) => {
  const outside = spawn('/usr/bin/sleep', ['1000'], { stdio: 'ignore' });
  const t = startTarget([workload('pidfd'), '-p', String(outside.pid)], { logFile: join(c.dir, 'pidfd.log') });
  await waitForLine(t.log, /^tick n=2$/);
  const gone = new Promise((resolve) => outside.once('exit', resolve));
  outside.kill('SIGKILL');
  await gone;
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.match(readFileSync(`/proc/${t.pid}/fdinfo/4`, 'latin1'), /^Pid:\s+-1$/m, 'the pidfd names no process');
  assert.match(readFileSync(`/proc/${t.pid}/fdinfo/3`, 'latin1'), new RegExp(`^Pid:\\s+${t.pid}$`, 'm'), 'its own pidfd names itself');
  const from = readLines(t.log).length;
  signal(t.pid, SIGUSR2);
  assert.equal((await waitForLine(t.log, /^EXITED /, 10_000, from)).line, 'EXITED yes');
  killAndReap(t.pid);
});
