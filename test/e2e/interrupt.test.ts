/**
 * criu-ts can die at any moment without harming its target. SIGKILL, SIGTERM and SIGINT
 * reach criu-ts at 20 evenly spaced moments of a dump (-R) of a 512 MiB process, and of a
 * restore of it (memhog, counting): after each, a dumped process is alive, untraced, with its own signal mask,
 * and counting; a restore leaves either the whole restored process running or nothing; and
 * once the next criu-ts command has run, nothing is stale (no journal, no injection area,
 * no partial images). SIGTERM and SIGINT need no next command: they abort cleanly at once.
 *
 * Injected calls heal themselves (src/compel/heal.ts) but two per process, which map and
 * unmap the injection area: a SIGKILL inside one of those is the window that stays open; the
 * dump logs its length, which this test reports.
 *
 * CRIU_TS_INTERRUPT_MOMENTS=N changes the number of moments.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  runCriu,
  runCriuAsync,
  assertOk,
  waitForLine,
  waitFor,
  lastCounter,
  procStatus,
  procStat,
  readLines,
  reap,
  adopt,
  killAndReap,
  signal,
  sleep,
  imageFiles,
  describeRun,
  unusedPid,
  CRIU_BIN,
  SIGKILL,
  SIGTERM,
  SIGUSR1,
  type Target,
  type CriuResult,
} from '../lib/proc.ts';
import { dumpAndReap } from '../lib/cr.ts';
import { workload, REPO_ROOT } from '../lib/workloads.ts';
import { readStat } from '../../src/proc/index.ts';
import { injectionAreas as areas, unsafeWindow } from '../lib/injection.ts';

const SIGINT = 2;
const MIB = 512;
const MOMENTS = Number(process.env.CRIU_TS_INTERRUPT_MOMENTS ?? 20);
const SIGNALS: [number, string][] = [
  [SIGKILL, 'SIGKILL'],
  [SIGTERM, 'SIGTERM'],
  [SIGINT, 'SIGINT'],
];

/** The journals in `run` (what a killed dump leaves for the next command). */
const journals = (run: string): string[] =>
  existsSync(run)
    ? readdirSync(run)
        .filter((n) => n.startsWith('dump-'))
        .sort()
    : [];

async function startCounter(dir: string, log = 'memhog.log'): Promise<Target> {
  const t = startTarget([workload('memhog'), String(MIB), '20', '1'], { logFile: join(dir, log) });
  await waitForLine(t.log, /^i=3$/, 60_000);
  return t;
}

/** The target is alive, untraced, not stopped, with its own (empty) signal mask, and counts on. */
async function assertCounting(t: Target, what: string): Promise<void> {
  const st = procStatus(t.pid);
  assert.ok(st, `${what}: the target is gone`);
  assert.ok(/^[RS]/.test(st.State), `${what}: the target is in state ${st.State}`);
  assert.equal(st.TracerPid, '0', `${what}: the target is still traced`);
  assert.equal(st.SigBlk, '0000000000000000', `${what}: the target's signal mask is not its own`);
  const n = lastCounter(t.log);
  await waitFor(() => lastCounter(t.log) > n + 2, 10_000, `${what}: the counter to go on past ${n}`);
  const bad = readLines(t.log).filter((l) => l.includes('BAD'));
  assert.deepEqual(bad, [], `${what}: the target reports`);
}

const FAULTS = new Set([4, 5, 7, 8, 11]); // SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV
const ALL_BLOCKED = 'fffffffffffbfeff'; // every signal but SIGKILL and SIGSTOP

/**
 * How a SIGKILL inside an injected call (src/compel/tracee.ts) shows: the target runs on
 * from the registers of the call and dies of a fault, or, killed just around the call,
 * lives on with every signal blocked. Anything else is not this window and is left to
 * the assertions.
 */
