// Pseudo-terminals outside a shell job: a master (/dev/ptmx) and its slaves (/dev/pts/N),
// each side with a tty_info_entry of its own (CRIU's tty-info.img): the pair's index, the
// slave's line settings and window size, the master's packet mode and lock, exclusive mode,
// and the session and foreground group whose controlling terminal it is. At restore the
// master is opened at its index again (/dev/ptmx gives the lowest free one: it is opened
// until it gives the dumped one), the slaves through it, and a session leader takes its
// controlling terminal back (TIOCSCTTY) with its foreground group.
import fs from 'node:fs';
import { ioctl, O, copyTaskFd, close, SysError } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { NotSupportedError } from '../../errors.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { dumpTermios, restoreTermios } from './termios.ts';
import type { DumpFileCtx, FdProbe, RestoreFileCtx } from './types.ts';
import type { Message, MessageInput } from '../types.ts';

const TIOC = {
  GPTN: 0x80045430,
  SPTLCK: 0x40045431,
  GPTLCK: 0x80045439,
  PKT: 0x5420,
  GPKT: 0x80045438,
  EXCL: 0x540c,
  GEXCL: 0x80045440,
  SCTTY: 0x540e,
  GPGRP: 0x540f,
  SPGRP: 0x5410,
  GSID: 0x5429,
  GWINSZ: 0x5413,
  SWINSZ: 0x5414,
  INQ: 0x541b,
  OUTQ: 0x5411,
} as const;
const TTY_PTY = 1;

