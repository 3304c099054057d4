// /proc/PID/pagemap: one little-endian u64 per virtual page.
//
//   bit 63 present, 62 swapped, 61 file-page or shared-anon, 58 guard region (MADV_GUARD_INSTALL),
//   57 uffd-wp, 56 exclusively mapped, 55 soft-dirty, 0..54 PFN (present) or swap type/offset (swapped).
//
// A swapped entry's bits 0..4 are its swap type, the rest its offset, both read as 0 without
// CAP_SYS_ADMIN. The kernel shows its PTE markers as swapped entries of the last type (31): a
// write-protect marker (offset bit 0, and bit 57) stands where no page is mapped (never touched
// when userfaultfd protection was applied, or dropped since from a file mapping), so it holds
// no data of the task's.
//
// The scanner reads the 32-bit halves of each entry as small integers, so no BigInt is made per page.

export const PM_ENTRY_BYTES = 8;
export const PM_PRESENT = 1n << 63n;
export const PM_SWAP = 1n << 62n;
export const PM_FILE = 1n << 61n;
export const PM_GUARD_REGION = 1n << 58n;
export const PM_UFFD_WP = 1n << 57n;
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
export const PM_SOFT_DIRTY = 1n << 55n;
export const PM_PFN_MASK = (1n << 55n) - 1n;

// The same bits within the high 32-bit word of an entry.
const HI_PRESENT = 0x80000000;
const HI_SWAP = 0x40000000;
const HI_FILE = 0x20000000;
const HI_GUARD = 0x04000000;
const HI_UFFD_WP = 0x02000000;
const HI_EXCLUSIVE = 0x01000000;
const HI_SOFT_DIRTY = 0x00800000;
const HI_PFN_MASK = 0x007fffff;
const TWO_32 = 0x100000000;
/** Low bits of a userfaultfd write-protect marker: swap type 31 (PTE markers), offset bit 0. */
const LO_UFFD_WP_MARKER = 0x3f;

/** PFN of a present entry (bits 0..54). Zero when read without CAP_SYS_ADMIN. */
export function pfnOf(entry: bigint): bigint {
  return entry & PM_PFN_MASK;
}

/** The whole entry at index `i` as a bigint. */
export function pagemapEntry(buf: Buffer, i: number): bigint {
  return buf.readBigUInt64LE(i * PM_ENTRY_BYTES);
}

export interface PagemapEntryFlags {
  present: boolean;
  swap: boolean;
  file: boolean;
  guard: boolean;
  uffdWp: boolean;
  exclusive: boolean;
  softDirty: boolean;
}

/** Decoded flag bits of the entry at index `i`. */
export function entryFlags(buf: Buffer, i: number): PagemapEntryFlags {
  const hi = buf.readUInt32LE(i * PM_ENTRY_BYTES + 4);
  return {
    present: (hi & HI_PRESENT) !== 0,
    swap: (hi & HI_SWAP) !== 0,
    file: (hi & HI_FILE) !== 0,
    guard: (hi & HI_GUARD) !== 0,
    uffdWp: (hi & HI_UFFD_WP) !== 0,
    exclusive: (hi & HI_EXCLUSIVE) !== 0,
    softDirty: (hi & HI_SOFT_DIRTY) !== 0,
  };
}

export function entryPresent(buf: Buffer, i: number): boolean {
  return (buf.readUInt32LE(i * 8 + 4) & HI_PRESENT) !== 0;
}
export function entrySwapped(buf: Buffer, i: number): boolean {
  return (buf.readUInt32LE(i * 8 + 4) & HI_SWAP) !== 0;
}
export function entryFile(buf: Buffer, i: number): boolean {
  return (buf.readUInt32LE(i * 8 + 4) & HI_FILE) !== 0;
}
export function entryExclusive(buf: Buffer, i: number): boolean {
  return (buf.readUInt32LE(i * 8 + 4) & HI_EXCLUSIVE) !== 0;
}
export function entrySoftDirty(buf: Buffer, i: number): boolean {
  return (buf.readUInt32LE(i * 8 + 4) & HI_SOFT_DIRTY) !== 0;
}

/** PFN of the entry at index `i` as a number (PFNs stay far below 2^53). */
export function entryPfn(buf: Buffer, i: number): number {
  const off = i * PM_ENTRY_BYTES;
  return (buf.readUInt32LE(off + 4) & HI_PFN_MASK) * TWO_32 + buf.readUInt32LE(off);
}

