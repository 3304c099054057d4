// The fd table of a task (fdinfo-N.img + file_entry objects in files.img): probing fds,
// finding shared open file descriptions, and dispatching to the kind that handles each.
import fs from 'node:fs';
import { listFds, readFdinfo, readLink } from '../../proc/index.ts';
import { kcmp, KCMP, O, pidfdOpen, close } from '../../kernel/index.ts';
import { regFile } from './reg.ts';
import { pipeFile } from './pipe.ts';
import { ttyFile } from './tty.ts';
import { fifoFile } from './fifo.ts';
import { memfdFile } from './memfd.ts';
import { inotifyFile } from './inotify.ts';
import { pidfdFile } from './pidfd.ts';
import { nsFile } from './nsfile.ts';
import { tunFile } from './tun.ts';
import { fanotifyFile } from './fanotify.ts';
import { unixSocketFile } from '../net/unix.ts';
import { lateSockets } from '../net/unix-restore.ts';
import { eventfdFile, eventpollFile, signalfdFile, timerfdFile } from './anon.ts';
import { inetFile } from '../net/inet.ts';
import { netlinkFile } from '../net/netlink.ts';
import { packetFile } from '../net/packet.ts';
import { dumpFown, restoreFown, setAsync } from './fown.ts';
import { kindSession, FASYNC, type FdProbe, type FileKind, type DumpFileCtx, type RestoreFileCtx } from './types.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { FileTable, Message, MessageInput } from '../types.ts';
import type { FileEntry } from './types.ts';
import { NotSupportedError } from '../../errors.ts';
import { inheritedFd } from './inherit.ts';
import { IMG } from '../../images/index.ts';

type Fdinfo = Message<'fdinfo_entry'>;

export type { FdProbe, FileKind, DumpFileCtx, RestoreFileCtx, FileEntry, KindSessions, TcpMode, DumpOutcome } from './types.ts';
export { FD_TYPE, fown } from './types.ts';
export { restoreCtty, checkInheritedCtty } from './pty.ts';

/** Order matters: a tty is a character device too. */
const kinds: FileKind[] = [
  ttyFile,
  pipeFile,
  fifoFile,
  memfdFile,
  eventfdFile,
  eventpollFile,
  signalfdFile,
  timerfdFile,
  inotifyFile,
  fanotifyFile,
  pidfdFile,
  nsFile,
  tunFile,
  inetFile,
  netlinkFile,
  packetFile,
  unixSocketFile,
  regFile,
];

export function probeFd(pid: number, fd: number): FdProbe {
  const link = readLink(pid, `fd/${fd}`);
  const info = readFdinfo(pid, fd);
  let st: fs.Stats;
  try {
    st = fs.statSync(`/proc/${pid}/fd/${fd}`);
  } catch (e) {
    throw new Error(`fd ${fd} of task ${pid} (${link}) cannot be examined: ${(e as Error).message}`);
  }
  return {
    pid,
    fd,
    link,
    mode: st.mode,
    rdev: Number(st.rdev),
    ino: Number(st.ino),
    dev: Number(st.dev),
    size: Number(st.size),
    flags: info.flags & ~O.CLOEXEC,
    pos: info.pos,
    cloexec: (info.flags & O.CLOEXEC) !== 0,
    info,
  };
}

function describeUnsupported(p: FdProbe): string {
  if (p.link.startsWith('socket:')) return 'a socket';
  if (p.link.startsWith('anon_inode:')) return `an ${p.link.slice(11)} file`;
  return `of an unsupported kind (mode 0${(p.mode >>> 0).toString(8)})`;
}

/** The kind that saves this fd, if any. */
export function fdKind(p: FdProbe): FileKind | undefined {
  return kinds.find((k) => k.matches(p));
}

type Fown = MessageInput<'fown_entry'>;

/** The kind's own entry in a file_entry, with its flags and owner where its message has them (not fifo_entry). */
function kindEntry(kind: FileKind, file: FileEntry | MessageInput<'file_entry'>): { flags?: number; fown?: Fown } | undefined {
  return (file as Record<string, unknown>)[kind.field] as { flags?: number; fown?: Fown } | undefined;
}

/** Why a file_entry cannot be restored, checked before any process exists; undefined if it can. */
export function fileEntryProblem(file: FileEntry): string | undefined {
  const kind = kinds.find((k) => k.type === file.type);
  if (!kind) return `type ${file.type} is not supported yet`;
  if (!(file as Record<string, unknown>)[kind.field]) return `type ${file.type} has no ${kind.field} entry`;
  return undefined;
}

/** Open file descriptions already given an id, for sharing detection with kcmp. */
export class FileIdentity {
  private byIno = new Map<string, Array<{ pid: number; fd: number; id: number }>>();

  find(p: FdProbe): number | undefined {
    for (const c of this.byIno.get(`${p.dev}:${p.ino}`) ?? []) {
      if (kcmp(c.pid, p.pid, KCMP.FILE, c.fd, p.fd) === 0) return c.id;
    }
    return undefined;
  }

  add(p: FdProbe, id: number): void {
    const k = `${p.dev}:${p.ino}`;
    const l = this.byIno.get(k) ?? [];
    l.push({ pid: p.pid, fd: p.fd, id });
    this.byIno.set(k, l);
  }
}

/** The lowest fd of a task whose link reads `link` (socket:[N]), if any. */
export function fdHolding(pid: number, link: string): number | undefined {
  return listFds(pid).find((fd) => {
    try {
      return readLink(pid, `fd/${fd}`) === link;
    } catch {
      return false;
    }
  });
}

/** fdinfo entries of a task, adding a file_entry for every open file description not seen yet. */
export function dumpFds(pid: number, files: FileTable, identity: FileIdentity, ctx: DumpFileCtx): Fdinfo[] {
  const pidfd = pidfdOpen(pid);
  try {
    return listFds(pid).map((fd) => dumpFd(pid, fd, files, identity, ctx, pidfd));
  } finally {
    close(pidfd);
  }
}

/**
 * The fd's file id, adding a file_entry when its open file description is new: a task's fd,
 * or criu-ts's own for a file in flight in a socket queue. `pidfd` is the fd owner's.
 */
export function dumpFd(pid: number, fd: number, files: FileTable, identity: FileIdentity, ctx: DumpFileCtx, pidfd: number): Fdinfo {
  const p = probeFd(pid, fd);
  const kind = fdKind(p);
  if (!kind) throw new NotSupportedError(`fd ${fd} of task ${pid} (${p.link}) is ${describeUnsupported(p)}`);
  let id = identity.find(p);
  if (id === undefined) {
    id = files.newId();
    // Known before its dump: a socket's queue may hold the socket itself again (in flight).
    identity.add(p, id);
    const file = kindSession(kind, ctx.kinds).dump(p, id, ctx);
    saveFown(kind, file, dumpFown(pidfd, p, ctx.inTree), p);
    files.add(file);
  }
  return { id, flags: p.cloexec ? 1 : 0, type: kind.type, fd };
}

/** A local fd for a file id, opened on first use; `local` is shared by the whole restore. */
export function openFileId(id: number, ctx: RestoreFileCtx, local: Map<number, number>, what = `file ${id}`): number {
  const have = local.get(id);
  if (have !== undefined) return have;
  const file = ctx.files.get(id);
  if (!file) throw new Error(`files.img has no file with id ${id} (${what})`);
  const inherited = inheritedFd(file, ctx.inheritFds);
  if (inherited !== undefined) {
    ctx.log.info(`${what}: criu-ts's fd ${inherited} stands for file ${id} (inherit_fd)`);
    ctx.inheritedIds.add(id);
    local.set(id, inherited);
    return inherited;
  }
  const kind = kinds.find((k) => k.type === file.type);
  if (!kind) throw new NotSupportedError(`${what}: file type ${file.type}`);
  const fd = kindSession(kind, ctx.kinds).open(file, ctx);
  local.set(id, fd);
  return fd;
}

function saveFown(kind: FileKind, file: MessageInput<'file_entry'>, fown: Fown, p: FdProbe): void {
  const e = kindEntry(kind, file);
  if (e && 'fown' in e) e.fown = fown;
  else if (fown.pid || fown.signum)
    throw new NotSupportedError(
      `task ${p.pid}: fd ${p.fd} (${p.link}): a ${kind.name} with an owner or F_SETSIG (its image cannot hold them)`,
    );
}

/**
 * Owners and F_SETSIG of the open files (fown.ts), on criu-ts's fds of them, once every task
 * and thread that may own one exists.
 */
export function restoreOwners(local: Map<number, number>, files: Map<number, FileEntry>, hostPid?: (pid: number) => number): void {
  for (const [id, fd] of local) {
    const file = files.get(id);
    const kind = file && kinds.find((k) => k.type === file.type);
    const e = kind && kindEntry(kind, file);
    if (e?.fown) restoreFown(fd, e.fown, hostPid);
  }
}

/**
 * A local fd for each file id the task needs. `local` is shared by all tasks of a restore:
 * an id seen again (a description shared by fork or dup) reuses its fd, so it stays shared.
 */
export function openForRestore(fdinfo: Fdinfo[], ctx: RestoreFileCtx, local: Map<number, number>): Map<number, number> {
  for (const e of fdinfo) openFileId(e.id, ctx, local, `fd ${e.fd}`);
  return local;
}

/**
 * Give the task its fd table: it pulls each prepared local fd from criu-ts with pidfd_getfd
 * and dup3s it onto its number. `inherited` is the table it has already, copied from its
 * parent by fork: an fd there with the same file (so the same open file description) and
 * the same close-on-exec flag stays as it is, and every other inherited fd is closed first
 * (all of them for a stub from the helper).
 */
export function installFds(t: Tracee, fdinfo: Fdinfo[], local: Map<number, number>, selfPid: number, inherited: Fdinfo[] = []): void {
  const had = new Map(inherited.map((e) => [e.fd, e]));
  const kept = new Set<number>();
  for (const e of fdinfo) {
    const h = had.get(e.fd);
    if (h && h.id === e.id && ((h.flags ^ e.flags) & 1) === 0) kept.add(e.fd);
  }
  // A pidfd of criu-ts that the task inherited (it cannot name criu-ts) stays until the release.
  const own = [t.criuPidfd, t.courier?.remote].filter((f) => f !== undefined);
  // A stub from the helper has what criu-ts's helper had (criu-ts's own fds without
  // close-on-exec among them): every gap is closed, not only those with a known fd.
  for (const [from, to] of closeRanges([...had.keys(), ...own], new Set([...kept, ...own]), had.size === 0))
    t.syscall('close_range', from, to, 0);
  addFds(
    t,
    fdinfo.filter((e) => !kept.has(e.fd)),
    local,
    selfPid,
    fdinfo,
  );
}

/**
 * Pull the prepared local fds into the task at their numbers (pidfd_getfd + dup3), leaving
 * its other fds alone. `table` is the task's whole fd table: the pidfd goes above every fd
 * of it, so the dup3 that moves it there clobbers none.
 */
export function addFds(t: Tracee, fdinfo: Fdinfo[], local: Map<number, number>, selfPid: number, table: Fdinfo[]): void {
  if (!fdinfo.length) return;
  if (t.courier) {
    for (const e of fdinfo) {
      const src = local.get(e.id);
      if (src === undefined) throw new Error(`fd ${e.fd}: file ${e.id} was not opened for restore`);
      const tmp = t.takeFd(src);
      if (tmp === BigInt(e.fd)) {
        if (!(e.flags & 1)) t.syscall('fcntl', tmp, 2 /* F_SETFD */, 0);
        continue;
      }
      t.syscall('dup3', tmp, BigInt(e.fd), e.flags & 1 ? O.CLOEXEC : 0);
      t.syscall('close', tmp);
    }
    return;
  }
  const maxFd = table.reduce((m, e) => Math.max(m, e.fd), 2);
  let pidfd = t.criuPidfd !== undefined ? t.pidfdOfTracer() : t.syscall('pidfd_open', selfPid, 0);
  const high = BigInt(maxFd + 1);
  if (pidfd !== high) {
    t.syscall('dup3', pidfd, high, O.CLOEXEC);
    t.syscall('close', pidfd);
    pidfd = high;
  }
  try {
    for (const e of fdinfo) {
      const fd = BigInt(e.fd);
      const cloexec = (e.flags & 1) !== 0;
      const src = local.get(e.id);
      if (src === undefined) throw new Error(`fd ${e.fd}: file ${e.id} was not opened for restore`);
      const tmp = t.syscall('pidfd_getfd', pidfd, src, 0);
      if (tmp !== fd) {
        t.syscall('dup3', tmp, fd, cloexec ? O.CLOEXEC : 0);
        t.syscall('close', tmp);
      } else if (!cloexec) {
        t.syscall('fcntl', fd, 2 /* F_SETFD */, 0);
      }
    }
  } finally {
    t.syscallRaw('close', pidfd);
  }
}

/**
 * A file under /proc/PID of a task of the tree (`tree`): it can be opened only once that task
 * exists with its fds (a task's own /proc/self/fdinfo/N, a parent's /proc/CHILD/stat). Likewise
 * a file, watch or mark on a mount of a mount namespace the root is not in (ctx.laterMount):
 * the task that holds that namespace may come after this one; and a unix socket bound there,
 * with its group (lateSockets).
 */
export function opensLate(file: FileEntry | undefined, tree: Set<number>, ctx: RestoreFileCtx): boolean {
  const m = file?.reg ? /^\/proc\/(\d+)(\/|$)/.exec(file.reg.name) : null;
  if (m !== null && tree.has(Number(m[1]))) return true;
  const laterMount = ctx.laterMount;
  if (!laterMount || !file) return false;
  if (file.usk) return lateSockets(ctx).has(file.usk.ino);
  const ids = [
    file.reg?.mnt_id,
    ...(file.ify?.wd.map((w) => w.f_handle.mnt_id) ?? []),
    ...(file.ffy?.mark.map((k) => k.me?.mnt_id ?? k.ie?.f_handle.mnt_id) ?? []),
  ];
  return ids.some((id) => id !== undefined && laterMount(id));
}

/**
 * close_range spans that close every fd but the kept ones: the gaps between kept fds that
 * hold an inherited fd (with `all`, every gap), and everything above the last kept one. With
 * nothing inherited, everything.
 */
export function closeRanges(inherited: number[], kept: Set<number>, all = false): Array<[number, number]> {
  const MAX = 0xffffffff;
  if (!inherited.length) return [[0, MAX]];
  const out: Array<[number, number]> = [];
  const keep = [...kept].sort((a, b) => a - b);
  let from = 0;
  for (const k of [...keep, MAX + 1]) {
    const to = k - 1;
    if (to >= from && (all || inherited.some((fd) => fd >= from && fd <= to))) out.push([from, k > MAX ? MAX : to]);
    from = k + 1;
  }
  return out;
}

/** Per-kind work that needs the task's fd numbers, once per open file (e.g. epoll targets), or once per fd (`eachFd`). */
export function afterInstall(t: Tracee, area: InjectionArea, fdinfo: Fdinfo[], ctx: RestoreFileCtx, done: Set<number>): void {
  for (const e of fdinfo) {
    const file = ctx.files.get(e.id)!;
    const kind = kinds.find((k) => k.type === file.type);
    if (kind?.eachFd) kind.afterInstall?.(file, e.fd, t, area, ctx);
    if (done.has(e.id)) continue;
    const async = kind !== undefined && ((kindEntry(kind, file)?.flags ?? 0) & FASYNC) !== 0;
    if (!(kind?.afterInstall && !kind.eachFd) && !async) continue;
    done.add(e.id);
    if (async) setAsync(t, e.fd);
    if (!kind?.eachFd) kind?.afterInstall?.(file, e.fd, t, area, ctx);
  }
}

/**
 * Files in flight in the queues of the task's sockets whose kind keeps state through the
 * task's fd numbers (an epoll's targets), and that no fd of a task holds: the task does that
 * part on a copy it pulls from criu-ts and closes, as CRIU opens them in the queue's task.
 */
export function afterInstallInFlight(
  t: Tracee,
  area: InjectionArea,
  fdinfo: Fdinfo[],
  ctx: RestoreFileCtx,
  local: Map<number, number>,
  done: Set<number>,
): void {
  const mine = new Set(fdinfo.map((e) => e.id));
  for (const { entry } of ctx.entries(IMG.SK_QUEUES)) {
    if (!mine.has(entry.id_for)) continue;
    for (const id of entry.scm.flatMap((sc) => sc.rights)) {
      const file = ctx.files.get(id);
      const kind = file && kinds.find((k) => k.type === file.type);
      const src = local.get(id);
      if (!file || !kind?.afterInstall || src === undefined || done.has(id)) continue;
      done.add(id);
      const fd = t.takeFd(src);
      try {
        kind.afterInstall(file, Number(fd), t, area, ctx);
      } finally {
        t.syscallRaw('close', fd);
      }
    }
  }
}