async function harmedInCall(t: Target): Promise<string | undefined> {
  const n = lastCounter(t.log);
  const outcome = await waitFor(
    () => {
      const st = procStat(t.pid);
      if (!st || st.state === 'Z') return 'ended';
      return lastCounter(t.log) > n ? 'counting' : undefined;
    },
    10_000,
    'the target to count on or to end',
  );
  if (outcome === 'counting') return procStatus(t.pid)?.SigBlk === ALL_BLOCKED ? 'lives on with every signal blocked' : undefined;
  const ex = reap(t.pid);
  assert.ok(ex?.signal && FAULTS.has(ex.signal), `the target ended after criu-ts was killed: ${JSON.stringify(ex)}`);
  return `died of signal ${ex.signal}`;
}

/** What a killed criu-ts may leave: none of it may be there. */
function assertNothingStale(pid: number | undefined, img: string | undefined, run: string, what: string): void {
  assert.deepEqual(journals(run), [], `${what}: a journal is left in ${run}`);
  if (img !== undefined) assert.deepEqual(imageFiles(img), [], `${what}: partial images are left in ${img}`);
  if (pid !== undefined) assert.deepEqual(areas(pid), [], `${what}: injection areas are left in the target`);
}

/** Send `sig` to a criu-ts run `ms` after its start; returns how it ended. */
async function interrupt(args: string[], env: Record<string, string>, ms: number, sig: number): Promise<CriuResult> {
  const run = runCriuAsync(args, { env });
  await sleep(ms);
  try {
    process.kill(run.pid, sig);
  } catch {
    /* it has ended */
  }
  const r = await run.done;
  // Killed before it execs node, bin/criu-ts (a shell script) leaves its own children
  // (dirname, find) to us, the subreaper.
  for (const p of orphans(new Set())) {
    if (procStat(p)?.comm === 'memhog') continue;
    await waitFor(() => procStat(p)?.state === 'Z', 5000, `PID ${p} (${procStat(p)?.comm}) left by bin/criu-ts to end`);
    reap(p);
  }
  return r;
}

/** Criu-ts ended by the signal, or (its abort done) died of it, or finished before it came. */
function assertEndedBy(r: CriuResult, name: string): boolean {
  if (r.code === 0) return false;
  assert.equal(r.signal, name, `criu-ts should have died of ${name}: ${describeRun(r)}`);
  return true;
}

