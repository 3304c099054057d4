// sk_opts_entry: the socket-level options CRIU keeps for inet, netlink and packet sockets,
// and the classic BPF filter (SO_ATTACH_FILTER), read back with SO_GET_FILTER.
import { sock, fcntl, F, O } from '../../kernel/index.ts';
import type { Message, MessageInput } from '../types.ts';

const { SOL, SO } = sock;
type SkOpts = MessageInput<'sk_opts_entry'>;

/**
 * sock_filter instructions as CRIU stores them: one u64 each, code << 48 | jt << 40 |
 * jf << 32 | k, so that the image reads the same on either byte order.
 */
export function encodeFilter(insns: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i + 8 <= insns.length; i += 8) {
    const code = BigInt(insns.readUInt16LE(i)),
      jt = BigInt(insns.readUInt8(i + 2)),
      jf = BigInt(insns.readUInt8(i + 3)),
      k = BigInt(insns.readUInt32LE(i + 4));
    out.push((code << 48n) | (jt << 40n) | (jf << 32n) | k);
  }
  return out;
}

export function decodeFilter(words: readonly bigint[]): Buffer {
  const b = Buffer.alloc(words.length * 8);
  words.forEach((w, i) => {
    b.writeUInt16LE(Number((w >> 48n) & 0xffffn), i * 8);
    b.writeUInt8(Number((w >> 40n) & 0xffn), i * 8 + 2);
    b.writeUInt8(Number((w >> 32n) & 0xffn), i * 8 + 3);
    b.writeUInt32LE(Number(w & 0xffffffffn), i * 8 + 4);
  });
  return b;
}

export const int = (fd: number, level: number, opt: number): number => sock.getsockoptInt(fd, level, opt);
export const bool = (fd: number, level: number, opt: number): boolean => int(fd, level, opt) !== 0;
/** An option some kernels refuse on inet sockets (SO_PASSCRED is unix and netlink only since 6.16). */
const maybeBool = (fd: number, level: number, opt: number): boolean | undefined => {
  const v = sock.getsockoptIntMaybe(fd, level, opt);
  return v === undefined ? undefined : v !== 0;
};

function timeo(fd: number, opt: number): [bigint, bigint] {
  const b = sock.getsockoptBuf(fd, SOL.SOCKET, opt, 16);
  return [b.readBigInt64LE(0), b.readBigInt64LE(8)];
}

/** The socket-level options CRIU keeps (sk_opts_entry), the attached filter among them. */
export function dumpSkOpts(fd: number): SkOpts {
  const filter = encodeFilter(sock.getFilter(fd));
  const [sndSec, sndUsec] = timeo(fd, SO.SNDTIMEO),
    [rcvSec, rcvUsec] = timeo(fd, SO.RCVTIMEO);
  const linger = sock.getsockoptBuf(fd, SOL.SOCKET, SO.LINGER, 8);
  const dev = sock.getsockoptBuf(fd, SOL.SOCKET, SO.BINDTODEVICE, 16).toString('latin1').replace(/\0.*$/s, '');
  const bufLock = sock.getsockoptIntMaybe(fd, SOL.SOCKET, SO.BUF_LOCK);
  return {
    so_sndbuf: int(fd, SOL.SOCKET, SO.SNDBUF),
    so_rcvbuf: int(fd, SOL.SOCKET, SO.RCVBUF),
    so_snd_tmo_sec: sndSec,
    so_snd_tmo_usec: sndUsec,
    so_rcv_tmo_sec: rcvSec,
    so_rcv_tmo_usec: rcvUsec,
    reuseaddr: bool(fd, SOL.SOCKET, SO.REUSEADDR),
    so_reuseport: bool(fd, SOL.SOCKET, SO.REUSEPORT),
    so_priority: int(fd, SOL.SOCKET, SO.PRIORITY),
    so_rcvlowat: int(fd, SOL.SOCKET, SO.RCVLOWAT),
    so_mark: int(fd, SOL.SOCKET, SO.MARK),
    so_passcred: maybeBool(fd, SOL.SOCKET, SO.PASSCRED),
    so_passsec: maybeBool(fd, SOL.SOCKET, SO.PASSSEC),
    so_dontroute: bool(fd, SOL.SOCKET, SO.DONTROUTE),
    so_no_check: bool(fd, SOL.SOCKET, SO.NO_CHECK),
    so_broadcast: bool(fd, SOL.SOCKET, SO.BROADCAST),
    so_keepalive: bool(fd, SOL.SOCKET, SO.KEEPALIVE),
    so_oobinline: int(fd, SOL.SOCKET, SO.OOBINLINE),
    ...(linger.readInt32LE(0) ? { so_linger: linger.readInt32LE(4) } : {}),
    ...(dev ? { so_bound_dev: dev } : {}),
    ...(bufLock !== undefined ? { so_buf_lock: bufLock } : {}),
    ...(filter.length ? { so_filter: filter } : {}),
  };
}

