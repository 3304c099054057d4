// The fd table of a task (fdinfo-N.img + file_entry objects in files.img): probing fds,
// finding shared open file descriptions, and dispatching to the kind that handles each.
import fs from 'node:fs';
import { listFds, readFdinfo } from '../../proc/index.ts';
import { kcmp, KCMP, O } from '../../kernel/index.ts';
import { regFile } from './reg.ts';
import { pipeFile } from './pipe.ts';
import { ttyFile } from './tty.ts';
import { fifoFile } from './fifo.ts';
import { memfdFile } from './memfd.ts';
import { eventfdFile, eventpollFile, signalfdFile, timerfdFile } from './anon.ts';
import { inetFile } from '../net/inet.ts';
import { kindSession, type FdProbe, type FileKind, type DumpFileCtx, type RestoreFileCtx } from './types.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { FileTable, Message } from '../types.ts';
import type { FileEntry } from './types.ts';

type Fdinfo = Message<'fdinfo_entry'>;

export type { FdProbe, FileKind, DumpFileCtx, RestoreFileCtx, FileEntry, KindSessions, TcpMode, DumpOutcome } from './types.ts';
export { FD_TYPE, fown } from './types.ts';

/** Order matters: a tty is a character device too. */
const kinds: FileKind[] = [ttyFile, pipeFile, fifoFile, memfdFile, eventfdFile, eventpollFile, signalfdFile, timerfdFile, inetFile, regFile];

function probe(pid: number, fd: number): FdProbe {
  const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  const info = readFdinfo(pid, fd);
  let st: fs.Stats;
  try { st = fs.statSync(`/proc/${pid}/fd/${fd}`); } catch (e) {
    throw new Error(`fd ${fd} of task ${pid} (${link}) cannot be examined: ${(e as Error).message}`);
  }
  return {
    pid, fd, link, mode: st.mode, rdev: Number(st.rdev), ino: Number(st.ino), dev: Number(st.dev), size: Number(st.size),
    flags: info.flags & ~O.CLOEXEC, pos: info.pos, cloexec: (info.flags & O.CLOEXEC) !== 0, info,
  };
}

function describeUnsupported(p: FdProbe): string {
  if (p.link.startsWith('socket:')) return 'a socket';
  if (p.link.startsWith('anon_inode:')) return `an ${p.link.slice(11)} file`;
  return `of an unsupported kind (mode 0${(p.mode >>> 0).toString(8)})`;
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

/** fdinfo entries of a task, adding a file_entry for every open file description not seen yet. */
export function dumpFds(pid: number, files: FileTable, identity: FileIdentity, ctx: DumpFileCtx): Fdinfo[] {
  const out: Fdinfo[] = [];
  for (const fd of listFds(pid)) {
    const p = probe(pid, fd);
    const kind = kinds.find((k) => k.matches(p));
    if (!kind) throw new Error(`fd ${fd} of task ${pid} (${p.link}) is ${describeUnsupported(p)}; not supported yet`);
    let id = identity.find(p);
    if (id === undefined) {
      id = files.newId();
      files.add(kindSession(kind, ctx.kinds).dump(p, id, ctx));
      identity.add(p, id);
    }
    out.push({ id, flags: p.cloexec ? 1 : 0, type: kind.type, fd });
  }
  return out;
}

/**
 * A local fd for each file id the task needs. `local` is shared by all tasks of a restore:
 * an id seen again (a description shared by fork or dup) reuses its fd, so it stays shared.
 */
export function openForRestore(fdinfo: Fdinfo[], ctx: RestoreFileCtx, local: Map<number, number>): Map<number, number> {
  for (const e of fdinfo) {
    const id = e.id;
    if (local.has(id)) continue;
    const file = ctx.files.get(id);
    if (!file) throw new Error(`files.img has no file with id ${id} (fd ${e.fd})`);
    const kind = kinds.find((k) => k.type === file.type);
    if (!kind) throw new Error(`fd ${e.fd}: file type ${file.type} is not supported yet`);
    local.set(id, kindSession(kind, ctx.kinds).open(file, ctx));
  }
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
  for (const [from, to] of closeRanges([...had.keys()], kept)) t.syscall('close_range', from, to, 0);
  fdinfo = fdinfo.filter((e) => !kept.has(e.fd));
  if (!fdinfo.length) return;
  const maxFd = fdinfo.reduce((m, e) => Math.max(m, e.fd), 2);
  let pidfd = t.syscall('pidfd_open', selfPid, 0);
  const high = BigInt(maxFd + 1);
  if (pidfd !== high) { t.syscall('dup3', pidfd, high, O.CLOEXEC); t.syscall('close', pidfd); pidfd = high; }
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
 * close_range spans that close every fd but the kept ones: the gaps between kept fds that
 * hold an inherited fd, and everything above the last kept one. With nothing inherited
 * (a stub from the helper), everything.
 */
export function closeRanges(inherited: number[], kept: Set<number>): Array<[number, number]> {
  const MAX = 0xffffffff;
  if (!inherited.length) return [[0, MAX]];
  const out: Array<[number, number]> = [];
  const keep = [...kept].sort((a, b) => a - b);
  let from = 0;
  for (const k of [...keep, MAX + 1]) {
    const to = k - 1;
    if (to >= from && inherited.some((fd) => fd >= from && fd <= to)) out.push([from, k > MAX ? MAX : to]);
    from = k + 1;
  }
  return out;
}

/** Per-kind work that needs the task's fd numbers, once per open file (e.g. epoll targets). */
export function afterInstall(t: Tracee, area: InjectionArea, fdinfo: Fdinfo[], files: Map<number, FileEntry>, done: Set<number>): void {
  for (const e of fdinfo) {
    const id = e.id;
    if (done.has(id)) continue;
    const file = files.get(id)!;
    const kind = kinds.find((k) => k.type === file.type);
    if (!kind?.afterInstall) continue;
    done.add(id);
    kind.afterInstall(file, e.fd, t, area);
  }
}