for (const [sig, name] of SIGNALS) {
  e2e(
    `${name} of criu-ts at ${MOMENTS} moments of a dump of a ${MIB} MiB process leaves it counting, and nothing stale`,
    async (c) => {
      let t = await startCounter(c.dir);
      const run = c.subdir('run');
      const env = { CRIU_TS_RUN_DIR: run };
      // How long a whole dump takes, start-up included: the moments spread over it. The
      // shorter of two (the first one of a process is slower).
      const wholes = [];
      for (const n of [1, 2]) {
        const img = c.subdir(`img-whole-${n}`);
        wholes.push({ r: assertOk(runCriu(['dump', '-t', String(t.pid), '-D', img, '-R', '-v4', '-o', 'dump.log'], { env })), img });
        await assertCounting(t, 'after a whole dump');
      }
      const whole = wholes.map((w) => w.r).sort((a, b) => a.ms - b.ms)[0];
      const unsafe = wholes.map((w) => unsafeWindow(join(w.img, 'dump.log')));
      let interrupted = 0;
      const inCall: string[] = [];
      for (let k = 1; k <= MOMENTS; k++) {
        const at = Math.round((whole.ms * k) / (MOMENTS + 1));
        const what = `${name} at ${at} ms (moment ${k} of ${MOMENTS})`;
        const img = c.subdir(`img-${k}`);
        const r = await interrupt(['dump', '-t', String(t.pid), '-D', img, '-R', '-v4', '-o', 'dump.log'], env, at, sig);
        const cut = assertEndedBy(r, name);
        if (cut) interrupted++;
        const harm = sig === SIGKILL ? await harmedInCall(t) : undefined;
        if (harm) {
          // The one window that stays open: the target goes on with a fresh one.
          inCall.push(`${what}: the target ${harm}`);
          killAndReap(t.pid);
          assertOk(runCriu(['check'], { env }));
          assertNothingStale(
            undefined,
            existsSync(join(img, 'criu-ts-manifest.json')) ? undefined : img,
            run,
            `${what}, after the next command`,
          );
          t = await startCounter(c.dir, `memhog-${k}.log`);
          continue;
        }
        await assertCounting(t, what);
        if (!cut) continue;
        // Killed once the images were complete (their manifest written): they stay.
        const partial = existsSync(join(img, 'criu-ts-manifest.json')) ? undefined : img;
        if (sig !== SIGKILL && partial) {
          // A clean abort: nothing is left for the next command to find.
          assertNothingStale(t.pid, partial, run, what);
          if (existsSync(join(img, 'dump.log')) && readFileSync(join(img, 'dump.log'), 'utf8').includes('Error')) {
            assert.match(readFileSync(join(img, 'dump.log'), 'utf8'), new RegExp(`interrupted by ${name}`), `${what}: the log says why`);
          }
        }
        assertOk(runCriu(['check'], { env }));
        assertNothingStale(t.pid, partial, run, `${what}, after the next command`);
        await assertCounting(t, `${what}, after the next command`);
      }
      assert.ok(interrupted >= MOMENTS / 4, `only ${interrupted} of ${MOMENTS} signals came before the dump ended`);
      // Inside injected calls is a few ms of a dump (reported below): more than one kill of
      // twenty landing there means a window larger than it should be.
      assert.ok(inCall.length <= 1, `kills inside an injected call:\n${inCall.join('\n')}`);
      // Its memory is intact, and it can still be dumped.
      signal(t.pid, SIGUSR1);
      await waitForLine(t.log, /^verify=1 ok$/, 60_000);
      assertOk(runCriu(['dump', '-t', String(t.pid), '-D', c.subdir('img-last'), '-R'], { env }));
      await assertCounting(t, 'after a last dump');
      const window = unsafe.map((u) => (u ? `${u.ms} ms in ${u.calls} injected calls` : 'not logged')).join(', ');
      c.t.diagnostic(
        `whole dump ${whole.ms} ms; unsafe window ${window}; ${interrupted} of ${MOMENTS} runs interrupted; ` +
          `inside an injected call: ${inCall.join('; ') || 'none'}`,
      );
    },
    { timeout: 900_000 },
  );
}

e2e('SIGHUP and SIGQUIT of criu-ts in the middle of a dump abort it cleanly too', async (c) => {
  const t = await startCounter(c.dir);
  const run = c.subdir('run');
  const env = { CRIU_TS_RUN_DIR: run };
  const whole = assertOk(runCriu(['dump', '-t', String(t.pid), '-D', c.subdir('img-whole'), '-R'], { env }));
  for (const [sig, name] of [
    [1, 'SIGHUP'],
    [3, 'SIGQUIT'],
  ] as const) {
    for (const part of [0.4, 0.6, 0.8]) {
      const what = `${name} at ${Math.round(whole.ms * part)} ms`;
      const img = c.subdir('img');
      const r = await interrupt(['dump', '-t', String(t.pid), '-D', img, '-R', '-v4', '-o', 'dump.log'], env, whole.ms * part, sig);
      await assertCounting(t, what);
      if (!assertEndedBy(r, name) || existsSync(join(img, 'criu-ts-manifest.json'))) continue;
      assertNothingStale(t.pid, img, run, what);
    }
  }
});

e2e('a tracer killed between injected calls leaves its tracee running as it was, when the tracee kept its own state', async (c) => {
  const node = join(REPO_ROOT, 'node_modules', '.bin', 'node');
  for (const mode of ['own', 'clobbered']) {
    const t = startTarget([workload('counter'), '20'], { logFile: join(c.dir, `counter-${mode}.log`) });
    await waitForLine(t.log, /^i=3$/, 10_000);
    const tracer = spawn(node, [join(REPO_ROOT, 'test', 'fixtures', 'tracer.ts'), String(t.pid), mode], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => tracer.on('exit', resolve));
    await new Promise<void>((resolve) =>
      tracer.stdout.on('data', (d: Buffer) => {
        if (d.includes('idle')) resolve();
      }),
    );
    tracer.kill('SIGKILL');
    await exited;
    if (mode === 'own') {
      await assertCounting(t, 'the tracee of a tracer killed between calls');
      assert.equal(areas(t.pid).length, 1, 'the area stays, marked, for the next criu-ts to remove');
      // No journal names it (this tracer kept none): the next dump of the task removes it.
      const img = c.subdir('img');
      assertOk(runCriu(['dump', '-t', String(t.pid), '-D', img, '-R'], { env: { CRIU_TS_RUN_DIR: c.subdir('run') } }));
      assert.deepEqual(areas(t.pid), [], 'the next dump removes the area');
      await assertCounting(t, 'after the next dump');
      killAndReap(t.pid);
    } else {
      // The control: registers left in the area and every signal blocked kill it.
      const ex = reap(t.pid, 10_000);
      assert.ok(
        ex && ex.signal !== null && ex.signal !== SIGKILL,
        `a tracee left with the registers of an injected call dies of a fault: ${JSON.stringify(ex)}`,
      );
    }
  }
});

/** The tasks of a tree (root first), from /proc. */
function treePids(root: number): number[] {
  const kids = readFileSync(`/proc/${root}/task/${root}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return [root, ...kids];
}

for (const [sig, name] of [
  [SIGKILL, 'SIGKILL'],
  [SIGTERM, 'SIGTERM'],
] as const) {
  e2e(
    `${name} of criu-ts held between injected calls in a dump of a tree with threads: every task and thread runs on as it was`,
    async (c) => {
      const [tlog, clog] = [join(c.dir, 'threads.log'), join(c.dir, 'counter.log')];
      const t = startTarget(
        ['/usr/bin/bash', '-c', `${workload('threads')} -n 4 -i 30 > ${tlog} & ${workload('counter')} 30 > ${clog} & wait`],
        { logFile: join(c.dir, 'bash.log') },
      );
      await waitForLine(tlog, /^i=3 /, 10_000);
      await waitForLine(clog, /^i=3$/, 10_000);
      const pids = treePids(t.pid);
      assert.equal(pids.length, 3, 'bash and its two children');
      const run = c.subdir('run');
      const img = c.subdir('img');
      // Held at the "files" step of the first task: every task has its injection area by then.
      const criu = spawn(CRIU_BIN, ['dump', '-t', String(t.pid), '-D', img, '-R'], {
        env: { ...process.env, CRIU_TS_RUN_DIR: run, CRIU_TS_HANG: 'files' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const ended = new Promise<number | string | null>((resolve) => criu.on('exit', (code, s) => resolve(s ?? code)));
      await new Promise<void>((resolve) =>
        criu.stderr.on('data', (d: Buffer) => {
          if (d.includes('hanging')) resolve();
        }),
      );
      for (const p of pids) assert.equal(areas(p).length, 1, `task ${p} has its injection area`);
      criu.kill(name);
      assert.equal(await ended, name, `criu-ts dies of ${name}`);
      for (const [log, what] of [
        [tlog, 'the threads'],
        [clog, 'the counter'],
      ]) {
        const n = lastCounter(log);
        await waitFor(() => lastCounter(log) > n + 2, 10_000, `${what} to count on`);
      }
      const bad = readLines(tlog).filter((l) => l.startsWith('i=') && !/ tls=ok mask=ok alt=ok /.test(l));
      assert.deepEqual(bad, [], 'every thread keeps its TLS, signal mask and sigaltstack');
      for (const p of pids) assert.equal(procStatus(p)?.TracerPid, '0', `task ${p} is not traced`);
      if (sig === SIGKILL) {
        assert.equal(journals(run).length, 1, 'the killed dump left its journal');
        assertOk(runCriu(['check'], { env: { CRIU_TS_RUN_DIR: run } }));
      }
      for (const p of pids) assertNothingStale(p, img, run, `task ${p}`);
      killAndReap(t.pid);
    },
  );
}

/** Our children that are not targets: what a killed restore left (killed by PTRACE_O_EXITKILL). */
function orphans(known: Set<number>): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((p) => !known.has(p) && procStat(p)?.ppid === process.pid);
}

for (const [sig, name] of SIGNALS) {
  e2e(
    `${name} of criu-ts at ${MOMENTS} moments of a restore of a ${MIB} MiB process leaves it whole or gone`,
    async (c) => {
      const t = await startCounter(c.dir);
      const img = c.subdir('img');
      const run = c.subdir('run');
      const env = { CRIU_TS_RUN_DIR: run };
      dumpAndReap(t.pid, img);
      const restoreArgs = (log: string) => ['restore', '-D', img, '-d', '-v4', '-o', log];
      // How long a whole restore takes: the shorter of two.
      const wholes = [];
      for (const n of [1, 2]) {
        const r = runCriu(restoreArgs(`restore-whole-${n}.log`), { env });
        adopt(t.pid);
        wholes.push(assertOk(r));
        await assertCounting(t, 'after a whole restore');
        killAndReap(t.pid);
      }
      const whole = wholes.sort((a, b) => a.ms - b.ms)[0];
      let interrupted = 0;
      for (let k = 1; k <= MOMENTS; k++) {
        const at = Math.round((whole.ms * k) / (MOMENTS + 1));
        const what = `${name} at ${at} ms (moment ${k} of ${MOMENTS})`;
        const mark = readLines(t.log).length;
        const r = await interrupt(restoreArgs(`restore-${k}.log`), env, at, sig);
        if (assertEndedBy(r, name)) interrupted++;
        // Whatever criu-ts had created was killed with it (EXITKILL) and is re-parented to us,
        // unless the restore was complete: then the process runs whole. (A killed 512 MiB
        // process takes a while to exit.)
        const outcome = await waitFor(
          () => {
            const st = procStat(t.pid);
            if (!st || st.state === 'Z') return 'gone';
            return readLines(t.log)
              .slice(mark)
              .some((l) => /^i=/.test(l))
              ? 'restored'
              : undefined;
          },
          10_000,
          `${what}: PID ${t.pid} to be restored whole or to die`,
        );
        if (outcome === 'restored') {
          adopt(t.pid);
          await assertCounting(t, `${what}: restored`);
          killAndReap(t.pid);
        }
        for (const p of orphans(new Set())) {
          const dead = await waitFor(() => procStat(p)?.state === 'Z' || procStat(p) === null, 5000, `${what}: PID ${p} to die`).catch(
            () => false,
          );
          assert.ok(dead, `${what}: PID ${p} (${procStat(p)?.comm}, state ${procStat(p)?.state}) is half-restored and alive`);
          reap(p);
        }
        assert.equal(procStat(t.pid), null, `${what}: PID ${t.pid} is still there`);
        assert.ok(
          !readLines(t.log)
            .slice(mark)
            .some((l) => l.includes('BAD')),
          `${what}: a restored run reported BAD`,
        );
        assertOk(runCriu(['check'], { env }));
        assert.deepEqual(journals(run), [], `${what}: a journal is left`);
      }
      assert.ok(interrupted >= MOMENTS / 4, `only ${interrupted} of ${MOMENTS} signals came before the restore ended`);
      // The images are intact: a last restore works.
      const last = runCriu(restoreArgs('restore-last.log'), { env });
      adopt(t.pid);
      assertOk(last);
      await assertCounting(t, 'after a last restore');
      c.t.diagnostic(`whole restore ${whole.ms} ms; ${interrupted} of ${MOMENTS} runs interrupted`);
    },
    { timeout: 900_000 },
  );
}

const FREEZER = [
  {
    root: '/sys/fs/cgroup/unified',
    freeze: 'cgroup.freeze',
    on: '1',
    frozen: (d: string) => readFileSync(join(d, 'cgroup.events'), 'utf8').includes('frozen 1'),
  },
  {
    root: '/sys/fs/cgroup/freezer',
    freeze: 'freezer.state',
    on: 'FROZEN',
    frozen: (d: string) => readFileSync(join(d, 'freezer.state'), 'utf8').trim() !== 'THAWED',
  },
].find((f) => existsSync(f.root));

e2e(
  'the journal of a killed dump: the next command thaws its cgroup and removes its partial images; a live one is left alone',
  async (c) => {
    const run = c.subdir('run');
    const env = { CRIU_TS_RUN_DIR: run };
    const img = c.subdir('img');
    writeFileSync(join(img, 'inventory.img'), 'from before');
    writeFileSync(join(img, 'core-1.img'), 'partial');
    writeFileSync(join(img, 'notes.txt'), 'not an image');
    const cg = FREEZER ? join(FREEZER.root, `criu-ts-test-${process.pid}-journal`) : undefined;
    const t = startTarget([workload('counter'), '20'], { logFile: join(c.dir, 'counter.log') });
    try {
      if (cg && FREEZER) {
        mkdirSync(cg, { recursive: true });
        writeFileSync(join(cg, 'cgroup.procs'), String(t.pid));
        writeFileSync(join(cg, FREEZER.freeze), FREEZER.on);
        await waitFor(() => FREEZER.frozen(cg), 5000, 'the cgroup to freeze');
      }
      const dead = { pid: unusedPid(), start: '1' };
      const me = { pid: process.pid, start: String(readStat(process.pid).startTime) };
      const tasks = [{ pid: t.pid, start: String(readStat(t.pid).startTime) }];
      const pidns = readlinkSync('/proc/self/ns/pid');
      const journal = (owner: typeof me, dir = img, ns = pidns) =>
        JSON.stringify({
          version: 2,
          pidns: ns,
          owner,
          dir,
          existing: ['inventory.img'],
          createdDir: false,
          ...(cg ? { cgroup: cg } : {}),
          tasks,
        });
      writeFileSync(join(run, `dump-${me.pid}.json`), journal(me));
      writeFileSync(join(run, `dump-${dead.pid}.json`), journal(dead));
      // A dump in another PID namespace (as ZDTM runs criu): its PIDs mean other processes here, so it is left alone.
      const other = c.subdir('otherns');
      writeFileSync(join(other, 'core-1.img'), 'being written');
      writeFileSync(join(run, `dump-1-${dead.pid}.json`), journal(dead, other, 'pid:[1]'));
      // Killed after its images were complete: they stay.
      const whole = c.subdir('whole');
      writeFileSync(join(whole, 'core-1.img'), 'whole');
      const done = {
        version: 2,
        pidns,
        owner: { pid: dead.pid + 1, start: '1' },
        dir: whole,
        existing: [],
        createdDir: false,
        imagesDone: true,
        tasks: [],
      };
      writeFileSync(join(run, `dump-${dead.pid + 1}.json`), JSON.stringify(done));
      assertOk(runCriu(['check'], { env }));
      assert.deepEqual(
        journals(run),
        [`dump-1-${dead.pid}.json`, `dump-${me.pid}.json`],
        "the dead owners' journals are gone, the live one's and another namespace's stay",
      );
      assert.deepEqual(readdirSync(other), ['core-1.img'], "another PID namespace's dump is not touched");
      assert.deepEqual(readdirSync(img).sort(), ['inventory.img', 'notes.txt'], 'only the partial image is removed');
      assert.deepEqual(readdirSync(whole), ['core-1.img'], 'complete images stay');
      if (cg && FREEZER) assert.ok(!FREEZER.frozen(cg), 'the cgroup is thawed');
      await assertCounting(t, 'after the next command');
    } finally {
      killAndReap(t.pid);
      if (cg)
        try {
          rmdirSync(cg);
        } catch {
          /* the sweep kills what is inside */
        }
    }
  },
);

e2e("a journal half-written by a criu-ts killed while writing it goes with the next command; a live writer's stays", (c) => {
  const run = c.subdir('run');
  const ns = readlinkSync('/proc/self/ns/pid').replace(/\D/g, '');
  // A pid that is free: the highest pid_max would wrap to is taken by nobody here.
  const dead = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1')) - 1;
  assert.ok(!existsSync(`/proc/${dead}`), `pid ${dead} is free`);
  writeFileSync(join(run, `dump-${ns}-${dead}.json.tmp`), '{"version":');
  writeFileSync(join(run, `dump-${ns}-${process.pid}.json.tmp`), '{"version":');
  assertOk(runCriu(['check'], { env: { CRIU_TS_RUN_DIR: run } }));
  assert.deepEqual(readdirSync(run), [`dump-${ns}-${process.pid}.json.tmp`]);
});
