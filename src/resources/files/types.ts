// The interface every fd kind implements: how to describe an open file at dump time, and
// how to produce a local descriptor for it at restore time, which the orchestrator then
// moves into the task with pidfd_getfd.
import type { InheritFd } from './inherit.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { enums, type AddArgs, type EntryKind, type EntryOf, type ImageArgs } from '../../images/index.ts';
import type { Logger, Message, MessageInput, RegExtra } from '../types.ts';

/** An fd of a frozen task, with what /proc says about it. */
export interface FdProbe {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N */
  link: string;
  /** stat() through the fd link */
  mode: number;
  rdev: number;
  ino: number;
  dev: number;
  size: number;
  /** open(2) status flags from fdinfo, O_CLOEXEC removed */
  flags: number;
  pos: bigint;
  cloexec: boolean;
  /** everything /proc/PID/fdinfo/N says */
  info: import('../../proc/index.ts').Fdinfo;
}

/** How established TCP connections are handled (--tcp-established, --tcp-close, --skip-in-flight). */
export interface TcpMode {
  established: boolean;
  close: boolean;
  skipInFlight: boolean;
  /** --network-lock; by default nftables where the machine has it, else iptables. */
  networkLock?: import('../net/netlock.ts').LockMethod;
}

/** How a dump ended, for kinds that hold something until then (sockets in repair mode). */
export type DumpOutcome = 'killed' | 'resumed' | 'failed';

export interface DumpFileCtx {
  log: Logger;
  shellJob: boolean;
  /** --ext-unix-sk: a datagram unix socket may be connected to a named socket outside the tree. */
  extUnixSk: boolean;
  /** The tree's mount namespaces are dumped: files keep the id of their mount (reg_file_entry.mnt_id). */
  mntIds?: boolean;
  /** A file_entry that no fd of the tree has (an external peer), with a new id. */
  addFile(make: (id: number) => MessageInput<'file_entry'>): number;
  tcp: TcpMode;
  /** This dump's id (inventory.dump_criu_run_id): it names the network lock's table. */
  runId: string;
  /** The lock of the tree's own network namespace as a whole, which stands for every connection's. */
  netnsLock?: import('../net/netlock.ts').LockSpec;
  /** The tree owns its network namespace and it is saved whole (its devices with it). */
  netnsSaved?: boolean;
  /** The network lock as it stands, before each change: for the journal and the inventory. */
  recordLock(spec: import('../net/netlock.ts').LockSpec): void;
  /** Sockets about to go into TCP repair mode, for the journal. */
  recordRepair(socks: Array<{ pid: number; fd: number; ino: number; reuseaddr: number }>): void;
  /** Run when the dump ends: after the tree is killed, or before it is resumed. */
  atEnd(fn: (how: DumpOutcome) => void): void;
  /** Add an entry to an image of its own (pipes-data.img, tty-info.img ...). */
  addEntry<K extends EntryKind>(kind: K, ...a: AddArgs<K>): void;
  /** Each fd kind for this dump, with its state (kindSession makes them). */
  kinds: KindSessions;
  regPath(path: string, flags: number, extra?: RegExtra): number;
  /** A REG entry for a deleted file reached through `source`, saved as a ghost file (FileTable.regDeleted). */
  regDeleted(name: string, source: string, flags: number, extra?: RegExtra): number;
  /** --force-irmap: where to look for a watched inode whose handle leads to no path (--irmap-scan-path; [] for CRIU's defaults). */
  irmap?: readonly string[];
  /** The dump's ghost files: a deleted file's content, saved once per inode. */
  ghosts: import('./ghost.ts').GhostDump;
  /** The file id of a task's fd (or criu-ts's own, for a file in flight), dumping the file on first sight. */
  fileId(pid: number, fd: number): number;
  /** Every live task of the dumped tree (which sockets are inside it). */
  treePids: number[];
  /** The id of a task's network namespace, as in its ids image. */
  netNsId(pid: number): number;
  /** The id of the network namespace of this inode, if a task of the tree is in it. */
  netNsIdOfIno?(ino: number): number | undefined;
  /** The id of a task's namespace of a kind (net, ipc...), as in its ids image. */
  nsIdOf(pid: number, kind: string): number | undefined;
  /** memfd.img inode id for the memfd behind `link`, saving its content on first sight. */
  memfdInode(link: string): number;
  /** Is this a thread, process or process group of the dumped tree (a file owner that comes back)? */
  inTree(id: number): boolean;
}

