// Terminals. In a shell job (--shell-job) the task's terminal fds are connected to the
// terminal criu-ts itself runs on, as CRIU does for external ttys. Outside one, only
// pseudo-terminals whose master is in the tree come back (pty.ts).
import fs from 'node:fs';
import { O } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { NotSupportedError } from '../../errors.ts';
import { readStat } from '../../proc/index.ts';
import { FD_TYPE, S_IFMT, S_IFCHR, OPEN_FLAGS, fown, statefulKind, type FdProbe } from './types.ts';
import { dumpTermios, restoreTermios } from './termios.ts';
import {
  major,
  minor,
  isPtmx,
  isPtySlave,
  dumpPty,
  openPty,
  cttyOf,
  ttyReg,
  ptySide,
  dumpDevTty,
  isDevTty,
  reopenDevTty,
  ttyInfo,
} from './pty.ts';
import { checkQueued } from './ttydata.ts';

/** CRIU's TtyType for a terminal device number. */
function ttyType(rdev: number): number {
  const ma = major(rdev),
    mi = minor(rdev);
  if (ma >= 136 && ma <= 143) return 1; // PTY slave
  if (ma === 5 && mi === 2) return 1; // ptmx
  if (ma === 5 && mi === 1) return 2; // CONSOLE
  if (ma === 5 && mi === 0) return 4; // CTTY (/dev/tty)
  if (ma === 4 && mi < 64) return 3; // VT
  if (ma === 4) return 6; // SERIAL
  return 0;
}

const CTTY_RDEV = (5 << 8) | 0; // /dev/tty

/** A virtual terminal or the console, outside a shell job: reopened by its path (not a controlling terminal). */
export const ttyByPath = (rdev: number) => ttyType(rdev) === TTY_VT || ttyType(rdev) === TTY_CONSOLE;
const byPath = ttyByPath;
const TTY_CONSOLE = 2,
  TTY_VT = 3;

/**
 * In a shell job every terminal fd comes back as criu-ts's own terminal: right only for the
 * task's controlling one (shellJobCheck). Pseudo-terminals come back as themselves outside
 * one (the dump refuses those of a shell job), VTs and the console by their path.
 */
function ttyCheck(p: FdProbe): string | undefined {
  if (p.rdev === CTTY_RDEV || isPtmx(p.rdev) || isPtySlave(p.rdev) || byPath(p.rdev)) return undefined;
  return shellJobCheck(p);
}

function shellJobCheck(p: FdProbe): string | undefined {
  if (p.rdev === CTTY_RDEV) return undefined;
  let ctty = 0;
  try {
    ctty = readStat(p.pid).ttyNr;
  } catch {
    /* gone: the dump fails elsewhere */
  }
  return p.rdev === ctty ? undefined : `fd ${p.fd} is the terminal ${p.link}, which is not its controlling terminal`;
}

