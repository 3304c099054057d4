// Terminals. criu-ts restores a terminal only as a shell job (--shell-job): the task's
// terminal fds are connected to the terminal criu-ts itself runs on, as CRIU does for
// external ttys.
import fs from 'node:fs';
import { O } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { FD_TYPE, S_IFMT, S_IFCHR, fown, statefulKind } from './types.ts';

const major = (rdev: number) => (rdev >> 8) & 0xfff;
const minor = (rdev: number) => (rdev & 0xff) | ((rdev >> 12) & 0xfff00);

/** CRIU's TtyType for a terminal device number. */
function ttyType(rdev: number): number {
  const ma = major(rdev), mi = minor(rdev);
  if (ma >= 136 && ma <= 143) return 1; // PTY slave
  if (ma === 5 && mi === 2) return 1; // ptmx
  if (ma === 5 && mi === 1) return 2; // CONSOLE
  if (ma === 5 && mi === 0) return 4; // CTTY (/dev/tty)
  if (ma === 4 && mi < 64) return 3; // VT
  if (ma === 4) return 6; // SERIAL
  return 0;
}

export const ttyFile = statefulKind({
  type: FD_TYPE.TTY,
  field: 'tty',
  name: 'terminal',
  matches: (p) => (p.mode & S_IFMT) === S_IFCHR && ttyType(p.rdev) !== 0,
  /** Terminals (tty-info ids) whose tty_info_entry a dump has written. */
  state: () => new Set<number>(),
  dump(p, id, ctx, infos) {
    if (!ctx.shellJob) {
      throw new Error(`fd ${p.fd} of task ${p.pid} is the terminal ${p.link}; dump it as a shell job (--shell-job)`);
    }
    const infoId = p.rdev;
    if (!infos.has(infoId)) {
      infos.add(infoId);
      ctx.addEntry(IMG.TTY_INFO, {
        id: infoId, type: ttyType(p.rdev), locked: false, exclusive: false, packet_mode: false,
        sid: 0, pgrp: 0, rdev: p.rdev, ...(major(p.rdev) >= 136 && major(p.rdev) <= 143 ? { pty: { index: minor(p.rdev) + (major(p.rdev) - 136) * 256 } } : {}),
      });
    }
    const regfId = ctx.regPath(p.link, p.flags);
    return { id, tty_info_id: infoId, flags: p.flags, fown: fown(), regf_id: regfId };
  },
  open(tty, ctx) {
    if (!ctx.shellJob) throw new Error('the dump holds a terminal; restore it as a shell job (--shell-job)');
    for (const fd of [0, 1, 2]) {
      let isTty = false;
      try { isTty = (fs.fstatSync(fd).mode & S_IFMT) === S_IFCHR && ttyType(Number(fs.fstatSync(fd).rdev)) !== 0; } catch { /* closed */ }
      if (isTty) return ctx.keep(fs.openSync(`/proc/self/fd/${fd}`, (tty.flags & ~O.CREAT) | O.NOCTTY | O.CLOEXEC));
    }
    throw new Error('the dump holds a terminal but criu-ts is not running on one; restore it from a terminal');
  },
});
