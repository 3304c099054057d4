// Restore of a task's address space into a stub: clear the stub's own mappings, move the
// kernel's special mappings into place, recreate every VMA, fill the pages, then hand
// the kernel the mm fields with PR_SET_MM_MAP.
import fs from 'node:fs';
import { type Vma, readMaps, readLink } from '../../proc/index.ts';
import {
  arch,
  MAP,
  MREMAP,
  O,
  PROT,
  PR,
  PR_SET_MM_MAP,
  preadFully,
  PRCTL_MM_MAP_FIELDS,
  prctlMmMap,
  setPrctlMmMapAuxvSize,
} from '../../kernel/index.ts';
import { VMA, PE } from './layout.ts';
import { pullFd, openPulled } from './shmem.ts';
import { isShadowStack, convertShadowStacks } from './shstk.ts';
import { fillPages } from './fill.ts';
import { RemoteSysError, type Tracee } from '../../compel/index.ts';
import type { Logger, Message, PageSource, RestoreTask } from '../types.ts';
import { NotSupportedError } from '../../errors.ts';

type VmaEntry = Message<'vma_entry'>;
type MmEntry = Message<'mm_entry'>;

const PAGE = 4096n;

export interface Range {
  start: bigint;
  end: bigint;
}

const isSpecialPath = (p: string) => p === '[vdso]' || p === '[vvar]' || p === '[vvar_vclock]' || p === '[vsyscall]';

/** A free range of `size` bytes that overlaps none of `taken`, searched upwards from 4 GiB. */
export function findHole(taken: Range[], size: bigint, from = 0x100000000n): bigint {
  const sorted = [...taken].sort((a, b) => (a.start < b.start ? -1 : 1));
  let cur = from;
  for (const r of sorted) {
    if (r.end <= cur) continue;
    if (r.start >= cur + size) return cur;
    cur = (r.end + PAGE - 1n) & ~(PAGE - 1n);
  }
  if (cur + size <= arch.taskSize) return cur;
  throw new Error('no free address range for the injection area');
}

/**
 * Join ranges across the gaps between them unless one of `fences` lies in the gap: munmap
 * of a range with holes in it is fine, and one injected call beats one per VMA.
 */
export function coalesce(ranges: Range[], fences: Range[]): Range[] {
  const out: Range[] = [];
  for (const r of [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))) {
    const last = out[out.length - 1];
    if (last && !fences.some((f) => f.start < r.start && f.end > last.end)) {
      if (r.end > last.end) last.end = r.end;
    } else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** Parts of `r` outside every range of `holes`. */
function subtract(r: Range, holes: Range[]): Range[] {
  let parts: Range[] = [{ start: r.start, end: r.end }];
  for (const h of holes) {
    parts = parts.flatMap((p) => {
      if (h.end <= p.start || h.start >= p.end) return [p];
      const out: Range[] = [];
      if (h.start > p.start) out.push({ start: p.start, end: h.start });
      if (h.end < p.end) out.push({ start: h.end, end: p.end });
      return out;
    });
  }
  return parts;
}

export function vmaRanges(vmas: VmaEntry[]): Range[] {
  return vmas.filter((v) => !(v.status & VMA.AREA_VSYSCALL)).map((v) => ({ start: v.start, end: v.end }));
}

export function mapsRanges(vmas: Vma[]): Range[] {
  return vmas.filter((v) => v.path !== '[vsyscall]').map((v) => ({ start: v.start, end: v.end }));
}

/**
 * Unmap everything the stub inherited from its helper except the injection area and the
 * special mappings, then move [vvar], [vvar_vclock] and [vdso] to the target's addresses.
 * They go through a temporary area first because moving one onto another evicts it, and the
 * vDSO reaches vvar PC-relative, so only their final relative layout may be relied on.
 */
export function prepareAddressSpace(t: RestoreTask, target: VmaEntry[], keep: Range[] = []): void {
  const tr = t.leader;
  const current = readMaps(t.pid);
  // Everything goes but the injection area and the ranges kept from the parent; the kernel
  // may have merged a kept range with its neighbours, so ranges are cut, not whole VMAs.
  const stay = [{ start: t.area.base, end: t.area.base + BigInt(t.area.size) }, ...keep];
  const fences = [...stay, ...current.filter((v) => isSpecialPath(v.path))];
  const doomed = current.filter((v) => !isSpecialPath(v.path)).flatMap((v) => subtract(v, stay));
  for (const r of coalesce(doomed, fences)) tr.syscall('munmap', r.start, r.end - r.start);
  const stubSpecials = current.filter((v) => v.path === '[vdso]' || v.path === '[vvar]' || v.path === '[vvar_vclock]');
  const want = target.filter((v) => v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR));
  // A task that unmapped its vDSO (and vvar) has none: the stub's go. Its syscalls run from
  // its injection area by now.
  const gone = (kind: 'vdso' | 'vvar') => !want.some((m) => ((m.status & VMA.AREA_VDSO) !== 0) === (kind === 'vdso'));
  for (const v of stubSpecials.filter((s) => gone(s.path === '[vdso]' ? 'vdso' : 'vvar'))) tr.syscall('munmap', v.start, v.end - v.start);
  const pairs = matchSpecials(
    stubSpecials.filter((s) => !gone(s.path === '[vdso]' ? 'vdso' : 'vvar')),
    want,
  );
  // A child cloned from its restored parent already has them where they belong.
  if (pairs.every((p) => p.from.start === p.to)) return;
  const total = pairs.reduce((s, p) => s + (p.from.end - p.from.start), 0n);
  const temp = findHole([...vmaRanges(target), ...mapsRanges(current)], total);
  let at = temp;
  for (const p of pairs) {
    const len = p.from.end - p.from.start;
    tr.syscall('mremap', p.from.start, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, at);
    p.tmp = at;
    at += len;
  }
  for (const p of pairs) {
    const len = p.from.end - p.from.start;
    tr.syscall('mremap', p.tmp, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, p.to);
  }
}

