// The interface every fd kind implements: how to describe an open file at dump time, and
// how to produce a local descriptor for it at restore time, which the orchestrator then
// moves into the task with pidfd_getfd.
import type { Logger, Msg } from '../types.ts';

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

export interface DumpFileCtx {
  log: Logger;
  shellJob: boolean;
  /** Add an extra image entry (pipes-data.img, tty-info.img ...). */
  addEntry(image: string, entry: Msg, extra?: Buffer): void;
  /** Process-wide memo, so that e.g. pipe data is saved once per pipe. */
  seen: Set<string>;
  regPath(path: string, flags: number, extra?: Msg): number;
  /** memfd.img inode id for the memfd behind `link`, saving its content on first sight. */
  memfdInode(link: string): number;
  /** Is this a thread, process or process group of the dumped tree (a file owner that comes back)? */
  inTree(id: number): boolean;
}

export interface RestoreFileCtx {
  log: Logger;
  shellJob: boolean;
  /** Entries of an extra image, read lazily and cached. */
  entries(image: string): Array<{ entry: Msg; extra?: Buffer }>;
  /** Local fds opened for restore; closed by the orchestrator at the end. */
  keep(fd: number): number;
  /** Process-wide memo (one kernel pipe per pipe_id). */
  memo: Map<string, unknown>;
  files: Map<number, Msg>;
  /** criu-ts's fd of the restored memfd with this inode id (made on first use). */
  memfd(inodeId: number): number;
}

export interface FileKind {
  /** fd_types value in CRIU's images. */
  readonly type: number;
  readonly name: string;
  /** Does this kind handle the probed fd? */
  matches(p: FdProbe): boolean;
  /** The file_entry for files.img (the caller fills type and id). */
  dump(p: FdProbe, id: number, ctx: DumpFileCtx): Msg;
  /** A local fd sharing the dumped open file description's state. */
  open(file: Msg, ctx: RestoreFileCtx): number;
  /** What of an open file of this kind /proc shows and the kind saves (see src/dump/claims.ts). */
  readonly claims: FdClaims;
  /** State that needs the task's own fd numbers (epoll targets), once all its fds are in place. */
  afterInstall?(file: Msg, fd: number, t: import('../../compel/index.ts').Tracee, area: import('../../compel/index.ts').InjectionArea): void;
}

export interface FdClaims {
  /** Status flags (fdinfo "flags") that come back; the access mode and O_LARGEFILE always do. */
  readonly flags: number;
  /** fdinfo lines (by key) the kind saves, besides pos, flags, mnt_id and ino. */
  readonly fields?: readonly string[];
  /** Why this particular file cannot be saved, when its kind alone does not say. */
  check?(p: FdProbe): string | undefined;
}

/** O_ASYNC: set again on every kind, with the file's owner (fown.ts). */
export const FASYNC = 0o20000;
/** Every flag open(2) keeps in the open file description: a file reopened with its flags has them all. */
export const OPEN_FLAGS = 0xffffffff;

export const FD_TYPE = { REG: 1, PIPE: 2, FIFO: 3, INETSK: 4, UNIXSK: 5, EVENTFD: 6, EVENTPOLL: 7, INOTIFY: 8, SIGNALFD: 9, PACKETSK: 10, TTY: 11, TIMERFD: 17, MEMFD: 18 } as const;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFCHR = 0o020000, S_IFIFO = 0o010000, S_IFSOCK = 0o140000, S_IFBLK = 0o060000;

export const fown = (): Msg => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });
