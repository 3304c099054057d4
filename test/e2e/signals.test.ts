/**
 * Pending signals through dump and restore: per thread and process-wide,
 * standard and real-time with their siginfo, each delivered exactly once
 * after restore; and a signal sent to a stopped process just before the dump.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  signal,
  sleep,
  readLines,
  waitForLine,
  waitFor,
  procStatus,
  procState,
  parseKV,
  adopt,
  assertOk,
  assertRunningFree,
  SIGUSR1,
} from '../lib/proc.ts';
import { dumpAndReap, restoreDetached, restore } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { threadStatus, taskTids } from '../lib/tree.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';

const SIGHUP = 1;
const SIGSTOP = 19;
const SIGCONT = 18;
const BIT_USR1 = 1n << 9n;
const BIT_RTMIN = 1n << 33n; // glibc's SIGRTMIN is 34

const bits = (hex: string | undefined) => BigInt('0x' + (hex ?? '0'));

/** The last "got ..." line, parsed, once it has stopped changing for `quietMs`. */
async function settledGot(log: string, quietMs = 400): Promise<Record<string, string>> {
  let last = '';
  let since = Date.now();
  await waitFor(
    () => {
      const l =
        readLines(log)
          .filter((x) => x.startsWith('got '))
          .at(-1) ?? '';
      if (l !== last) {
        last = l;
        since = Date.now();
      }
      return l !== '' && Date.now() - since >= quietMs;
    },
    10_000,
    `the "got" lines of ${log} to settle`,
  );
  return parseKV(last);
}

e2e('pending signals, per thread and process-wide, are delivered exactly once after restore, with their siginfo', async (c) => {
  const t = startTarget([workload('pendsig')], { logFile: join(c.dir, 'pendsig.log') });
  const ready = parseKV((await waitForLine(t.log, /^ready /, 5000)).line);
  const worker = Number(ready.worker);
  signal(t.pid, SIGUSR1); // process-wide, from us (SI_USER)
  await waitFor(() => (bits(procStatus(t.pid)?.ShdPnd) & BIT_USR1) !== 0n, 5000, 'SIGUSR1 to be pending');
  const shared0 = procStatus(t.pid)!.ShdPnd;
  assert.equal(bits(shared0), BIT_USR1 | BIT_RTMIN, `process-wide pending: SIGUSR1 and SIGRTMIN (${shared0})`);
  const private0 = threadStatus(t.pid, 'SigPnd');
  assert.equal(bits(private0.get(worker)), BIT_USR1, 'the worker has its own pending SIGUSR1');
  assert.equal(bits(private0.get(t.pid)), 0n, 'main has nothing pending of its own');

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(
    taskTids(t.pid),
    [t.pid, worker].sort((a, b) => a - b),
    'same threads',
  );
  assert.equal(procStatus(t.pid)!.ShdPnd, shared0, 'process-wide pending set after restore');
  assert.deepEqual(threadStatus(t.pid, 'SigPnd'), private0, 'per-thread pending sets after restore');
  await sleep(200);
  assert.equal(readLines(t.log).filter((l) => l.startsWith('got ')).length, 0, 'nothing delivered while blocked');

  signal(t.pid, SIGHUP); // both threads unblock
  const got = await settledGot(t.log);
  const [onMain, onWorker] = got.usr1.split('/').map(Number);
  assert.equal(onMain + onWorker, 2, `two SIGUSR1 in all (the worker's own and the process-wide one): ${got.usr1}`);
  assert.ok(onWorker >= 1, `the worker got its own SIGUSR1: ${got.usr1}`);
  assert.equal(got.rt, '77,78', 'both queued SIGRTMIN, in order, once each, with their values');
  assert.equal(got.from, `${process.pid}:0`, 'the process-wide SIGUSR1 still says who sent it (si_pid, SI_USER)');
  const st = procStatus(t.pid)!;
  assert.equal(bits(st.ShdPnd), 0n, 'nothing left pending');
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

e2e('a signal sent to a stopped process just before the dump is delivered once it is continued after restore', async (c) => {
  const t = startTarget([workload('pendsig'), '-u'], { logFile: join(c.dir, 'pendsig.log') });
  await waitForLine(t.log, /^got usr1=0\/0 /, 5000);
  signal(t.pid, SIGSTOP);
  await waitFor(() => procState(t.pid) === 'T', 5000, 'the process to stop');
  signal(t.pid, SIGUSR1);
  await waitFor(() => (bits(procStatus(t.pid)?.ShdPnd) & BIT_USR1) !== 0n, 5000, 'SIGUSR1 to be pending');
  const mark = readLines(t.log).length;

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const pidfile = join(img, 'restored.pid');
  const r = restore(img, ['-d', '--pidfile', pidfile]);
  adopt(t.pid);
  assertOk(r);
  assert.ok(existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim() === String(t.pid), 'pidfile');
  try {
    await sleep(300);
    assert.equal(procState(t.pid), 'T', 'restored stopped, as it was dumped');
    assert.equal(procStatus(t.pid)!.TracerPid, '0', 'not traced');
    assert.equal(bits(procStatus(t.pid)!.ShdPnd) & BIT_USR1, BIT_USR1, 'SIGUSR1 still pending');
    assert.equal(readLines(t.log).length, mark, 'a stopped process prints nothing');
  } finally {
    signal(t.pid, SIGCONT);
  }
  const got = await settledGot(t.log);
  // Neither thread blocks SIGUSR1 here, so a process-wide signal may go to either (POSIX);
  // what must hold is that it is delivered once in all.
  const [onMain, onWorker] = got.usr1.split('/').map(Number);
  assert.equal(onMain + onWorker, 1, `delivered exactly once (main/worker: ${got.usr1})`);
  assert.equal(got.from, `${process.pid}:0`, 'siginfo of the signal sent before the dump');
  killAndReap(t.pid);
});

e2e('a periodic ITIMER_REAL that fired while the task was frozen keeps ticking after restore', async (c) => {
  const t = await startChecking(c, 'itimer', []);
  assert.equal(await askCheck(t), 'CHECK ok');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});