export const ttyFile = statefulKind({
  type: FD_TYPE.TTY,
  field: 'tty',
  name: 'terminal',
  claims: { flags: OPEN_FLAGS, check: ttyCheck },
  matches: (p) => (p.mode & S_IFMT) === S_IFCHR && ttyType(p.rdev) !== 0,
  /**
   * Terminals (tty-info ids) whose tty_info_entry a dump has written, or whose termios a
   * restore has set; and criu-ts's master of each pseudo-terminal a restore opened.
   */
  state: () => ({ infos: new Set<number>(), masters: new Map<number, number>(), checked: { data: false } }),
  dump(p, id, ctx, { infos }) {
    if (!ctx.shellJob && (isPtmx(p.rdev) || isPtySlave(p.rdev))) return dumpPty(p, id, ctx, infos);
    if (!ctx.shellJob && p.rdev === CTTY_RDEV) return dumpDevTty(p, id, ctx, infos);
    if (!ctx.shellJob && byPath(p.rdev)) {
      if (!infos.has(p.rdev)) {
        infos.add(p.rdev);
        ctx.addEntry(IMG.TTY_INFO, ttyInfo(p.rdev, ttyType(p.rdev), p.rdev, cttyOf(p.pid, p.fd, ctx.treePids)));
      }
      return { id, tty_info_id: p.rdev, flags: p.flags, fown: fown(), regf_id: ttyReg(p, ctx) };
    }
    const notCtty = shellJobCheck(p);
    if (ctx.shellJob && notCtty) throw new NotSupportedError(`task ${p.pid}: ${notCtty}`);
    if (!ctx.shellJob) {
      throw new Error(`fd ${p.fd} of task ${p.pid} is the terminal ${p.link}; dump it as a shell job (--shell-job)`);
    }
    if (isPtmx(p.rdev))
      throw new Error(`fd ${p.fd} of task ${p.pid} is a pseudo-terminal master (${p.link}) in a shell job; not supported yet`);
    const infoId = p.rdev;
    if (!infos.has(infoId)) {
      infos.add(infoId);
      ctx.addEntry(
        IMG.TTY_INFO,
        ttyInfo(infoId, ttyType(p.rdev), p.rdev, {
          termios: dumpTermios(`/proc/${p.pid}/fd/${p.fd}`),
          ...(major(p.rdev) >= 136 && major(p.rdev) <= 143 ? { pty: { index: minor(p.rdev) + (major(p.rdev) - 136) * 256 } } : {}),
        }),
      );
    }
    const regfId = ctx.regPath(p.link, p.flags);
    return { id, tty_info_id: infoId, flags: p.flags, fown: fown(), regf_id: regfId };
  },
  eachFd: true,
  afterInstall(tty, fd, t, area, ctx) {
    if (!ctx.shellJob && isDevTty(ctx, tty)) reopenDevTty(tty, fd, t, area, ctx);
  },
  open(tty, ctx, { infos: termiosSet, masters, checked }) {
    if (!checked.data) {
      checked.data = true;
      checkQueued(ctx, ptySide(ctx));
    }
    // /dev/tty is opened by the task itself (afterInstall): a stand-in until then.
    if (!ctx.shellJob && isDevTty(ctx, tty)) return ctx.keep(fs.openSync('/dev/null', O.RDWR | O.CLOEXEC));
    if (!ctx.shellJob) {
      const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.id === tty.tty_info_id)?.entry;
      if (info && (info.type === TTY_VT || info.type === TTY_CONSOLE)) {
        const reg = ctx.files.get(tty.regf_id ?? -1)?.reg;
        if (!reg) throw new NotSupportedError(`files.img: terminal file ${tty.id} has no path`);
        return ctx.keep(fs.openSync(ctx.pathOf(reg), (tty.flags & ~(O.CREAT | O.TRUNC)) | O.NOCTTY | O.CLOEXEC));
      }
      return openPty(tty, ctx, masters);
    }
    for (const fd of [0, 1, 2]) {
      let isTty = false;
      try {
        isTty = (fs.fstatSync(fd).mode & S_IFMT) === S_IFCHR && ttyType(Number(fs.fstatSync(fd).rdev)) !== 0;
      } catch {
        /* closed */
      }
      if (!isTty) continue;
      const local = ctx.keep(fs.openSync(`/proc/self/fd/${fd}`, (tty.flags & ~O.CREAT) | O.NOCTTY | O.CLOEXEC));
      // The job's line settings (raw mode, echo...) go to criu-ts's terminal, once.
      if (!termiosSet.has(tty.tty_info_id)) {
        termiosSet.add(tty.tty_info_id);
        const info = ctx.entries(IMG.TTY_INFO).find((e) => e.entry.id === tty.tty_info_id)?.entry;
        if (info?.termios) restoreTermios(local, info.termios);
      }
      return local;
    }
    throw new Error('the dump holds a terminal but criu-ts is not running on one; restore it from a terminal');
  },
});