export interface RestoreFileCtx {
  log: Logger;
  shellJob: boolean;
  tcp: TcpMode;
  /** Run once every fd of the tree is open, before criu-ts closes its own (TCP repair off). */
  beforeRelease(fn: () => void): void;
  /** Entries of an image of the fd kind's own, read lazily and cached. */
  entries<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Array<{ entry: Message<EntryOf<K>>; extra?: Buffer }>;
  /** Local fds opened for restore; closed by the orchestrator at the end. */
  keep(fd: number): number;
  /** Each fd kind for this restore, with its state (kindSession makes them). */
  kinds: KindSessions;
  files: Map<number, FileEntry>;
  /** The path to open for the REG entry `reg`: its name, or where its ghost file was made. */
  pathOf(reg: { id: number; name: string }): string;
  /** A path of the tree's mount namespace that holds mount `mntId` (the root's without one), as criu-ts opens it. */
  nsPath(path: string, mntId?: number): string;
  /** Where the ghost file of a deleted inode (kernel s_dev, ino) is made, if the dump saved one. */
  inodePath(sdev: number, ino: bigint): string | undefined;
  /**
   * The root of the restored mount namespace the mount `mntId` is in (the root's without one),
   * as criu-ts reaches it; undefined when the tree has no mount namespace of its own. Asked
   * before criu-ts chroots there: no other thread of criu-ts opens a file by path after it.
   */
  mntRoot?(mntId: number | undefined): string | undefined;
  /**
   * Is mount `mntId` in a mount namespace that a task below the root makes? Files on it
   * open once every task exists (opensLate); undefined without mount namespaces of the tree.
   */
  laterMount?(mntId: number): boolean;
  /** criu-ts's fd of the master of pty `index` if the mount restore opened it already (once). */
  presetPty?(index: number): number | undefined;
  /** criu-ts's local fd of a file id (a file in flight), opened on first use and shared with the tasks' fds. */
  fileFd(id: number): number;
  /** criu-ts's fd of the restored memfd with this inode id (made on first use). */
  memfd(inodeId: number): number;
  /** --inherit-fd: criu-ts's own fds standing for files of the images. */
  inheritFds: readonly InheritFd[];
  /** Run `fn` in the network namespace `nsId` of the images when it is not the one criu-ts is in (a nested one). */
  inNetNs?<T>(nsId: number | undefined, fn: () => T): T;
  /**
   * Ids of the files replaced by inherited fds: the caller's files as they are, so their
   * after-install work (queued data, owner) is marked done (the orchestrator's set).
   */
  inheritedIds: Set<number>;
}

export type FileEntry = Message<'file_entry'>;
/** The file_entry fields that hold one kind's entry (reg, pipe, ...). */
export type FileField = Exclude<keyof FileEntry & keyof MessageInput<'file_entry'>, 'type' | 'id'>;
/** A kind's own entry in file_entry, as read. */
export type KindEntry<F extends FileField> = NonNullable<FileEntry[F]>;
/** A kind's own entry in file_entry, as written. */
export type KindInput<F extends FileField> = NonNullable<MessageInput<'file_entry'>[F]>;

interface KindBase<F extends FileField> {
  /** fd_types value in CRIU's images. */
  readonly type: number;
  readonly name: string;
  /** Where the kind's entry sits in file_entry. */
  readonly field: F;
  /** What of an open file of this kind /proc shows and the kind saves (see src/dump/claims.ts). */
  readonly claims: FdClaims;
  /** Does this kind handle the probed fd? */
  matches(p: FdProbe): boolean;
  /** State that needs the task's own fd numbers (epoll targets), once all its fds are in place. */
  afterInstall?(e: KindEntry<F>, fd: number, t: Tracee, area: InjectionArea, ctx: RestoreFileCtx): void;
  /** afterInstall runs for every fd of every task that has the file, not once per file. */
  readonly eachFd?: boolean;
}

export interface FdClaims {
  /** Status flags (fdinfo "flags") that come back; the access mode and O_LARGEFILE always do. */
  readonly flags: number;
  /** fdinfo lines (by key) the kind saves, besides pos, flags, mnt_id and ino. */
  readonly fields?: readonly string[];
  /** Why this particular file cannot be saved, when its kind alone does not say (`tree`: the dumped tree's ids). */
  check?(p: FdProbe, tree?: ReadonlySet<number>): string | undefined;
}