export interface PagemapScanOptions {
  /** Only pages with PM_FILE clear: in a private file mapping these are the CoW'd (anonymous) pages. */
  anonOnly: boolean;
  /**
   * Skip present pages whose PFN equals this (the shared zero page). Needs real PFNs (CAP_SYS_ADMIN);
   * 0 and undefined disable the check, because PFNs read without privilege are all 0.
   */
  zeroPfn?: number;
  /** Only soft-dirty pages (for incremental dumps after clear_refs). */
  softDirtyOnly?: boolean;
  /** Page size in bytes; default 4096. */
  pageSize?: number;
}

export interface PageRun {
  vaddr: bigint;
  nrPages: number;
}

/**
 * Scan `buf` (entries for consecutive pages starting at `startVaddr`) and return coalesced runs of
 * pages that must be dumped: present or swapped, not a guard region, not the zero page, not a
 * userfaultfd write-protect marker (seen with CAP_SYS_ADMIN only), and with `anonOnly`, not PM_FILE. This is CRIU's should_dump_page() without the per-VMA special cases
 * (vDSO always, VVAR never), which belong to the caller.
 */
export function scanPagemap(buf: Buffer, startVaddr: bigint, opts: PagemapScanOptions): PageRun[] {
  const n = buf.length >>> 3;
  const pageSize = opts.pageSize ?? 4096;
  const zeroPfn = opts.zeroPfn ?? 0;
  // Bits that must be clear for the page to qualify, and the "in memory or swap" bits (one must be set).
  let mustClear = HI_GUARD;
  if (opts.anonOnly) mustClear |= HI_FILE;
  const needDirty = opts.softDirtyOnly === true;
  // When the zero page PFN is known, split it into the two words once.
  const checkZero = zeroPfn > 0;
  const zeroHi = checkZero ? Math.floor(zeroPfn / TWO_32) : 0;
  const zeroLo = checkZero ? zeroPfn % TWO_32 : 0;

  const runs: PageRun[] = [];
  const pageBig = BigInt(pageSize);
  // Little-endian host (x86_64, aarch64): view the entries as i32 pairs when aligned (small integers, no
  // bounds-checked calls); an unaligned buffer is copied first.
  let w: Int32Array;
  if ((buf.byteOffset & 3) === 0) w = new Int32Array(buf.buffer, buf.byteOffset, n * 2);
  else {
    const copy = new Uint8Array(n * 8);
    copy.set(buf.subarray(0, n * 8));
    w = new Int32Array(copy.buffer, 0, n * 2);
  }
  const zeroLoI = zeroLo | 0;
  const present = HI_PRESENT | 0;
  const live = HI_PRESENT | HI_SWAP | 0;
  const swapWp = HI_SWAP | HI_UFFD_WP | 0;
  let runStart = -1;
  for (let i = 0; i < n; i++) {
    const hi = w[2 * i + 1];
    let take = (hi & live) !== 0 && (hi & mustClear) === 0;
    if (take && needDirty && (hi & HI_SOFT_DIRTY) === 0) take = false;
    if (take && checkZero && (hi & live) === present && (hi & HI_PFN_MASK) === zeroHi && w[2 * i] === zeroLoI) take = false;
    if (take && (hi & swapWp) === swapWp && (w[2 * i] & LO_UFFD_WP_MARKER) === LO_UFFD_WP_MARKER) take = false;
    if (take) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      runs.push({ vaddr: startVaddr + BigInt(runStart) * pageBig, nrPages: i - runStart });
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push({ vaddr: startVaddr + BigInt(runStart) * pageBig, nrPages: n - runStart });
  return runs;
}

/** Coalesced runs of guard-region pages (MADV_GUARD_INSTALL) in `buf`, entries from `startVaddr`. */
export function guardRuns(buf: Buffer, startVaddr: bigint, pageSize = 4096): PageRun[] {
  const n = buf.length >>> 3;
  const runs: PageRun[] = [];
  const pageBig = BigInt(pageSize);
  let runStart = -1;
  for (let i = 0; i <= n; i++) {
    const guard = i < n && (buf.readUInt32LE(i * 8 + 4) & HI_GUARD) !== 0;
    if (guard && runStart < 0) runStart = i;
    else if (!guard && runStart >= 0) {
      runs.push({ vaddr: startVaddr + BigInt(runStart) * pageBig, nrPages: i - runStart });
      runStart = -1;
    }
  }
  return runs;
}

/** Total pages in a list of runs. */
export function runsPageCount(runs: readonly PageRun[]): number {
  let s = 0;
  for (const r of runs) s += r.nrPages;
  return s;
}

/** Byte offset of `vaddr`'s entry in /proc/PID/pagemap (bigint: vsyscall's offset exceeds 2^53). */
export function pagemapOffset(vaddr: bigint, pageSize = 4096): bigint {
  return (vaddr / BigInt(pageSize)) * BigInt(PM_ENTRY_BYTES);
}