export const major = (rdev: number) => (rdev >> 8) & 0xfff;
export const minor = (rdev: number) => (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
export const isPtmx = (rdev: number) => major(rdev) === 5 && minor(rdev) === 2;
export const isPtySlave = (rdev: number) => major(rdev) >= 136 && major(rdev) <= 143;
const slaveIndex = (rdev: number) => minor(rdev) + (major(rdev) - 136) * 256;

/** tty-info ids: one per side of a pair, as CRIU numbers them (index << 1, the master odd). */
const infoId = (index: number, master: boolean) => (index << 1) | (master ? 1 : 0);

function int(fd: number, req: number): number {
  const b = Buffer.alloc(4);
  ioctl(fd, req, b);
  return b.readInt32LE(0);
}

/** An ioctl's int, or undefined when the tty answers ENOTTY (TIOCGSID of a tty that is no one's controlling terminal). */
function intOrNone(fd: number, req: number): number | undefined {
  try {
    return int(fd, req);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENOTTY') return undefined;
    throw e;
  }
}

/** Does a task of the tree hold the master of pseudo-terminal `index`? fdinfo of a ptmx fd says its tty-index. */
function masterInTree(index: number, pids: number[]): boolean {
  const line = `tty-index:\t${index}\n`;
  return pids.some((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fdinfo`).some((fd) => {
        try {
          return fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').includes(line);
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/** The session and foreground group whose controlling terminal the tty behind fd `fd` of task `pid` is (0 and 0: none). */
export function cttyOf(pid: number, fd: number): { sid: number; pgrp: number } {
  const local = copyTaskFd(pid, fd);
  try {
    const sid = intOrNone(local, TIOC.GSID) ?? 0;
    return { sid, pgrp: sid ? (intOrNone(local, TIOC.GPGRP) ?? 0) : 0 };
  } finally {
    close(local);
  }
}

/** A slave's line settings and the owner of its /dev/pts node (grantpt, or a chown). */
function slaveAttrs(p: FdProbe): Pick<MessageInput<'tty_info_entry'>, 'termios' | 'uid' | 'gid'> {
  const st = fs.statSync(`/proc/${p.pid}/fd/${p.fd}`);
  return { termios: dumpTermios(`/proc/${p.pid}/fd/${p.fd}`), uid: st.uid, gid: st.gid };
}

/** The dump side: the entries of a pty fd, its tty_info written once per side. */
export function dumpPty(p: FdProbe, id: number, ctx: DumpFileCtx, infos: Set<number>): MessageInput<'tty_file_entry'> {
  const master = isPtmx(p.rdev);
  const local = copyTaskFd(p.pid, p.fd);
  try {
    const index = master ? int(local, TIOC.GPTN) : slaveIndex(p.rdev);
    if (!master && !masterInTree(index, ctx.treePids)) {
      throw new NotSupportedError(
        `task ${p.pid}: fd ${p.fd} (${p.link}): its master is not in the dumped tree; dump it as a shell job (--shell-job)`,
      );
    }
    let unread: number;
    try {
      unread = int(local, TIOC.INQ) + (master ? 0 : int(local, TIOC.OUTQ));
    } catch (e) {
      if (e instanceof SysError && e.code === 'EIO')
        throw new NotSupportedError(`task ${p.pid}: fd ${p.fd} (${p.link}): its master was closed`);
      throw e;
    }
    if (unread) throw new NotSupportedError(`task ${p.pid}: fd ${p.fd} (${p.link}): ${unread} bytes of unread terminal data`);
    const tid = infoId(index, master);
    if (!infos.has(tid)) {
      infos.add(tid);
      const sid = intOrNone(local, TIOC.GSID);
      const ws = Buffer.alloc(8);
      ioctl(local, TIOC.GWINSZ, ws);
      ctx.addEntry(IMG.TTY_INFO, {
        id: tid,
        type: TTY_PTY,
        locked: master ? int(local, TIOC.GPTLCK) !== 0 : false,
        exclusive: int(local, TIOC.GEXCL) !== 0,
        packet_mode: master ? int(local, TIOC.GPKT) !== 0 : false,
        sid: sid ?? 0,
        pgrp: sid ? (intOrNone(local, TIOC.GPGRP) ?? 0) : 0,
        rdev: p.rdev,
        ...(master ? {} : slaveAttrs(p)),
        winsize: { ws_row: ws.readUInt16LE(0), ws_col: ws.readUInt16LE(2), ws_xpixel: ws.readUInt16LE(4), ws_ypixel: ws.readUInt16LE(6) },
        pty: { index },
      });
    }
    return {
      id,
      tty_info_id: tid,
      flags: p.flags,
      fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
      regf_id: ctx.regPath(p.link, p.flags),
    };
  } finally {
    close(local);
  }
}

/** The restore's state: criu-ts's master fd of each pty index. */
export type PtyRestore = Map<number, number>;

type TtyFile = Message<'tty_file_entry'>;

function infoOf(ctx: RestoreFileCtx, id: number): Message<'tty_info_entry'> {
  const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.id === id)?.entry;
  if (!info?.pty) throw new NotSupportedError(`tty-info.img: no pseudo-terminal ${id}`);
  return info;
}

/** /dev/ptmx opened until it gives `index`: the kernel hands out the lowest free one. */
function openPtmxAt(path: string, index: number, flags: number): number {
  const extra: number[] = [];
  try {
    for (let i = 0; i < 64; i++) {
      const fd = fs.openSync(path, flags | O.NOCTTY | O.CLOEXEC);
      const got = int(fd, TIOC.GPTN);
      if (got === index) return fd;
      extra.push(fd);
      if (got > index) break;
    }
  } finally {
    for (const fd of extra) close(fd);
  }
  throw new NotSupportedError(`pseudo-terminal ${index} is taken on this system`);
}

/** criu-ts's fd for a pty file: the master at its index, or a slave opened through its master. */
export function openPty(tty: TtyFile, ctx: RestoreFileCtx, masters: PtyRestore): number {
  const info = infoOf(ctx, tty.tty_info_id);
  const index = info.pty!.index;
  const reg = ctx.files.get(tty.regf_id ?? -1)?.reg;
  const flags = tty.flags & ~(O.CREAT | O.TRUNC | O.EXCL);
  if (info.id & 1) {
    const fd = ctx.keep(openPtmxAt(reg?.name ?? '/dev/ptmx', index, flags));
    masters.set(index, fd);
    const zero = Buffer.alloc(4);
    ioctl(fd, TIOC.SPTLCK, zero);
    if (info.packet_mode) ioctl(fd, TIOC.PKT, Buffer.from([1, 0, 0, 0]));
    if (info.exclusive) ioctl(fd, TIOC.EXCL);
    // The lock goes back once every slave is open.
    if (info.locked) ctx.beforeRelease(() => ioctl(fd, TIOC.SPTLCK, Buffer.from([1, 0, 0, 0])));
    return fd;
  }
  if (!masters.has(index)) {
    // The master is opened first, whichever fd number it has.
    const m = [...ctx.files.values()].find((f) => f.tty && f.tty.tty_info_id === infoId(index, true));
    if (!m) throw new NotSupportedError(`pseudo-terminal ${index}: its master is not in the dump`);
    ctx.fileFd(m.id);
  }
  const path = reg?.name ?? `/dev/pts/${index}`;
  const fd = ctx.keep(fs.openSync(path, flags | O.NOCTTY | O.CLOEXEC));
  if (info.termios) restoreTermios(fd, info.termios);
  if (info.uid !== undefined && info.gid !== undefined) fs.fchownSync(fd, info.uid, info.gid);
  if (info.winsize) {
    const ws = Buffer.alloc(8);
    ws.writeUInt16LE(info.winsize.ws_row, 0);
    ws.writeUInt16LE(info.winsize.ws_col, 2);
    ws.writeUInt16LE(info.winsize.ws_xpixel, 4);
    ws.writeUInt16LE(info.winsize.ws_ypixel, 6);
    ioctl(fd, TIOC.SWINSZ, ws);
  }
  return fd;
}

/**
 * A session leader takes back its controlling terminal, a slave of the dump (whichever task
 * holds an fd of it), with its foreground group: through a copy of criu-ts's fd of it.
 */
export function restoreCtty(t: Tracee, area: InjectionArea, sid: number, ctx: RestoreFileCtx): void {
  const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.sid === sid)?.entry;
  if (!info) return;
  let local: number;
  if (info.pty) {
    // A slave of the dump, or, when only its master was open, the slave opened by its path.
    const slave = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === infoId(info.pty!.index, false));
    const master = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === infoId(info.pty!.index, true));
    if (!slave && master) ctx.fileFd(master.id);
    local = slave ? ctx.fileFd(slave.id) : ctx.keep(fs.openSync(`/dev/pts/${info.pty.index}`, O.RDWR | O.NOCTTY | O.CLOEXEC));
  } else {
    // A virtual terminal or the console, through a file of it.
    const file = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === info.id);
    if (!file) throw new NotSupportedError(`tty-info.img: the controlling terminal of session ${sid} has no file`);
    local = ctx.fileFd(file.id);
  }
  const pidfd = t.pidfdOfTracer();
  let fd: bigint;
  try {
    fd = t.syscall('pidfd_getfd', pidfd, local, 0);
  } finally {
    t.syscallRaw('close', pidfd);
  }
  try {
    t.syscall('ioctl', fd, TIOC.SCTTY, 0);
    if (info.pgrp) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(info.pgrp);
      area.reset();
      t.syscall('ioctl', fd, TIOC.SPGRP, area.put(b));
    }
  } finally {
    t.syscallRaw('close', fd);
  }
}

/**
 * Why a task's controlling terminal (`ttyNr`, from stat) cannot come back, if it cannot: only
 * a pseudo-terminal that some task of the tree (`tree`) holds (or its master), whose session leader `sid` is in it.
 */
export function cttyProblem(ttyNr: number, sid: number, tree: number[], byPath: boolean): string | undefined {
  if (!isPtySlave(ttyNr) && !byPath)
    return 'it is not a pseudo-terminal, a virtual terminal or the console; dump it as a shell job (--shell-job)';
  if (!tree.includes(sid)) return `its session leader ${sid} is not in the dumped tree; dump it as a shell job (--shell-job)`;
  const holds = (pid: number) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return Number(fs.statSync(`/proc/${pid}/fd/${fd}`).rdev) === ttyNr;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  };
  if (tree.some(holds) || (isPtySlave(ttyNr) && masterInTree(slaveIndex(ttyNr), tree))) return undefined;
  return 'no task of the tree holds an fd of it or of its master';
}
