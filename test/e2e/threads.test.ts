/**
 * Multi-threaded processes through dump and restore: a C program with 8
 * counting threads, threads blocked in pthread_cond_wait and read(), and real
 * multi-threaded programs (python3 threading, node).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
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
  lastCounter,
  assertRunningFree,
  counterValues,
  assertConsecutive,
  parseKV,
  SIGUSR1,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached, waitForCounter, firstProgressFrom } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { taskTids, threadStatus, vmaAdvice, syscallOf, NR } from '../lib/tree.ts';
import { readMessages } from '../../src/images/index.ts';
import { hostHas } from '../../src/resources/cpu/aarch64.ts';

/** "c=1,2,3" of the last progress line. */
function threadCounts(log: string): number[] {
  const last = readLines(log)
    .filter((l) => l.startsWith('i='))
    .at(-1);
  assert.ok(last, `no progress line in ${log}`);
  return parseKV(last).c.split(',').map(Number);
}

/** thread index -> tid, from the "thread k tid=T" lines. */
function threadTids(log: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of readLines(log)) {
    const r = /^thread (\d+) tid=(\d+)$/.exec(l);
    if (r) m.set(Number(r[1]), Number(r[2]));
  }
  return m;
}

e2e('8 threads keep their TIDs, TLS counters and signal masks through dump + restore', async (c) => {
  const t = startTarget([workload('threads'), '-n', '8', '-i', '50'], { logFile: join(c.dir, 'threads.log') });
  await waitForLine(t.log, /^ready threads=8$/, 10_000);
  await waitForCounter(t.log, 3);
  const tids0 = taskTids(t.pid);
  assert.equal(tids0.length, 8, 'eight threads');
  assert.deepEqual(
    [...threadTids(t.log).values()].sort((a, b) => a - b),
    tids0,
    'the threads reported their tids',
  );
  const masks0 = threadStatus(t.pid, 'SigBlk');
  const names0 = threadStatus(t.pid, 'Name');
  assert.ok(new Set(names0.values()).size > 1, `some threads have names of their own: ${[...names0.values()].join(' ')}`);
  assert.equal(new Set(masks0.values()).size, 8, `each thread has its own mask: ${[...masks0.values()].join(' ')}`);
  // glibc here marks each thread stack and its guard page MADV_NOHUGEPAGE: adjacent VMAs with
  // the same advice, which restore re-applies in one call per run.
  const advice0 = vmaAdvice(t.pid);
  if (process.arch === 'x64')
    assert.ok(advice0.filter((a) => a.endsWith(' nh')).length >= 14, `thread stacks and guards carry nh: ${advice0.join(', ')}`);

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const atDump = lastCounter(t.log);
  const countsAtDump = threadCounts(t.log);
  const mark = readLines(t.log).length;

  restoreDetached(img, t.pid);
  assert.deepEqual(taskTids(t.pid), tids0, 'the same TIDs in /proc/PID/task');
  assert.deepEqual(threadStatus(t.pid, 'SigBlk'), masks0, 'per-thread SigBlk');
  assert.deepEqual(threadStatus(t.pid, 'Name'), names0, 'per-thread names');
  assert.deepEqual(vmaAdvice(t.pid), advice0, 'the madvise advice of every VMA');
  await waitForCounter(t.log, atDump + 6, 10_000);
  assert.equal(firstProgressFrom(t.log, mark), atDump + 1, 'main continues its counter');
  const counts = threadCounts(t.log);
  for (const [k, n] of counts.entries()) {
    assert.ok(n >= countsAtDump[k] + 3, `thread ${k} kept counting with its TLS counter: ${countsAtDump[k]} at dump, ${n} now`);
  }
  assert.deepEqual(threadStatus(t.pid, 'SigBlk'), masks0, 'per-thread SigBlk, a moment later');
  // The restore pins its stubs to one CPU while it works on them (compel/colocate.ts); the
  // restored threads end with the affinity criu-ts has, as they would have inherited it.
  const ours = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)$/m)![1];
  for (const [tid, list] of threadStatus(t.pid, 'Cpus_allowed_list')) assert.equal(list, ours, `thread ${tid}: CPU affinity after restore`);
  assertRunningFree(t.pid);
  // Each thread's own affinity survives a dump -R.
  const ncpu = availableParallelism();
  tids0.forEach((tid, k) => {
    if (k % 3 === 1) assert.equal(spawnSync('taskset', ['-p', '-c', String(k % ncpu), String(tid)]).status, 0, 'taskset');
  });
  const affinity0 = threadStatus(t.pid, 'Cpus_allowed_list');
  // What only an injected call can read back: a second dump (-R) of the restored process
  // must find each thread's clear_child_tid, robust list, rseq and sigaltstack as the first.
  const again = c.subdir('again');
  const r = dump(t.pid, again, ['-R']);
  assert.equal(r.code, 0, r.stderr);
  const perThread = (dir: string) =>
    Object.fromEntries(
      tids0.map((tid) => {
        const core = readMessages(join(dir, `core-${tid}.img`), 'core_entry')[0];
        const tc = core.thread_core as Record<string, unknown>;
        const info = (core.thread_info ?? core.ti_aarch64) as Record<string, unknown>;
        return [
          tid,
          {
            clear_tid_addr: info.clear_tid_addr,
            futex_rla: tc.futex_rla,
            futex_rla_len: tc.futex_rla_len,
            rseq: tc.rseq_entry,
            sas: tc.sas,
          },
        ];
      }),
    );
  assert.deepEqual(perThread(again), perThread(img), 'per-thread kernel state read back by a second dump');
  assert.deepEqual(threadStatus(t.pid, 'Cpus_allowed_list'), affinity0, 'per-thread CPU affinity after dump -R');
  killAndReap(t.pid);
  const progress = readLines(t.log).filter((l) => l.startsWith('i='));
  assertConsecutive(counterValues(progress), 'main counter', 1);
  for (const l of progress) assert.match(l, /^i=\d+ tls=ok mask=ok alt=ok /, "every thread's TLS, mask and sigaltstack are intact");
  assert.equal(readLines(t.log).filter((l) => l.startsWith('start ')).length, 1, 'started once');
});

