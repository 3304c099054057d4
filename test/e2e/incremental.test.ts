/**
 * pre-dump and incremental dumps without soft-dirty bits (resources/mm/track.ts): a pre-dump
 * saves the memory and tracks what the tree writes next; a dump given it as its parent
 * (--prev-images-dir) saves only the pages written since and marks the rest PE_PARENT; the
 * restore takes those from the parent dumps. Checked word by word inside the workload, and
 * with CRIU 4.2 restoring the same chain.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import {
  e2e,
  startTarget,
  assertOk,
  assertCleanError,
  isAlive,
  adopt,
  reap,
  signal,
  waitForLine,
  readLines,
  runCriu,
  SIGUSR1,
  SIGUSR2,
  type Target,
} from '../lib/proc.ts';
import { dump, dumpAndReap, pageCounts, restoreDetached, restore } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIU42 } from '../lib/runc.ts';

const MIB = 32;
const PAGES = MIB * 256;
/**
 * What the workload writes besides its dirtied eighth between two dumps (stack, stdio, its
 * generations), with room: the pages it never touched are not saved again either.
 */
const OWN = 64;

async function dirty(t: Target, n: number): Promise<void> {
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, new RegExp(`^dirtied=${n}$`), 5000);
}

async function verify(t: Target, n: number, what: string): Promise<void> {
  const mark = readLines(t.log).length;
  signal(t.pid, SIGUSR2);
  const { line } = await waitForLine(t.log, new RegExp(`^verify=${n} `), 10_000, mark);
  assert.equal(line, `verify=${n} ok`, `${what}: every word of every page`);
}

/** --prev-images-dir takes the parent relative to the images directory, as CRIU does. */
const up = (dir: string): string => `../${basename(dir)}`;

function holderOf(dir: string): number {
  return (JSON.parse(readFileSync(join(dir, 'criu-ts-track.json'), 'utf8')) as { holder: number }).holder;
}

/** The tracking holder `pid` has ended (it is our child once criu-ts exits: reap it). */
function assertEnded(pid: number, what: string): void {
  const ex = reap(pid, 5000);
  assert.ok(ex, `${what}: holder ${pid} should have ended`);
}

function preDump(pid: number, dir: string, extra: string[] = [], env?: Record<string, string>) {
  return runCriu(['pre-dump', '-t', String(pid), '-D', dir, '-v4', '-o', 'pre-dump.log', ...extra], env ? { env } : {});
}

e2e(
  'pre-dump, pre-dump again, dump: each saves only what was written since; the restore takes the rest from the parents (CRIU 4.2 too)',
  async (c) => {
    const t = startTarget([workload('dirtier'), String(MIB)], { logFile: join(c.dir, 'dirtier.log') });
    await waitForLine(t.log, /^ready/, 5000);
    const [d1, d2, d3] = ['1', '2', '3'].map((n) => c.subdir(n));

    assertOk(preDump(t.pid, d1));
    const first = pageCounts(d1, t.pid);
    assert.ok(first.present >= PAGES, `the first pre-dump saves every page (${first.present})`);
    assert.equal(first.parent, 0);
    const holder1 = holderOf(d1);
    assert.match(readFileSync(`/proc/${holder1}/cmdline`, 'latin1'), /^tail\0--pid=/, 'the tracking holder runs');
    assert.match(readFileSync(`/proc/${t.pid}/smaps`, 'latin1'), /VmFlags:.* uw/, "the task's memory is write-protected for tracking");
    assert.ok(!readFileSync(`/proc/${t.pid}/maps`, 'latin1').includes('userfaultfd'), 'the task holds no userfaultfd');
    assert.ok(
      !spawnSync('ls', ['-l', `/proc/${t.pid}/fd`], { encoding: 'utf8' }).stdout.includes('userfaultfd'),
      'the task holds no userfaultfd fd',
    );

    await dirty(t, 1);
    assertOk(preDump(t.pid, d2, ['--prev-images-dir', up(d1)]));
    assert.equal(readlinkSync(join(d2, 'parent')), up(d1));
    const second = pageCounts(d2, t.pid);
    assert.ok(
      second.present >= PAGES / 8 && second.present < PAGES / 8 + OWN,
      `the second pre-dump saves the dirtied eighth (${second.present})`,
    );
    assert.ok(second.parent > (PAGES * 3) / 4, `and leaves the rest to the first (${second.parent})`);
    assertEnded(holder1, 'the first holder handed over');

    await dirty(t, 2);
    const r = dump(t.pid, d3, ['--prev-images-dir', up(d2), '--shell-job']);
    const ex = reap(t.pid, 10_000);
    assertOk(r);
    assert.equal(ex?.signal, 9);
    const third = pageCounts(d3, t.pid);
    assert.ok(third.present >= PAGES / 8 && third.present < PAGES / 8 + OWN, `the dump saves the dirtied eighth (${third.present})`);
    assertEnded(holderOf(d2), 'the dump ended the tracking');
    const logSize = statSync(t.log).size;

    restoreDetached(d3, t.pid, ['--shell-job']);
    await verify(t, 1, 'criu-ts');
    // The restored memory is the dump's: dirtying on and checking again still holds.
    await dirty(t, 3);
    await verify(t, 2, 'criu-ts, after writing on');
    process.kill(t.pid, 'SIGKILL');
    reap(t.pid);

    if (existsSync(CRIU42)) {
      // CRIU checks that the log the task writes to has the size it had at the dump.
      truncateSync(t.log, logSize);
      const cr = spawnSync(CRIU42, ['restore', '-D', d3, '-d', '--shell-job', '-v4', '-o', 'criu-restore.log'], { encoding: 'utf8' });
      adopt(t.pid);
      assert.equal(
        cr.status,
        0,
        `CRIU 4.2 restore: ${cr.stderr}\n${readFileSync(join(d3, 'criu-restore.log'), 'utf8').split('\n').slice(-15).join('\n')}`,
      );
      await verify(t, 1, 'CRIU 4.2');
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);
    }

    // A chain that lost a link, or a parent's pages, is refused by name, and nothing is left.
    renameSync(join(d3, 'parent'), join(d3, 'parent.away'));
    const noLink = restore(d3, ['-d', '--shell-job']);
    assert.match(assertCleanError(noLink), /pagemap-\d+\.img.*in the parent dump, and there is no parent link/);
    assert.ok(!isAlive(t.pid), 'a refused restore leaves no task');
    renameSync(join(d3, 'parent.away'), join(d3, 'parent'));
    truncateSync(join(d1, 'pages-1.img'), 4096);
    const cut = restore(d3, ['-d', '--shell-job']);
    assert.match(assertCleanError(cut), new RegExp(`${basename(d1)}: (pages-1\\.img|criu-ts-manifest\\.json)`));
    assert.ok(!isAlive(t.pid), 'a refused restore leaves no task');
  },
);

