/**
 * Memory whose state is more than its pages and protections: guard regions, mlock, droppable memory.
 *
 * Guard regions (MADV_GUARD_INSTALL) are page-table state, not VMAs: the dump saves them as
 * VMA_AREA_GUARD entries after the real VMAs (CRIU's format for them), and the restore
 * installs them again, per task, so that a child's guards are its own.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { e2e, killAndReap, waitForLine, adopt, assertOk, assertCleanError, assertRunningFree } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { readMessages } from '../../src/images/index.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';
import { VMA } from '../../src/resources/mm/index.ts';
import { reserveHugePages } from '../lib/hugepages.ts';

const PAGE = 4096n;

/** The guard entries of mm-PID.img, as [start, pages]. */
function guardsOf(img: string, pid: number): Array<[bigint, bigint]> {
  const mm = readMessages(join(img, `mm-${pid}.img`), 'mm_entry')[0];
  const i = mm.vmas.findIndex((v) => v.status & VMA.AREA_GUARD);
  assert.ok(i > 0, 'guard entries are in mm.img');
  assert.ok(
    mm.vmas.slice(i).every((v) => v.status === VMA.AREA_GUARD),
    'guard entries come after every real VMA and have no other status bit',
  );
  return mm.vmas.slice(i).map((v) => [v.start, (v.end - v.start) / PAGE]);
}

e2e('guard regions are saved and come back: the guarded pages fault, the others keep their data', async (c) => {
  const t = await startChecking(c, 'guards', []);
  assert.equal(await askCheck(t), 'CHECK ok');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const g = guardsOf(img, t.pid);
  assert.deepEqual(
    g.map(([, n]) => n),
    [2n, 1n],
    `pages 3-4 and 10 are guarded: ${g}`,
  );
  assert.equal(g[1][0] - g[0][0], 7n * PAGE, 'the second guard is 7 pages after the first');
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('guard regions stay in place across dump -R', async (c) => {
  const t = await startChecking(c, 'guards', []);
  assertOk(dump(t.pid, c.subdir('img'), ['-R']));
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('a child forked from a guarded parent gets its own guards back, not its parent', async (c) => {
  const t = await startChecking(c, 'guards', ['fork']);
  const child = Number((await waitForLine(t.log, /^child (\d+)$/)).line.split(' ')[1]);
  adopt(child);
  const kid = { pid: child, log: t.log };
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.equal(await askCheck(kid), 'CHECK ok');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const g = guardsOf(img, child);
  assert.deepEqual(
    g.map(([, n]) => n),
    [2n, 1n],
    `the child has guards on pages 3-4 and 12: ${g}`,
  );
  assert.equal(g[1][0] - g[0][0], 9n * PAGE, 'the child guards page 12, not 10');
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.equal(await askCheck(kid), 'CHECK ok');
  killAndReap(t.pid); // first: the child is its parent's, until the parent is gone
  killAndReap(child);
});

e2e('mlock: locked memory comes back locked, with its data, and the rest unlocked', async (c) => {
  const t = await startChecking(c, 'mlocks', ['lock']);
  assert.equal(await askCheck(t), 'CHECK ok');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.match(readFileSync(`/proc/${t.pid}/status`, 'latin1'), /^VmLck:\s+32 kB$/m, 'only the 8 locked pages are locked');
  killAndReap(t.pid);
});

e2e('mlockall(MCL_FUTURE) is refused, naming it, and the task runs on', async (c) => {
  const t = await startChecking(c, 'mlocks', ['future']);
  const line = assertCleanError(dump(t.pid, c.subdir('img')));
  assert.match(
    line,
    new RegExp(`^task ${t.pid}: locking of future mappings \\(mlockall MCL_FUTURE\\): it is 1, where a restored task has 0`),
  );
  assertRunningFree(t.pid, 'the task after the refused dump');
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('MAP_DROPPABLE memory is mapped droppable again, without its pages (as CRIU: the kernel may drop them at any time)', async (c) => {
  const t = await startChecking(c, 'droppable', []);
  const at = BigInt((await waitForLine(t.log, /^droppable 0x[0-9a-f]+$/)).line.split(' ')[1]);
  assert.equal(await askCheck(t), 'CHECK ok');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  // The first message is the pagemap_head; the runs follow.
  const runs = readMessages(join(img, `pagemap-${t.pid}.img`), 'pagemap_entry').slice(1);
  assert.ok(runs.length > 0, 'the pagemap lists runs');
  assert.ok(
    runs.every((r) => r.vaddr + BigInt(r.nr_pages ?? r.compat_nr_pages) * PAGE <= at || r.vaddr >= at + 4n * PAGE),
    'no page of the droppable memory is saved',
  );
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('an AIO ring comes back at its address with its completed events, and takes new requests', async (c) => {
  const file = join(c.dir, 'data');
  writeFileSync(file, 'stuvwxyzABCDEFGHIJKLMNOPQRSTUVWX');
  const t = await startChecking(c, 'aioring', [file]);
  const ctx = BigInt(`0x${(await waitForLine(t.log, /^ctx [0-9a-f]+$/)).line.split(' ')[1]}`);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const mm = readMessages(join(img, `mm-${t.pid}.img`), 'mm_entry')[0];
  assert.deepEqual(
    mm.aios.map((a) => a.id),
    [ctx],
    'mm_entry.aios names the ring',
  );
  assert.ok(
    mm.vmas.some((v) => v.start === ctx && v.status === VMA.AREA_AIORING),
    'the ring is a VMA_AREA_AIORING VMA',
  );
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.match(readFileSync(`/proc/${t.pid}/maps`, 'latin1'), new RegExp(`^${ctx.toString(16)}-[0-9a-f]+ rw-s .*/\\[aio\\]`, 'm'));
  killAndReap(t.pid);
});

e2e('hugetlb memory (shared, private and an MFD_HUGETLB memfd) comes back with its data, on hugetlbfs, still shared', async (c) => {
  // 3 objects of 2 pages, a private copy in the child, and room for the restore's own.
  c.t.after(reserveHugePages(16));
  const t = await startChecking(c, 'hugetlb', []);
  const first = (await waitForLine(t.log, /^(child \d+|skip)$/)).line;
  assert.notEqual(first, 'skip', 'this machine has free huge pages (vm.nr_hugepages)');
  const child = Number(first.split(' ')[1]);
  adopt(child);
  const kid = { pid: child, log: t.log };
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.equal(await askCheck(kid), 'CHECK ok seen 1 1');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.equal(await askCheck(kid), 'CHECK ok seen 2 2', "the child sees its parent's writes");
  killAndReap(t.pid);
  killAndReap(child);
});
