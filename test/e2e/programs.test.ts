/**
 * Real programs through dump and restore: python3, sleep, a bash script, and a
 * 256 MiB memory hog.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  readLines,
  lastCounter,
  killAndReap,
  waitExit,
  signal,
  sleep,
  procStatus,
  procStat,
  procState,
  waitForLine,
  waitFor,
  assertRunningFree,
  counterValues,
  assertConsecutive,
  SIGTERM,
  SIGUSR1,
} from '../lib/proc.ts';
import { dumpAndReap, restoreDetached, waitForCounter, firstProgressFrom } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const PYTHON = '/usr/bin/python3';
const NR_CLOCK_NANOSLEEP = process.arch === 'arm64' ? 115 : 230;

/** Dump (killing), restore -d, and check that the counter in `log` goes on from where it was. */
async function crossDump(pid: number, log: string, img: string): Promise<void> {
  dumpAndReap(pid, img);
  const atDump = lastCounter(log);
  const mark = readLines(log).length;
  restoreDetached(img, pid);
  await waitForCounter(log, atDump + 2, 10_000);
  assert.equal(firstProgressFrom(log, mark), atDump + 1, 'the first line after restore continues the counter');
}

const PY_LOOP = `
import hashlib, os, random, time
blob = random.Random(12345).randbytes(4 << 20)
digest = hashlib.sha256(blob).hexdigest()
squares = {}
print("start pid=%d" % os.getpid(), flush=True)
i = 0
while True:
    i += 1
    squares[i] = i * i
    ok = hashlib.sha256(blob).hexdigest() == digest and sum(squares.values()) == i * (i + 1) * (2 * i + 1) // 6
    print("i=%d state=%s" % (i, "ok" if ok else "BAD"), flush=True)
    time.sleep(0.1)
`;

e2e('python3 running a loop survives dump + restore', async (c) => {
  const t = startTarget([PYTHON, '-c', PY_LOOP], { logFile: join(c.dir, 'python.log') });
  await waitForCounter(t.log, 3, 10_000);
  await crossDump(t.pid, t.log, c.subdir('img'));
  assertRunningFree(t.pid);
  killAndReap(t.pid);
  const lines = readLines(t.log);
  assert.equal(lines.filter((l) => l.startsWith('start ')).length, 1, 'started once');
  const progress = lines.filter((l) => l.startsWith('i='));
  assertConsecutive(counterValues(progress), 'python counter', 1);
  for (const l of progress) assert.match(l, /state=ok$/);
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('i=') && !l.startsWith('start ')),
    [],
    'no errors from python',
  );
});

e2e('sleep 1000 is still sleeping after restore, and killable', async (c) => {
  const t = startTarget(['/usr/bin/sleep', '1000'], { logFile: join(c.dir, 'sleep.log') });
  const syscallNr = () => Number(readFileSync(`/proc/${t.pid}/syscall`, 'latin1').split(' ')[0]);
  await waitFor(() => procState(t.pid) === 'S' && syscallNr() === NR_CLOCK_NANOSLEEP, 5000, 'sleep to enter clock_nanosleep');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  await sleep(1000);
  assertRunningFree(t.pid, 'restored sleep');
  assert.equal(procStatus(t.pid)!.State[0], 'S', 'state after restore');
  assert.equal(syscallNr(), NR_CLOCK_NANOSLEEP, 'still in clock_nanosleep after restore');
  assert.equal(procStat(t.pid)!.comm, 'sleep');
  signal(t.pid, SIGTERM);
  const ex = await waitExit(t.pid, 5000);
  assert.deepEqual(ex?.signal, SIGTERM, 'SIGTERM (default action) ends it');
  assert.deepEqual(readLines(t.log), [], 'sleep printed nothing (no error)');
});

// One process only: the loop uses builtins (read -t on a FIFO as the delay).
const BASH_LOOP = `
out=$1
exec 3<>"$2"
i=0 acc=0
echo "start pid=$$"
while :; do
  i=$((i + 1)); acc=$((acc + i))
  echo "i=$i" >>"$out"
  if [ $acc -eq $((i * (i + 1) / 2)) ]; then echo "i=$i acc=ok"; else echo "i=$i acc=BAD"; fi
  read -t 0.1 -u 3 _
done
`;

e2e('a bash script loop writing to a file survives dump + restore', async (c) => {
  const script = join(c.dir, 'loop.sh');
  writeFileSync(script, BASH_LOOP);
  const fifo = join(c.dir, 'delay.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const out = join(c.dir, 'out.txt');
  const t = startTarget(['/usr/bin/bash', script, out, fifo], { logFile: join(c.dir, 'bash.log') });
  await waitForCounter(t.log, 3, 5000);
  await crossDump(t.pid, t.log, c.subdir('img'));
  killAndReap(t.pid);
  const lines = readLines(t.log);
  assert.equal(lines.filter((l) => l.startsWith('start ')).length, 1, 'started once');
  const progress = lines.filter((l) => l.startsWith('i='));
  for (const l of progress) assert.match(l, /acc=ok$/);
  assertConsecutive(counterValues(progress), 'bash counter', 1);
  assertConsecutive(counterValues(readLines(out)), `lines of ${out}`, 1);
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('i=') && !l.startsWith('start ')),
    [],
    'no errors from bash',
  );
});

e2e('a bash script with child processes (a process tree) survives dump + restore', async (c) => {
  const t = startTarget(['/usr/bin/bash', '-c', 'i=0; while :; do i=$((i + 1)); echo "i=$i"; sleep 0.2; done'], {
    logFile: join(c.dir, 'tree.log'),
  });
  await waitForCounter(t.log, 3, 5000);
  await crossDump(t.pid, t.log, c.subdir('img'));
  await waitForCounter(t.log, lastCounter(t.log) + 2, 5000);
  killAndReap(t.pid);
  assertConsecutive(counterValues(readLines(t.log)), 'bash counter', 1);
});

e2e(
  '256 MiB of memory survive dump + restore',
  async (c) => {
    const t = startTarget([workload('memhog'), '256'], { logFile: join(c.dir, 'memhog.log') });
    await waitForLine(t.log, /^ready /, 20_000);
    signal(t.pid, SIGUSR1);
    await waitForLine(t.log, /^verify=1 ok$/, 20_000);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    restoreDetached(img, t.pid);
    signal(t.pid, SIGUSR1);
    await waitForLine(t.log, /^verify=2 /, 20_000);
    assert.deepEqual(readLines(t.log).slice(1), ['verify=1 ok', 'verify=2 ok']);
    const rss = Number(/(\d+)/.exec(procStatus(t.pid)!.VmRSS)![1]);
    assert.ok(rss >= 256 * 1024, `RSS after restore is ${rss} kB`);
    killAndReap(t.pid);
  },
  { timeout: 180_000 },
);