interface SpecialMove {
  from: Vma;
  to: bigint;
  tmp: bigint;
}

/**
 * Pair the stub's special mappings with the dump's. [vvar] and [vvar_vclock] sit side by side
 * and CRIU records them as one VVAR area, so both sides are taken as one block and each piece
 * keeps its offset inside it.
 */
function matchSpecials(stub: Vma[], want: VmaEntry[]): SpecialMove[] {
  const out: SpecialMove[] = [];
  for (const kind of ['vvar', 'vdso'] as const) {
    const pieces = stub.filter((v) => (v.path === '[vdso]') === (kind === 'vdso')).sort((x, y) => (x.start < y.start ? -1 : 1));
    const dumped = want
      .filter((m) => ((m.status & VMA.AREA_VDSO) !== 0) === (kind === 'vdso'))
      .sort((x, y) => (x.start < y.start ? -1 : 1));
    if (!pieces.length && !dumped.length) continue;
    if (!pieces.length || !dumped.length) {
      throw new NotSupportedError(
        `the dump ${dumped.length ? 'has' : 'has no'} [${kind}] but this kernel ${pieces.length ? 'has' : 'has none'}; restoring on another kernel`,
      );
    }
    const stubStart = pieces[0].start,
      stubSize = pieces[pieces.length - 1].end - stubStart;
    const dumpStart = dumped[0].start,
      dumpSize = dumped[dumped.length - 1].end - dumpStart;
    if (stubSize !== dumpSize) {
      throw new NotSupportedError(
        `the [${kind}] of this kernel (${stubSize} bytes) differs from the dump's (${dumpSize}); restoring on another kernel`,
      );
    }
    for (const v of pieces) out.push({ from: v, to: dumpStart + (v.start - stubStart), tmp: 0n });
  }
  return out;
}

/**
 * The runs with the pages inside `ranges` cut out. A run may cross VMA boundaries (the vDSO
 * is often right below ld.so on arm64), so runs are clipped, never dropped whole.
 */
export function withoutRanges(runs: PageSource[], ranges: Range[]): PageSource[] {
  if (!ranges.length) return runs;
  const out: PageSource[] = [];
  for (const r of runs) {
    const end = r.vaddr + BigInt(r.nrPages) * PAGE;
    for (const piece of subtract({ start: r.vaddr, end }, ranges)) {
      const skip = Number((piece.start - r.vaddr) / PAGE);
      out.push({
        ...r,
        vaddr: piece.start,
        nrPages: Number((piece.end - piece.start) / PAGE),
        offset: r.offset === undefined ? undefined : r.offset + skip * Number(PAGE),
      });
    }
  }
  return out;
}

/** Does any run of pages intersect [start, end)? Runs are sorted by address. */
function makeHasPages(runs: PageSource[]): (start: bigint, end: bigint) => boolean {
  let i = 0;
  return (start, end) => {
    while (i < runs.length && runs[i].vaddr + BigInt(runs[i].nrPages) * PAGE <= start) i++;
    return i < runs.length && runs[i].vaddr < end;
  };
}

