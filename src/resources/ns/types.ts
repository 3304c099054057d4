// The shape every namespace kind has: how a tree in a namespace of its own is checked,
// dumped and restored. Registered in index.ts.
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { AddArgs, EntryKind, EntryOf, ImageArgs, ImageKindId, Message, MessageInput } from '../../images/index.ts';
import type { Logger } from '../types.ts';
import type { MountOptions } from './mnt-tree.ts';

/** A single-threaded helper criu-ts drives by injected calls, which may enter a namespace. */
export interface NsHelper {
  tracee: Tracee;
  area: InjectionArea;
}

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
}

export interface NsKind {
  name: NsName;
  /** The CLONE_NEW* flag that makes one. */
  cflag: number;
  /** Why a tree whose root is in a namespace of its own of this kind cannot be dumped (nothing: it can). */
  dumpRefusal(root: number): string | undefined;
  /** Save the namespace's contents, once per dump. */
  dump?(ctx: NsDumpCtx): void;
  /** Why the dumped namespace cannot be restored, asked before any process exists. */
  restoreRefusal(ctx: { vpid: number; id: number; imgs: NsImagesIn; mounts?: MountOptions; log: Logger }): string | undefined;
  /** Fill the root's new namespace, before the root has children. */
  restore?(ctx: NsRestoreCtx): void;
}
