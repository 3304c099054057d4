/**
 * Task states issue 11 names: a task in a chroot (paths resolved in its root) and a task
 * that was stopped by a signal when it was dumped.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, signal, waitForLine, readLines, SIGUSR1 } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

e2e('a task in a chroot comes back in it, with its working directory inside', async (c) => {
  const root = join(c.dir, 'root');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'marker'), 'x');
  const t = startTarget([workload('chroot'), '-d', root], { logFile: join(c.dir, 'chroot.log') });
  await waitForLine(t.log, /^tick n=2$/);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  const from = readLines(t.log).length;
  signal(t.pid, SIGUSR1);
  assert.equal((await waitForLine(t.log, /^CHECK /, 10_000, from)).line, 'CHECK ok');
  killAndReap(t.pid);
});
