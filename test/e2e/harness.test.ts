/**
 * The harness and the workloads on their own, without criu-ts: if these fail,
 * the other e2e failures mean nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  procStat,
  procStatus,
  ourChildren,
  tracked,
  sweep,
  waitExit,
  signal,
  sleep,
  waitForLine,
  readLines,
  diffMaps,
  procMaps,
  fdTable,
  assertRunningFree,
  descendants,
  SIGUSR1,
  SIGUSR2,
} from '../lib/proc.ts';
import { checkDataFile, checkFoundationLog, startFoundation, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

e2e('workloads compile', () => {
  for (const name of ['foundation', 'counter', 'memhog']) {
    const bin = workload(name);
    assert.ok(bin.endsWith(`/${name}`), bin);
    assert.equal(workload(name), bin, 'cached per run');
  }
});

e2e('startTarget: a session-leading orphan of ours; killAndReap reaps it', async (c) => {
  const t = startTarget([workload('counter'), '20'], { logFile: join(c.dir, 'c.log') });
  const st = procStat(t.pid)!;
  assert.equal(st.ppid, process.pid, 'parent is the test process (subreaper)');
  assert.equal(st.sid, t.pid, 'session leader');
  assert.equal(st.pgid, t.pid, 'group leader');
  assert.equal(st.comm, 'counter');
  assert.ok(tracked().includes(t.pid));
  await waitForLine(t.log, /^i=5$/, 5000);
  assertRunningFree(t.pid);
  const fds = fdTable(t.pid);
  assert.deepEqual(
    fds.map((f) => [f.fd, f.target]),
    [
      [0, '/dev/null'],
      [1, t.log],
      [2, t.log],
    ],
  );
  assert.equal(fds[1].flags & 0o2003, 0o2001, 'stdout is O_WRONLY|O_APPEND');
  const ex = killAndReap(t.pid);
  assert.deepEqual(ex?.signal, 9);
  assert.equal(procStat(t.pid), null, 'gone after reaping');
  assert.ok(!tracked().includes(t.pid));
});

e2e('exit status of a target is observed', async (c) => {
  const t = startTarget([workload('counter'), '10', '3', '7'], { logFile: join(c.dir, 'c.log') });
  const ex = await waitExit(t.pid, 5000);
  assert.deepEqual(ex?.code, 7);
  assert.deepEqual(readLines(t.log), [`start pid=${t.pid}`, 'i=1', 'i=2', 'i=3']);
});

e2e('sweep reports a stopped target and an unknown child, and reaps both', async (c) => {
  const t = startTarget(['/usr/bin/sleep', '1000'], { logFile: join(c.dir, 's.log') });
  signal(t.pid, 19 /* SIGSTOP */);
  await sleep(50);
  const r = spawnSync('bash', ['-c', 'sleep 1000 >/dev/null 2>&1 </dev/null & echo $!'], { encoding: 'utf8' });
  const stray = Number(r.stdout.trim());
  await sleep(50);
  assert.ok(ourChildren().includes(stray), 'the stray is our child');
  const problems = await sweep();
  assert.ok(
    problems.some((p) => p.includes(`PID ${t.pid}`) && p.includes('stopped')),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => p.includes(`PID ${stray}`) && p.includes('did not start')),
    problems.join('\n'),
  );
  assert.equal(procStat(t.pid), null);
  assert.equal(procStat(stray), null);
  assert.deepEqual(ourChildren(), []);
});

e2e('foundation runs: every check ok, signals, pipe, data file, exit code', async (c) => {
  const f = startFoundation(c, { intervalMs: 50, exitAt: 40, exitCode: 7 });
  await waitForCounter(f.log, 2);
  const maps0 = procMaps(f.pid);
  const fds0 = fdTable(f.pid);
  assert.deepEqual(
    fds0.map((x) => x.target),
    ['/dev/null', f.log, f.log, f.data, 'pipe:#1', 'pipe:#1'],
  );
  signal(f.pid, SIGUSR1);
  const l1 = await waitForLine(f.log, /usr1=1 /);
  signal(f.pid, SIGUSR2);
  await waitForLine(f.log, /pend2=1 /, 5000, l1.index);
  const st = procStatus(f.pid)!;
  assert.equal(st.SigBlk, '0000000000000800', 'SIGUSR2 blocked');
  assert.equal(BigInt('0x' + st.SigCgt) & 0x200n, 0x200n, 'SIGUSR1 caught');
  assert.equal(BigInt('0x' + st.ShdPnd) & 0x800n, 0x800n, 'SIGUSR2 pending');
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /usr1=2 .*pipe=ok$/);
  assert.deepEqual(diffMaps(maps0, procMaps(f.pid)), [], 'maps are stable while it runs');
  const ex = await waitExit(f.pid, 10_000);
  assert.deepEqual(ex?.code, 7);
  const parsed = checkFoundationLog(f.log);
  assert.equal(parsed.length, 40);
  assert.equal(checkDataFile(f.data!), 40);
});

e2e('foundation: heap corruption is detected (sum=BAD, exit 3)', async (c) => {
  // Poke one word of the heap through /proc/PID/mem to prove the check is real.
  const f = startFoundation(c, { dataFile: false, intervalMs: 50, heapMiB: 8 });
  const ready = await waitForLine(f.log, /^ready /);
  await waitForCounter(f.log, 1);
  const heap = procMaps(f.pid).find((m) => m.path === '' && m.end - m.start >= 8n * 1024n * 1024n);
  assert.ok(heap, `no 8 MiB anonymous mapping: ${ready.line}`);
  const { openSync, writeSync, closeSync } = await import('node:fs');
  const fd = openSync(`/proc/${f.pid}/mem`, 'r+');
  try {
    writeSync(fd, Buffer.from('deadbeefdeadbeef', 'hex'), 0, 8, Number(heap.start + 4096n * 100n));
  } finally {
    closeSync(fd);
  }
  const ex = await waitExit(f.pid, 5000);
  assert.deepEqual(ex?.code, 3);
  assert.ok(
    readLines(f.log).some((l) => /^i=\d+ .*sum=BAD/.test(l)),
    'a sum=BAD line',
  );
});

e2e('memhog verifies on SIGUSR1', async (c) => {
  const t = startTarget([workload('memhog'), '32'], { logFile: join(c.dir, 'm.log') });
  await waitForLine(t.log, /^ready /, 10_000);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^verify=1 ok$/, 10_000);
  killAndReap(t.pid);
});

e2e("killAndReap takes the target's children with it", async (c) => {
  const t = startTarget(['/usr/bin/bash', '-c', 'sleep 1000 & sleep 1000 & echo started; wait'], { logFile: join(c.dir, 'b.log') });
  await waitForLine(t.log, /^started$/);
  await sleep(50);
  const kids = ourChildren();
  assert.deepEqual(kids, [t.pid], 'only the script is our child');
  const desc = descendants(t.pid);
  assert.equal(desc.length, 2);
  killAndReap(t.pid);
  for (const d of desc) assert.equal(procStat(d), null, `descendant ${d} reaped`);
  assert.deepEqual(ourChildren(), []);
});
