// Dump of a task's address space: mm_entry (VMAs and mm fields) and its private pages.
import fs from 'node:fs';
import { readAuxv, scanPagemap, guardRuns, madvBits, MAP_DROPPABLE, type Vma } from '../../proc/index.ts';
import { checkInterrupt } from '../../interrupt.ts';
import { processVmReadv, zeroPagePfn, SysError, O, PR, arch, preadFully } from '../../kernel/index.ts';
import { isAioRing, dumpAioRing } from './aio.ts';
import { splitByParent } from './track.ts';
import { vmaStatus, vmaMapFlags, vmaHasPrivatePages, PE, VMA } from './layout.ts';
import type { DumpTask, Message, MessageInput, PageSink } from '../types.ts';

type VmaEntry = Message<'vma_entry'>;
import type { ResourceClaims } from '../claims.ts';
import { NotSupportedError } from '../../errors.ts';

const PROT_BTI = 0x10; // arm64: the VMA's code is checked for branch targets ('bt')

/** Memory is saved whole: its sizes in status, and the VmFlags that mmap, madvise and prot give back. */
export const mmClaims: ResourceClaims = {
  status: Object.fromEntries(
    [
      'VmPeak',
      'VmSize',
      'VmHWM',
      'VmRSS',
      'RssAnon',
      'RssFile',
      'RssShmem',
      'VmData',
      'VmStk',
      'VmExe',
      'VmLib',
      'VmPTE',
      'VmSwap',
      'HugetlbPages',
      'THP_enabled',
      'VmLck', // the size of the 'lo' VMAs, locked again at restore
    ].map((k) => [k, true]),
  ),
  files: { exe: true, environ: true, cmdline: true, auxv: true },
  vmFlags: [
    'rd',
    'wr',
    'ex',
    'sh',
    'mr',
    'mw',
    'me',
    'ms', // protections and shared/private (mmap, mprotect)
    'gd',
    'nr',
    'ac',
    'sd',
    'ss',
    'bt', // growsdown, noreserve, accounted, soft-dirty, shadow stack (shstk.ts), BTI
    'sr',
    'rr',
    'dc',
    'dd',
    'mg',
    'hg',
    'nh',
    'wf', // madvise advice (vma_entry.madv)
    'dp', // MAP_DROPPABLE: mapped so again (layout.ts), without its pages, as CRIU does
    'lo', // mlock: MAP_LOCKED in vma_entry.flags, locked again once its pages are in
    'ht', // hugetlb: MAP_HUGETLB and its page size in vma_entry.flags (MFD_HUGETLB for a memfd)
    'gu', // guard regions (MADV_GUARD_INSTALL): saved as VMA_AREA_GUARD entries (guardEntries)
    // Write protection for criu-ts's memory tracking (track.ts): a registration made from
    // outside, which a restored task does not have; a userfaultfd of the task's own is an fd,
    // refused as such.
    'uw',
  ],
};

const PAGE = 4096;
/** Bytes moved per process_vm_readv + write: large enough to stream at memory speed, small for RSS. */
const CHUNK = 2 << 20;
const IOV_MAX = 1024;

