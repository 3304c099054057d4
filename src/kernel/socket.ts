// AF_UNIX SOCK_SEQPACKET sockets for CRIU's RPC: one protobuf message per datagram. Node's
// net module knows only stream sockets, so these are plain blocking syscalls.
import { addressOf, syscall, syscallErr } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';

const NR = {
  socket: sysnr('socket'), bind: sysnr('bind'), listen: sysnr('listen'), accept4: sysnr('accept4'),
  connect: sysnr('connect'), socketpair: sysnr('socketpair'), sendto: sysnr('sendto'), recvfrom: sysnr('recvfrom'), getsockopt: sysnr('getsockopt'), setsockopt: sysnr('setsockopt'),
};

const AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1, SO_TYPE = 3, SO_PEERCRED = 17, SO_RCVTIMEO = 20;
const MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
const EINTR = 4, EAGAIN = 11;
export { SOCK_SEQPACKET };

/** Retries a call interrupted by a signal (SIGCHLD of a restored tree, for one). */
function retrying(call: string, f: () => number): number {
  for (;;) {
    const r = f();
    if (r === -EINTR) continue;
    if (r < 0) throw new SysError(call, -r);
    return r;
  }
}

function sockaddrUn(path: string): Buffer {
  const b = Buffer.alloc(110);
  b.writeUInt16LE(AF_UNIX, 0);
  if (Buffer.byteLength(path) > 107) throw new SysError(`bind(${path})`, 36); // ENAMETOOLONG
  b.write(path, 2);
  return b;
}

/** A listening SOCK_SEQPACKET socket at `path` (an old socket file there is replaced). */
export function seqpacketListen(path: string, backlog = 16): number {
  const fd = syscall('socket(AF_UNIX, SOCK_SEQPACKET)', NR.socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  try {
    const sa = sockaddrUn(path);
    syscall(`bind(${path})`, NR.bind, fd, addressOf(sa), sa.length);
    syscall('listen', NR.listen, fd, backlog);
  } catch (e) { syscallErr(sysnr('close'), fd); throw e; }
  return fd;
}

/** A connection to the SOCK_SEQPACKET socket at `path`, close-on-exec. */
export function seqpacketConnect(path: string): number {
  const fd = syscall('socket(AF_UNIX, SOCK_SEQPACKET)', NR.socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  const sa = sockaddrUn(path);
  const r = syscallErr(NR.connect, fd, addressOf(sa), sa.length);
  if (r < 0) { syscallErr(sysnr('close'), fd); throw new SysError(`connect(${path})`, -r); }
  return fd;
}

/** Both ends of a SOCK_SEQPACKET socketpair, close-on-exec (a swrk child gets one by dup2). */
export function seqpacketPair(): [number, number] {
  const b = Buffer.alloc(8);
  syscall('socketpair(AF_UNIX, SOCK_SEQPACKET)', NR.socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, addressOf(b));
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** The next connection, close-on-exec. */
export function acceptConn(fd: number): number {
  return retrying('accept4', () => syscallErr(NR.accept4, fd, 0, 0, SOCK_CLOEXEC));
}

function getsockoptInt(fd: number, opt: number, size: number): Buffer {
  const b = Buffer.alloc(size), len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  syscall(`getsockopt(${fd}, ${opt})`, NR.getsockopt, fd, SOL_SOCKET, opt, addressOf(b), addressOf(len));
  return b;
}

/** How long a receive may wait (0: forever); past it, the receive fails with EAGAIN. */
export function setRecvTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  syscall(`setsockopt(${fd}, SO_RCVTIMEO)`, NR.setsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, addressOf(tv), tv.length);
}

export function socketType(fd: number): number { return getsockoptInt(fd, SO_TYPE, 4).readInt32LE(0); }

/** SO_PEERCRED: who is at the other end (for a socketpair, the process that made it). */
export function peerCred(fd: number): { pid: number; uid: number; gid: number } {
  const b = getsockoptInt(fd, SO_PEERCRED, 12);
  return { pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) };
}

/**
 * The next datagram and its real size (peeked with MSG_TRUNC first), or undefined at end of
 * stream. A datagram past `maxBytes` is still taken off the socket, cut short: `size` tells.
 * A datagram of no bytes reads as the end, as no message is empty.
 */
export function recvDatagram(fd: number, maxBytes: number): { bytes: Buffer; size: number } | undefined {
  const probe = Buffer.alloc(1);
  const size = retrying('recv', () => syscallErr(NR.recvfrom, fd, addressOf(probe), 0, MSG_PEEK | MSG_TRUNC, 0, 0));
  if (size === 0) return undefined;
  const b = Buffer.alloc(Math.min(size, maxBytes));
  const n = retrying('recv', () => syscallErr(NR.recvfrom, fd, addressOf(b), b.length, MSG_TRUNC, 0, 0));
  return { bytes: b.subarray(0, Math.min(n, b.length)), size: n };
}

/** One datagram; a peer that has gone gives EPIPE (no SIGPIPE). */
export function sendDatagram(fd: number, msg: Buffer): void {
  retrying('send', () => syscallErr(NR.sendto, fd, addressOf(msg), msg.length, MSG_NOSIGNAL, 0, 0));
}

/** Whether the peer has closed its end (or the socket broke), without waiting. */
export function peerGone(fd: number): boolean {
  const probe = Buffer.alloc(1);
  const r = syscallErr(NR.recvfrom, fd, addressOf(probe), 1, MSG_PEEK | MSG_DONTWAIT, 0, 0);
  return r === 0 || (r < 0 && r !== -EAGAIN && r !== -EINTR);
}
