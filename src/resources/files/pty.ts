// Pseudo-terminals outside a shell job: a master (/dev/ptmx) and its slaves (/dev/pts/N),
// each side with a tty_info_entry of its own (CRIU's tty-info.img): the pair's index, the
// slave's line settings and window size, the master's packet mode and lock, exclusive mode,
// and the session and foreground group whose controlling terminal it is. At restore the
// master is opened at its index again (/dev/ptmx gives the lowest free one: it is opened
// until it gives the dumped one), the slaves through it, and a session leader takes its
// controlling terminal back (TIOCSCTTY) with its foreground group.
import fs from 'node:fs';
import path from 'node:path';
import { ioctl, O, copyTaskFd, close, SysError } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { openInTask, pullFd } from '../../compel/open.ts';
import { deletedName } from './ghost.ts';
import { termiosOf, lockedTermiosOf, restoreTermios, restoreLockedTermios } from './termios.ts';
import { dumpQueued, restoreQueued, type PtyEnd, type PtySide } from './ttydata.ts';
import { fown, type DumpFileCtx, type FdProbe, type RestoreFileCtx } from './types.ts';
import type { Message, MessageInput } from '../types.ts';
import { readStat, readStatus } from '../../proc/index.ts';

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
  GDEV: 0x80045432,
  GWINSZ: 0x5413,
  SWINSZ: 0x5414,
  INQ: 0x541b,
  OUTQ: 0x5411,
} as const;
const TTY_PTY = 1,
  TTY_CTTY = 4;
/** CRIU's tty-info id of /dev/tty (its index 1006, shifted as every tty's). */
const CTTY_INFO_ID = 1006 << 1;

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

/** The first fd of a task of `pids` for which `is` holds. */
function fdInTree(pids: readonly number[], is: (pid: number, fd: string) => boolean): PtyEnd | undefined {
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (is(pid, fd)) return { pid, fd: Number(fd) };
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}

