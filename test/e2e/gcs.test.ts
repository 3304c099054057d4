/**
 * arm64 Guarded Control Stack through dump and restore, in the emulated lab
 * (scripts/lab): GCS state per thread, the GCS mapping, and enforcement afterwards.
 * Skipped with the reason on machines without GCS (x86_64 has no GCS at all).
 *
 * Two environment variables drive the check on a machine without GCS, which needs two
 * boots of the lab (scripts/lab/gcs-nogcs.sh): GCS_SAVE_TO=DIR makes the first boot dump a
 * GCS workload into DIR; GCS_IMAGES=DIR makes the second boot, started without GCS,
 * try to restore it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  readLines,
  waitForLine,
  waitExit,
  signal,
  assertCleanError,
  procStat,
  ourChildren,
  SIGUSR1,
} from '../lib/proc.ts';
import { dumpAndReap, restore, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { taskTids } from '../lib/tree.ts';
import { Tracee } from '../../src/compel/index.ts';
import { NT } from '../../src/kernel/index.ts';
import { hostHas } from '../../src/resources/cpu/aarch64.ts';

const arm64 = process.arch === 'arm64';
const gcsHere = arm64 && hostHas.gcs();
const skip = !arm64 ? 'GCS is arm64 only' : !gcsHere ? 'this machine has no GCS' : false;
const GCS_ENV = { GLIBC_TUNABLES: 'glibc.cpu.aarch64_gcs=1' };
const gcsBin = () => workload('gcs', ['-mbranch-protection=standard']);

interface Line {
  t: number;
  i: number;
  gcs: number;
  gcspr: bigint;
}
function lines(log: string, from = 0): Line[] {
  return readLines(log)
    .slice(from)
    .flatMap((l) => {
      const m = /^t=(\d+) i=(\d+) depth=\d+ gcs=(\d+) gcspr=(0x[0-9a-f]+)$/.exec(l);
      return m ? [{ t: Number(m[1]), i: Number(m[2]), gcs: Number(m[3]), gcspr: BigInt(m[4]) }] : [];
    });
}

interface ThreadRegs {
  enabled: bigint;
  locked: bigint;
  gcspr: bigint;
  pac: string;
}

/**
 * Read from outside, in one attach: NT_ARM_GCS (enabled and locked bits, GCSPR_EL0) and the
 * pointer-authentication keys (NT_ARM_PACA_KEYS + NT_ARM_PACG_KEYS, as hex).
 */
function threadRegs(tid: number): ThreadRegs {
  const t = Tracee.seize(tid, 0);
  try {
    const b = t.getRegset(NT.ARM_GCS, 24);
    const pac = t.getRegset(NT.ARM_PACA_KEYS, 64).toString('hex') + t.getRegset(NT.ARM_PACG_KEYS, 16).toString('hex');
    return { enabled: b.readBigUInt64LE(0), locked: b.readBigUInt64LE(8), gcspr: b.readBigUInt64LE(16), pac };
  } finally {
    t.detach();
  }
}

/** The `ss` (shadow stack) VMAs of a process, as "start-end" strings. */
function ssVmas(pid: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const l of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^([0-9a-f]+-[0-9a-f]+) /.exec(l);
    if (h) cur = h[1];
    else if (l.startsWith('VmFlags:') && l.split(/\s+/).includes('ss')) out.push(cur);
  }
  return out;
}

function inRange(addr: bigint, ranges: string[]): boolean {
  return ranges.some((r) => {
    const [a, b] = r.split('-').map((x) => BigInt(`0x${x}`));
    return addr >= a && addr <= b;
  });
}

/** Per thread index: the gcspr every line of that thread reports (it must be one value). */
function gcsprByThread(ls: Line[]): Map<number, bigint> {
  const m = new Map<number, bigint>();
  for (const l of ls) {
    const seen = m.get(l.t);
    assert.ok(
      seen === undefined || seen === l.gcspr,
      `thread ${l.t} reports one GCSPR at the same depth: 0x${seen?.toString(16)} and 0x${l.gcspr.toString(16)}`,
    );
    m.set(l.t, l.gcspr);
  }
  return m;
}

async function waitSteps(log: string, from: number, threads: number, steps: number): Promise<void> {
  await waitForLine(
    log,
    () => {
      const ls = lines(log, from);
      for (let k = 0; k < threads; k++) if (ls.filter((l) => l.t === k).length < steps) return false;
      return true;
    },
    60_000,
    from,
  );
}

/** Dump and restore a running gcs workload; checks that every thread goes on with the same GCS state. */
async function roundTrip(c: { subdir(n: string): string; dir: string }, threads: number, env: Record<string, string>) {
  const log = join(c.dir, `gcs-${threads}.log`);
  const t = startTarget([gcsBin(), '-n', String(threads), '-d', '6', '-i', '50'], { logFile: log, env });
  await waitForLine(log, /^ready threads=/, 60_000);
  await waitSteps(log, 0, threads, 3);
  const tids = taskTids(t.pid);
  assert.equal(tids.length, threads);
  const regs0 = new Map(tids.map((tid) => [tid, threadRegs(tid)]));
  const ss0 = ssVmas(t.pid);
  const before = lines(log);
  const pr0 = gcsprByThread(before);

  const img = c.subdir(`img-${threads}`);
  dumpAndReap(t.pid, img);
  const mark = readLines(log).length;
  const last = new Map<number, number>();
  for (const l of lines(log)) last.set(l.t, l.i);

  restoreDetached(img, t.pid);
  assert.deepEqual(taskTids(t.pid), tids, 'the same TIDs');
  assert.deepEqual(ssVmas(t.pid), ss0, 'the ss VMAs are where they were');
  for (const tid of tids) {
    const r = threadRegs(tid),
      r0 = regs0.get(tid)!;
    assert.equal(r.enabled, r0.enabled, `thread ${tid}: enabled bits`);
    assert.equal(r.locked, r0.locked, `thread ${tid}: locked bits`);
    assert.equal(r.pac, r0.pac, `thread ${tid}: the same pointer-authentication keys`);
    assert.ok(
      r.gcspr === 0n ? r0.gcspr === 0n : inRange(r.gcspr, ss0),
      `thread ${tid}: GCSPR_EL0 0x${r.gcspr.toString(16)} lies in an ss VMA`,
    );
  }
  await waitSteps(log, mark, threads, 3);
  const after = lines(log, mark);
  const pr1 = gcsprByThread(after);
  for (let k = 0; k < threads; k++) {
    const mine = after.filter((l) => l.t === k);
    assert.equal(mine[0].i, last.get(k)! + 1, `thread ${k} continues its count`);
    assert.equal(pr1.get(k), pr0.get(k), `thread ${k}: the same GCSPR_EL0 at the same depth`);
    assert.equal(mine.at(-1)!.gcs, before.find((l) => l.t === k)!.gcs, `thread ${k}: PR_GET_SHADOW_STACK_STATUS`);
  }
  return { t, log, regs0, ss0, before };
}

e2e(
  'a GCS process survives dump + restore with its GCS state, and GCS still enforces',
  async (c) => {
    const { t, log, regs0, ss0, before } = await roundTrip(c, 1, GCS_ENV);
    assert.equal(before[0].gcs & 1, 1, 'glibc enabled GCS (PR_SHADOW_STACK_ENABLE)');
    const r0 = regs0.get(t.pid)!;
    assert.notEqual(r0.locked, 0n, 'glibc locked GCS');
    assert.equal(ss0.length, 1, 'one GCS mapping');
    // A saved return address overwritten after the restore: the RET must fault.
    signal(t.pid, SIGUSR1);
    const ex = await waitExit(t.pid, 30_000);
    assert.deepEqual(ex?.code, 139, `the workload died in its SIGSEGV handler: ${JSON.stringify(ex)}`);
    assert.ok(readLines(log).includes('segv code=10'), 'SIGSEGV with si_code SEGV_CPERR');
    assert.ok(!readLines(log).includes('hijacked'));
  },
  { skip, timeout: 600_000 },
);

e2e(
  'control: without GCS the same overwrite after dump + restore hijacks the return',
  async (c) => {
    const { t, log, before, ss0 } = await roundTrip(c, 1, {});
    assert.equal(before[0].gcs, 0, 'GCS off');
    assert.deepEqual(ss0, [], 'no GCS mapping');
    signal(t.pid, SIGUSR1);
    const ex = await waitExit(t.pid, 30_000);
    assert.equal(ex?.code, 42, `the return went to hijacked(): ${JSON.stringify(ex)}`);
    assert.ok(readLines(log).includes('hijacked'));
  },
  { skip, timeout: 600_000 },
);

e2e(
  '4 threads, each with its own GCS, survive dump + restore',
  async (c) => {
    const { regs0, ss0 } = await roundTrip(c, 4, GCS_ENV);
    assert.equal(ss0.length, 4, 'a GCS mapping per thread');
    for (const [tid, r] of regs0) assert.equal(r.enabled & 1n, 1n, `thread ${tid} runs with GCS`);
    const where = [...regs0.values()].map((r) => ss0.findIndex((s) => inRange(r.gcspr, [s])));
    assert.equal(new Set(where).size, 4, `each thread's GCSPR is in its own GCS: ${where.join(',')}`);
  },
  { skip, timeout: 600_000 },
);

// ---- a machine without GCS (two lab boots; see scripts/lab/gcs-nogcs.sh) -------------------

const saveTo = process.env.GCS_SAVE_TO;
e2e(
  '(first boot) a GCS workload is dumped for the boot without GCS',
  async (c) => {
    const log = join(c.dir, 'gcs.log');
    const t = startTarget([gcsBin(), '-d', '6'], { logFile: log, env: GCS_ENV });
    await waitSteps(log, 0, 1, 2);
    rmSync(saveTo!, { recursive: true, force: true });
    mkdirSync(saveTo!, { recursive: true });
    dumpAndReap(t.pid, saveTo!);
    writeFileSync(join(saveTo!, 'gcs-pid'), String(t.pid));
  },
  { skip: !saveTo ? 'GCS_SAVE_TO is not set' : skip, timeout: 600_000 },
);

const images = process.env.GCS_IMAGES;
e2e(
  'a GCS dump restored on a machine without GCS fails with a clear error and leaves nothing behind',
  () => {
    assert.ok(existsSync(join(images!, 'gcs-pid')), `no dump in ${images}: run the first boot first`);
    const pid = Number(readFileSync(join(images!, 'gcs-pid'), 'utf8'));
    const children = ourChildren();
    // In a fresh boot the dumped PID may well belong to someone else (a kworker, say): the
    // restore must leave it as it was, free or not.
    const who = () => {
      const s = procStat(pid);
      return s && { starttime: s.starttime, comm: s.comm };
    };
    const atPid = who();
    const line = assertCleanError(restore(images!, ['-d']));
    assert.match(line, /Guarded Control Stack \(GCS\), which this machine does not have/);
    assert.deepEqual(who(), atPid, `PID ${pid} is as it was before the restore (${atPid ? atPid.comm : 'free'})`);
    assert.deepEqual(ourChildren(), children, 'no stray process');
  },
  { skip: !images ? 'GCS_IMAGES is not set' : !arm64 ? 'arm64 only' : gcsHere ? 'this machine has GCS' : false },
);
