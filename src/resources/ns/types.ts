// The shape every namespace kind has: how a tree in a namespace of its own is checked,
// dumped and restored. Registered in index.ts.
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { AddArgs, EntryKind, EntryOf, ImageArgs, ImageKindId, Message, MessageInput } from '../../images/index.ts';
import type { Logger, PageSource } from '../types.ts';
import type { MadeMounts, MountOptions } from './mnt-tree.ts';

/** A single-threaded helper criu-ts drives by injected calls, which may enter a namespace. */
export interface NsHelper {
  tracee: Tracee;
  area: InjectionArea;
}

/**
 * What the user says of the tree's network namespace: left empty (`--empty-ns net`, runc's
 * `empty_ns`: nothing saved, an empty one made), or external (`--external net[INO]:KEY` at
 * dump; `--inherit-fd fd[N]:KEY` at restore gives criu-ts's fd N on the namespace to join).
 */
export interface NetOptions {
  empty?: boolean;
  /** Dump: the namespace's inode → its key. */
  external?: Map<string, string>;
  /** Restore: key → an fd of criu-ts's. */
  inherit?: Map<string, number>;
  /** Restore: --external veth[IFNAME]:OUT[@BRIDGE] and macvlan[IFNAME]:PARENT, by their keys. */
  devices?: Map<string, string>;
  /** Restore (--join-ns net:PATH): the existing namespace the root joins; its contents are not restored. */
  join?: string;
  /**
   * Restore of an empty one: its loopback up. runc asks for empty_ns because it manages no
   * device, yet gives every new network namespace its loopback up itself, but not at restore.
   */
  loopbackUp?: boolean;
}

/** The namespace file --join-ns net:X names: X itself, or that of the process X. */
export const joinNetPath = (x: string): string => (/^\d+$/.test(x) ? `/proc/${x}/ns/net` : x);

/** The names of /proc/PID/ns/ that task_kobj_ids_entry keeps (`<name>_ns_id`). */
export type NsName = 'pid' | 'net' | 'ipc' | 'uts' | 'mnt' | 'user' | 'cgroup' | 'time';

export interface NsImagesOut {
  add<K extends EntryKind>(kind: K, ...a: AddArgs<K>): void;
  one<K extends EntryKind>(kind: K, ...a: [...ImageArgs<K>, entry: MessageInput<EntryOf<K>>]): void;
  /** A raw image (no magic, no entries): `ip addr save` output... */
  raw<K extends ImageKindId>(kind: K, data: Buffer, ...args: ImageArgs<K>): void;
}

export interface NsImagesIn {
  one<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Message<EntryOf<K>>;
  all<K extends EntryKind>(
    kind: K,
    ...args: ImageArgs<K>
  ): Array<{ entry: Message<EntryOf<K>>; extra?: Buffer; ipcMsgs?: ReadonlyArray<{ msg: Message<'ipc_msg'>; data: Buffer }> }>;
  /** A raw image's bytes, undefined when absent. */
  raw<K extends ImageKindId>(kind: K, ...args: ImageArgs<K>): Buffer | undefined;
  /** The pages of a shared memory object (pagemap-shmem-N.img), undefined when none were saved. */
  shmemPagemap(shmid: number): { runs: PageSource[]; pagesPath: string } | undefined;
  /** The key of an encrypted dump's page data. */
  readonly key?: Buffer;
}

export interface NsDumpCtx {
  /** The root task (host pid), which is in the namespace. */
  pid: number;
  /** The namespace's id in the images (ids-N.img). */
  id: number;
  imgs: NsImagesOut;
  log: Logger;
  /** --external mnt[MOUNTPOINT]:KEY marks. */
  mounts?: MountOptions;
  /** Starts (once) a helper the orchestrator kills after the dump. */
  helper: () => NsHelper;
  /** Starts a helper of its own, killed by `end`: for what cannot be undone (entering a user namespace). */
  spareHelper?: () => NsHelper & { end(): void };
  net?: NetOptions;
  /** Of a nested kind: every live task (host pid) with its id of this kind. */
  tasks: Array<{ pid: number; id: number }>;
}

