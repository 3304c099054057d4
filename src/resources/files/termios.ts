// A terminal's line settings (termios_entry of tty_info_entry): a shell job comes back on
// criu-ts's terminal, which gets the settings the job had (raw mode, no echo, ...). The
// window size is the new terminal's own.
import fs from 'node:fs';
import { ioctl, O } from '../../kernel/index.ts';
import type { Message, MessageInput } from '../types.ts';

// struct termios2 (asm-generic): four flag words, c_line, c_cc[19], c_ispeed, c_ospeed.
const TERMIOS2 = 44,
  NCCS = 19,
  CC = 17;
const TCGETS2 = 0x802c542a,
  TCSETS2 = 0x402c542b;

/** The settings of the terminal behind `path` (a /proc/PID/fd link). */
export function dumpTermios(path: string): MessageInput<'termios_entry'> {
  const fd = fs.openSync(path, O.RDONLY | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
  try {
    return termiosOf(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// struct termios (the locked settings' ioctls use it): termios2 without the speeds.
const TERMIOS = 36;
const TIOCGLCKTRMIOS = 0x5456,
  TIOCSLCKTRMIOS = 0x5457;

function unpack(b: Buffer): MessageInput<'termios_entry'> {
  return {
    c_iflag: b.readUInt32LE(0),
    c_oflag: b.readUInt32LE(4),
    c_cflag: b.readUInt32LE(8),
    c_lflag: b.readUInt32LE(12),
    c_line: b[16],
    c_cc: [...b.subarray(CC, CC + NCCS)],
    c_ispeed: b.length > TERMIOS ? b.readUInt32LE(36) : 0,
    c_ospeed: b.length > TERMIOS ? b.readUInt32LE(40) : 0,
  };
}

function pack(t: Message<'termios_entry'>, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(t.c_iflag, 0);
  b.writeUInt32LE(t.c_oflag, 4);
  b.writeUInt32LE(t.c_cflag, 8);
  b.writeUInt32LE(t.c_lflag, 12);
  b[16] = t.c_line;
  t.c_cc.slice(0, NCCS).forEach((v, i) => {
    b[CC + i] = v;
  });
  if (size > TERMIOS) {
    b.writeUInt32LE(t.c_ispeed, 36);
    b.writeUInt32LE(t.c_ospeed, 40);
  }
  return b;
}

/** The settings of the terminal `fd` is (a pty master's are its slave's). */
export function termiosOf(fd: number): MessageInput<'termios_entry'> {
  const b = Buffer.alloc(TERMIOS2);
  ioctl(fd, TCGETS2, b);
  return unpack(b);
}

/** The locked settings (TIOCSLCKTRMIOS): the bits and characters nobody may change. */
export function lockedTermiosOf(fd: number): MessageInput<'termios_entry'> {
  const b = Buffer.alloc(TERMIOS);
  ioctl(fd, TIOCGLCKTRMIOS, b);
  return unpack(b);
}

export function restoreLockedTermios(fd: number, t: Message<'termios_entry'>): void {
  ioctl(fd, TIOCSLCKTRMIOS, pack(t, TERMIOS));
}

export function restoreTermios(fd: number, t: Message<'termios_entry'>): void {
  ioctl(fd, TCSETS2, pack(t, TERMIOS2));
}

/** termios flag bits (asm-generic/termbits.h) that criu-ts changes for a while. */
export const TERMIOS_FLAGS = {
  ISTRIP: 0o40,
  INLCR: 0o100,
  IGNCR: 0o200,
  ICRNL: 0o400,
  IUCLC: 0o1000,
  OPOST: 0o1,
  ISIG: 0o1,
  ICANON: 0o2,
  ECHO: 0o10,
  ECHOE: 0o20,
  ECHOK: 0o40,
  ECHONL: 0o100,
  ECHOCTL: 0o1000,
  ECHOPRT: 0o2000,
  ECHOKE: 0o4000,
  IEXTEN: 0o100000,
} as const;

/** Run `fn` with the `clear` bits of the terminal's input, output and local flags off, then put its settings back. */
export function withTermios<T>(fd: number, clear: { iflag?: number; oflag?: number; lflag?: number }, fn: () => T): T {
  const old = Buffer.alloc(TERMIOS2);
  ioctl(fd, TCGETS2, old);
  const now = Buffer.from(old);
  now.writeUInt32LE(now.readUInt32LE(0) & ~(clear.iflag ?? 0), 0);
  now.writeUInt32LE(now.readUInt32LE(4) & ~(clear.oflag ?? 0), 4);
  now.writeUInt32LE(now.readUInt32LE(12) & ~(clear.lflag ?? 0), 12);
  ioctl(fd, TCSETS2, now);
  try {
    return fn();
  } finally {
    ioctl(fd, TCSETS2, old);
  }
}
