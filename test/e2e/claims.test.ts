/**
 * Nothing is lost silently. A workload in a kind of state criu-ts does not save is refused
 * with one line that names the task and the state, and is left running as it was, with no
 * images. State criu-ts does save comes back: the workload checks it itself after restore.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  /** The state is in the task's child, which the line names. */
  inChild?: true;
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
  { mode: 'mappedflock', line: /file lock \(FLOCK ADVISORY WRITE on [0-9a-f]+:[0-9a-f]+:\d+\): locks are not saved/, still: lockedBy },
  {
    mode: 'ioprio',
    line: /I\/O priority \(ioprio_set\): it is class idle level 0, where a restored task has class none level 0/,
    still: (pid) => execFileSync('ionice', ['-p', String(pid)], { encoding: 'utf8' }).trim() === 'idle',
  },
  {
    mode: 'detachedmount',
    line: /fd \d+ \(\/\) is on mount \d+, which is not in the task's mount namespace \(a detached mount/,
    still: () => true,
  },
  {
    mode: 'mqueue',
    line: /fd \d+ \(\/criu-ts-unclaimed \(deleted\)\) is on mount \d+, which is not in the task's mount namespace/,
    still: () => true,
  },
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
    mode: 'mbind',
    line: /memory at 0x[0-9a-f]+: its NUMA memory policy \(mbind\) is "prefer:0", not the task's \("default"\)/,
    still: (pid) => / prefer:0\b/.test(readFileSync(`/proc/${pid}/numa_maps`, 'utf8')),
  },
  {
    mode: 'mbindall',
    line: /NUMA memory policy of every mapping \(mbind\): it is 1, where a restored task has 0/,
    still: (pid) =>
      readFileSync(`/proc/${pid}/numa_maps`, 'utf8')
        .trim()
        .split('\n')
        .every((l) => / prefer:0\b/.test(l)),
  },
  {
    mode: 'vfork',
    args: ['--timeout', '1'],
    line: /vfork: it waits for its vfork child to exec or exit \(a vfork in flight\)/,
    still: (pid) => procStatus(pid)!.State.startsWith('D'),
  },
  {
    mode: 'autogroup',
    line: /autogroup nice value \(\/proc\/PID\/autogroup\): it is "5", where a restored task has "0"/,
    still: (pid) => readFileSync(`/proc/${pid}/autogroup`, 'utf8').includes(' nice 5'),
    skip: existsSync('/proc/self/autogroup') ? undefined : 'no autogroups in this kernel',
  },
  {
    mode: 'ioflusher',
    line: /I\/O flusher \(PR_SET_IO_FLUSHER\): no image keeps it/,
    still: () => true,
    // Bit 24 of the effective set: CAP_SYS_RESOURCE, which the call needs.
    skip: (BigInt(`0x${procStatus(process.pid)!.CapEff}`) >> 24n) & 1n ? undefined : 'no CAP_SYS_RESOURCE to set it',
  },
  {
    mode: 'zombieleader',
    inChild: true,
    line: /threads: its main thread has exited while its other threads run \(a zombie leader\)/,
    still: (pid) => {
      const child = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim());
      return procStatus(child)!.State.startsWith('Z') && procStatus(child)!.Threads === '2';
    },
  },
  {
    mode: 'traced',
    inChild: true,
    line: /ptrace: it is traced by \d+/,
    still: (pid) => {
      const child = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim());
      return procStatus(child)!.TracerPid === String(pid);
    },
  },
  {
    mode: 'ldt',
    line: /LDT entries \(modify_ldt\): it is 1, where a restored task has 0/,
    still: () => true,
    skip: process.arch === 'x64' ? undefined : 'the LDT is x86 only',
  },
  {
    mode: 'epollbusy',
    line: /fd \d+ \(anon_inode:\[eventpoll\]\): busy polling is set on it \(EPIOCSPARAMS: 50 us, budget 8, prefer 1\)/,
    still: () => true,
  },
  { mode: 'slice', line: /time slice \(sched_setattr sched_runtime\): it is 3000000, where a restored task has \d+/, still: () => true },
  { mode: 'sud', line: /syscall user dispatch \(PR_SET_SYSCALL_USER_DISPATCH\): it is 1, where a restored task has 0/, still: () => true },
  { mode: 'keyring', line: /process keyring \(KEY_SPEC_PROCESS_KEYRING\): it is 1, where a restored task has 0/, still: () => true },
  {
    mode: 'sessionkeyring',
    line: /keys in a session keyring of its own \(KEY_SPEC_SESSION_KEYRING\): it is 1, where a restored task has 0/,
    still: () => true,
  },
  {
    mode: 'threadkeyring',
    line: /task \d+ \(thread \d+\): thread keyring \(KEY_SPEC_THREAD_KEYRING\): it is 1, where a restored task has 0/,
    still: () => true,
  },
  {
    mode: 'amx',
    line: /AMX tile data permission \(ARCH_REQ_XCOMP_PERM\): it is 1, where a restored task has 0/,
    still: () => true,
    skip: /\bamx_tile\b/.test(readFileSync('/proc/cpuinfo', 'utf8')) ? undefined : 'the CPU has no AMX',
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
      assert.match(line, new RegExp(`task ${r.inChild ? '\\d+' : t.pid}( \\(thread \\d+\\))?: `), `the line names the task: ${line}`);
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

e2e("a flock whose taker is gone, its pid now a task of the tree, is not the tree's: the dump goes through", async (c) => {
  // flock(1) locks the shell's fd 9 and exits; the shell (then sleep) keeps the lock, which
  // /proc/locks goes on showing with flock(1)'s pid.
  const file = join(c.dir, 'stale.lock');
  const holder = startTarget(['bash', '-c', `exec 9>${file}; flock 9; echo locked; exec sleep 1000`], { execs: ['sleep', '1000'] });
  await waitForLine(holder.log, /^locked$/);
  const ino = statSync(file).ino;
  const line = locks()
    .split('\n')
    .find((l) => l.includes(`:${ino} `));
  assert.ok(line, `the flock is in /proc/locks: ${locks()}`);
  const taker = Number(line.trim().split(/\s+/)[4]);
  assert.notEqual(taker, holder.pid, 'the lock names flock(1), not the shell');
  // Starting a target takes a few pids before the target's own; how many is learned by trying.
  let t: ReturnType<typeof startTarget> | undefined;
  let before = 2;
  for (let i = 0; i < 20 && !t; i++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(taker - before));
    const s = startTarget([workload('counter'), '100']);
    if (s.pid === taker) t = s;
    else {
      if (s.pid > taker && s.pid - taker < 5) before += s.pid - taker;
      killAndReap(s.pid);
    }
  }
  assert.ok(t, `a target at pid ${taker}`);
  await waitForCounter(t.log, 2);
  assert.ok(locks().includes(`${taker} `), 'the stale pid is in /proc/locks');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  await waitForCounter(t.log, lastCounter(t.log) + 2, 5000);
  killAndReap(t.pid);
  killAndReap(holder.pid);
});

e2e('a task with an empty session keyring of its own (as runc gives each container) is dumped and restored', async (c) => {
  const t = startTarget([workload('unclaimed'), 'emptysession'], { logFile: join(c.dir, 'unclaimed.log') });
  await waitForLine(t.log, /^ready /);
  await waitForCounter(t.log, 2);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  await waitForCounter(t.log, lastCounter(t.log) + 2, 5000);
  killAndReap(t.pid);
});

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