e2e('threads blocked in pthread_cond_wait and read() at dump time wake up after restore', async (c) => {
  const t = startTarget([workload('threads'), '-n', '2', '-i', '50', '-b'], { logFile: join(c.dir, 'threads.log') });
  await waitForLine(t.log, /^ready threads=4$/, 10_000);
  const tidOf = (what: string) => Number(/tid=(\d+)/.exec(readLines(t.log).find((l) => l.startsWith(`${what} tid=`))!)![1]);
  const condTid = tidOf('cond'),
    readerTid = tidOf('reader');
  // Once before the dump, to show the mechanism works.
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^cond woke gen=1$/, 5000);
  await waitForLine(t.log, /^read got=gen=1$/, 5000);
  await waitFor(
    () => syscallOf(t.pid, condTid) === NR.futex && syscallOf(t.pid, readerTid) === NR.read,
    5000,
    'the two threads to block again (futex, read)',
  );

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const atDump = lastCounter(t.log);
  restoreDetached(img, t.pid);
  await waitForCounter(t.log, atDump + 3, 10_000);
  assert.equal(syscallOf(t.pid, condTid), NR.futex, 'the condvar waiter is back in futex()');
  assert.equal(syscallOf(t.pid, readerTid), NR.read, 'the reader is back in read()');
  assert.equal(readLines(t.log).filter((l) => l.startsWith('cond woke') || l.startsWith('read ')).length, 2, 'no spurious wake-up');

  const mark = readLines(t.log).length;
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^cond woke gen=2$/, 5000, mark);
  await waitForLine(t.log, /^read got=gen=2$/, 5000, mark);
  await sleep(200);
  assertRunningFree(t.pid);
  killAndReap(t.pid);
  const events = readLines(t.log).filter((l) => l.startsWith('cond ') || l.startsWith('read '));
  assert.deepEqual(
    events.filter((l) => !/tid=/.test(l)).sort(),
    ['cond woke gen=1', 'cond woke gen=2', 'read got=gen=1', 'read got=gen=2'],
    'each woke once per generation, no EINTR',
  );
  assertConsecutive(counterValues(readLines(t.log)), 'main counter', 1);
});

