// Data queued in a pseudo-terminal (CRIU's tty-data.img): what the master wrote that no reader
// of the slave has read yet, and what the slave's side wrote that the master has not read.
// Terminals cannot be peeked at: the dump reads the data out (the tree is frozen) and puts it
// back unless the tree is killed. Each entry names the side it was read from by its tty-info
// id (tty_id, as CRIU's); the data goes back into the same side:
// - queued for the slave: read through a new description of the slave, with the line
//   discipline made non-canonical for the read (a partial line comes out too), and put back
//   with TIOCSTI on a slave (synchronous, through the line discipline) with echo, signals and
//   input translation off, the line mode as dumped, so the lines are the same again;
// - queued for the master: read through a copy of the task's master, and put back by writing
//   it to a slave with output processing off (the master's side is raw).
import fs from 'node:fs';
import { ioctl, O, copyTaskFd, close, SysError } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { withTermios, TERMIOS_FLAGS as F } from './termios.ts';
import type { DumpFileCtx, FdProbe, RestoreFileCtx } from './types.ts';

const TIOCINQ = 0x541b,
  TIOCSTI = 0x5412;
/** N_TTY_BUF_SIZE - 1: what a line discipline holds; more cannot be put back in. */
export const TTY_DATA_MAX = 4095;

/** Where a pty's side can be reached in the tree: a task's fd of it. */
export interface PtyEnd {
  pid: number;
  fd: number;
}

/** Input settings that would change data put back through the line discipline, and its echo. */
const INPUT_RAW = {
  iflag: F.INLCR | F.IGNCR | F.ICRNL | F.IUCLC | F.ISTRIP,
  lflag: F.ECHO | F.ECHOE | F.ECHOK | F.ECHONL | F.ECHOCTL | F.ECHOPRT | F.ECHOKE | F.ISIG | F.IEXTEN,
};

function inq(fd: number): number {
  const b = Buffer.alloc(4);
  ioctl(fd, TIOCINQ, b);
  return b.readInt32LE(0);
}

/** Data written back into the slave's input, as typed but unprocessed. */
function injectInput(slave: number, data: Buffer): void {
  withTermios(slave, INPUT_RAW, () => {
    const b = Buffer.alloc(1);
    for (const c of data) {
      b[0] = c;
      ioctl(slave, TIOCSTI, b);
    }
  });
}

/** Data written back for the master to read, past the slave's output processing. */
function writeOutput(slave: number, data: Buffer): void {
  withTermios(slave, { oflag: F.OPOST }, () => {
    let off = 0;
    while (off < data.length) off += fs.writeSync(slave, data, off, data.length - off);
  });
}

/** Everything queued for readers of the slave, through a description of our own. */
function readInput(slave: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  withTermios(slave, { lflag: F.ICANON }, () => {
    const b = Buffer.alloc(TTY_DATA_MAX + 1);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(slave, b, 0, b.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw e;
      }
      if (n === 0) break;
      parts.push(Buffer.from(b.subarray(0, n)));
      total += n;
    }
  });
  return Buffer.concat(parts, total);
}

/** Everything queued for the master's reader: the count it shows, so no read blocks. */
function readOutput(master: number): Buffer {
  const parts: Buffer[] = [];
  for (let n = inq(master); n > 0; n = inq(master)) {
    const b = Buffer.alloc(n);
    const got = fs.readSync(master, b, 0, n, null);
    if (got === 0) break;
    parts.push(b.subarray(0, got));
  }
  return Buffer.concat(parts);
}

/**
 * The dump side, once per side of each pty: read out what is queued for the side of `p`
 * (an fd of the tree), save it under its tty-info id `ttyId`, and put it back when the dump ends without
 * killing the tree. `peer`: where the other side is in the tree, if anywhere.
 */
export function dumpQueued(
  p: FdProbe,
  ttyId: number,
  master: boolean,
  peer: PtyEnd | undefined,
  packetMode: boolean,
  ctx: DumpFileCtx,
): void {
  const at = `task ${p.pid}: fd ${p.fd} (${p.link})`;
  const local = master ? copyTaskFd(p.pid, p.fd) : fs.openSync(`/proc/${p.pid}/fd/${p.fd}`, O.RDONLY | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
  const fds = [local];
  let handedOver = false;
  try {
    const queued = inq(local);
    // A canonical line not finished yet is not counted: with a peer, the slave is read whatever it says.
    if (!peer && queued) {
      throw new NotSupportedError(
        master
          ? `${at}: ${queued} bytes of unread terminal data written by a slave no task of the tree holds`
          : `${at}: ${queued} bytes of unread terminal data, and its master is not in the dumped tree`,
      );
    }
    if (!peer || (master && !queued)) return;
    if (master && packetMode) throw new NotSupportedError(`${at}: ${queued} bytes of unread terminal data in packet mode`);
    const slave = master ? fs.openSync(`/proc/${peer.pid}/fd/${peer.fd}`, O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC) : local;
    if (master) fds.push(slave);
    const data = master ? readOutput(local) : readInput(local);
    if (!data.length) return;
    const putBack = () => (master ? writeOutput(slave, data) : injectInput(slave, data));
    if (data.length >= TTY_DATA_MAX) {
      putBack();
      throw new NotSupportedError(`${at}: ${data.length} bytes of unread terminal data, more than a terminal holds (${TTY_DATA_MAX})`);
    }
    ctx.log.info(`${at}: ${data.length} bytes of unread terminal data saved for tty ${ttyId}`);
    ctx.addEntry(IMG.TTY_DATA, { tty_id: ttyId, data });
    ctx.atEnd((how) => {
      try {
        if (how !== 'killed') putBack();
      } catch (e) {
        ctx.log.error(`${at}: cannot put back its unread terminal data: ${(e as Error).message}`);
      } finally {
        for (const fd of fds) close(fd);
      }
    });
    handedOver = true;
  } finally {
    if (!handedOver) for (const fd of fds) close(fd);
  }
}

/** The pty and side a tty-info id is, if it is a pseudo-terminal's. */
export type PtySide = (ttyId: number) => { index: number; master: boolean } | undefined;

/** Every tty-data.img entry is for a pseudo-terminal side of the dump, within what a terminal holds. */
export function checkQueued(ctx: RestoreFileCtx, side: PtySide): void {
  for (const { entry } of ctx.entries(IMG.TTY_DATA)) {
    if (!side(entry.tty_id)) throw new CriuError(`tty-data.img: data for tty ${entry.tty_id}, which is no pseudo-terminal of the dump`);
    if (entry.data.length >= TTY_DATA_MAX)
      throw new CriuError(`tty-data.img: ${entry.data.length} bytes for tty ${entry.tty_id}, more than a terminal holds (${TTY_DATA_MAX})`);
  }
}

/**
 * The restore side, for pty `index` once its master is open: the data of each of its entries
 * goes back into the side it was read from once every fd is open, through a slave that
 * `openSlave` opens for the purpose.
 */
export function restoreQueued(ctx: RestoreFileCtx, side: PtySide, index: number, openSlave: () => number): void {
  for (const { entry } of ctx.entries(IMG.TTY_DATA)) {
    const s = side(entry.tty_id);
    if (s?.index !== index) continue;
    const data = Buffer.from(entry.data);
    ctx.beforeRelease(() => {
      const slave = openSlave();
      try {
        if (s.master) writeOutput(slave, data);
        else injectInput(slave, data);
      } catch (e) {
        if (e instanceof SysError) throw new CriuError(`tty-data.img: the data of tty ${entry.tty_id} cannot be put back: ${e.message}`);
        throw e;
      } finally {
        close(slave);
      }
    });
  }
}
