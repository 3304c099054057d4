// Shared shapes between the orchestrators (dump/, restore/) and the resource modules.
// Image entries are typed by their message (see src/images/types.ts): Message<N> as read,
// MessageInput<N> as written.
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { MessageInput } from '../images/index.ts';
import type { Stat, Status, Vma } from '../proc/index.ts';

export type { Message, MessageInput, MessageName } from '../images/index.ts';

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  /** A line at every level that writes a log (the network lock's time, which benches read); info where absent. */
  always?(msg: string): void;
}

/** The file objects of a dump (files.img), shared by every task: one id per open file. */
export interface FileTable {
  /** Allocate the next file id (ids are shared by all fd types, as in CRIU). */
  newId(): number;
  /** Add a file_entry for files.img. */
  add(entry: MessageInput<'file_entry'>): void;
  /** Id of a REG entry for a path used by mappings, cwd, root or exe (deduplicated). */
  regPath(path: string, flags: number, extra?: RegExtra): number;
  /**
   * Id of a REG entry for a deleted file reached through `source` (/proc/PID/fd/N, map_files,
   * cwd), its content saved as a ghost file; `name` is the path it had.
   */
  regDeleted(name: string, source: string, flags: number, extra?: RegExtra): number;
}

/** What a REG entry made for a path may say about the file besides its name and flags. */
export type RegExtra = Pick<MessageInput<'reg_file_entry'>, 'size' | 'mode' | 'mnt_id'>;

/** One process being dumped, frozen, with an injection area mapped in its leader. */
export interface DumpTask {
  pid: number;
  leader: Tracee;
  /** Every thread including the leader (leader first). */
  threads: Tracee[];
  area: InjectionArea;
  stat: Stat;
  status: Status;
  vmas: Vma[];
  files: FileTable;
  log: Logger;
  /** Objects shared beyond this task, saved once for the whole dump. */
  shared: SharedObjects;
  /** The parent process, frozen too: pages still shared with it copy-on-write are not saved again. */
  parent?: ParentMm;
  /** files.img id of the task's socket with this inode (a mapped packet ring), dumped on first sight. */
  socketFile(ino: number): number;
  /**
   * An incremental dump of a task whose memory the parent dump tracked (mm/track.ts): the
   * pages that dump saved, as sorted [start, end) ranges, and the starts of the VMAs its
   * tracking still holds. Pages there not written since are not saved again (PE_PARENT).
   */
  parentPages?: ReadonlyArray<[bigint, bigint]>;
  trackedVmas?: ReadonlySet<bigint>;
}

/** A dumped task's parent, as its children's memory dump sees it. */
export interface ParentMm {
  pid: number;
  vmas: Vma[];
  /** The parent's pagemap over VMAs its children have too, by VMA start: read once for all of them. */
  pagemaps: Map<bigint, Buffer>;
}

/** Registry of shmem objects (shared anonymous memory, memfd) seen during a dump. */
export interface SharedObjects {
  /** shmid for a MAP_SHARED anonymous VMA of task `pid`; its content is saved on first sight. */
  anon(pid: number, v: Vma): bigint;
  /** files.img id of a MEMFD entry for a memfd mapped by `pid` (link = map_files or fd path). */
  memfd(pid: number, link: string, flags: number, pos: bigint): number;
}

export interface DumpOptions {
  shellJob: boolean;
}

/** One process being restored: a stub at the right PID whose body we are rebuilding. */
export interface RestoreTask {
  pid: number;
  leader: Tracee;
  threads: Tracee[];
  area: InjectionArea;
  log: Logger;
}

/** Where a memory dump sends its pages: pagemap entries plus the page bytes, in order. */
export interface PageSink {
  addRun(vaddr: bigint, nrPages: number, flags: number): void;
  writePages(buf: Buffer): void;
  /** Where to put the next page data for writePages, if the sink has a place (saves a copy). */
  pageBuffer?(): Buffer | undefined;
}

/** A run of dumped pages and where its bytes sit in pages-N.img. */
export interface PageSource {
  vaddr: bigint;
  nrPages: number;
  flags: number;
  /** Byte offset in the pages file; undefined when the run has no data there (PE_PRESENT unset). */
  offset?: number;
}
