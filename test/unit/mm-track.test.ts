/**
 * splitByParent (resources/mm/track.ts): which pages of a run an incremental dump leaves to its
 * parent. A page is left there only when it is still write-protected and the parent saved it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PM_PRESENT, PM_SWAP, PM_UFFD_WP } from '../../src/proc/index.ts';
import { splitByParent } from '../../src/resources/mm/track.ts';

const PAGE = 4096n;
const START = 0x7f0000000000n;

function pagemap(entries: bigint[]): Buffer {
  const b = Buffer.alloc(entries.length * 8);
  for (const [i, e] of entries.entries()) b.writeBigUInt64LE(e, i * 8);
  return b;
}

const at = (i: number): bigint => START + BigInt(i) * PAGE;

test('splitByParent: protected pages the parent has go to it; written ones, and ones it lacks, are saved', () => {
  const P = PM_PRESENT,
    W = PM_UFFD_WP;
  const pm = pagemap([P | W, P | W, P, P | W, P | W, P | W]);
  // The parent saved pages 0..3 and 5.
  const parent: Array<[bigint, bigint]> = [
    [at(0), at(4)],
    [at(5), at(6)],
  ];
  assert.deepEqual(splitByParent({ vaddr: START, nrPages: 6 }, START, pm, parent), [
    { vaddr: at(0), nrPages: 2, inParent: true },
    { vaddr: at(2), nrPages: 1, inParent: false }, // written
    { vaddr: at(3), nrPages: 1, inParent: true },
    { vaddr: at(4), nrPages: 1, inParent: false }, // not in the parent
    { vaddr: at(5), nrPages: 1, inParent: true },
  ]);
  // A run that starts inside the VMA.
  assert.deepEqual(splitByParent({ vaddr: at(3), nrPages: 2 }, START, pm, parent), [
    { vaddr: at(3), nrPages: 1, inParent: true },
    { vaddr: at(4), nrPages: 1, inParent: false },
  ]);
});

test('splitByParent: a protected swapped entry goes to the parent only when it is known to be a page', () => {
  const S = PM_SWAP,
    W = PM_UFFD_WP;
  // In a private file mapping, a write-protect marker left where a page was dropped reads as S | W
  // without PFNs in sight, as a protected swapped page does: it is saved (read again), never the
  // parent's (swapWpTrusted false there).
  const pm = pagemap([S | W, PM_PRESENT | W, S | W]);
  const parent: Array<[bigint, bigint]> = [[at(0), at(3)]];
  const run = { vaddr: START, nrPages: 3 };
  assert.deepEqual(splitByParent(run, START, pm, parent), [{ vaddr: at(0), nrPages: 3, inParent: true }]);
  assert.deepEqual(splitByParent(run, START, pm, parent, false), [
    { vaddr: at(0), nrPages: 1, inParent: false },
    { vaddr: at(1), nrPages: 1, inParent: true },
    { vaddr: at(2), nrPages: 1, inParent: false },
  ]);
});
