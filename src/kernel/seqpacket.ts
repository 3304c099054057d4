// AF_UNIX SOCK_SEQPACKET sockets for CRIU's RPC: one protobuf message per datagram. Node's
// net module knows only stream sockets, so these are blocking syscalls, on socket.ts's basics.
import { addressOf, syscallErr } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';
import { close } from './syscalls.ts';
import {
  AF_UNIX,
  SO,
  SOCK,
  SOL_SOCKET,
  bindUnix,
  connectUnix,
  getsockoptBuf,
  getsockoptInt,
  listen,
  setsockoptBuf,
  socket,
  socketpair,
  type Ucred,
} from './socket.ts';

const NR = { accept4: sysnr('accept4'), sendto: sysnr('sendto'), recvfrom: sysnr('recvfrom') };
const SO_PEERCRED = 17;
const MSG_PEEK = 2,
  MSG_TRUNC = 0x20,
  MSG_DONTWAIT = 0x40,
  MSG_NOSIGNAL = 0x4000;
const EINTR = 4,
  EAGAIN = 11;

/** Retries a call interrupted by a signal (SIGCHLD of a restored tree, for one). */
function retrying(call: string, f: () => number): number {
  for (;;) {
    const r = f();
    if (r === -EINTR) continue;
    if (r < 0) throw new SysError(call, -r);
    return r;
  }
}

const pathName = (path: string): Buffer => Buffer.from(`${path}\0`);

/** A listening SOCK_SEQPACKET socket at `path` (the caller removes an old socket file first). */
export function seqpacketListen(path: string, backlog = 16): number {
  const fd = socket(AF_UNIX, SOCK.SEQPACKET);
  try {
    bindUnix(fd, pathName(path));
    listen(fd, backlog);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

/** A connection to the SOCK_SEQPACKET socket at `path`, close-on-exec. */
export function seqpacketConnect(path: string): number {
  const fd = socket(AF_UNIX, SOCK.SEQPACKET);
  const r = connectUnix(fd, pathName(path));
  if (r < 0) {
    close(fd);
    throw new SysError(`connect(${path})`, -r);
  }
  return fd;
}

/** Both ends of a SOCK_SEQPACKET socketpair, close-on-exec (a swrk child gets one by dup2). */
export const seqpacketPair = (): [number, number] => socketpair(AF_UNIX, SOCK.SEQPACKET);

/** The next connection, close-on-exec. */
export function acceptConn(fd: number): number {
  return retrying('accept4', () => syscallErr(NR.accept4, fd, 0, 0, SOCK.CLOEXEC));
}

/** How long a receive may wait (0: forever); past it, the receive fails with EAGAIN. */
export function setRecvTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  setsockoptBuf(fd, SOL_SOCKET, SO.RCVTIMEO, tv);
}

export const socketType = (fd: number): number => getsockoptInt(fd, SOL_SOCKET, SO.TYPE);

/** SO_PEERCRED: who is at the other end (for a socketpair, the process that made it). */
export function peerCred(fd: number): Ucred {
  const b = getsockoptBuf(fd, SOL_SOCKET, SO_PEERCRED, 12);
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