function vmaEntry(t: DumpTask, v: Vma): VmaEntry {
  const e: VmaEntry = {
    start: v.start,
    end: v.end,
    pgoff: v.pgoff,
    shmid: 0n,
    prot: v.prot | (v.vmFlags?.has('bt') ? PROT_BTI : 0),
    flags: vmaMapFlags(v),
    status: vmaStatus(v),
    fd: -1n,
  };
  const madv = madvBits(v.vmFlags);
  if (madv !== 0n) e.madv = madv;
  const st = e.status;
  if (st & VMA.ANON_SHARED) {
    e.shmid = t.shared.anon(t.pid, v);
  } else if (st & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
    // map_files gives the mapped file even when its path is shadowed; stat follows the link.
    const link = `/proc/${t.pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`;
    const flags = mappedFileMode(link) ?? (v.shared && (v.prot & 2) !== 0 ? O.RDWR : O.RDONLY);
    let st2 = statOrNone(link);
    const path = st2 ? link : v.path;
    if (st & VMA.AREA_MEMFD) {
      e.shmid = BigInt(t.shared.memfd(t.pid, path, flags, 0n));
      e.fdflags = flags;
      return e;
    }
    if (v.deleted) {
      if (!st2) throw new NotSupportedError(`task ${t.pid} maps the deleted file ${v.path}, which map_files does not show`);
      e.shmid = BigInt(t.files.regDeleted(v.path, link, flags, { size: BigInt(st2.size), mode: st2.mode }));
      e.fdflags = flags;
      return e;
    }
    st2 ??= statOrNone(v.path);
    if (!st2) throw new NotSupportedError(`task ${t.pid} maps ${v.path}, which cannot be reached by path`);
    e.shmid = BigInt(t.files.regPath(v.path, flags, { size: BigInt(st2.size), mode: st2.mode }));
    e.fdflags = flags;
  } else if (st & VMA.AREA_SOCKET) {
    // CRIU's shmid of a socket mapping is the socket's file id; its pages are the kernel's.
    e.shmid = BigInt(t.socketFile(Number(/^socket:\[(\d+)\]/.exec(v.path)?.[1] ?? v.inode)));
  } else if (st & VMA.AREA_SYSVIPC) {
    // The segment (its inode number is its id) is saved with the tree's own IPC namespace
    // (ipcns-shm-N.img), and attached again at restore; criu-ts's own namespace is not saved.
    if (fs.readlinkSync(`/proc/${t.pid}/ns/ipc`) === fs.readlinkSync('/proc/self/ns/ipc'))
      throw new NotSupportedError(
        `task ${t.pid} has System V shared memory at 0x${v.start.toString(16)}, outside an IPC namespace of its own`,
      );
    e.shmid = BigInt(v.inode);
  }
  return e;
}

