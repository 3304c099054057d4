/**
 * Bad input for trees: tasks that come and go during the dump, a tree that
 * reaches into a PID namespace, and a restore whose PIDs are taken. Each ends
 * cleanly (exit 1, one line) or succeeds, and harms nothing: a failed or -R
 * dump leaves the tree running, a failed restore leaves no stray process and
 * never touches the process that holds the PID.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import {
  e2e,
  startTarget,
  killAndReap,
  readLines,
  adopt,
  reap,
  signal,
  sleep,
  type CriuResult,
  isAlive,
  CRIU_BIN,
  type Target,
  waitForLine,
  waitFor,
  descendants,
  assertRunningFree,
  assertCleanError,
  imageFiles,
  procStat,
  parseKV,
  lastCounter,
  describeRun,
  counterValues,
  assertConsecutive,
  SLOW,
} from '../lib/proc.ts';
import { dump, restore, dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages } from '../../src/images/index.ts';
import { treeSnapshot, renderTree } from '../lib/tree.ts';

const SIGSTOP = 19;

/** Four dumps -R of a churning tree; returns the results. Each must succeed or fail cleanly and leave the tree running. */
async function churnDumps(
  c: { subdir(n: string): string },
  t: { pid: number; log: string },
  stable: number[],
  extra: string[],
): Promise<CriuResult[]> {
  const out: CriuResult[] = [];
  for (let round = 1; round <= 4; round++) {
    const img = c.subdir(`img${round}`);
    const r = dump(t.pid, img, ['-R', ...extra]);
    out.push(r);
    if (r.code === 0) {
      const pids = readMessages(join(img, 'pstree.img'), 'pstree_entry').map((e) => e.pid as number);
      for (const must of [t.pid, ...stable]) assert.ok(pids.includes(must), `round ${round}: ${must} is in pstree.img`);
    } else {
      assertCleanError(r);
      assert.deepEqual(imageFiles(img), [], `round ${round}: no partial images`);
    }
    for (const p of [t.pid, ...stable]) assertRunningFree(p, `round ${round}: PID ${p} after dump -R (exit ${r.code})`);
    for (const p of descendants(t.pid)) {
      const st = procStat(p);
      assert.ok(!st || (st.state !== 'T' && st.state !== 't'), `round ${round}: ${p} was left stopped (${st?.state})`);
    }
    await waitForCounter(t.log, lastCounter(t.log) + 2, 5000); // it keeps churning
  }
  return out;
}

/** Stop the whole churning group first (so nothing new is forked), then kill and reap it all. */
async function killChurn(pid: number): Promise<void> {
  signal(-procStat(pid)!.pgid, SIGSTOP);
  await sleep(100);
  for (const d of descendants(pid)) adopt(d);
  killAndReap(pid);
}

async function startChurn(c: { dir: string }): Promise<{ t: Target; stable: number[] }> {
  const t = startTarget([workload('churn')], { logFile: join(c.dir, 'churn.log') });
  const s = parseKV((await waitForLine(t.log, /^stable /, 5000)).line);
  await waitForCounter(t.log, 3);
  return { t, stable: [Number(s.a), Number(s.b)] };
}

e2e(
  'a tree whose tasks come and go: dump -R goes on without them or fails cleanly, and the tree runs on',
  async (c) => {
    const { t, stable } = await startChurn(c);
    // A short freezing limit: a dump that fails on a vanished task should not cost 10 s here.
    const results = await churnDumps(c, t, stable, ['--timeout', '3']);
    assert.ok(
      results.some((r) => r.code === 0),
      'at least one of four dumps of the churning tree succeeded',
    );

    // And a dump that kills it restores into a tree that churns on (a clean failure is retried).
    let img = '';
    for (let attempt = 1; ; attempt++) {
      img = c.subdir(`img-final${attempt}`);
      for (const d of descendants(t.pid)) adopt(d);
      const r = dump(t.pid, img, ['--timeout', '3']);
      if (r.code === 0) break;
      assertCleanError(r);
      assertRunningFree(t.pid, 'after a failed dump');
      if (attempt === 3) assert.fail(`three dumps of the churning tree failed:\n${describeRun(r)}`);
    }
    reap(t.pid);
    for (const p of readMessages(join(img, 'pstree.img'), 'pstree_entry').map((e) => e.pid as number)) if (p !== t.pid) reap(p);
    const atDump = lastCounter(t.log);
    restoreDetached(img, t.pid);
    await waitForCounter(t.log, atDump + 3, 10_000);
    const last = parseKV(readLines(t.log).at(-1)!);
    for (const p of stable) assertRunningFree(p, `stable child ${p} after restore`);
    const before = parseKV(readLines(t.log).filter((l) => l.startsWith(`i=${atDump} `))[0] ?? 'forks=0 threads=0');
    assert.ok(
      Number(last.forks) > Number(before.forks) && Number(last.threads) > Number(before.threads),
      'children and threads still come and go',
    );
    await killChurn(t.pid);
    assertConsecutive(counterValues(readLines(t.log)), 'churn counter', 1);
  },
  { timeout: 90_000 },
);

e2e(
  'a task that exits while the tree is being frozen does not make the dump wait for the freezing timeout',
  async (c) => {
    const { t, stable } = await startChurn(c);
    // A dump stuck on a vanished task would fail at the 20 s timeout; a busy machine may make
    // a good dump of this big, churning tree take a few seconds, so the line is drawn well below.
    const results = await churnDumps(c, t, stable, ['--timeout', String(20 * SLOW)]);
    const slow = results.filter((r) => r.code !== 0 || r.ms > 15_000 * SLOW);
    await killChurn(t.pid);
    assert.deepEqual(
      slow.map((r) => `exit ${r.code} in ${r.ms} ms: ${r.stderr.trim()}`),
      [],
      'every dump went on without the vanished tasks',
    );
  },
  {
    timeout: 150_000,
  },
);

e2e('a tree that reaches into a PID namespace gives a clear error and is not harmed', async (c) => {
  const t = startTarget(['/usr/bin/unshare', '--pid', '--fork', '--mount-proc', '/usr/bin/sleep', '1000'], {
    logFile: join(c.dir, 'unshare.log'),
  });
  const inner = await waitFor(
    () => descendants(t.pid).find((p) => procStat(p)?.comm === 'sleep'),
    5000,
    'the sleep in the new PID namespace',
  );
  adopt(inner); // reaped by the sweep even if a dump wrongly kills the tree
  const before = renderTree(treeSnapshot(t.pid));
  for (const [what, pid] of [
    ['the unshare process', t.pid],
    ['the process inside the namespace', inner],
  ] as const) {
    const img = c.subdir('img');
    const line = assertCleanError(dump(pid, img));
    // The init inside may be dumped, but not while its session is outside its namespace.
    const why = pid === t.pid ? /pid namespace|PID namespace|pidns/i : /session .*outside/;
    assert.match(line, why, `dump of ${what}: the error names the PID namespace or the session: ${line}`);
    assert.deepEqual(imageFiles(img), [], 'no images');
    assertRunningFree(t.pid, 'unshare');
    assertRunningFree(inner, 'sleep');
    assert.deepEqual(renderTree(treeSnapshot(t.pid)), before, 'the tree is as it was');
  }
  assert.deepEqual(readLines(t.log), [], 'nothing complained');
  killAndReap(t.pid);
});

const SMALL = 'p(p*4 p(p*4))'; // 10 processes

/** Every PID of the dumped tree, in pstree.img order (the order restore creates them). */
function dumpedPids(img: string): number[] {
  return readMessages(join(img, 'pstree.img'), 'pstree_entry').map((e) => e.pid as number);
}

/** No process at any of `pids`, except `holder`, which must be the grabber's sleeping child. */
function assertNoStray(pids: number[], holder: number, grabber: number): void {
  for (const p of pids) {
    const st = procStat(p);
    if (p === holder) {
      assert.ok(
        st && st.ppid === grabber && st.comm === 'pidgrab' && st.state === 'S',
        `the process holding ${p} is unharmed: ${JSON.stringify(st)}`,
      );
    } else {
      assert.equal(st, null, `stray process at PID ${p} after the failed restore: ${JSON.stringify(st)}`);
    }
  }
}

e2e('a restore whose child PID is taken fails cleanly, names the PID, and leaves nothing behind', async (c) => {
  const t = startTarget([workload('tree'), SMALL], { logFile: join(c.dir, 'tree.log') });
  await waitForLine(t.log, /^ready n=10$/, 5000);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const pids = dumpedPids(img);
  const taken = pids[3];
  const g = startTarget([workload('pidgrab'), String(taken)], { logFile: join(c.dir, 'grab.log') });
  await waitForLine(g.log, new RegExp(`^grabbed pid=${taken}$`), 5000);

  const line = assertCleanError(restore(img, ['-d']));
  assert.ok(line.includes(String(taken)), `the error names PID ${taken}: ${line}`);
  assertNoStray(pids, taken, g.pid);
  killAndReap(g.pid);
});

e2e('a restore that fails halfway on a taken PID kills everything it created', async (c) => {
  const t = startTarget([workload('tree'), SMALL], { logFile: join(c.dir, 'tree.log') });
  await waitForLine(t.log, /^ready n=10$/, 5000);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const pids = dumpedPids(img);
  const taken = pids.at(-1)!; // created last: the root and the others exist by then
  // criu-ts waits once the root exists (CRIU_TS_HANG) while the last task's PID is taken.
  const go = join(c.dir, 'go');
  const args = ['restore', '-D', img, '-v4', '-o', 'restore.log', '-d'];
  const t0 = performance.now();
  const criu = spawn(CRIU_BIN, args, {
    env: { ...process.env, CRIU_TS_HANG: 'root-created', CRIU_TS_HANG_UNTIL: go },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '',
    stderr = '';
  criu.stdout.on('data', (d: Buffer) => {
    stdout += d;
  });
  const hanging = new Promise<void>((resolve) =>
    criu.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (stderr.includes('hanging')) resolve();
    }),
  );
  const ended = new Promise<[number | null, string | null]>((resolve) => criu.on('exit', (code, sig) => resolve([code, sig])));
  await hanging;
  assert.ok(isAlive(t.pid), 'the root is back');
  const g = startTarget([workload('pidgrab'), String(taken)], { logFile: join(c.dir, 'grab.log') });
  await waitForLine(g.log, new RegExp(`^grabbed pid=${taken}$`), 5000);
  writeFileSync(go, '');
  const [code, sig] = await ended;
  const r: CriuResult = {
    code: code ?? -1,
    signal: sig,
    stdout,
    stderr: stderr.replace(/^hanging at step .*\n/m, ''),
    ms: performance.now() - t0,
    args,
  };
  const line = assertCleanError(r);
  assert.ok(line.includes(String(taken)), `the error names PID ${taken}: ${line}`);
  assertNoStray(pids, taken, g.pid);
  killAndReap(g.pid);
});

e2e(
  'a 100-process tree dumped into a full file system: one line naming the image, no partial images, the tree runs on',
  async (c) => {
    const t = startTarget([workload('tree'), 'p(p(p*9)*9 p*9)'], { logFile: join(c.dir, 'tree.log') });
    await waitForLine(t.log, /^ready n=100$/, 20_000);
    await waitFor(() => treeSnapshot(t.pid).every((x) => x.state === 'S'), 5000, 'the tree to settle');
    const before = treeSnapshot(t.pid);
    const img = c.subdir('small');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'criu-ts-full', img], { encoding: 'utf8' });
    assert.equal(m.status, 0, `mount tmpfs: ${m.stderr}`);
    try {
      const line = assertCleanError(dump(t.pid, img));
      assert.match(line, /\.img.*(ENOSPC|No space left)/, line);
      assert.deepEqual(imageFiles(img), [], 'no partial images');
    } finally {
      spawnSync('umount', [img]);
    }
    for (const x of before) assertRunningFree(x.pid, `PID ${x.pid} after the failed dump`);
    assert.deepEqual(renderTree(treeSnapshot(t.pid)), renderTree(before), 'the tree is as it was');
    killAndReap(t.pid);
  },
  { timeout: 90_000 },
);