export interface MmRestoreInput {
  mm: MmEntry;
  runs: PageSource[];
  pagesPath: string;
  /** files.img REG path by file id, for file mappings and the exe. */
  pathOf(fileId: number): string;
  /** criu-ts's fd of the shared memory object behind a VMA (shared anonymous or memfd). */
  shmemFd(v: VmaEntry): number;
  /** The task's own fd of the socket whose ring a VMA maps (VMA_AREA_SOCKET: shmid is its file id). */
  socketFd(v: VmaEntry): number;
  /** Key for encrypted page data. */
  key?: Buffer;
  /** The pages of PE_PARENT runs, from the parent dumps' pages files (one layer per dump). */
  parents?: ReadonlyArray<{ runs: PageSource[]; pagesPath: string; key?: Buffer }>;
  /** VMAs (by start) inherited from the parent and kept as they are, with their pages. */
  kept?: Set<bigint>;
  /** The parent's pagemap, to drop inherited pages the task did not have. */
  parentRuns?: PageSource[];
  /** The restored parent, whose memory holds the pages marked as shared with it. */
  parentPid?: number;
}

/**
 * Recreate every VMA and start filling its pages; the returned function waits for the fill
 * (see fill.ts) and does what must follow it (copy-on-write pages from the parent, shadow
 * stacks, protections, madvise). Nothing else may touch the task before it has run.
 */
export function restoreVmas(t: RestoreTask, input: MmRestoreInput): () => void {
  const tr = t.leader;
  const vmas = input.mm.vmas.filter((v) => {
    const st = v.status;
    return st & (VMA.AREA_REGULAR | VMA.AREA_AIORING) && !(st & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_VSYSCALL));
  });
  const hasPages = makeHasPages(input.runs.filter((r) => r.flags & (PE.PRESENT | PE.COW_PARENT | PE.PARENT)));
  const fds = new Map<string, bigint>();
  const needMprotect: VmaEntry[] = [];
  const attached = new Set<string>();
  try {
    for (const v of vmas) {
      const st = v.status;
      const start = v.start,
        len = v.end - start;
      const shared = (v.flags & MAP.SHARED) !== 0;
      let prot = v.prot;
      const writeTo = !shared && !(prot & PROT.WRITE) && hasPages(start, v.end);
      if (input.kept?.has(start)) {
        if (writeTo) {
          tr.syscall('mprotect', start, len, prot | PROT.WRITE | PROT.READ);
          needMprotect.push(v);
        }
        dropUninherited(t, v, input);
        continue;
      }
      if (writeTo) {
        prot |= PROT.WRITE | PROT.READ;
        needMprotect.push(v);
      }
      // An AIO ring's saved pages go into anonymous memory, which its new ring replaces (aio.ts).
      const flags = st & VMA.AREA_AIORING ? MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED : (v.flags & ~MAP.LOCKED) | MAP.FIXED;
      if (st & (VMA.ANON_SHARED | VMA.AREA_MEMFD)) {
        const fd = pullFd(tr, input.shmemFd(v));
        try {
          tr.syscall('mmap', start, len, prot, flags & ~MAP.ANONYMOUS, fd, v.pgoff);
        } finally {
          tr.syscallRaw('close', fd);
        }
      } else if (st & VMA.AREA_SYSVIPC) {
        attachSysv(tr, v, input.mm.vmas, attached);
      } else if (st & VMA.AREA_SOCKET) {
        // The ring the restored socket has again (its fd is in place already); the frames start empty.
        tr.syscall('mmap', start, len, prot, flags, input.socketFd(v), v.pgoff);
      } else if (st & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
        const path = input.pathOf(Number(v.shmid));
        const oflags = v.fdflags ?? O.RDONLY;
        const key = `${oflags}:${path}`;
        let fd = fds.get(key);
        if (fd === undefined) {
          fd = openPulled(tr, path, oflags);
          fds.set(key, fd);
        }
        tr.syscall('mmap', start, len, prot, flags, fd, v.pgoff);
      } else {
        tr.syscall('mmap', start, len, prot, flags, -1, 0);
      }
    }
  } finally {
    for (const fd of fds.values()) tr.syscallRaw('close', fd);
  }
  // CRIU saves the vDSO's pages too; this kernel's own vDSO is used instead.
  const special = input.mm.vmas.filter((v) => v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)).map((v) => ({ start: v.start, end: v.end }));
  // Pages of the parent dumps first, each dump's whole: one fill is in flight at a time.
  for (const p of input.parents ?? []) fillPages(t, p.pagesPath, withoutRanges(p.runs, special), p.key)?.finish();
  const fill = fillPages(
    t,
    input.pagesPath,
    withoutRanges(
      input.runs.filter((r) => r.flags & PE.PRESENT && r.offset !== undefined),
      special,
    ),
    input.key,
  );
  return () => {
    fill?.finish();
    copyFromParent(t, input);
    convertShadowStacks(
      t,
      vmas.filter((v) => isShadowStack(v) && !input.kept?.has(v.start)),
      input.runs,
    );
    for (const v of needMprotect) {
      if (isShadowStack(v)) continue;
      tr.syscall('mprotect', v.start, v.end - v.start, v.prot);
    }
    applyMadvise(t, vmas);
    // Locked last: mlock faults every page in, and the fill must not find them locked.
    for (const v of vmas) if (v.flags & MAP.LOCKED) tr.syscall('mlock', v.start, v.end - v.start);
  };
}

