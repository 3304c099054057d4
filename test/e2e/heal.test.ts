/**
 * criu-ts killed inside an injected call of a dump: the call heals itself (src/compel/heal.ts).
 * The dump is held (CRIU_TS_HANG) in a thread's first call that heals itself, once the
 * thread's registers are the call's ("call-loaded") or once its syscall has run ("call-done"),
 * and SIGKILLed there: the task runs on exactly as it was, and the next criu-ts command
 * removes the injection area the dead one left.
 *
 *   healcheck  spinner threads hold a vector register, their own signal masks and alternate
 *              stacks; the main thread sleeps in nanosleep, a syscall to restart;
 *   gpregs     a pattern in every general register it can name;
 *   gcs        (arm64 with GCS) threads with the Guarded Control Stack enabled and locked:
 *              sigreturn pops a cap token from it, which the dump put there.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  runCriu,
  assertOk,
  waitForLine,
  waitFor,
  waitExit,
  lastCounter,
  procStatus,
  readLines,
  killAndReap,
  signal,
  CRIU_BIN,
  SIGUSR1,
} from '../lib/proc.ts';
import { workload } from '../lib/workloads.ts';
import { injectionAreas as areas, unsafeWindow } from '../lib/injection.ts';
import { hostHas } from '../../src/resources/cpu/aarch64.ts';

/** After the next command: no journal in `run`, no injection area in `pid`. */
function assertNothingStale(pid: number, run: string, what: string): void {
  const journals = existsSync(run) ? readdirSync(run).filter((n) => n.startsWith('dump-')) : [];
  assert.deepEqual(journals, [], `${what}: a journal is left in ${run}`);
  assert.deepEqual(areas(pid), [], `${what}: injection areas are left in the target`);
}