/** The guard regions of the VMAs the kernel marks as possibly guarded ('gu'), from pagemap's bit 58. */
function guardEntries(pid: number, vmas: readonly Vma[]): VmaEntry[] {
  const guarded = vmas.filter((v) => v.vmFlags?.has('gu'));
  if (!guarded.length) return [];
  const out: VmaEntry[] = [];
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const v of guarded) {
      const pm = Buffer.allocUnsafe(Number((v.end - v.start) / BigInt(PAGE)) * 8);
      preadFully(fd, pm, Number(v.start / BigInt(PAGE)) * 8);
      for (const r of guardRuns(pm, v.start, PAGE)) {
        const end = r.vaddr + BigInt(r.nrPages * PAGE);
        out.push({ start: r.vaddr, end, pgoff: 0n, shmid: 0n, prot: 0, flags: 0, status: VMA.AREA_GUARD, fd: -1n });
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/**
 * The access mode the mapped file was opened with: its map_files link's own mode bits say it
 * (0400 read, 0200 write). A shared mapping of a file opened read-write may be mprotect'ed
 * writable later, even when it is read-only now.
 */
function mappedFileMode(link: string): number | undefined {
  let m: number;
  try {
    m = fs.lstatSync(link).mode & 0o600;
  } catch {
    return undefined;
  }
  return m === 0o600 ? O.RDWR : m === 0o200 ? O.WRONLY : m === 0o400 ? O.RDONLY : undefined;
}

function statOrNone(path: string): fs.Stats | undefined {
  try {
    return fs.statSync(path);
  } catch {
    return undefined;
  }
}

/** Read the mm fields that /proc does not show, from inside the task. */
function injectedMmFields(t: DumpTask): { brk: bigint; dumpable: number; thpDisabled: boolean } {
  const brk = t.leader.syscall('brk', 0);
  const dumpable = Number(t.leader.syscall('prctl', PR.GET_DUMPABLE, 0, 0, 0, 0));
  const thp = Number(t.leader.syscall('prctl', PR.GET_THP_DISABLE, 0, 0, 0, 0));
  return { brk, dumpable, thpDisabled: thp !== 0 };
}

/**
 * /proc/PID/auxv cut or padded to the size CRIU's format has (as CRIU itself saves it), so
 * that CRIU can restore our images, and the entries past that cut (an arm64 kernel has more
 * than CRIU's 40 words) in criu-ts's extension field, without the AT_NULL pair.
 */
function savedAuxv(pid: number): { mm_saved_auxv: bigint[]; mm_saved_auxv_tail?: bigint[] } {
  const words = readAuxv(pid);
  const saved = words.slice(0, arch.auxvWords);
  while (saved.length < arch.auxvWords) saved.push(0n);
  const tail = words.slice(arch.auxvWords);
  if (tail.length >= 2 && tail[tail.length - 2] === 0n) tail.length -= 2;
  return tail.length ? { mm_saved_auxv: saved, mm_saved_auxv_tail: tail } : { mm_saved_auxv: saved };
}

export interface MmDumpStats {
  pagesScanned: number;
  pagesWritten: number;
  pagesInherited: number;
  /** Not written since the parent dump, which has them (PE_PARENT). */
  pagesSkippedParent: number;
}

export function dumpMm(t: DumpTask, pages: PageSink, exePath: string): { mm: MessageInput<'mm_entry'>; stats: MmDumpStats } {
  const s = t.stat;
  const inj = injectedMmFields(t);
  // Guard regions live in page tables, not VMAs: saved as CRIU does, as entries of their own
  // (status VMA_AREA_GUARD only) after every real VMA.
  const vmas = [...t.vmas.map((v) => vmaEntry(t, v)), ...guardEntries(t.pid, t.vmas)];
  const exeId = t.files.regPath(exePath, O.RDONLY);
  const mm: MessageInput<'mm_entry'> = {
    mm_start_code: s.startCode,
    mm_end_code: s.endCode,
    mm_start_data: s.startData,
    mm_end_data: s.endData,
    mm_start_stack: s.startStack,
    mm_start_brk: s.startBrk,
    mm_brk: inj.brk,
    mm_arg_start: s.argStart,
    mm_arg_end: s.argEnd,
    mm_env_start: s.envStart,
    mm_env_end: s.envEnd,
    exe_file_id: exeId,
    ...savedAuxv(t.pid),
    vmas,
    dumpable: inj.dumpable,
    thp_disabled: inj.thpDisabled,
    aios: t.vmas.filter(isAioRing).map((v) => dumpAioRing(t.pid, v)),
  };
  const stats = dumpPages(t, vmas, pages);
  return { mm, stats };
}

/** `shared`: pages mapped by more than one process, read through /proc/PID/mem (see readRemote). */
interface PendingRun {
  vaddr: bigint;
  len: number;
  shared: boolean;
}

const EXCLUSIVE_HI = 0x01000000; // PM_MMAP_EXCLUSIVE, bit 56

/** Split a run into parts whose pages are mapped by this process only, or not. */
function byExclusivity(
  run: { vaddr: bigint; nrPages: number },
  start: bigint,
  pm: Buffer,
): Array<{ vaddr: bigint; nrPages: number; shared: boolean }> {
  const out: Array<{ vaddr: bigint; nrPages: number; shared: boolean }> = [];
  const page = BigInt(PAGE);
  const first = Number((run.vaddr - start) / page),
    end = first + run.nrPages;
  for (let i = first; i < end; ) {
    const shared = (pm.readUInt32LE(i * 8 + 4) & EXCLUSIVE_HI) === 0;
    let j = i + 1;
    while (j < end && ((pm.readUInt32LE(j * 8 + 4) & EXCLUSIVE_HI) === 0) === shared) j++;
    out.push({ vaddr: start + BigInt(i) * page, nrPages: j - i, shared });
    i = j;
  }
  return out;
}

/** One chunk buffer for every task of a dump: a fresh 2 MiB per task cost page faults and GC. */
let spare: Buffer | undefined;

/** What a dump of pages needs of its task. */
type PagesTask = Pick<DumpTask, 'pid' | 'vmas' | 'parent' | 'parentPages' | 'trackedVmas'>;

/**
 * A pre-dump's pages (CRIU's pre-dump): those a dump saves, and nothing else of the task.
 * Its VMA entries are only for choosing them; the final dump writes mm-N.img.
 */
export function preDumpPages(t: PagesTask, sink: PageSink): MmDumpStats {
  const vmas: VmaEntry[] = t.vmas.map((v) => ({
    start: v.start,
    end: v.end,
    pgoff: v.pgoff,
    shmid: 0n,
    prot: v.prot,
    flags: vmaMapFlags(v),
    status: vmaStatus(v),
    fd: -1n,
  }));
  return dumpPages(t, [...vmas, ...guardEntries(t.pid, t.vmas)], sink);
}

/**
 * Choose pages through pagemap and copy them into the sink: process_vm_readv into the
 * sink's buffer (or one of ours), many runs per call, then one write per chunk.
 */
function dumpPages(t: PagesTask, vmas: VmaEntry[], sink: PageSink): MmDumpStats {
  const zeroPfn = zeroPagePfn();
  const pm = fs.openSync(`/proc/${t.pid}/pagemap`, 'r');
  let parentFd: number | undefined;
  let buf: Buffer | undefined;
  let pmBuf = Buffer.allocUnsafe(0);
  let pending: PendingRun[] = [];
  let used = 0;
  const stats: MmDumpStats = { pagesScanned: 0, pagesWritten: 0, pagesInherited: 0, pagesSkippedParent: 0 };
  const savedGuards = new Set(vmas.filter((v) => v.status === VMA.AREA_GUARD).map((v) => v.start));

  const flush = (): void => {
    checkInterrupt();
    if (!pending.length) return;
    readRemote(t, buf!.subarray(0, used), pending);
    sink.writePages(buf!.subarray(0, used));
    buf = undefined;
    pending = [];
    used = 0;
  };
  try {
    for (const e of vmas) {
      // Saved whole, as CRIU does: the vDSO (restored from this kernel's own, but CRIU's
      // restorer reads the dumped copy to map old symbols onto the new one) and AIO rings.
      const whole = (e.status & (VMA.AREA_VDSO | VMA.AREA_AIORING)) !== 0;
      if (!whole && !vmaHasPrivatePages(e)) continue;
      // The kernel may drop droppable pages whenever it likes; CRIU does not save them either.
      if ((e.flags & 0xf) === MAP_DROPPABLE) continue;
      const start = e.start,
        end = e.end;
      const nPages = Number((end - start) / BigInt(PAGE));
      stats.pagesScanned += nPages;
      if (pmBuf.length < nPages * 8) pmBuf = Buffer.allocUnsafe(Math.max(nPages * 8, 1 << 16));
      const pmView = pmBuf.subarray(0, nPages * 8);
      preadFully(pm, pmView, Number(start / BigInt(PAGE)) * 8);
      const anonOnly = (e.status & VMA.FILE_PRIVATE) !== 0;
      const flags = anonOnly || whole ? PE.PRESENT : PE.PRESENT | PE.LAZY;
      // Guard pages are never page data: each must be one of the saved guard entries, or it would
      // come back as an ordinary page (a kernel that shows guards in pagemap but no 'gu' flag).
      for (const g of guardRuns(pmView, start, PAGE))
        if (!savedGuards.has(g.vaddr))
          throw new NotSupportedError(
            `task ${t.pid}: a guard region at 0x${g.vaddr.toString(16)} the kernel does not flag in VmFlags ('gu')`,
          );
      const own = whole ? [{ vaddr: start, nrPages: nPages }] : scanPagemap(pmView, start, { anonOnly, zeroPfn });
      const parentPm = whole
        ? undefined
        : parentPagemap(t, e, nPages, () => (parentFd ??= fs.openSync(`/proc/${t.parent!.pid}/pagemap`, 'r')));
      const mine: SavedRun[] = parentPm ? splitInherited(own, start, pmView, parentPm) : own;
      const fromParent = t.parentPages && t.trackedVmas?.has(start) ? t.parentPages : undefined;
      // In a private file mapping, a protected swapped entry may be the marker of a page dropped
      // since (scanPagemap tells markers only with PFNs in sight): saved, never the parent's.
      const runs = fromParent
        ? mine.flatMap((r): SavedRun[] => (r.inherited ? [r] : splitByParent(r, start, pmView, fromParent, !anonOnly)))
        : mine;
      for (const run of runs) {
        if (run.inherited) {
          sink.addRun(run.vaddr, run.nrPages, PE.COW_PARENT);
          stats.pagesInherited += run.nrPages;
          continue;
        }
        if (run.inParent) {
          sink.addRun(run.vaddr, run.nrPages, PE.PARENT);
          stats.pagesSkippedParent += run.nrPages;
          continue;
        }
        sink.addRun(run.vaddr, run.nrPages, flags);
        stats.pagesWritten += run.nrPages;
        for (const part of byExclusivity(run, start, pmView)) {
          let vaddr = part.vaddr,
            left = part.nrPages * PAGE;
          while (left > 0) {
            if ((buf && used === buf.length) || pending.length === IOV_MAX || (pending.length && pending[0].shared !== part.shared))
              flush();
            buf ??= sink.pageBuffer?.() ?? (spare ??= Buffer.allocUnsafe(CHUNK));
            const n = Math.min(left, buf.length - used);
            pending.push({ vaddr, len: n, shared: part.shared });
            used += n;
            vaddr += BigInt(n);
            left -= n;
          }
        }
      }
    }
    flush();
  } finally {
    fs.closeSync(pm);
    if (parentFd !== undefined) fs.closeSync(parentFd);
  }
  return stats;
}

/** The parent's pagemap over the same VMA, when the parent has this very VMA (inherited by fork). */
function parentPagemap(t: PagesTask, e: VmaEntry, nPages: number, fd: () => number): Buffer | undefined {
  const p = t.parent;
  if (!p) return undefined;
  const pv = p.vmas.find((v) => v.start === e.start && v.end === e.end);
  if (!pv || pv.shared || pv.prot !== ((e.prot as number) & ~PROT_BTI)) return undefined;
  let b = p.pagemaps.get(pv.start);
  if (!b) {
    b = Buffer.allocUnsafe(nPages * 8);
    preadFully(fd(), b, Number(e.start / BigInt(PAGE)) * 8);
    p.pagemaps.set(pv.start, b);
  }
  return b;
}

interface SplitRun {
  vaddr: bigint;
  nrPages: number;
  inherited: boolean;
}

/** A run of pages to save: shared copy-on-write with the parent task, or in the parent dump. */
interface SavedRun {
  vaddr: bigint;
  nrPages: number;
  inherited?: boolean;
  inParent?: boolean;
}

/**
 * Split runs into pages the child still shares with its parent (present in both, same
 * physical page: copy-on-write since fork) and pages of its own.
 */
function splitInherited(runs: Array<{ vaddr: bigint; nrPages: number }>, start: bigint, child: Buffer, parent: Buffer): SplitRun[] {
  const out: SplitRun[] = [];
  const page = BigInt(PAGE);
  for (const r of runs) {
    const first = Number((r.vaddr - start) / page),
      end = first + r.nrPages;
    for (let i = first; i < end; ) {
      const inherited = shared(child, parent, i);
      let j = i + 1;
      while (j < end && shared(child, parent, j) === inherited) j++;
      out.push({ vaddr: start + BigInt(i) * page, nrPages: j - i, inherited });
      i = j;
    }
  }
  return out;
}

const PRESENT_HI = 0x80000000,
  SWAP_HI = 0x40000000,
  PFN_HI = 0x007fffff;
function shared(child: Buffer, parent: Buffer, i: number): boolean {
  const ch = child.readUInt32LE(i * 8 + 4),
    ph = parent.readUInt32LE(i * 8 + 4);
  if (!(ch & PRESENT_HI) || !(ph & PRESENT_HI) || ch & SWAP_HI || ph & SWAP_HI) return false;
  return (ch & PFN_HI) === (ph & PFN_HI) && child.readUInt32LE(i * 8) === parent.readUInt32LE(i * 8);
}

/**
 * process_vm_readv for pages only this process maps. It pins the pages it reads, and the
 * kernel unshares a copy-on-write page before pinning it, which would silently copy pages
 * the process shares with its parent or children; /proc/PID/mem reads without pinning. It
 * is also the fallback for pages process_vm_readv refuses (PROT_NONE areas).
 */
function readRemote(t: Pick<DumpTask, 'pid'>, dst: Buffer, runs: PendingRun[]): void {
  let n = 0;
  if (!runs[0]?.shared) {
    try {
      n = processVmReadv(
        t.pid,
        dst,
        runs.map((r) => ({ addr: r.vaddr, len: r.len })),
      );
    } catch (e) {
      if (!(e instanceof SysError) || e.code !== 'EFAULT') throw e;
    }
  }
  if (n === dst.length) return;
  const mem = fs.openSync(`/proc/${t.pid}/mem`, 'r');
  try {
    let off = 0;
    for (const r of runs) {
      if (off + r.len > n) {
        const from = Math.max(off, n);
        preadFully(mem, dst.subarray(from, off + r.len), Number(r.vaddr) + (from - off));
      }
      off += r.len;
    }
  } finally {
    fs.closeSync(mem);
  }
}