const MADV_GUARD_INSTALL = 102;

/**
 * Guard regions, once the task's pages are in and its children forked (fork copies guard
 * markers, and a child that keeps a VMA of its parent must not get the parent's guards).
 */
export function installGuards(tr: Tracee, guards: ReadonlyArray<{ start: bigint; end: bigint }>): void {
  for (const g of guards) tr.syscall('madvise', g.start, g.end - g.start, MADV_GUARD_INSTALL);
}

/**
 * In a VMA kept from the parent, pages the parent has but the task did not (never touched,
 * zero page, or dropped with MADV_DONTNEED) must not show the parent's data.
 */
function dropUninherited(t: RestoreTask, v: VmaEntry, input: MmRestoreInput): void {
  const start = v.start,
    end = v.end;
  const span = (r: PageSource): Range => ({ start: r.vaddr, end: r.vaddr + BigInt(r.nrPages) * PAGE });
  const mine = input.runs.map(span).filter((r) => r.start < end && r.end > start);
  for (const p of (input.parentRuns ?? []).map(span)) {
    if (p.end <= start || p.start >= end) continue;
    const clipped = { start: p.start > start ? p.start : start, end: p.end < end ? p.end : end };
    for (const gap of subtract(clipped, mine)) t.leader.syscall('madvise', gap.start, gap.end - gap.start, 4 /* MADV_DONTNEED */);
  }
}

/**
 * The advice recorded for each VMA, one call per run of adjacent VMAs with the same advice:
 * glibc marks every thread stack and its guard page MADV_NOHUGEPAGE, and each call is an
 * injected syscall. The end state is the same as VMA by VMA.
 */
function applyMadvise(t: RestoreTask, vmas: VmaEntry[]): void {
  for (let i = 0; i < vmas.length; ) {
    const madv = vmas[i].madv;
    let j = i + 1;
    while (madv && j < vmas.length && vmas[j].madv === madv && vmas[j].start === vmas[j - 1].end) j++;
    const start = vmas[i].start,
      end = vmas[j - 1].end;
    for (let bit = 0; madv && bit < 64; bit++) {
      if (!((madv >> BigInt(bit)) & 1n)) continue;
      const r = t.leader.syscallRaw('madvise', start, end - start, bit);
      if (r < 0n) t.log.warn(`madvise(0x${start.toString(16)}, ${bit}) failed: ${r}`);
    }
    i = j;
  }
}

/**
 * Pages marked as shared with the parent but in a VMA that could not be kept as inherited:
 * their content is the parent's (restored already), copied over.
 */
function copyFromParent(t: RestoreTask, input: MmRestoreInput): void {
  const kept = input.kept ?? new Set<bigint>();
  const vmas = input.mm.vmas.filter((v) => kept.has(v.start));
  const inKept = (a: bigint) => vmas.some((v) => a >= v.start && a < v.end);
  const runs = input.runs.filter((r) => r.flags & PE.COW_PARENT && !inKept(r.vaddr));
  if (!runs.length) return;
  if (input.parentPid === undefined) throw new Error(`task ${t.pid}: pages shared with a parent, but no parent restored`);
  const mem = fs.openSync(`/proc/${input.parentPid}/mem`, 'r');
  try {
    for (const r of runs) {
      const b = Buffer.allocUnsafe(r.nrPages * 4096);
      preadFully(mem, b, Number(r.vaddr));
      t.leader.writeMem(r.vaddr, b);
    }
  } finally {
    fs.closeSync(mem);
  }
}

/**
 * Whether restoreMmFields would set in a child just what it inherits from its parent: a child
 * cloned from its restored parent has the parent's mm fields, auxv, exe link and dumpable/THP
 * flags (fork copies them), and most children of a fork never change them.
 */
