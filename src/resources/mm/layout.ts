// VMA classification shared by the mm dump and restore: CRIU's vma_entry status bits and
// how a /proc VMA maps onto them.
import { MAP_DROPPABLE, type Vma } from '../../proc/index.ts';
import { MAP, PROT } from '../../kernel/index.ts';
import { isAioRing } from './aio.ts';
import type { Message } from '../types.ts';

export const VMA = {
  AREA_REGULAR: 1 << 0,
  AREA_STACK: 1 << 1,
  AREA_VSYSCALL: 1 << 2,
  AREA_VDSO: 1 << 3,
  AREA_HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6,
  FILE_SHARED: 1 << 7,
  ANON_SHARED: 1 << 8,
  ANON_PRIVATE: 1 << 9,
  AREA_SYSVIPC: 1 << 10,
  AREA_SOCKET: 1 << 11,
  AREA_VVAR: 1 << 12,
  AREA_AIORING: 1 << 13,
  AREA_MEMFD: 1 << 14,
  AREA_SHSTK: 1 << 15,
  AREA_GUARD: 1 << 16,
  AREA_UPROBES: 1 << 17,
} as const;

/** pagemap_entry flags; COW_PARENT is criu-ts's: inherited copy-on-write from the parent process. */
export const PE = { PARENT: 1, LAZY: 2, PRESENT: 4, COW_PARENT: 1 << 16 } as const;

export function vmaStatus(v: Vma): number {
  if (v.path === '[vsyscall]') return VMA.AREA_VSYSCALL | VMA.ANON_PRIVATE;
  // CRIU's AIO ring: the status bit alone (aio.ts).
  if (isAioRing(v)) return VMA.AREA_AIORING;
  let s = VMA.AREA_REGULAR;
  if (v.path === '[vdso]') return s | VMA.AREA_VDSO | VMA.ANON_PRIVATE;
  if (v.path === '[vvar]' || v.path === '[vvar_vclock]') return s | VMA.AREA_VVAR | VMA.ANON_PRIVATE;
  if (v.path === '[uprobes]') return s | VMA.AREA_UPROBES;
  if (v.path === '[heap]') s |= VMA.AREA_HEAP;
  if (isSocketVma(v)) return s | VMA.AREA_SOCKET;
  if (v.vmFlags?.has('ss')) s |= VMA.AREA_SHSTK;
  // A private mapping of a shared anonymous object (opened through map_files) sees the
  // object's pages until it writes its own: it maps the same object, MAP_PRIVATE.
  // Anonymous hugetlb memory: shared is an object like shared anonymous memory, private is not.
  if (isHugetlbAnon(v)) return s | (v.shared ? VMA.ANON_SHARED : VMA.ANON_PRIVATE);
  if (isAnonShmem(v)) return s | VMA.ANON_SHARED | (v.shared ? 0 : VMA.FILE_PRIVATE);
  if (v.path.startsWith('/SYSV')) return s | VMA.AREA_SYSVIPC;
  if (isFileVma(v)) {
    if (v.path.startsWith('/memfd:')) s |= VMA.AREA_MEMFD;
    return s | (v.shared ? VMA.FILE_SHARED : VMA.FILE_PRIVATE);
  }
  return s | (v.shared ? VMA.ANON_SHARED : VMA.ANON_PRIVATE);
}

/** A packet socket's ring mapped into the task: mapped again from the restored socket. */
export const isSocketVma = (v: Pick<Vma, 'path'>): boolean => v.path.startsWith('socket:[');

/** MAP_SHARED|MAP_ANONYMOUS memory, mapped shared or private: a shmem file the kernel names /dev/zero (deleted). */
function isAnonShmem(v: Vma): boolean {
  return v.inode !== 0 && v.path === '/dev/zero' && v.deleted;
}

/** A VMA backed by a file we can reopen (as opposed to anonymous or a kernel special). */
export function isFileVma(v: Vma): boolean {
  return v.inode !== 0 && !v.path.startsWith('[') && !isAnonShmem(v) && !isHugetlbAnon(v);
}

/** MAP_HUGETLB|MAP_ANONYMOUS memory: a file of the kernel's hugetlbfs, /anon_hugepage (deleted). */
export function isHugetlbAnon(v: Vma): boolean {
  return v.inode !== 0 && v.path === '/anon_hugepage' && v.deleted;
}

/**
 * VM_DONTEXPAND ('de'), which no mmap flag gives but which the kernel sets itself on what
 * it maps again: an AIO ring and hugetlb memory.
 */
export const dontExpandOwned = (v: Pick<Vma, 'path' | 'deleted' | 'vmFlags'>): boolean => isAioRing(v) || !!v.vmFlags?.has('ht');

/** MAP_HUGETLB or MFD_HUGETLB with the page size in bits 26.. (MAP_HUGE_SHIFT), as CRIU records it. */
export function hugetlbFlags(pageBytes: number): number {
  return MAP.HUGETLB | (Math.log2(pageBytes) << 26);
}
/** The huge page size that flags name, or 0 without MAP_HUGETLB (bits 26.. empty: the default, 2 MiB). */
export function hugePageBytes(flags: number): number {
  if (!(flags & MAP.HUGETLB)) return 0;
  const shift = (flags >>> 26) & 0x3f;
  return shift ? 2 ** shift : 2 << 20;
}

export function vmaMapFlags(v: Vma): number {
  const fl = v.vmFlags;
  // MAP_DROPPABLE is a mapping type of its own (glibc's vgetrandom state), as CRIU saves it.
  let f = v.shared ? MAP.SHARED : fl?.has('dp') ? MAP_DROPPABLE : MAP.PRIVATE;
  if (!isFileVma(v)) f |= MAP.ANONYMOUS;
  if (fl?.has('gd')) f |= MAP.GROWSDOWN;
  if (fl?.has('lo')) f |= MAP.LOCKED;
  if (fl?.has('nr')) f |= MAP.NORESERVE;
  if (fl?.has('ht')) f |= hugetlbFlags((v.kernelPageSize ?? 2048) * 1024);
  return f;
}

/** Pages of this VMA that go into the task's own pagemap: private memory only. */
export function vmaHasPrivatePages(e: Pick<Message<'vma_entry'>, 'status'>): boolean {
  const st = e.status;
  if (st & VMA.AREA_AIORING) return true;
  if (!(st & VMA.AREA_REGULAR)) return false;
  if (st & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_UPROBES)) return false;
  return (st & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) !== 0;
}

/**
 * mm_entry's VMAs without its guard-region entries (VMA_AREA_GUARD: ranges of page tables, not
 * mappings), and those ranges.
 */
export function splitGuards(mm: Message<'mm_entry'>): { mm: Message<'mm_entry'>; guards: Array<{ start: bigint; end: bigint }> } {
  if (!mm.vmas.some((v) => v.status & VMA.AREA_GUARD)) return { mm, guards: [] };
  const guards = mm.vmas.filter((v) => v.status & VMA.AREA_GUARD).map((v) => ({ start: v.start, end: v.end }));
  return { mm: { ...mm, vmas: mm.vmas.filter((v) => !(v.status & VMA.AREA_GUARD)) }, guards };
}

export const protString = (p: number): string => `${p & PROT.READ ? 'r' : '-'}${p & PROT.WRITE ? 'w' : '-'}${p & PROT.EXEC ? 'x' : '-'}`;
