// Socket calls criu-ts makes on inet sockets it holds (fresh ones, or pidfd_getfd copies of a
// task's): options, names, repair-queue peeks and sends. Each throws SysError on failure.
import { addressOf, syscall, syscallErr } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';

const NR = {
  socket: sysnr('socket'),
  bind: sysnr('bind'),
  listen: sysnr('listen'),
  connect: sysnr('connect'),
  getsockname: sysnr('getsockname'),
  getpeername: sysnr('getpeername'),
  sendto: sysnr('sendto'),
  recvfrom: sysnr('recvfrom'),
  setsockopt: sysnr('setsockopt'),
  getsockopt: sysnr('getsockopt'),
  shutdown: sysnr('shutdown'),
  getxattr: sysnr('getxattr'),
  ppoll: sysnr('ppoll'),
};

export const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ICMPV6: 58, UDPLITE: 136, RAW: 255 } as const;
export const SOL = { SOCKET: 1, IP: 0, IPV6: 41, TCP: 6, UDPLITE: 136, RAW: 255, ICMPV6: 58, PACKET: 263, NETLINK: 270 } as const;
export const SO = {
  DEBUG: 1,
  REUSEADDR: 2,
  TYPE: 3,
  DONTROUTE: 5,
  BROADCAST: 6,
  SNDBUF: 7,
  RCVBUF: 8,
  KEEPALIVE: 9,
  OOBINLINE: 10,
  NO_CHECK: 11,
  PRIORITY: 12,
  LINGER: 13,
  REUSEPORT: 15,
  PASSCRED: 16,
  RCVLOWAT: 18,
  RCVTIMEO: 20,
  SNDTIMEO: 21,
  BINDTODEVICE: 25,
  ATTACH_FILTER: 26,
  GET_FILTER: 26,
  ACCEPTCONN: 30,
  SNDBUFFORCE: 32,
  RCVBUFFORCE: 33,
  PASSSEC: 34,
  MARK: 36,
  PROTOCOL: 38,
  DOMAIN: 39,
  PEEK_OFF: 42,
  BUF_LOCK: 72,
} as const;
export const IP = { TOS: 1, TTL: 2, HDRINCL: 3, PKTINFO: 8, FREEBIND: 15, NODEFRAG: 22 } as const;
export const IPV6 = { HDRINCL: 36, V6ONLY: 26, RECVPKTINFO: 49, TCLASS: 67, FREEBIND: 78 } as const;
/** ICMP_FILTER (SOL_RAW) and ICMPV6_FILTER (SOL_ICMPV6): both option 1. */
export const ICMP_FILTER = 1;
/** SOL_PACKET options (linux/if_packet.h). */
export const PACKET = {
  ADD_MEMBERSHIP: 1,
  RX_RING: 5,
  COPY_THRESH: 7,
  AUXDATA: 8,
  ORIGDEV: 9,
  VERSION: 10,
  RESERVE: 12,
  TX_RING: 13,
  LOSS: 14,
  VNET_HDR: 15,
  TIMESTAMP: 17,
  FANOUT: 18,
} as const;
/** SOCK_PACKET: the obsolete packet socket type, bound by device name. */
export const SOCK_PACKET = 10;
/** SIOCGSKNS: an fd of the socket's network namespace. */
export const SIOCGSKNS = 0x894c;
/** SIOCGIFNAME: the name of an interface by index (struct ifreq). */
export const SIOCGIFNAME = 0x8910;
export const UDP = { CORK: 1 } as const;
export const TCP = {
  NODELAY: 1,
  MAXSEG: 2,
  CORK: 3,
  KEEPIDLE: 4,
  KEEPINTVL: 5,
  KEEPCNT: 6,
  INFO: 11,
  REPAIR: 19,
  REPAIR_QUEUE: 20,
  QUEUE_SEQ: 21,
  REPAIR_OPTIONS: 22,
  TIMESTAMP: 24,
  REPAIR_WINDOW: 29,
} as const;
export const MSG = { PEEK: 2, DONTWAIT: 0x40 } as const;
export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;
export const SIOCINQ = 0x541b,
  SIOCOUTQ = 0x5411,
  SIOCOUTQNSD = 0x894b;

export function socket(family: number, type: number, proto: number): number {
  return syscall(`socket(${family}, ${type}, ${proto})`, NR.socket, family, type, proto);
}

export function bind(fd: number, addr: Buffer): void {
  syscall('bind', NR.bind, fd, addressOf(addr), addr.length);
}
export function listen(fd: number, backlog: number): void {
  syscall('listen', NR.listen, fd, backlog);
}
export function connect(fd: number, addr: Buffer): void {
  syscall('connect', NR.connect, fd, addressOf(addr), addr.length);
}
export function shutdown(fd: number, how: number): void {
  syscall('shutdown', NR.shutdown, fd, how);
}

function sockName(nr: number, what: string, fd: number): Buffer {
  const b = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  syscall(what, nr, fd, addressOf(b), addressOf(len));
  return b.subarray(0, len.readUInt32LE(0));
}
export function getsockname(fd: number): Buffer {
  return sockName(NR.getsockname, 'getsockname', fd);
}
/** The peer's address, or undefined when not connected (ENOTCONN). */
export function getpeername(fd: number): Buffer | undefined {
  try {
    return sockName(NR.getpeername, 'getpeername', fd);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENOTCONN') return undefined;
    throw e;
  }
}

/**
 * SO_PEERNAME: the peer's address even where getpeername says ENOTCONN (a TCP connection
 * reset, or not made yet); undefined when the socket never had one.
 */
export function peerNameOpt(fd: number, family: number): Buffer | undefined {
  try {
    // The length must be no more than the family's sockaddr (EINVAL).
    return getsockoptBuf(fd, SOL.SOCKET, 28 /* SO_PEERNAME */, family === AF.INET ? 16 : 28);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENOTCONN') return undefined;
    throw e;
  }
}

/** getsockopt into a buffer of `size` bytes; the bytes the kernel filled. */
export function getsockoptBuf(fd: number, level: number, opt: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  syscall(`getsockopt(${level}, ${opt})`, NR.getsockopt, fd, level, opt, addressOf(b), addressOf(len));
  return b.subarray(0, len.readUInt32LE(0));
}

export function getsockoptInt(fd: number, level: number, opt: number): number {
  return getsockoptBuf(fd, level, opt, 4).readInt32LE(0);
}

/** An int option, or undefined when this socket or kernel does not have it. */
export function getsockoptIntMaybe(fd: number, level: number, opt: number): number | undefined {
  const b = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  const r = syscallErr(NR.getsockopt, fd, level, opt, addressOf(b), addressOf(len));
  return r < 0 ? undefined : b.readInt32LE(0);
}

export function setsockoptBuf(fd: number, level: number, opt: number, val: Buffer): void {
  syscall(`setsockopt(${level}, ${opt})`, NR.setsockopt, fd, level, opt, addressOf(val), val.length);
}

export function setsockoptInt(fd: number, level: number, opt: number, val: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(val, 0);
  setsockoptBuf(fd, level, opt, b);
}

/** recv(2) into `buf`; -errno instead of throwing, so callers can branch on EAGAIN. */
export function recvRaw(fd: number, buf: Buffer, flags: number): number {
  return syscallErr(NR.recvfrom, fd, addressOf(buf), buf.length, flags, 0, 0);
}

/** send(2); -errno instead of throwing, so callers can shrink the chunk on ENOMEM. */
export function sendRaw(fd: number, buf: Buffer, flags: number): number {
  return syscallErr(NR.sendto, fd, addressOf(buf), buf.length, flags, 0, 0);
}

/** sendto(2) to an address (a raw socket's packet). */
export function sendTo(fd: number, buf: Buffer, addr: Buffer): number {
  return syscall('sendto', NR.sendto, fd, addressOf(buf), buf.length, 0, addressOf(addr), addr.length);
}

/**
 * The protocol name a socket reports through its "system.sockprotoname" xattr (TCP, UDPv6,
 * UDP-Lite, UNIX-STREAM...), read through a path such as /proc/PID/fd/N.
 */
export function sockProtoName(path: string): string {
  const p = Buffer.from(`${path}\0`),
    name = Buffer.from('system.sockprotoname\0');
  const b = Buffer.alloc(64);
  const n = syscall(`getxattr(${path}, system.sockprotoname)`, NR.getxattr, addressOf(p), addressOf(name), addressOf(b), b.length);
  return b.subarray(0, n).toString('latin1').replace(/\0.*$/s, '');
}

export const POLL = { IN: 1, OUT: 4, HUP: 0x10, RDHUP: 0x2000 } as const;

/** The poll events of one fd now (ppoll with a zero timeout). */
export function pollNow(fd: number, events: number): number {
  const pfd = Buffer.alloc(8),
    ts = Buffer.alloc(16);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  const n = syscall('ppoll', NR.ppoll, addressOf(pfd), 1, addressOf(ts), 0, 8);
  return n ? pfd.readInt16LE(6) & 0xffff : 0;
}

/**
 * The classic BPF program attached with SO_ATTACH_FILTER, as the kernel gives it back
 * (SO_GET_FILTER counts in 8-byte instructions): empty without one.
 */
export function getFilter(fd: number): Buffer {
  const len = Buffer.alloc(4);
  syscall('getsockopt(SO_GET_FILTER)', NR.getsockopt, fd, 1, 26, 0, addressOf(len));
  const n = len.readUInt32LE(0);
  if (!n) return Buffer.alloc(0);
  const b = Buffer.alloc(n * 8);
  len.writeUInt32LE(n, 0);
  syscall('getsockopt(SO_GET_FILTER)', NR.getsockopt, fd, 1, 26, addressOf(b), addressOf(len));
  return b.subarray(0, len.readUInt32LE(0) * 8);
}

/** SO_ATTACH_FILTER of a classic BPF program (struct sock_filter array). */
export function attachFilter(fd: number, insns: Buffer): void {
  const prog = Buffer.alloc(16);
  prog.writeUInt16LE(insns.length / 8, 0);
  prog.writeBigUInt64LE(addressOf(insns), 8);
  syscall('setsockopt(SO_ATTACH_FILTER)', NR.setsockopt, fd, 1, 26, addressOf(prog), prog.length);
}
