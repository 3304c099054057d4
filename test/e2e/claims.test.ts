/**
 * Nothing is lost silently. A workload in a kind of state criu-ts does not save is refused
 * with one line that names the task and the state, and is left running as it was, with no
 * images. State criu-ts does save comes back: the workload checks it itself after restore.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  assertCleanError,
  assertRunningFree,
  imageFiles,
  readLines,
  waitForLine,
  killAndReap,
  signal,
  lastCounter,
  procStatus,
  SIGUSR2,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

interface Refusal {
  mode: string;
  /** What the one line must say. */
  line: RegExp;
  /** The state is still there after the refused dump. */
  still(pid: number): boolean;
  skip?: string;
  /** More options for the dump. */
  args?: string[];
}

const locks = (): string => readFileSync('/proc/locks', 'utf8');
const lockedBy = (pid: number) =>
  locks()
    .split('\n')
    .some((l) => l.trim().split(/\s+/)[4] === String(pid));

const REFUSALS: Refusal[] = [
  {
    mode: 'timer',
    line: /POSIX timer \d+ \(signal 14, clock -\d+\): its clock is the CPU clock of \d+, outside the tree/,
    still: (pid) => readFileSync(`/proc/${pid}/timers`, 'utf8').includes('ID:'),
  },
  { mode: 'flock', line: /fd \d+ \(.*flock\.lock\): it holds a file lock \(.*FLOCK/, still: lockedBy },
  { mode: 'posixlock', line: /fd \d+ \(.*posixlock\.lock\): it holds a file lock \(.*POSIX/, still: lockedBy },
  { mode: 'ofdlock', line: /fd \d+ \(.*ofdlock\.lock\): it holds a file lock \(.*OFDLCK/, still: () => locks().includes('OFDLCK') },
  { mode: 'lease', args: ['--file-locks'], line: /fd \d+ \(.*lease\.lock\): it holds a lease being broken \(LEASE/, still: lockedBy },
  {
    mode: 'mlockonfault',
    line: /memory at 0x[0-9a-f]+-0x[0-9a-f]+.*: it is locked on fault \(mlock2\)/,
    still: (pid) => procStatus(pid)!.VmLck !== '0 kB',
  },
  { mode: 'pipedirect', line: /fd \d+ \(pipe:\[\d+\]\): a pipe with O_DIRECT/, still: () => true },
  { mode: 'timens', line: /namespaces: it creates its children in another time namespace/, still: () => true },
  { mode: 'sigtrap', line: /SIGTRAP is pending/, still: (pid) => procStatus(pid)!.ShdPnd === '0000000000000010' },
  { mode: 'trapign', line: /SIGTRAP is ignored \(SIG_IGN\)/, still: (pid) => (BigInt(`0x${procStatus(pid)!.SigIgn}`) & 0x10n) !== 0n },
  { mode: 'mempolicy', line: /NUMA memory policy \(set_mempolicy\): it is 2, where a restored task has 0/, still: () => true },
  { mode: 'mdwe', line: /memory-deny-write-execute \(PR_SET_MDWE\): it is 1, where a restored task has 0/, still: () => true },
  {
    mode: 'tsc',
    line: /time stamp counter access \(PR_SET_TSC\): it is 2, where a restored task has 1/,
    still: () => true,
    skip: process.arch === 'x64' ? undefined : 'PR_SET_TSC is x86 only',
  },
  {
    mode: 'slack',
    line: /timer slack \(PR_SET_TIMERSLACK\): it is 1000000, where a restored task has 50000/,
    still: (pid) => readFileSync(`/proc/${pid}/timerslack_ns`, 'utf8').trim() === '1000000',
  },
];

for (const r of REFUSALS) {
  e2e(
    `a dump of a task with ${r.mode} state is refused${r.args ? ` (${r.args.join(' ')})` : ''}, and the task runs on as it was`,
    async (c) => {
      const t = startTarget([workload('unclaimed'), r.mode, join(c.dir, `${r.mode}.lock`)], { logFile: join(c.dir, 'unclaimed.log') });
      await waitForLine(t.log, /^ready /);
      await waitForCounter(t.log, 2);
      const img = c.subdir('img');
      const line = assertCleanError(dump(t.pid, img, r.args));
      assert.match(line, new RegExp(`task ${t.pid}: `), `the line names the task: ${line}`);
      assert.match(line, r.line, line);
      assert.match(line, /not supported yet$/, line);
      assert.deepEqual(
        imageFiles(img).filter((f) => f.endsWith('.img')),
        [],
        'no images',
      );
      assertRunningFree(t.pid, `after the refused dump (${r.mode})`);
      await waitForCounter(t.log, lastCounter(t.log) + 2, 5000);
      assert.ok(r.still(t.pid), `the ${r.mode} state is still there`);
      killAndReap(t.pid);
    },
    { skip: r.skip },
  );
}

/** SIGUSR2 to each process; returns each one's check lines printed after `mark`. */
async function checks(log: string, pids: number[], mark: number): Promise<string[]> {
  for (const p of pids) signal(p, SIGUSR2);
  for (const p of pids) await waitForLine(log, (l) => l === `checked pid=${p}`, 10_000, mark);
  return readLines(log)
    .slice(mark)
    .filter((l) => l.startsWith('check '));
}

const EXPECTED_CHECKS = 20;

e2e(
  'oom_score_adj, loginuid, child_subreaper, pdeath_sig, scheduling, CPU affinity, fd flags, file owners, the mode of a memfd and a SIGTRAP handler come back',
  async (c) => {
    const t = startTarget([workload('taskprops'), join(c.dir, 'append.txt')], { logFile: join(c.dir, 'taskprops.log') });
    await waitForLine(t.log, (l) => l === `ready pid=${t.pid}`);
    const childLine = await waitForLine(t.log, (l) => l.startsWith('ready ') && l !== `ready pid=${t.pid}`);
    const child = Number(childLine.line.slice('ready pid='.length));
    // Before the dump, the workload's own checks pass (they test what they should).
    const before = await checks(t.log, [t.pid, child], 0);
    assert.equal(before.length, EXPECTED_CHECKS, before.join('\n'));
    assert.deepEqual(
      before.filter((l) => !l.endsWith(' ok')),
      [],
    );

    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    const mark = readLines(t.log).length;
    restoreDetached(img, t.pid);
    await waitForCounter(t.log, lastCounter(t.log) + 1, 10_000, mark);
    const after = await checks(t.log, [t.pid, child], mark);
    assert.equal(after.length, EXPECTED_CHECKS, after.join('\n'));
    assert.deepEqual(
      after.filter((l) => !l.endsWith(' ok')),
      [],
      'every check passes after restore',
    );
    killAndReap(t.pid);
    killAndReap(child);
  },
);
