import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withoutRanges, coalesce } from '../../src/resources/mm/index.ts';

const P = 4096n;

test('a run that crosses from the vDSO into the next VMA keeps the pages after the vDSO', () => {
  // [vdso] 2 pages at 0x10000, then ld.so's pages: one pagemap run of 5 pages.
  const runs = [
    { vaddr: 0x10000n, nrPages: 5, flags: 1, offset: 8192 },
    { vaddr: 0x20000n, nrPages: 1, flags: 1, offset: 8192 + 5 * 4096 },
  ];
  const out = withoutRanges(runs, [{ start: 0x10000n, end: 0x10000n + 2n * P }]);
  assert.deepEqual(out, [
    { vaddr: 0x12000n, nrPages: 3, flags: 1, offset: 8192 + 2 * 4096 },
    { vaddr: 0x20000n, nrPages: 1, flags: 1, offset: 8192 + 5 * 4096 },
  ]);
});

test('a hole in the middle of a run splits it, with the offsets of the pages after it', () => {
  const out = withoutRanges([{ vaddr: 0n, nrPages: 4, flags: 1, offset: 0 }], [{ start: P, end: 2n * P }]);
  assert.deepEqual(
    out.map((r) => [r.vaddr, r.nrPages, r.offset]),
    [
      [0n, 1, 0],
      [2n * P, 2, 8192],
    ],
  );
});

test('no ranges: the runs as they are', () => {
  const runs = [{ vaddr: 0n, nrPages: 1, flags: 1, offset: 0 }];
  assert.equal(withoutRanges(runs, []), runs);
});

test('ranges to unmap join across gaps, but never across a fence (the injection area, the vDSO)', () => {
  const r = (a: number, b: number) => ({ start: BigInt(a) * P, end: BigInt(b) * P });
  const out = coalesce([r(30, 31), r(1, 2), r(4, 6), r(10, 12), r(20, 25)], [r(8, 9), r(26, 28)]);
  assert.deepEqual(out, [r(1, 6), r(10, 25), r(30, 31)]);
  assert.deepEqual(coalesce([r(1, 3), r(2, 4)], []), [r(1, 4)], 'overlaps merge');
  assert.deepEqual(coalesce([], [r(1, 2)]), []);
});