export function sameMmFields(mm: MmEntry, parent: MmEntry, pathOf: (id: number) => string): boolean {
  const auxv = fullAuxv(mm),
    pauxv = fullAuxv(parent);
  return (
    PRCTL_MM_MAP_FIELDS.every((k) => mm[k] === parent[k]) &&
    mm.dumpable === parent.dumpable &&
    mm.thp_disabled === parent.thp_disabled &&
    auxv.length === pauxv.length &&
    auxv.every((w, i) => w === pauxv[i]) &&
    pathOf(mm.exe_file_id) === pathOf(parent.exe_file_id)
  );
}

/** The saved auxv with criu-ts's tail (the entries past CRIU's size), as the task had it. */
function fullAuxv(mm: MmEntry): bigint[] {
  const tail = mm.mm_saved_auxv_tail;
  return tail.length ? [...mm.mm_saved_auxv, ...tail] : mm.mm_saved_auxv;
}

/** The same inode: a task in a mount namespace of its own shows its exe by another path than criu-ts reaches it by. */
function sameFile(a: string, b: string): boolean {
  try {
    const x = fs.statSync(a),
      y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

const SHM_RDONLY = 0o10000,
  SHM_REMAP = 0o40000,
  SHM_EXEC = 0o100000;

/**
 * A SysV segment, made again with its IPC namespace, attached where it was: one shmat of the
 * whole segment at the address of its first page (a VMA's pgoff is its place in the segment),
 * writable if any of its VMAs is; each VMA then gets its own protection.
 */
function attachSysv(tr: Tracee, v: VmaEntry, all: readonly VmaEntry[], attached: Set<string>): void {
  const base = v.start - v.pgoff;
  const key = `${v.shmid}:${base}`;
  if (!attached.has(key)) {
    attached.add(key);
    const same = all.filter((o) => o.status & VMA.AREA_SYSVIPC && o.shmid === v.shmid && o.start - o.pgoff === base);
    const prot = same.reduce((a, o) => a | o.prot, 0);
    tr.syscall('shmat', v.shmid, base, SHM_REMAP | (prot & PROT.WRITE ? 0 : SHM_RDONLY) | (prot & PROT.EXEC ? SHM_EXEC : 0));
  }
  tr.syscall('mprotect', v.start, v.end - v.start, v.prot);
}

/** PR_SET_MM_MAP: code/data/brk/stack/arg/env bounds, auxv and the exe link, in one call. */
export function restoreMmFields(t: RestoreTask, mm: MmEntry, exePath: string, log?: Logger): void {
  const tr = t.leader;
  t.area.reset();
  const words = fullAuxv(mm);
  const auxv = Buffer.alloc(words.length * 8);
  words.forEach((w, i) => {
    auxv.writeBigUInt64LE(w, i * 8);
  });
  const auxvAddr = t.area.put(auxv);
  // A child cloned from its restored parent has the right exe link already, and may still
  // map it (kept VMAs), which makes the kernel refuse a new one: leave it (exe_fd -1).
  let current = '';
  try {
    current = readLink(t.pid, 'exe');
  } catch {
    /* none */
  }
  const exeFd = current === exePath || sameFile(`/proc/${t.pid}/exe`, exePath) ? 0xffffffffn : openPulled(tr, exePath, O.RDONLY);
  try {
    const m = prctlMmMap(mm, auxvAddr, auxv.length, Number(exeFd));
    const mapAt = t.area.put(m);
    const saved = mm.mm_saved_auxv.length * 8;
    try {
      tr.syscall('prctl', PR.SET_MM, PR_SET_MM_MAP, mapAt, m.length, 0);
    } catch (e) {
      if (!(e instanceof RemoteSysError && e.code === 'EINVAL' && auxv.length > saved)) throw e;
      // A kernel whose saved_auxv is smaller than the dumping one's: what CRIU's format holds.
      log?.warn(
        `task ${t.pid}: this kernel has no room for the last ${(auxv.length - saved) / 16} auxv entries; /proc/${t.pid}/auxv lacks them`,
      );
      setPrctlMmMapAuxvSize(m, saved);
      tr.writeMem(mapAt, m);
      tr.syscall('prctl', PR.SET_MM, PR_SET_MM_MAP, mapAt, m.length, 0);
    }
  } finally {
    if (exeFd !== 0xffffffffn) tr.syscallRaw('close', exeFd);
  }
  if (mm.dumpable !== undefined) tr.syscallRaw('prctl', PR.SET_DUMPABLE, mm.dumpable, 0, 0, 0);
  if (mm.thp_disabled) tr.syscallRaw('prctl', PR.SET_THP_DISABLE, 1, 0, 0, 0);
}
