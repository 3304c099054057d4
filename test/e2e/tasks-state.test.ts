/**
 * Task states: a task in a chroot (paths resolved in its root), a task that was stopped by a
 * signal when it was dumped, and a root that dies before restore -d lets go of it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, signal, readLines, waitFor, procState, adopt, assertOk, assertCleanError } from '../lib/proc.ts';
import { dumpAndReap, restore, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { readMessages } from '../../src/images/index.ts';
import { workload } from '../lib/workloads.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';

e2e('a task in a chroot comes back in it, with its working directory inside', async (c) => {
  const root = join(c.dir, 'root');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'marker'), 'x');
  const t = await startChecking(c, 'chroot', ['-d', root]);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

const SIGSTOP = 19,
  SIGCONT = 18;

e2e('a task stopped by SIGSTOP, with a second SIGSTOP pending, comes back stopped and goes on after SIGCONT', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  signal(t.pid, SIGSTOP);
  await waitFor(() => procState(t.pid) === 'T', 5000, 'the task to stop');
  signal(t.pid, SIGSTOP); // stays pending: the task is stopped already
  assert.match(readFileSync(`/proc/${t.pid}/status`, 'latin1'), /^ShdPnd:\s+0*40000$/m, 'SIGSTOP pending');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const core = readMessages(join(img, `core-${t.pid}.img`), 'core_entry')[0];
  assert.equal(core.tc?.stop_signo, SIGSTOP);
  const r = restore(img, ['-d']);
  adopt(t.pid);
  assertOk(r);
  await waitFor(() => procState(t.pid) === 'T', 5000, 'the restored task to be stopped');
  const at = readLines(t.log).length;
  signal(t.pid, SIGCONT);
  await waitFor(() => readLines(t.log).length >= at + 2, 5000, 'the counter to go on');
  killAndReap(t.pid);
});

e2e('restore -d fails when the restored root dies before criu-ts lets go of it', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  // The fault kills the root after its release, before criu-ts looks at it and exits.
  const r = restore(img, ['-d'], { env: { CRIU_TS_FAULT: 'root-dies' } });
  assert.equal(assertCleanError(r), `the restored task ${t.pid} was killed by signal 9 before criu-ts let go of it`);
  assert.equal(procState(t.pid), null, 'the dead root was reaped');
});