export function setInt(fd: number, level: number, opt: number, v: number | boolean | undefined, onlyIfSet = false): void {
  if (v === undefined) return;
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (onlyIfSet && !n) return;
  sock.setsockoptInt(fd, level, opt, n);
}

/** The options of sk_opts_entry on a fresh socket (SO_REUSEADDR is the caller's: it depends on the kind). */
export function restoreSkOpts(fd: number, o: Message<'sk_opts_entry'>): void {
  // The kernel doubles what it is given: the dumped values are already doubled.
  for (const [force, plain, v] of [
    [SO.SNDBUFFORCE, SO.SNDBUF, o.so_sndbuf],
    [SO.RCVBUFFORCE, SO.RCVBUF, o.so_rcvbuf],
  ]) {
    try {
      sock.setsockoptInt(fd, SOL.SOCKET, force, Math.floor(v / 2));
    } catch {
      sock.setsockoptInt(fd, SOL.SOCKET, plain, Math.floor(v / 2));
    }
  }
  setInt(fd, SOL.SOCKET, SO.BUF_LOCK, o.so_buf_lock);
  setInt(fd, SOL.SOCKET, SO.PRIORITY, o.so_priority);
  setInt(fd, SOL.SOCKET, SO.RCVLOWAT, o.so_rcvlowat);
  setInt(fd, SOL.SOCKET, SO.MARK, o.so_mark, true);
  for (const [opt, v] of [
    [SO.PASSCRED, o.so_passcred],
    [SO.PASSSEC, o.so_passsec],
    [SO.DONTROUTE, o.so_dontroute],
    [SO.NO_CHECK, o.so_no_check],
    [SO.BROADCAST, o.so_broadcast],
    [SO.OOBINLINE, o.so_oobinline],
    [SO.KEEPALIVE, o.so_keepalive],
    [SO.REUSEPORT, o.so_reuseport],
  ] as const)
    setInt(fd, SOL.SOCKET, opt, v, opt !== SO.REUSEPORT);
  if (o.so_linger !== undefined) {
    const l = Buffer.alloc(8);
    l.writeInt32LE(1, 0);
    l.writeInt32LE(o.so_linger, 4);
    sock.setsockoptBuf(fd, SOL.SOCKET, SO.LINGER, l);
  }
  for (const [opt, sec, usec] of [
    [SO.SNDTIMEO, o.so_snd_tmo_sec, o.so_snd_tmo_usec],
    [SO.RCVTIMEO, o.so_rcv_tmo_sec, o.so_rcv_tmo_usec],
  ] as const) {
    if (!sec && !usec) continue;
    const t = Buffer.alloc(16);
    t.writeBigInt64LE(BigInt(sec), 0);
    t.writeBigInt64LE(BigInt(usec), 8);
    sock.setsockoptBuf(fd, SOL.SOCKET, opt, t);
  }
  if (o.so_bound_dev) sock.setsockoptBuf(fd, SOL.SOCKET, SO.BINDTODEVICE, Buffer.from(`${o.so_bound_dev}\0`));
  if (o.so_filter.length) sock.attachFilter(fd, decodeFilter(o.so_filter));
}

/** The last steps of a socket's restore: its options, then its O_NONBLOCK (O_ASYNC comes with its owner). */
export function finishSocket(fd: number, o: Message<'sk_opts_entry'>, flags: number): number {
  restoreSkOpts(fd, o);
  fcntl(fd, F.SETFL, flags & O.NONBLOCK);
  return fd;
}