// python3 threading: four threads counting in thread-local storage, main reporting.
const PY_THREADS = `
import os, threading, time
N = 4
local = threading.local()
counts = [0] * N
bad = []
def work(k):
    local.n = 0
    local.tid = threading.get_native_id()
    while True:
        local.n += 1
        counts[k] = local.n
        if threading.get_native_id() != local.tid:
            bad.append(k)
        time.sleep(0.02)
ths = []
for k in range(N):
    th = threading.Thread(target=work, args=(k,), daemon=True)
    th.start()
    ths.append(th)
print("start pid=%d threads=%d" % (os.getpid(), threading.active_count()), flush=True)
i = 0
while True:
    i += 1
    alive = all(th.is_alive() for th in ths)
    print("i=%d c=%s ok=%s" % (i, ",".join(map(str, counts)), "yes" if alive and not bad else "NO"), flush=True)
    time.sleep(0.05)
`;

e2e('python3 with threading threads survives dump + restore', async (c) => {
  const t = startTarget(['/usr/bin/python3', '-c', PY_THREADS], { logFile: join(c.dir, 'python.log') });
  await waitForCounter(t.log, 3, 10_000);
  const tids0 = taskTids(t.pid);
  assert.ok(tids0.length >= 5, `main + 4 threads: ${tids0.join(' ')}`);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const atDump = lastCounter(t.log);
  const c0 = parseKV(
    readLines(t.log)
      .filter((l) => l.startsWith('i='))
      .at(-1)!,
  )
    .c.split(',')
    .map(Number);
  restoreDetached(img, t.pid);
  assert.deepEqual(taskTids(t.pid), tids0, 'the same TIDs');
  await waitForCounter(t.log, atDump + 6, 10_000);
  const c1 = parseKV(
    readLines(t.log)
      .filter((l) => l.startsWith('i='))
      .at(-1)!,
  )
    .c.split(',')
    .map(Number);
  for (const k of c0.keys()) assert.ok(c1[k] > c0[k] + 3, `python thread ${k} goes on: ${c0[k]} -> ${c1[k]}`);
  killAndReap(t.pid);
  const lines = readLines(t.log);
  const progress = lines.filter((l) => l.startsWith('i='));
  assertConsecutive(counterValues(progress), 'python main counter', 1);
  for (const l of progress) assert.match(l, /ok=yes$/);
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('i=') && !l.startsWith('start ')),
    [],
    'no errors from python',
  );
});

// node: a timer loop; the thread pool is kept busy (fs and crypto), V8 has its own threads.
const NODE_LOOP = `
const fs = require('fs'), crypto = require('crypto');
let i = 0, pool = 0;
console.log('start pid=' + process.pid);
setInterval(() => {
  i++;
  fs.readFile('/proc/self/stat', () => { pool++; });
  crypto.pbkdf2('pw', 'salt', 1000, 32, 'sha256', () => { pool++; });
  console.log('i=' + i + ' pool=' + pool);
}, 50);
`;