/** Each thread's signal mask (SigBlk), by thread id. */
function threadMasks(pid: number): Map<number, string> {
  const tids = readdirSync(`/proc/${pid}/task`).map(Number);
  return new Map(tids.map((tid) => [tid, readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8').match(/^SigBlk:\s*(\S+)/m)?.[1] ?? '?']));
}

/** A dump -R held inside an injected call of thread `tid` (CRIU_TS_HANG=`at`) and killed there. */
async function killInsideCall(pid: number, tid: number, at: string, img: string, run: string): Promise<void> {
  const criu = spawn(CRIU_BIN, ['dump', '-t', String(pid), '-D', img, '-R', '--shell-job'], {
    env: { ...process.env, CRIU_TS_RUN_DIR: run, CRIU_TS_HANG: at, CRIU_TS_HANG_TID: String(tid) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ended = new Promise<number | string | null>((resolve) => criu.on('exit', (code, s) => resolve(s ?? code)));
  let err = '';
  await new Promise<void>((resolve, reject) => {
    criu.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('hanging')) resolve();
    });
    criu.on('exit', () => reject(new Error(`criu-ts ended before it held the call: ${err}`)));
  });
  assert.match(err, new RegExp(`inside injected call 1, of thread ${tid}\n`), 'held in the thread asked for');
  criu.kill('SIGKILL');
  assert.equal(await ended, 'SIGKILL', 'criu-ts dies of SIGKILL');
}

for (const at of ['call-loaded', 'call-done']) {
  e2e(
    `SIGKILL of criu-ts inside an injected call (${at}) of the main thread or another: the call heals itself, the task runs on as it was`,
    async (c) => {
      // healcheck's spinners hold a vector register, their own masks and alternate stacks;
      // its main thread sleeps in nanosleep, a syscall to restart.
      const t = startTarget([workload('healcheck'), '-t', '3'], { logFile: join(c.dir, 'healcheck.log') });
      await waitForLine(t.log, /^i=5 state=ok$/, 10_000);
      const masks = threadMasks(t.pid);
      const tids = [...masks.keys()].sort((a, b) => a - b);
      for (const tid of [t.pid, tids[tids.length - 1]]) {
        const what = `killed ${at} in thread ${tid}${tid === t.pid ? ' (main)' : ''}`;
        const run = c.subdir(`run-${tid}`);
        await killInsideCall(t.pid, tid, at, c.subdir(`img-${tid}`), run);
        const n = lastCounter(t.log);
        await waitFor(() => lastCounter(t.log) > n + 15, 10_000, `${what}: the target to count on past ${n}`);
        const st = procStatus(t.pid);
        assert.ok(st && /^[RS]/.test(st.State), `${what}: the target is in state ${st?.State}`);
        assert.deepEqual(threadMasks(t.pid), masks, `${what}: every thread has its own signal mask`);
        for (const x of tids) assert.equal(procStatus(x)?.TracerPid, '0', `${what}: thread ${x} is not traced`);
        assert.deepEqual(
          readLines(t.log).filter((l) => l.includes('BAD')),
          [],
          `${what}: every thread keeps its vector register, mask and alternate stack, and the sleep goes on`,
        );
        // The next criu-ts command removes what the killed one left.
        assert.equal(areas(t.pid).length, 1, `${what}: the killed dump left its injection area`);
        assertOk(runCriu(['check'], { env: { CRIU_TS_RUN_DIR: run } }));
        assertNothingStale(t.pid, run, `${what}, after the next command`);
      }
      // gpregs holds a pattern in every general register it can name, checked in a tight loop.
      const g = startTarget([workload('gpregs')], { logFile: join(c.dir, 'gpregs.log') });
      await waitForLine(g.log, /^i=2 regs=ok$/, 10_000);
      const grun = c.subdir('run-gpregs');
      await killInsideCall(g.pid, g.pid, at, c.subdir('img-gpregs'), grun);
      const gi = lastCounter(g.log);
      await waitFor(() => lastCounter(g.log) > gi + 2, 20_000, `gpregs to count on past ${gi}`);
      assert.deepEqual(
        readLines(g.log).filter((l) => l.includes('BAD')),
        [],
        'every general register is back',
      );
      assertOk(runCriu(['check'], { env: { CRIU_TS_RUN_DIR: grun } }));
      assertNothingStale(g.pid, grun, 'gpregs, after the next command');
      killAndReap(g.pid);
      // What is left unprotected: the calls that map and unmap the injection area (and a first
      // dump's CPUID, run before it heals: CRIU_TS_RUN_DIR keeps its result for the boot).
      const img = c.subdir('img-whole');
      assertOk(runCriu(['dump', '-t', String(t.pid), '-D', img, '-R', '--shell-job', '-v4', '-o', 'dump.log']));
      const w = unsafeWindow(join(img, 'dump.log'));
      assert.ok(w && w.calls <= 2, `injected calls that cannot heal themselves: ${JSON.stringify(w)}`);
      const k = lastCounter(t.log);
      await waitFor(() => lastCounter(t.log) > k + 5, 10_000, 'the target to count on after a whole dump');
      killAndReap(t.pid);
    },
  );
}

const gcsSkip = process.arch !== 'arm64' ? 'GCS is arm64 only' : !hostHas.gcs() ? 'this machine has no GCS' : false;

e2e(
  'SIGKILL of criu-ts inside an injected call of threads with GCS enabled and locked: they run on, GCS still enforced',
  async (c) => {
    const t = startTarget([workload('gcs', ['-mbranch-protection=standard']), '-n', '2', '-i', '50'], {
      logFile: join(c.dir, 'gcs.log'),
      env: { GLIBC_TUNABLES: 'glibc.cpu.aarch64_gcs=1' },
    });
    await waitForLine(t.log, /^t=1 i=3 /, 20_000);
    const steps = () =>
      readLines(t.log).flatMap((l) => {
        const m = /^t=(\d+) i=(\d+) depth=\d+ gcs=(\d+) gcspr=(0x[0-9a-f]+)$/.exec(l);
        return m ? [{ t: Number(m[1]), i: Number(m[2]), gcs: Number(m[3]), gcspr: m[4] }] : [];
      });
    const tids = readdirSync(`/proc/${t.pid}/task`)
      .map(Number)
      .sort((a, b) => a - b);
    for (const [k, tid] of [t.pid, tids[tids.length - 1]].entries()) {
      const run = c.subdir(`run-${k}`);
      const seen = steps().length;
      await killInsideCall(t.pid, tid, 'call-done', c.subdir(`img-${k}`), run);
      await waitFor(() => steps().length > seen + 6, 20_000, `the threads to step on after criu-ts died in thread ${tid}`);
      for (const th of [0, 1]) {
        const own = steps().filter((s) => s.t === th);
        assert.ok(own.length > 0, `thread ${th} steps`);
        assert.ok(
          own.every((s) => s.gcs === own[0].gcs && s.gcspr === own[0].gcspr && s.gcs !== 0),
          `thread ${th} keeps GCS on and its GCSPR: ${JSON.stringify(own.slice(-3))}`,
        );
      }
      assertOk(runCriu(['check'], { env: { CRIU_TS_RUN_DIR: run } }));
      assertNothingStale(t.pid, run, `killed in thread ${tid}, after the next command`);
    }
    // Still enforced: a return through an overwritten return address faults.
    signal(t.pid, SIGUSR1);
    const ex = await waitExit(t.pid, 20_000);
    assert.equal(ex?.code, 139, `GCS still catches a corrupted return: ${JSON.stringify(ex)}`);
    assert.ok(
      readLines(t.log).some((l) => l === 'segv code=10'),
      'the fault is a GCS one (SEGV_CPERR)',
    );
  },
  { skip: gcsSkip },
);
