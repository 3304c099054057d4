/**
 * --freeze-cgroup: the tree is frozen with the cgroup freezer (v1 and v2) before it is
 * seized, and the cgroup is thawed again whatever happens.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, assertRunningFree, killAndReap, readLines, assertCleanError } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const FREEZERS = [
  {
    name: 'v2',
    root: '/sys/fs/cgroup/unified',
    state: (d: string) => (readFileSync(join(d, 'cgroup.events'), 'utf8').includes('frozen 0') ? 'thawed' : 'frozen'),
  },
  {
    name: 'v1',
    root: '/sys/fs/cgroup/freezer',
    state: (d: string) => (readFileSync(join(d, 'freezer.state'), 'utf8').trim() === 'THAWED' ? 'thawed' : 'frozen'),
  },
].filter((f) => existsSync(f.root));

for (const f of FREEZERS) {
  e2e(`--freeze-cgroup (${f.name}): dump -R and dump + restore of a tree in a freezer cgroup`, async (c) => {
    const cg = join(f.root, `criu-ts-test-${process.pid}-${f.name}`);
    mkdirSync(cg, { recursive: true });
    try {
      const t = startTarget(['/usr/bin/bash', '-c', `${workload('counter')} 50 & wait`], { logFile: join(c.dir, 'tree.log') });
      await waitForCounter(t.log, 2);
      const child = Number(readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').trim());
      // "0" would move the writer itself (this test) into the cgroup.
      assert.ok(child > 0, 'the counter runs as the child of bash');
      writeFileSync(join(cg, 'cgroup.procs'), String(t.pid));
      writeFileSync(join(cg, 'cgroup.procs'), String(child));
      const img = c.subdir('img');
      const r = dump(t.pid, img, ['-R', '--freeze-cgroup', cg]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(f.state(cg), 'thawed', 'the cgroup is thawed after the dump');
      assertRunningFree(t.pid);
      await waitForCounter(t.log, -1, 5000, readLines(t.log).length);

      // A cgroup that holds a process outside the tree is refused, and thawed again.
      const stranger = startTarget(['/bin/sleep', '100'], { logFile: join(c.dir, 'sleep.log') });
      writeFileSync(join(cg, 'cgroup.procs'), String(stranger.pid));
      const line = assertCleanError(dump(t.pid, c.subdir('bad'), ['-R', '--freeze-cgroup', cg]));
      assert.ok(line.includes(String(stranger.pid)), line);
      assert.equal(f.state(cg), 'thawed');
      killAndReap(stranger.pid);

      const img2 = c.subdir('img2');
      dumpAndReap(t.pid, img2, ['--freeze-cgroup', cg]);
      const mark = readLines(t.log).length;
      restoreDetached(img2, t.pid);
      await waitForCounter(t.log, -1, 10_000, mark);
      killAndReap(t.pid);
    } finally {
      try {
        rmdirSync(cg);
      } catch {
        /* processes still inside: the sweep kills them */
      }
    }
  });
}

const freeze = (f: (typeof FREEZERS)[number], cg: string, on: boolean): void =>
  f.name === 'v2'
    ? writeFileSync(join(cg, 'cgroup.freeze'), on ? '1' : '0')
    : writeFileSync(join(cg, 'freezer.state'), on ? 'FROZEN' : 'THAWED');

for (const f of FREEZERS) {
  e2e(`a task in a cgroup frozen by someone else (${f.name}) is refused at once, naming the cgroup, and stays frozen`, async (c) => {
    const cg = join(f.root, `criu-ts-test-${process.pid}-${f.name}-frozen`);
    mkdirSync(cg, { recursive: true });
    try {
      const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
      await waitForCounter(t.log, 2);
      writeFileSync(join(cg, 'cgroup.procs'), String(t.pid));
      freeze(f, cg, true);
      for (let i = 0; i < 100 && f.state(cg) !== 'frozen'; i++) await new Promise((r) => setTimeout(r, 10));
      // Before, PTRACE_INTERRUPT waited for the thaw: the dump hung, deaf to --timeout and SIGTERM.
      const line = assertCleanError(dump(t.pid, c.subdir('img'), ['--timeout', '2'], { timeoutMs: 20_000 }));
      assert.match(line, new RegExp(`^task ${t.pid}: cgroup: it is in the frozen cgroup ${cg}, where ptrace cannot stop it`), line);
      assert.equal(f.state(cg), 'frozen', 'the cgroup is left frozen');
      freeze(f, cg, false);
      assertRunningFree(t.pid);
      await waitForCounter(t.log, -1, 5000, readLines(t.log).length);
      killAndReap(t.pid);
    } finally {
      try {
        rmdirSync(cg);
      } catch {
        /* processes still inside: the sweep kills them */
      }
    }
  });
}
