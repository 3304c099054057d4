import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { SLOW } from '../lib/slow.ts';
import {
  scanPagemap,
  entryFlags,
  entryPfn,
  entryPresent,
  entrySwapped,
  entryFile,
  entryExclusive,
  entrySoftDirty,
  pagemapEntry,
  pfnOf,
  runsPageCount,
  pagemapOffset,
  readPagemap,
  PM_PRESENT,
  PM_SWAP,
  PM_FILE,
  PM_MMAP_EXCLUSIVE,
  PM_SOFT_DIRTY,
  PM_GUARD_REGION,
  PM_UFFD_WP,
  type PageRun,
} from '../../src/proc/index.ts';

function build(entries: bigint[]): Buffer {
  const b = Buffer.alloc(entries.length * 8);
  entries.forEach((e, i) => {
    b.writeBigUInt64LE(e, i * 8);
  });
  return b;
}

/** Straightforward BigInt reference of the scan. */
function reference(entries: bigint[], start: bigint, anonOnly: boolean, zeroPfn?: number): PageRun[] {
  const runs: PageRun[] = [];
  let cur: PageRun | undefined;
  entries.forEach((e, i) => {
    let take = (e & (PM_PRESENT | PM_SWAP)) !== 0n && (e & PM_GUARD_REGION) === 0n;
    if (anonOnly && (e & PM_FILE) !== 0n) take = false;
    if (zeroPfn && (e & PM_PRESENT) !== 0n && (e & PM_SWAP) === 0n && pfnOf(e) === BigInt(zeroPfn)) take = false;
    if ((e & (PM_SWAP | PM_UFFD_WP)) === (PM_SWAP | PM_UFFD_WP) && (e & 0x3fn) === 0x3fn) take = false;
    if (take) {
      if (!cur) runs.push((cur = { vaddr: start + BigInt(i) * 4096n, nrPages: 0 }));
      cur.nrPages++;
    } else cur = undefined;
  });
  return runs;
}

test('pagemap: constants and single-entry helpers', () => {
  assert.equal(PM_PRESENT, 0x8000000000000000n);
  assert.equal(PM_SWAP, 0x4000000000000000n);
  assert.equal(PM_FILE, 0x2000000000000000n);
  assert.equal(PM_MMAP_EXCLUSIVE, 0x0100000000000000n);
  assert.equal(PM_SOFT_DIRTY, 0x0080000000000000n);
  const e = PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY | 0x7f_1234_5678n;
  const b = build([e, PM_SWAP | PM_FILE | 0x123n, 0n]);
  assert.equal(pagemapEntry(b, 0), e);
  assert.equal(pfnOf(e), 0x7f_1234_5678n);
  assert.equal(entryPfn(b, 0), 0x7f_1234_5678);
  assert.deepEqual(entryFlags(b, 0), {
    present: true,
    swap: false,
    file: false,
    guard: false,
    uffdWp: false,
    exclusive: true,
    softDirty: true,
  });
  assert.deepEqual(entryFlags(b, 1), {
    present: false,
    swap: true,
    file: true,
    guard: false,
    uffdWp: false,
    exclusive: false,
    softDirty: false,
  });
  assert.ok(entryPresent(b, 0) && !entryPresent(b, 1) && !entryPresent(b, 2));
  assert.ok(entrySwapped(b, 1) && entryFile(b, 1) && entryExclusive(b, 0) && entrySoftDirty(b, 0));
  assert.equal(pagemapOffset(0xffffffffff600000n), (0xffffffffff600000n / 4096n) * 8n);
});

test('pagemap: scan coalesces runs; anonOnly, zero page, swap, guard', () => {
  const P = PM_PRESENT,
    S = PM_SWAP,
    F = PM_FILE;
  const entries = [
    P | 100n,
    P | 101n, // run A (2)
    0n,
    P | F | 5n, // file page: only without anonOnly
    P | 7n, // zero page pfn 7
    S | 0x4000n,
    S | F | 3n, // swapped anon, swapped shmem
    P | PM_GUARD_REGION, // never
    P | 200n,
  ];
  const b = build(entries);
  const start = 0x7f0000000000n;
  assert.deepEqual(scanPagemap(b, start, { anonOnly: true, zeroPfn: 7 }), [
    { vaddr: start, nrPages: 2 },
    { vaddr: start + 5n * 4096n, nrPages: 1 },
    { vaddr: start + 8n * 4096n, nrPages: 1 },
  ]);
  assert.deepEqual(scanPagemap(b, start, { anonOnly: false, zeroPfn: 7 }), [
    { vaddr: start, nrPages: 2 },
    { vaddr: start + 3n * 4096n, nrPages: 1 },
    { vaddr: start + 5n * 4096n, nrPages: 2 },
    { vaddr: start + 8n * 4096n, nrPages: 1 },
  ]);
  assert.deepEqual(scanPagemap(b, start, { anonOnly: false }), [
    { vaddr: start, nrPages: 2 },
    { vaddr: start + 3n * 4096n, nrPages: 4 },
    { vaddr: start + 8n * 4096n, nrPages: 1 },
  ]);
  // zeroPfn 0 disables the check (unprivileged reads give PFN 0 everywhere)
  assert.equal(runsPageCount(scanPagemap(build([P, P, P]), 0n, { anonOnly: true, zeroPfn: 0 })), 3);
  // soft-dirty filter and page size
  const sd = build([P | PM_SOFT_DIRTY, P, P | PM_SOFT_DIRTY, P | PM_SOFT_DIRTY]);
  assert.deepEqual(scanPagemap(sd, 0n, { anonOnly: true, softDirtyOnly: true, pageSize: 65536 }), [
    { vaddr: 0n, nrPages: 1 },
    { vaddr: 2n * 65536n, nrPages: 2 },
  ]);
  assert.deepEqual(scanPagemap(Buffer.alloc(0), 0n, { anonOnly: true }), []);
  // zero page with a PFN above 2^32
  const bigZero = 0x12_0000_0001;
  assert.deepEqual(scanPagemap(build([P | BigInt(bigZero), P | 1n]), 0n, { anonOnly: true, zeroPfn: bigZero }), [
    { vaddr: 4096n, nrPages: 1 },
  ]);
});