/** A task (not the root) whose namespace of a nested kind is not its parent's. */
export interface NsEnterCtx {
  stub: Tracee;
  area: InjectionArea;
  id: number;
  /** A task (host pid) already in that namespace, if one was made. */
  holder?: number;
  /** The namespace's file, if it was made ahead (makeAhead). */
  file?: string;
  imgs: NsImagesIn;
  log: Logger;
  mounts?: MountOptions;
  /** The mounts made in the namespaces restored so far (their peer groups span namespaces). */
  made: MadeMounts;
}

export interface NsRestoreCtx {
  /** The root's stub: stopped, traced, born in its new namespaces. */
  stub: Tracee;
  area: InjectionArea;
  /** The stub's pid in criu-ts's namespace. */
  pid: number;
  /** The root's pid in the images (its own PID namespace's). */
  vpid: number;
  id: number;
  imgs: NsImagesIn;
  log: Logger;
  /** --root and the external mounts' host paths. */
  mounts?: MountOptions;
  net?: NetOptions;
  /** The mounts made in the namespaces restored so far (their peer groups span namespaces). */
  made: MadeMounts;
  /** Of a nested kind: every namespace of the tree of this kind, made (maybe empty), by id. */
  nsFiles?: ReadonlyMap<number, string>;
  /** Of a nested kind: the ids of the namespaces filled already. */
  filled?: ReadonlySet<number>;
  /** Work left until every task of the tree has its files (namespacesAfterFiles). */
  later?: (fn: () => void) => void;
}

/** Fill a namespace made ahead: its id, its file, the tree's others and which are filled. */
export interface NsFillCtx {
  id: number;
  file: string;
  imgs: NsImagesIn;
  log: Logger;
  net?: NetOptions;
  nsFiles: ReadonlyMap<number, string>;
  filled: ReadonlySet<number>;
}

export interface NsKind {
  name: NsName;
  /** The CLONE_NEW* flag that makes one. */
  cflag: number;
  /** Why a tree whose root is in a namespace of its own of this kind cannot be dumped (nothing: it can). */
  dumpRefusal(root: number, opts: { net?: NetOptions }): string | undefined;
  /** Save the namespace's contents, once per dump. */
  dump?(ctx: NsDumpCtx): void;
  /** Why the dumped namespace cannot be restored, asked before any process exists. */
  restoreRefusal(ctx: {
    vpid: number;
    id: number;
    imgs: NsImagesIn;
    mounts?: MountOptions;
    net?: NetOptions;
    log: Logger;
    nested?: boolean;
  }): string | undefined;
  /** The clone flag the root gets (default: cflag); none for a namespace it joins. */
  cloneFlag?(ctx: { id: number; imgs: NsImagesIn; net?: NetOptions }): number;
  /** Tasks below the root may be in other namespaces of this kind (each dumped and made again). */
  nested?: boolean;
  /** Why the namespace of a task below the root (of a nested kind) cannot be dumped. */
  nestedDumpRefusal?(pid: number): string | undefined;
  /** Put a task in its namespace of a nested kind: join it (holder, file) or make it. */
  enter?(ctx: NsEnterCtx): void;
  /**
   * Of a nested kind: make namespace `id` (not the root's) ahead of the tasks, empty, held by
   * criu-ts (its files are made before the tasks in it exist); the file tasks join. Every
   * namespace of the kind exists before any is filled (fillAhead): links span them. `stub` is
   * the root's, in its namespaces already.
   */
  makeAhead?(ctx: { id: number; log: Logger; stub: Tracee }): { file: string; release(): void };
  /** Fill a namespace made ahead, after the root's (restore). */
  fillAhead?(ctx: NsFillCtx): void;
  /** Fill the root's new namespace, before the root has children. */
  restore?(ctx: NsRestoreCtx): void;
  /**
   * Make the namespace in the process the root is cloned from (a helper, in criu-ts's
   * namespaces), for kinds a child enters at fork rather than by a clone flag (time).
   */
  beforeRoot?(ctx: { helper: Tracee; id: number; imgs: NsImagesIn; log: Logger }): void;
}
