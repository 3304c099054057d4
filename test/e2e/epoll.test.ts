/**
 * epoll: its targets come back registered under the same fd numbers with their events and data,
 * and an epoll whose target fd was closed (the file still watched through a dup) comes back
 * watching it under that same number, while the number itself holds what it held.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, signal, waitForLine, SIGUSR1 } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

/** The epoll workload (`args`) checks itself before a dump and after its restore. */
async function checkedAcrossRestore(c: { dir: string; subdir(n: string): string }, args: string[]): Promise<void> {
  const t = startTarget([workload('epoll'), ...args], { logFile: join(c.dir, 'epoll.log') });
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
}

e2e('an epoll with a pipe and an eventfd reports both after restore', (c) => checkedAcrossRestore(c, []));

e2e('an epoll watching a file through a closed fd, now reused, keeps watching it under that number', (c) =>
  checkedAcrossRestore(c, ['closed']),
);