e2e('a dump whose parent tracking has ended saves every page, and restores whole', async (c) => {
  const t = startTarget([workload('dirtier'), '8'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const d1 = c.subdir('1'),
    d2 = c.subdir('2');
  assertOk(preDump(t.pid, d1));
  const holder = holderOf(d1);
  process.kill(holder, 'SIGKILL');
  assertEnded(holder, 'killed');
  assert.doesNotMatch(readFileSync(`/proc/${t.pid}/smaps`, 'latin1'), /VmFlags:.* uw/, 'the registrations went with the holder');
  await dirty(t, 1);
  const r = dumpAndReap(t.pid, d2, ['--prev-images-dir', up(d1), '--shell-job']);
  assert.match(readFileSync(join(d2, 'dump.log'), 'utf8'), /memory tracking it armed has ended/);
  assert.equal(pageCounts(d2, t.pid).parent, 0, 'nothing is left to a parent that was not tracked');
  assert.ok(r);
  rmSync(d1, { recursive: true });
  restoreDetached(d2, t.pid, ['--shell-job']);
  await verify(t, 1, 'a full dump');
});

e2e('a dump with -R --track-mem keeps tracking for the next one; the tree runs on', async (c) => {
  const t = startTarget([workload('dirtier'), '8'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const d1 = c.subdir('1'),
    d2 = c.subdir('2');
  assertOk(dump(t.pid, d1, ['-R', '--track-mem', '--shell-job']));
  assert.ok(isAlive(holderOf(d1)), 'tracking held after a -R --track-mem dump');
  await dirty(t, 1);
  await verify(t, 1, 'running on after the dump');
  dumpAndReap(t.pid, d2, ['--prev-images-dir', up(d1), '--shell-job']);
  assertEnded(holderOf(d1), 'the last dump ended the tracking');
  const n = pageCounts(d2, t.pid);
  assert.ok(
    n.parent > 0 && n.present >= 2048 / 8 && n.present < 2048 / 8 + OWN,
    `only the dirtied pages are saved again (${n.present} saved, ${n.parent} left)`,
  );
  restoreDetached(d2, t.pid, ['--shell-job']);
  await verify(t, 2, 'restored from a -R dump and its child');
});

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
const thpOn = (): boolean => existsSync(THP) && !readFileSync(THP, 'latin1').includes('[never]');

/** Anonymous memory of `pid` in transparent huge pages, in kB. */
const anonHuge = (pid: number): number =>
  Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'))?.[1] ?? 0);

e2e('pages the kernel writes (read() into them) are saved again', async (c) => {
  const t = startTarget([workload('dirtier'), '8', 'pipe'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const d1 = c.subdir('1'),
    d2 = c.subdir('2');
  assertOk(dump(t.pid, d1, ['-R', '--track-mem', '--shell-job']));
  await dirty(t, 1);
  dumpAndReap(t.pid, d2, ['--prev-images-dir', up(d1), '--shell-job']);
  assertEnded(holderOf(d1), 'the last dump ended the tracking');
  const n = pageCounts(d2, t.pid);
  assert.ok(n.present >= 2048 / 8 && n.present < 2048 / 8 + OWN, `the pages read into are saved (${n.present} saved, ${n.parent} left)`);
  restoreDetached(d2, t.pid, ['--shell-job']);
  await dirty(t, 2);
  await verify(t, 1, 'restored');
});

e2e(
  'memory in transparent huge pages: a write splits its huge page, and the rest of it stays tracked',
  async (c) => {
    const t = startTarget([workload('dirtier'), '8', 'thp'], { logFile: join(c.dir, 'dirtier.log') });
    await waitForLine(t.log, /^ready/, 5000);
    if (anonHuge(t.pid) === 0) return c.t.skip('the kernel gave the workload no huge page');
    const d1 = c.subdir('1'),
      d2 = c.subdir('2');
    assertOk(dump(t.pid, d1, ['-R', '--track-mem', '--shell-job']));
    await dirty(t, 1);
    assert.ok(anonHuge(t.pid) < 8192, 'writes to one page in eight split the huge pages');
    dumpAndReap(t.pid, d2, ['--prev-images-dir', up(d1), '--shell-job']);
    assertEnded(holderOf(d1), 'the last dump ended the tracking');
    const n = pageCounts(d2, t.pid);
    assert.ok(
      n.present >= 2048 / 8 && n.present < 2048 / 8 + OWN,
      `only the dirtied pages are saved again (${n.present} saved, ${n.parent} left)`,
    );
    restoreDetached(d2, t.pid, ['--shell-job']);
    await verify(t, 1, 'restored');
  },
  { skip: !thpOn() && 'transparent huge pages are off' },
);

e2e('a page of a private file mapping dropped after a tracked dump comes back from the file, not from the parent', async (c) => {
  const PAGES_COW = 256;
  const t = startTarget([workload('cowfile'), join(c.dir, 'mapped'), String(PAGES_COW)], { logFile: join(c.dir, 'cowfile.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const d1 = c.subdir('1'),
    d2 = c.subdir('2');
  assertOk(dump(t.pid, d1, ['-R', '--track-mem', '--shell-job']));
  assert.ok(pageCounts(d1, t.pid).present >= PAGES_COW, 'the first dump saves every CoW page');
  // MADV_DONTNEED keeps the write protection of a file mapping's page in a marker: the page
  // reads the file's words again, and is not written.
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^dropped=1$/, 5000);
  // Not read before the dump: a read would map the file's page in place of the marker.
  dumpAndReap(t.pid, d2, ['--prev-images-dir', up(d1), '--shell-job']);
  assertEnded(holderOf(d1), 'the last dump ended the tracking');
  const n = pageCounts(d2, t.pid);
  assert.ok(n.parent >= PAGES_COW / 4, `the untouched CoW pages are left to the parent (${n.parent})`);
  assert.ok(n.present < PAGES_COW / 4 + OWN, `the rewritten pages are saved, the dropped ones are not: the file has them (${n.present})`);
  restoreDetached(d2, t.pid, ['--shell-job']);
  await verify(t, 1, 'restored: the dropped pages read the file');
});

e2e('a dump takes from its parent only the memory that parent tracked, not memory another tracking protects again', async (c) => {
  const t = startTarget([workload('dirtier'), '8'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const [a, b, a2, d] = ['a', 'b', 'a2', 'd'].map((n) => c.subdir(n));
  assertOk(preDump(t.pid, a));
  // A second chain: its tracking finds the memory registered by the first one's.
  assertOk(preDump(t.pid, b));
  await dirty(t, 1);
  // The first chain goes on: what was written since is protected again, by its userfaultfd.
  assertOk(preDump(t.pid, a2, ['--prev-images-dir', up(a)]));
  assertEnded(holderOf(a), 'handed over');
  dumpAndReap(t.pid, d, ['--prev-images-dir', up(b), '--shell-job']);
  assertEnded(holderOf(b), 'the dump ended the tracking of its parent');
  process.kill(holderOf(a2), 'SIGKILL');
  assertEnded(holderOf(a2), 'killed');
  const n = pageCounts(d, t.pid);
  restoreDetached(d, t.pid, ['--shell-job']);
  // The workload's own state is its memory too: taken from the parent, it would be the parent's
  // as a whole, and check out; the next generation shows which one it is.
  await dirty(t, 2);
  await verify(t, 1, 'restored from the second chain');
  assert.ok(n.present >= 2048, `what the other tracking protected again is saved (${n.present} saved, ${n.parent} left)`);
  assert.match(readFileSync(join(d, 'dump.log'), 'utf8'), /registered by another userfaultfd/);
});

e2e('a pre-dump that fails once it protected the memory again ends its parent tracking: the next dump saves every page', async (c) => {
  const t = startTarget([workload('dirtier'), '8'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  const [d1, d2, d3] = ['1', '2', '3'].map((n) => c.subdir(n));
  assertOk(preDump(t.pid, d1));
  await dirty(t, 1);
  // Fails after the parent's userfaultfd protected every page again, before a holder takes it.
  const r = preDump(t.pid, d2, ['--prev-images-dir', up(d1)], { CRIU_TS_FAULT: 'arm-tracking' });
  assert.match(assertCleanError(r), /injected fault at step "arm-tracking"/);
  assertEnded(holderOf(d1), 'the parent tracking ended');
  dumpAndReap(t.pid, d3, ['--prev-images-dir', up(d1), '--shell-job']);
  assert.match(readFileSync(join(d3, 'dump.log'), 'utf8'), /memory tracking it armed has ended/);
  restoreDetached(d3, t.pid, ['--shell-job']);
  await dirty(t, 2);
  await verify(t, 1, 'restored after the failed pre-dump');
});
