// A task's address space when it is cloned from its restored parent: it keeps every private
// VMA that is exactly as the parent has it, and with it the pages it still shares
// copy-on-write (PE_COW_PARENT in its pagemap) and the file pages, instead of a private copy
// of every page and an mmap per VMA.
import { VMA } from './layout.ts';
import { prepareAddressSpace, restoreMmFields, restoreVmas, sameMmFields, type MmRestoreInput } from './restore.ts';
import type { Message, PageSource, RestoreTask } from '../types.ts';

type MmEntry = Message<'mm_entry'>;
type VmaEntry = Message<'vma_entry'>;

const same = (a: VmaEntry, b: VmaEntry) =>
  (['start', 'end', 'prot', 'flags', 'status', 'shmid', 'pgoff'] as const).every((k) => a[k] === b[k]);

/** Private VMAs of `mm` that are exactly as the parent has them (same range, flags, file and offset). */
export function inheritedVmas(mm: MmEntry, parent: MmEntry): Set<bigint> {
  const kept = new Set<bigint>();
  for (const v of mm.vmas) {
    // Private memory, anonymous or file-backed, exactly as the parent has it: kept with the
    // parent's pages, and only the pages that differ are dropped or written.
    const st = v.status;
    if (!(st & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) || st & (VMA.AREA_VDSO | VMA.AREA_VVAR)) continue;
    if (parent.vmas.some((p) => same(p, v))) kept.add(v.start);
  }
  return kept;
}

export interface AddressSpaceInput extends Omit<MmRestoreInput, 'kept' | 'parentRuns' | 'parentPid'> {
  /** The task's restored parent: its memory holds the pages marked as shared with it. */
  parent?: { pid: number; mm?: MmEntry; runs?: PageSource[] };
  /** Cloned from the parent itself (not from a session helper): it starts with the parent's address space. */
  bornOfParent: boolean;
}

/**
 * The whole address space of a stub: what it keeps of its parent's, the special mappings
 * moved into place, the mm fields, then every VMA, whose pages go on being filled once this
 * returns (see restoreVmas).
 */
export function restoreAddressSpace(t: RestoreTask, input: AddressSpaceInput): () => void {
  const { mm, parent, bornOfParent } = input;
  const kept = parent?.mm && bornOfParent ? inheritedVmas(mm, parent.mm) : new Set<bigint>();
  const keepRanges = mm.vmas.filter((v) => kept.has(v.start)).map((v) => ({ start: v.start, end: v.end }));
  prepareAddressSpace(t, mm.vmas, keepRanges);
  // Before the target's VMAs exist: the kernel refuses a new exe link while the old exe
  // (the helper's program, possibly the same file as the target's) is still mapped.
  if (!bornOfParent || !parent?.mm || !sameMmFields(mm, parent.mm, input.pathOf))
    restoreMmFields(t, mm, input.pathOf(mm.exe_file_id), t.log);
  return restoreVmas(t, { ...input, kept, parentRuns: parent?.runs, parentPid: parent?.pid });
}