/** A task's fd of the master of pseudo-terminal `index`: fdinfo of a ptmx fd says its tty-index. */
function masterInTree(index: number, pids: readonly number[]): PtyEnd | undefined {
  const line = `tty-index:\t${index}\n`;
  return fdInTree(pids, (pid, fd) => fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').includes(line));
}

/** A task's fd of a slave of pseudo-terminal `index`. */
function slaveInTree(index: number, pids: readonly number[]): PtyEnd | undefined {
  return fdInTree(pids, (pid, fd) => {
    const rdev = Number(fs.statSync(`/proc/${pid}/fd/${fd}`).rdev);
    return isPtySlave(rdev) && slaveIndex(rdev) === index;
  });
}

/**
 * A session or process group id as the tree's PID namespace names it: TIOCGSID and TIOCGPGRP
 * answer in criu-ts's, and the images keep the tree's own ids (status NSsid/NSpgid of a task
 * of the tree in it). An id no task of the tree has stays as it is.
 */
function treeId(host: number, which: 'nsSid' | 'nsPgid', tree: readonly number[]): number {
  if (!host) return 0;
  for (const pid of tree) {
    try {
      const ids = readStatus(pid)[which];
      if (ids[0] === host) return ids.at(-1) ?? host;
    } catch {
      /* gone: the dump fails elsewhere */
    }
  }
  return host;
}

/** The session and foreground group (the tree's ids) whose controlling terminal the tty `local` is (0 and 0: none). */
function cttyIds(local: number, tree: readonly number[]): { sid: number; pgrp: number } {
  const sid = intOrNone(local, TIOC.GSID);
  if (sid !== undefined) {
    const pgrp = sid ? (intOrNone(local, TIOC.GPGRP) ?? 0) : 0;
    return { sid: treeId(sid, 'nsSid', tree), pgrp: treeId(pgrp, 'nsPgid', tree) };
  }
  // TIOCGSID answers only through a master or in the terminal's own session: the stat of a
  // session leader of the tree whose terminal it is says it.
  return sessionOf(int(local, TIOC.GDEV), tree);
}

/** The session (and foreground group) of the tree whose controlling terminal is device `dev`. */
function sessionOf(dev: number, tree: readonly number[]): { sid: number; pgrp: number } {
  for (const pid of tree) {
    try {
      const st = readStat(pid);
      if (st.ttyNr === dev && st.session === pid)
        return { sid: treeId(pid, 'nsSid', tree), pgrp: st.tpgid > 0 ? treeId(st.tpgid, 'nsPgid', tree) : 0 };
    } catch {
      /* gone: the dump fails elsewhere */
    }
  }
  return { sid: 0, pgrp: 0 };
}

/** The session and foreground group whose controlling terminal the tty behind fd `fd` of task `pid` is (0 and 0: none). */
export function cttyOf(pid: number, fd: number, tree: readonly number[]): { sid: number; pgrp: number } {
  const local = copyTaskFd(pid, fd);
  try {
    return cttyIds(local, tree);
  } finally {
    close(local);
  }
}

/** The REG entry naming a terminal's device node, in its mount when the tree's mounts are dumped. */
export function ttyReg(p: FdProbe, ctx: DumpFileCtx): number {
  return ctx.regPath(p.link, p.flags, ctx.mntIds ? { mnt_id: p.info.mntId } : {});
}

/**
 * An fd of /dev/tty: the task's controlling terminal as it was when it opened it (TIOCGDEV
 * says which), which must still be its controlling terminal, since the restore has the task
 * open /dev/tty again once its session has it back (CRIU's TTY_TYPE__CTTY entry).
 */
export function dumpDevTty(p: FdProbe, id: number, ctx: DumpFileCtx, infos: Set<number>): MessageInput<'tty_file_entry'> {
  const local = copyTaskFd(p.pid, p.fd);
  try {
    const dev = int(local, TIOC.GDEV);
    const st = readStat(p.pid);
    if (dev !== st.ttyNr)
      throw new NotSupportedError(
        `task ${p.pid}: fd ${p.fd} (/dev/tty) was opened on a terminal that is no longer its controlling terminal`,
      );
    if (!infos.has(CTTY_INFO_ID)) {
      infos.add(CTTY_INFO_ID);
      // Its settings are the terminal's, which CRIU wants on this entry too.
      ctx.addEntry(IMG.TTY_INFO, ttyInfo(CTTY_INFO_ID, TTY_CTTY, p.rdev, { ...cttyIds(local, ctx.treePids), ...ptyParams(local) }));
    }
    return { id, tty_info_id: CTTY_INFO_ID, flags: p.flags, fown: fown(), regf_id: ttyReg(p, ctx) };
  } finally {
    close(local);
  }
}

/** Is this tty file an fd of /dev/tty? */
export function isDevTty(ctx: RestoreFileCtx, tty: TtyFile): boolean {
  return ctx.entries(IMG.TTY_INFO).find((e) => e.entry.id === tty.tty_info_id)?.entry.type === TTY_CTTY;
}

/** Per restore: criu-ts's copy of each /dev/tty file a task opened again, for the other fds of it. */
const devTtys = new WeakMap<RestoreFileCtx, Map<number, number>>();

/**
 * The task opens /dev/tty itself, now that its session has its controlling terminal back, and
 * puts it at `fd` (which held a stand-in), keeping its close-on-exec flag. The file's other fds
 * (dup, fork) get the same open file description, through criu-ts.
 */
export function reopenDevTty(tty: TtyFile, fd: number, t: Tracee, area: InjectionArea, ctx: RestoreFileCtx): void {
  let copies = devTtys.get(ctx);
  if (!copies) devTtys.set(ctx, (copies = new Map()));
  area.reset();
  const cloexec = Number(t.syscall('fcntl', fd, 1 /* F_GETFD */)) & 1;
  const local = copies.get(tty.id);
  let got: bigint;
  if (local !== undefined) got = pullFd(t, local);
  else {
    try {
      got = openInTask(t, area, '/dev/tty', tty.flags & ~(O.CREAT | O.TRUNC | O.EXCL));
    } catch (e) {
      throw new NotSupportedError(`task ${t.tid}: fd ${fd} (/dev/tty) cannot be opened again: ${(e as Error).message}`);
    }
    copies.set(tty.id, ctx.keep(copyTaskFd(t.tid, Number(got))));
  }
  t.syscall('dup3', got, fd, cloexec ? O.CLOEXEC : 0);
  t.syscall('close', got);
}

/** The owner of a slave's /dev/pts node (grantpt, or a chown). */
function slaveOwner(p: FdProbe): Pick<MessageInput<'tty_info_entry'>, 'uid' | 'gid'> {
  const st = fs.statSync(`/proc/${p.pid}/fd/${p.fd}`);
  return { uid: st.uid, gid: st.gid };
}

/**
 * The line settings, locked settings and window size of the pty `local` is a side of (the
 * slave's, through either side): CRIU wants all three on every side that is not hung up.
 */
function ptyParams(local: number): Pick<MessageInput<'tty_info_entry'>, 'termios' | 'termios_locked' | 'winsize'> {
  const ws = Buffer.alloc(8);
  ioctl(local, TIOC.GWINSZ, ws);
  return {
    termios: termiosOf(local),
    termios_locked: lockedTermiosOf(local),
    winsize: { ws_row: ws.readUInt16LE(0), ws_col: ws.readUInt16LE(2), ws_xpixel: ws.readUInt16LE(4), ws_ypixel: ws.readUInt16LE(6) },
  };
}

/** The settings of ptyParams back, through criu-ts's fd of a side: the locked ones first, which bind the others. */
function restorePtyParams(fd: number, info: Message<'tty_info_entry'>): void {
  if (info.termios_locked) restoreLockedTermios(fd, info.termios_locked);
  if (info.termios) restoreTermios(fd, info.termios);
  if (info.winsize) {
    const ws = Buffer.alloc(8);
    ws.writeUInt16LE(info.winsize.ws_row, 0);
    ws.writeUInt16LE(info.winsize.ws_col, 2);
    ws.writeUInt16LE(info.winsize.ws_xpixel, 4);
    ws.writeUInt16LE(info.winsize.ws_ypixel, 6);
    ioctl(fd, TIOC.SWINSZ, ws);
  }
}

/** The dump side: the entries of a pty fd, its tty_info written once per side. */
export function dumpPty(p: FdProbe, id: number, ctx: DumpFileCtx, infos: Set<number>): MessageInput<'tty_file_entry'> {
  const master = isPtmx(p.rdev);
  const local = copyTaskFd(p.pid, p.fd);
  try {
    const index = master ? int(local, TIOC.GPTN) : slaveIndex(p.rdev);
    const peer = master ? slaveInTree(index, ctx.treePids) : masterInTree(index, ctx.treePids);
    if (!master && hungUp(local)) return dumpHungSlave(p, id, index, peer !== undefined, ctx, infos);
    if (!master && !peer) {
      throw new NotSupportedError(
        `task ${p.pid}: fd ${p.fd} (${p.link}): its master is not in the dumped tree; dump it as a shell job (--shell-job)`,
      );
    }
    const tid = infoId(index, master);
    if (!infos.has(tid)) {
      infos.add(tid);
      // The data queued for this side, once per side.
      dumpQueued(p, tid, master, peer, master && int(local, TIOC.GPKT) !== 0, ctx);
      ctx.addEntry(IMG.TTY_INFO, {
        id: tid,
        type: TTY_PTY,
        locked: master ? int(local, TIOC.GPTLCK) !== 0 : false,
        exclusive: int(local, TIOC.GEXCL) !== 0,
        packet_mode: master ? int(local, TIOC.GPKT) !== 0 : false,
        ...cttyIds(local, ctx.treePids),
        rdev: p.rdev,
        ...(master ? {} : slaveOwner(p)),
        ...ptyParams(local),
        pty: { index },
      });
    }
    return {
      id,
      tty_info_id: tid,
      flags: p.flags,
      fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
      regf_id: ttyReg(p, ctx),
    };
  } finally {
    close(local);
  }
}

/** A tty_info_entry with no lock, exclusive or packet mode and no session: `more` adds what the tty has. */
export function ttyInfo(
  id: number,
  type: number,
  rdev: number,
  more: Partial<MessageInput<'tty_info_entry'>> = {},
): MessageInput<'tty_info_entry'> {
  return { id, type, locked: false, exclusive: false, packet_mode: false, sid: 0, pgrp: 0, rdev, ...more };
}

/** A hung-up tty answers its ioctls with EIO (its master was closed, or vhangup). */
function hungUp(local: number): boolean {
  try {
    ioctl(local, TIOC.GWINSZ, Buffer.alloc(8));
    return false;
  } catch (e) {
    if (e instanceof SysError && e.code === 'EIO') return true;
    throw e;
  }
}

/**
 * A slave hung up when its master was closed: the file reads nothing and fails writes, and the
 * pty has no settings left. Saved as CRIU saves it (a tty_info_entry without termios); the
 * restore opens it through a master of its own, which it closes before the tasks run.
 */
function dumpHungSlave(p: FdProbe, id: number, index: number, masterOpen: boolean, ctx: DumpFileCtx, infos: Set<number>) {
  if (masterOpen) throw new NotSupportedError(`task ${p.pid}: fd ${p.fd} (${p.link}): a hung-up terminal whose master is still open`);
  const tid = infoId(index, false);
  if (!infos.has(tid)) {
    infos.add(tid);
    const st = fs.statSync(`/proc/${p.pid}/fd/${p.fd}`);
    ctx.addEntry(IMG.TTY_INFO, ttyInfo(tid, TTY_PTY, p.rdev, { uid: st.uid, gid: st.gid, pty: { index } }));
  }
  // Its /dev/pts node went with the master: its name is the one it had.
  const name = deletedName(p.link) ?? p.link;
  return { id, tty_info_id: tid, flags: p.flags, fown: fown(), regf_id: ttyReg({ ...p, link: name }, ctx) };
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

/** The pty index and side of a tty-info id (CRIU's ids: index << 1, the master odd). */
export function ptySide(ctx: RestoreFileCtx): PtySide {
  return (ttyId) => {
    const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.id === ttyId)?.entry;
    return info?.pty ? { index: info.pty.index, master: (info.id & 1) === 1 } : undefined;
  };
}

/** A master at `index` for a slave whose own is gone, next to the slave's node (/dev/ptmx for /dev/pts/N). */
function fakeMaster(ctx: RestoreFileCtx, slaveReg: { name: string; mnt_id?: number } | undefined, index: number): number {
  const dir = path.dirname(slaveReg?.name ?? `/dev/pts/${index}`);
  const name = path.basename(dir) === 'pts' ? `${path.dirname(dir)}/ptmx` : `${dir}/ptmx`;
  const fd = openPtmxAt(
    ctx.pathOf({ id: -1, name, ...(slaveReg?.mnt_id !== undefined ? { mnt_id: slaveReg.mnt_id } : {}) }),
    index,
    O.RDWR,
  );
  ioctl(fd, TIOC.SPTLCK, Buffer.alloc(4));
  return fd;
}

/** criu-ts's fd for a pty file: the master at its index, or a slave opened through its master. */
export function openPty(tty: TtyFile, ctx: RestoreFileCtx, masters: PtyRestore): number {
  const info = infoOf(ctx, tty.tty_info_id);
  const index = info.pty!.index;
  const reg = ctx.files.get(tty.regf_id ?? -1)?.reg;
  const flags = tty.flags & ~(O.CREAT | O.TRUNC | O.EXCL);
  if (info.id & 1) {
    const fd = ctx.keep(openPtmxAt(ctx.pathOf(reg ?? { id: -1, name: '/dev/ptmx' }), index, flags));
    masters.set(index, fd);
    const zero = Buffer.alloc(4);
    ioctl(fd, TIOC.SPTLCK, zero);
    if (info.packet_mode) ioctl(fd, TIOC.PKT, Buffer.from([1, 0, 0, 0]));
    if (info.exclusive) ioctl(fd, TIOC.EXCL);
    // A master's settings are its slave's: they come back even when no slave is open.
    restorePtyParams(fd, info);
    // Queued data goes back through a slave of its own, before the lock.
    restoreQueued(ctx, ptySide(ctx), index, () =>
      fs.openSync(slavePath(ctx, tty.regf_id, index), O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC),
    );
    // The lock goes back once every slave is open.
    if (info.locked) ctx.beforeRelease(() => ioctl(fd, TIOC.SPTLCK, Buffer.from([1, 0, 0, 0])));
    return fd;
  }
  if (!masters.has(index)) {
    // The master is opened first, whichever fd number it has. A hung-up slave (no termios) gets
    // one of criu-ts's own, closed before the release, which hangs it up again.
    const m = [...ctx.files.values()].find((f) => f.tty && f.tty.tty_info_id === infoId(index, true));
    if (m) ctx.fileFd(m.id);
    else if (!info.termios) masters.set(index, ctx.keep(fakeMaster(ctx, reg, index)));
    else throw new NotSupportedError(`pseudo-terminal ${index}: its master is not in the dump`);
  }
  const path = ctx.pathOf(reg ?? { id: -1, name: `/dev/pts/${index}` });
  const fd = ctx.keep(fs.openSync(path, flags | O.NOCTTY | O.CLOEXEC));
  restorePtyParams(fd, info);
  if (info.uid !== undefined && info.gid !== undefined) fs.fchownSync(fd, info.uid, info.gid);
  return fd;
}

/** The path of slave `index` next to its master's device node (/dev/ptmx or /dev/pts/ptmx), in the tree's mounts. */
function slavePath(ctx: RestoreFileCtx, masterRegf: number | undefined, index: number): string {
  const reg = ctx.files.get(masterRegf ?? -1)?.reg;
  const dir = reg ? path.dirname(reg.name) : '/dev';
  const name = path.basename(dir) === 'pts' ? `${dir}/${index}` : `${dir}/pts/${index}`;
  return ctx.pathOf({ id: -1, name, ...(reg?.mnt_id !== undefined ? { mnt_id: reg.mnt_id } : {}) });
}

/**
 * A session leader takes back its controlling terminal, a slave of the dump (whichever task
 * holds an fd of it), with its foreground group: through a copy of criu-ts's fd of it.
 * `early`: before it has children (which then inherit it), without the group, which may not
 * exist yet, and only if it leads its session already (its setsid may wait for its children).
 */
export function restoreCtty(t: Tracee, area: InjectionArea, sid: number, ctx: RestoreFileCtx, early = false): void {
  const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.sid === sid && e.entry.type !== TTY_CTTY)?.entry;
  if (!info) return;
  let local: number;
  if (info.pty) {
    // A slave of the dump, or, when only its master was open, the slave opened by its path.
    const slave = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === infoId(info.pty!.index, false));
    const master = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === infoId(info.pty!.index, true));
    if (!slave && master) ctx.fileFd(master.id);
    local = slave
      ? ctx.fileFd(slave.id)
      : ctx.keep(fs.openSync(slavePath(ctx, master?.tty?.regf_id, info.pty.index), O.RDWR | O.NOCTTY | O.CLOEXEC));
  } else {
    // A virtual terminal or the console, through a file of it.
    const file = [...ctx.files.values()].find((f) => f.tty?.tty_info_id === info.id);
    if (!file) throw new NotSupportedError(`tty-info.img: the controlling terminal of session ${sid} has no file`);
    local = ctx.fileFd(file.id);
  }
  const fd = pullFd(t, local);
  try {
    if (early) {
      t.syscallRaw('ioctl', fd, TIOC.SCTTY, 0);
      return;
    }
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
 * A task of a session whose terminal comes back has it from its session leader, which took it
 * before the task was forked (the dump refuses a task without one in such a session). `tid`:
 * the task as criu-ts sees it.
 */
export function checkInheritedCtty(tid: number, pid: number, sid: number, ctx: RestoreFileCtx): void {
  const has = ctx.entries(IMG.TTY_INFO).some((e) => e.entry.sid === sid && e.entry.type !== TTY_CTTY);
  if (has && readStat(tid).ttyNr === 0)
    throw new CriuError(
      `task ${pid}: the controlling terminal of its session ${sid} was not given back to it (its leader started the session after forking it)`,
    );
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
  if (tree.some(holds) || (isPtySlave(ttyNr) && masterInTree(slaveIndex(ttyNr), tree) !== undefined)) return undefined;
  return 'no task of the tree holds an fd of it or of its master';
}