test('pagemap: scan equals the BigInt reference on random input', () => {
  const P = PM_PRESENT,
    S = PM_SWAP,
    F = PM_FILE;
  const entryArb = fc.constantFrom(
    0n,
    P | 3n,
    P | 9n,
    P | F | 3n,
    S | 1n,
    S | F | 2n,
    P | PM_MMAP_EXCLUSIVE | 9n,
    P | PM_GUARD_REGION,
    PM_SOFT_DIRTY,
    S | PM_UFFD_WP | 0x3fn,
    S | PM_UFFD_WP | 0x21n,
  );
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 200 }), fc.boolean(), fc.constantFrom(undefined, 3, 9), (entries, anonOnly, zeroPfn) => {
      const start = 0x10000n;
      const want = reference(entries, start, anonOnly, zeroPfn);
      assert.deepEqual(scanPagemap(build(entries), start, { anonOnly, zeroPfn }), want);
      // unaligned view, with a trailing partial entry that must be ignored
      const raw = Buffer.alloc(entries.length * 8 + 4);
      build(entries).copy(raw, 1);
      assert.deepEqual(scanPagemap(raw.subarray(1, 1 + entries.length * 8 + 3), start, { anonOnly, zeroPfn }), want);
    }),
  );
});

test('pagemap: a userfaultfd write-protect marker is no page; a protected swapped page is', () => {
  const S = PM_SWAP,
    W = PM_UFFD_WP;
  // Swap type 31 (PTE markers) with offset 1 (the write-protect marker), as this kernel shows it
  // with CAP_SYS_ADMIN; type 1 is a swap device's. Without CAP_SYS_ADMIN both read as S | W.
  const b = build([S | W | 0x3fn, S | W | (5n << 5n) | 1n, S | W, S | W | 0x3fn]);
  assert.deepEqual(scanPagemap(b, 0n, { anonOnly: true }), [{ vaddr: 4096n, nrPages: 2 }]);
});

test('pagemap: real sample (1 MiB anon VMA, first two pages touched)', () => {
  const b = readFileSync(new URL('./samples/proc/cworkload-anon1m.pagemap', import.meta.url));
  assert.equal(b.length, 256 * 8);
  assert.ok(entryFlags(b, 0).present && entryFlags(b, 0).exclusive);
  assert.deepEqual(scanPagemap(b, 0x7fa58af1a000n, { anonOnly: true }), [{ vaddr: 0x7fa58af1a000n, nrPages: 2 }]);
});

test('pagemap: 262144 entries (1 GiB) scan well under 50 ms', () => {
  const n = 262144;
  const b = Buffer.alloc(n * 8);
  // Mixed pattern: runs of present anon, holes, file pages, swap.
  for (let i = 0; i < n; i++) {
    const k = i % 64;
    let hi = 0;
    if (k < 40) hi = 0x81000000;
    else if (k < 48) hi = 0;
    else if (k < 56) hi = 0xa0000000;
    else hi = 0x40000000;
    b.writeUInt32LE(i & 0xffff, i * 8);
    b.writeUInt32LE(hi, i * 8 + 4);
  }
  const opts = { anonOnly: true, zeroPfn: 0x1234 };
  const first = performance.now();
  const runs = scanPagemap(b, 0x7f0000000000n, opts);
  const cold = performance.now() - first;
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    scanPagemap(b, 0x7f0000000000n, opts);
    best = Math.min(best, performance.now() - t0);
  }
  // 4096 blocks of 64: pages 0..39 and 56..63 taken; 56..63 of one block joins 0..39 of the next, so 4097 runs.
  assert.equal(runsPageCount(runs), (40 + 8) * (n / 64));
  assert.equal(runs.length, n / 64 + 1);
  console.log(`scanPagemap 262144 entries: cold ${cold.toFixed(2)} ms, warm ${best.toFixed(2)} ms`);
  // Under emulation (the arm64 lab) JavaScript runs 10-30 times slower.
  const limit = SLOW > 1 ? 50 * SLOW * 3 : 50;
  assert.ok(cold < limit, `cold scan took ${cold.toFixed(2)} ms`);
  assert.ok(best < limit, `scan took ${best.toFixed(2)} ms`);
});

test('pagemap: readPagemap on this process finds present pages in its [stack]', () => {
  const self = readFileSync('/proc/self/maps', 'utf8');
  const line = self.split('\n').find((l) => l.endsWith('[stack]'))!;
  const [s, e] = line
    .split(' ')[0]
    .split('-')
    .map((x) => BigInt('0x' + x));
  const pm = readPagemap(process.pid, s, e);
  assert.equal(pm.length, Number((e - s) / 4096n) * 8);
  assert.ok(runsPageCount(scanPagemap(pm, s, { anonOnly: true })) > 0);
});