const NODE = existsSync('/usr/bin/node') ? '/usr/bin/node' : join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'node');
// The libuv of Node 22 and later keeps an io_uring open, whatever UV_USE_IO_URING says, and
// criu-ts refuses io_uring (README). Debian 12's Node has none; Debian sid's (the arm64 lab) has.
const nodeMajor = Number(/^v(\d+)/.exec(spawnSync(NODE, ['-v'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? 0);
const nodeSkip =
  nodeMajor >= 22 ? `${NODE} is Node ${nodeMajor}, whose libuv keeps an io_uring, which criu-ts cannot checkpoint yet` : false;

e2e(
  `node (${NODE}) running a timer loop survives dump + restore`,
  async (c) => {
    const t = startTarget([NODE, '-e', NODE_LOOP], { logFile: join(c.dir, 'node.log') });
    await waitForCounter(t.log, 5, 15_000);
    await waitFor(() => taskTids(t.pid).length >= 7, 5000, 'libuv and V8 threads');
    const tids0 = taskTids(t.pid);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    const atDump = lastCounter(t.log);
    const pool0 = Number(parseKV(readLines(t.log).at(-1)!).pool);
    restoreDetached(img, t.pid);
    assert.deepEqual(taskTids(t.pid), tids0, 'the same TIDs');
    await waitForCounter(t.log, atDump + 6, 10_000);
    const last = parseKV(readLines(t.log).at(-1)!);
    assert.ok(Number(last.pool) > pool0 + 6, `the thread pool still completes work: ${pool0} -> ${last.pool}`);
    assertRunningFree(t.pid);
    killAndReap(t.pid);
    const lines = readLines(t.log);
    assertConsecutive(counterValues(lines.filter((l) => l.startsWith('i='))), 'node counter', 1);
    assert.deepEqual(
      lines.filter((l) => !l.startsWith('i=') && !l.startsWith('start ')),
      [],
      'no errors from node',
    );
  },
  { skip: nodeSkip },
);

// arm64: a thread stopped in user mode has its SVE registers live, and they are wider than
// the FP/SIMD state; the dump keeps them (NT_ARM_SVE) and the restore puts them back.
const sveHere = process.arch === 'arm64' && hostHas.sve();
e2e(
  'arm64: live SVE registers survive dump + restore',
  async (c) => {
    const log = join(c.dir, 'sve.log');
    const t = startTarget([workload('sve', ['-march=armv8.2-a+sve']), '-n', '200000'], { logFile: log });
    await waitForLine(log, /^ready vl=(\d+)/, 60_000);
    const vl = Number(/vl=(\d+)/.exec(readLines(log)[0])![1]);
    assert.ok(vl > 16, `the vector length (${vl} bytes) is wider than FP/SIMD's 16`);
    await waitForCounter(log, 3, 60_000);
    // The kernel drops SVE state at every syscall, so a dump that stops the thread in its
    // write(), or before its next SVE instruction, rightly finds none: dump (-R) again.
    let img = '',
      sve: Buffer | undefined;
    for (let attempt = 0; attempt < 5 && !sve?.length; attempt++) {
      img = c.subdir('img');
      const r = dump(t.pid, img, ['-R']);
      assert.equal(r.code, 0, r.stderr);
      sve = (readMessages(join(img, `core-${t.pid}.img`), 'core_entry')[0] as { ti_aarch64?: { sve?: Buffer } }).ti_aarch64?.sve;
    }
    assert.ok(sve?.length, 'one of five dumps caught the thread with live SVE state and saved it');
    killAndReap(t.pid);
    const atDump = lastCounter(log);
    restoreDetached(img, t.pid);
    await waitForCounter(log, atDump + 3, 60_000);
    for (const l of readLines(log).filter((x) => x.startsWith('i='))) assert.match(l, /sve=ok$/, 'z0 kept its pattern');
  },
  { skip: sveHere ? false : 'needs arm64 with SVE' },
);

// arm64 SME, FP8 and the tagged address ABI: no image keeps the ZA array, streaming mode,
// TPIDR2_EL0, FPMR or PR_SET_TAGGED_ADDR_CTRL, so a thread using any of them is refused by
// name, and left running (in streaming mode still: a
// syscall would leave it, so they are read before any injected call).
const smeHere = process.arch === 'arm64' && hostHas.sme();
for (const [mode, what] of [
  ['za', /SME ZA storage \(PSTATE\.ZA\): it is 1, where a restored task has 0/],
  ['sm', /SME streaming mode \(PSTATE\.SM\): it is 1, where a restored task has 0/],
  ['tpidr2', /SME thread register TPIDR2_EL0: it is 1, where a restored task has 0/],
  ['fpmr', /floating-point mode register FPMR: it is 1, where a restored task has 0/],
  ['tagged', /tagged address ABI \(PR_SET_TAGGED_ADDR_CTRL\): it is 1, where a restored task has 0/],
] as const) {
  e2e(
    `arm64: a thread with state no image keeps (${mode}) is refused by name and runs on`,
    async (c) => {
      const log = join(c.dir, 'sme.log');
      const t = startTarget([workload('sme'), mode], { logFile: log });
      await waitForLine(log, /^ready$/, 60_000);
      const r = dump(t.pid, c.subdir('img'), ['-R']);
      assert.notEqual(r.code, 0, 'the dump is refused');
      assert.match(r.stderr, what);
      assertRunningFree(t.pid, 'the refused task');
      killAndReap(t.pid);
    },
    {
      skip:
        process.arch !== 'arm64'
          ? 'arm64 only'
          : mode === 'tagged'
            ? false
            : !smeHere
              ? 'needs arm64 with SME'
              : mode === 'fpmr' && !hostHas.fpmr()
                ? 'needs arm64 with FPMR'
                : false,
    },
  );
}