/** O_ASYNC: set again on every kind, with the file's owner (fown.ts). */
export const FASYNC = 0o20000;
/** Every flag open(2) keeps in the open file description: a file reopened with its flags has them all. */
export const OPEN_FLAGS = 0xffffffff;

/** An fd kind whose fds are each dumped and opened on their own. */
export interface PlainKindDef<F extends FileField> extends KindBase<F> {
  /** The kind's entry for files.img. */
  dump(p: FdProbe, id: number, ctx: DumpFileCtx): KindInput<F>;
  /** A local fd sharing the dumped open file description's state. */
  open(e: KindEntry<F>, ctx: RestoreFileCtx): number;
}

/**
 * An fd kind with state across the fds of one dump or one restore (data saved once per
 * pipe, one kernel pipe for both ends): `state()` makes it fresh for each.
 */
export interface StatefulKindDef<F extends FileField, S> extends KindBase<F> {
  state(): S;
  dump(p: FdProbe, id: number, ctx: DumpFileCtx, state: S): KindInput<F>;
  open(e: KindEntry<F>, ctx: RestoreFileCtx, state: S): number;
}

/** One fd kind within one dump or one restore. */
export interface KindSession {
  /** The whole file_entry for files.img. */
  dump(p: FdProbe, id: number, ctx: DumpFileCtx): MessageInput<'file_entry'>;
  open(file: FileEntry, ctx: RestoreFileCtx): number;
}

export type KindSessions = Map<FileKind, KindSession>;

/** An fd kind as the fd table sees it, whichever field of file_entry it uses. */
export interface FileKind {
  readonly type: number;
  readonly name: string;
  readonly field: FileField;
  readonly claims: FdClaims;
  matches(p: FdProbe): boolean;
  /** The kind for one dump or one restore, with fresh state. */
  session(): KindSession;
  afterInstall?(file: FileEntry, fd: number, t: Tracee, area: InjectionArea, ctx: RestoreFileCtx): void;
  readonly eachFd?: boolean;
}

/** An fd kind whose fds are each dumped and opened on their own. */
export function fileKind<F extends FileField>(def: PlainKindDef<F>): FileKind {
  return statefulKind<F, undefined>({
    ...def,
    state: () => undefined,
    dump: (p, id, ctx) => def.dump(p, id, ctx),
    open: (e, ctx) => def.open(e, ctx),
  });
}

/** An fd kind with state across the fds of one dump or one restore. */
export function statefulKind<F extends FileField, S>(def: StatefulKindDef<F, S>): FileKind {
  const entry = (file: FileEntry): KindEntry<F> => {
    const e = file[def.field];
    if (e === undefined) throw new Error(`files.img: ${def.name} file ${file.id} has no ${def.field} entry`);
    return e;
  };
  const { afterInstall } = def;
  return {
    type: def.type,
    name: def.name,
    field: def.field,
    claims: def.claims,
    matches: (p) => def.matches(p),
    ...(def.eachFd ? { eachFd: true } : {}),
    session(): KindSession {
      const state = def.state();
      return {
        dump: (p, id, ctx) => ({ type: def.type, id, [def.field]: def.dump(p, id, ctx, state) }),
        open: (file, ctx) => def.open(entry(file), ctx, state),
      };
    },
    ...(afterInstall
      ? {
          afterInstall: (file: FileEntry, fd: number, t: Tracee, area: InjectionArea, ctx: RestoreFileCtx) =>
            afterInstall(entry(file), fd, t, area, ctx),
        }
      : {}),
  };
}

/** The kind's session in this dump or restore, made on first use. */
export function kindSession(kind: FileKind, sessions: KindSessions): KindSession {
  let s = sessions.get(kind);
  if (!s) {
    s = kind.session();
    sessions.set(kind, s);
  }
  return s;
}

/** CRIU's fd_types (fdinfo.proto), from the image schema. */
export const FD_TYPE = enums.fd_types.values;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000,
  S_IFDIR = 0o040000,
  S_IFCHR = 0o020000,
  S_IFIFO = 0o010000,
  S_IFSOCK = 0o140000,
  S_IFBLK = 0o060000;

export const fown = (): MessageInput<'fown_entry'> => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });
