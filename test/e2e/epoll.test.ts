/**
 * epoll: its targets come back registered under the same fd numbers with their events and data,
 * and an epoll whose target fd was closed (the file still watched) is refused, not restored wrong.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { e2e, startTarget, assertCleanError, assertRunningFree, killAndReap, signal, waitForLine, SIGUSR1 } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

e2e('an epoll with a pipe and an eventfd reports both after restore', async (c) => {
  const t = startTarget([workload('epoll')], { logFile: join(c.dir, 'epoll.log') });
  await waitForLine(t.log, /^ready /);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^check=ok$/);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  const before = (await waitForLine(t.log, /^check=/)).index;
  signal(t.pid, SIGUSR1);
  const { line } = await waitForLine(t.log, /^check=/, 10_000, before + 1);
  assert.equal(line, 'check=ok');
  killAndReap(t.pid);
});

e2e('an epoll watching a file through a closed fd is refused in one line, and the task runs on', async (c) => {
  const t = startTarget([workload('epoll'), 'closed'], { logFile: join(c.dir, 'epoll.log') });
  await waitForLine(t.log, /^ready /);
  const line = assertCleanError(dump(t.pid, c.subdir('img')));
  assert.match(line, /\(epoll\): its target fd \d+ was closed or replaced after it was added; not supported yet$/);
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});
