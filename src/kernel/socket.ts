// Sockets as criu-ts uses them on its own copies: creation, names, options, peeking queues
// with their control messages, and unix sock_diag (NETLINK_SOCK_DIAG) lookups by inode.
import fs from 'node:fs';
import { addressOf, syscall, syscallErr } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';

const NR = {
  socket: sysnr('socket'),
  socketpair: sysnr('socketpair'),
  bind: sysnr('bind'),
  connect: sysnr('connect'),
  listen: sysnr('listen'),
  getsockopt: sysnr('getsockopt'),
  setsockopt: sysnr('setsockopt'),
  shutdown: sysnr('shutdown'),
  sendmsg: sysnr('sendmsg'),
  recvmsg: sysnr('recvmsg'),
  getsockname: sysnr('getsockname'),
};

export const AF_UNIX = 1,
  AF_NETLINK = 16;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const SOL_SOCKET = 1;
/** asm-generic/socket.h values, shared by x86_64 and arm64. */

export {
  SO,
  listen,
  shutdown,
  getsockname,
  getsockoptBuf,
  getsockoptInt,
  setsockoptBuf,
  setsockoptInt,
  getFilter,
  attachFilter,
} from './inet.ts';
export const SCM_RIGHTS = 1,
  SCM_CREDENTIALS = 2;
const MSG_CTRUNC = 8,
  MSG_TRUNC = 0x20,
  MSG_PEEK = 2,
  MSG_DONTWAIT = 0x40,
  MSG_NOSIGNAL = 0x4000,
  MSG_CMSG_CLOEXEC = 0x40000000;
/** SIOCPROTOPRIVATE + 0: an O_PATH fd of a bound unix socket's file. */
export const SIOCUNIXFILE = 0x89e0;

export function socket(domain: number, type: number, proto = 0): number {
  return syscall('socket', NR.socket, domain, type | SOCK.CLOEXEC, proto);
}

export function socketpair(domain: number, type: number): [number, number] {
  const b = Buffer.alloc(8);
  syscall('socketpair', NR.socketpair, domain, type | SOCK.CLOEXEC, 0, addressOf(b));
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** sockaddr_un for a name as sock_diag reports it (path with its NUL, or abstract from its leading NUL). */
function sockaddrUn(name: Buffer): Buffer {
  if (name.length > 108) throw new Error(`unix socket name of ${name.length} bytes is too long`);
  const a = Buffer.alloc(2 + name.length);
  a.writeUInt16LE(AF_UNIX, 0);
  name.copy(a, 2);
  return a;
}

export function bindUnix(fd: number, name: Buffer): void {
  const a = sockaddrUn(name);
  syscall('bind', NR.bind, fd, addressOf(a), a.length);
}

/** connect() to a unix name; returns -errno instead of throwing. */
export function connectUnix(fd: number, name: Buffer): number {
  const a = sockaddrUn(name);
  return Math.min(0, syscallErr(NR.connect, fd, addressOf(a), a.length));
}

export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}
/** One peeked or to-be-sent message: its bytes, the fds it carries, its credentials. */
export interface SockMsg {
  data: Buffer;
  fds: number[];
  creds?: Ucred;
}

const CMSG_HDR = 16;
const align8 = (n: number): number => (n + 7) & ~7;

function msghdr(data: Buffer, control: Buffer): { hdr: Buffer; iov: Buffer } {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const hdr = Buffer.alloc(56);
  hdr.writeBigUInt64LE(addressOf(iov), 16);
  hdr.writeBigUInt64LE(1n, 24);
  if (control.length) {
    hdr.writeBigUInt64LE(addressOf(control), 32);
    hdr.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return { hdr, iov };
}

/**
 * The next message at the socket's peek offset, without taking it: undefined when the queue
 * has no more. Fds it carries are installed in criu-ts (close-on-exec) and returned.
 */
export function peekMsg(fd: number, size: number): SockMsg | undefined {
  const data = Buffer.alloc(size),
    control = Buffer.alloc(4096);
  const { hdr, iov } = msghdr(data, control);
  const n = syscallErr(NR.recvmsg, fd, addressOf(hdr), MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  void iov;
  if (n === -11) return undefined;
  if (n < 0) throw new SysError('recvmsg(MSG_PEEK)', -n);
  const flags = hdr.readInt32LE(48);
  const msg: SockMsg = { data: Buffer.from(data.subarray(0, n)), fds: [] };
  const clen = Number(hdr.readBigUInt64LE(40));
  for (let off = 0; off + CMSG_HDR <= clen; ) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < CMSG_HDR) break;
    const level = control.readInt32LE(off + 8),
      type = control.readInt32LE(off + 12);
    const body = control.subarray(off + CMSG_HDR, off + len);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = 0; i + 4 <= body.length; i += 4) msg.fds.push(body.readInt32LE(i));
    } else if (level === SOL_SOCKET && type === SCM_CREDENTIALS) {
      msg.creds = { pid: body.readInt32LE(0), uid: body.readUInt32LE(4), gid: body.readUInt32LE(8) };
    } else {
      for (const f of msg.fds) syscallErr(sysnr('close'), f);
      throw new Error(`a queued message carries a control message of level ${level} type ${type}`);
    }
    off += align8(len);
  }
  if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (const f of msg.fds) syscallErr(sysnr('close'), f);
    throw new Error(`a queued message does not fit ${size} bytes (or its control data was cut)`);
  }
  if (n === 0 && !msg.fds.length && !msg.creds) return undefined;
  return msg;
}

/** sendmsg one message, with its fds and credentials, to the peer or to `to` (a unix name). */
export function sendMsg(fd: number, m: SockMsg, to?: Buffer): number {
  let control = Buffer.alloc(0);
  const parts: Buffer[] = [];
  if (m.fds.length) {
    const c = Buffer.alloc(align8(CMSG_HDR + 4 * m.fds.length));
    c.writeBigUInt64LE(BigInt(CMSG_HDR + 4 * m.fds.length), 0);
    c.writeInt32LE(SOL_SOCKET, 8);
    c.writeInt32LE(SCM_RIGHTS, 12);
    m.fds.forEach((f, i) => {
      c.writeInt32LE(f, CMSG_HDR + 4 * i);
    });
    parts.push(c);
  }
  if (m.creds) {
    const c = Buffer.alloc(align8(CMSG_HDR + 12));
    c.writeBigUInt64LE(BigInt(CMSG_HDR + 12), 0);
    c.writeInt32LE(SOL_SOCKET, 8);
    c.writeInt32LE(SCM_CREDENTIALS, 12);
    c.writeInt32LE(m.creds.pid, 16);
    c.writeUInt32LE(m.creds.uid, 20);
    c.writeUInt32LE(m.creds.gid, 24);
    parts.push(c);
  }
  if (parts.length) control = Buffer.concat(parts);
  const data = m.data.length ? m.data : Buffer.alloc(1);
  const { hdr, iov } = msghdr(data, control);
  if (!m.data.length) iov.writeBigUInt64LE(0n, 8);
  const addr = to ? sockaddrUn(to) : undefined;
  if (addr) {
    hdr.writeBigUInt64LE(addressOf(addr), 0);
    hdr.writeUInt32LE(addr.length, 8);
  }
  return syscall('sendmsg', NR.sendmsg, fd, addressOf(hdr), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/** UNIX_DIAG_* show bits and what a lookup returns. */
export const UDIAG_SHOW = { NAME: 1, VFS: 2, PEER: 4, ICONS: 8, RQLEN: 0x10, MEMINFO: 0x20, UID: 0x40 } as const;
export interface UnixDiag {
  type: number;
  state: number;
  ino: number;
  name?: Buffer;
  vfs?: { ino: number; dev: number };
  peer?: number;
  icons?: number[];
  rqlen?: { rqueue: number; wqueue: number };
  shutdown?: number;
  uid?: number;
}

const NLMSG_ERROR = 2,
  SOCK_DIAG_BY_FAMILY = 20,
  NLM_F_REQUEST = 1;

/** A NETLINK_SOCK_DIAG socket: sees the sockets of criu-ts's network namespace. */
export function sockDiagOpen(): number {
  return socket(AF_NETLINK, SOCK.RAW, 4);
}

/** One unix socket by inode (exact lookup); undefined if the diag socket's netns has no such socket. */
export function unixDiag(diagFd: number, ino: number, show: number): UnixDiag | undefined {
  const req = Buffer.alloc(16 + 24);
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  req.writeUInt16LE(NLM_F_REQUEST, 6);
  req.writeUInt32LE(ino, 8); // seq
  req.writeUInt8(AF_UNIX, 16);
  req.writeUInt32LE(0xffffffff, 20); // all states
  req.writeUInt32LE(ino, 24);
  req.writeUInt32LE(show, 28);
  req.writeUInt32LE(0xffffffff, 32);
  req.writeUInt32LE(0xffffffff, 36); // no cookie
  fs.writeSync(diagFd, req);
  const buf = Buffer.alloc(65536);
  const n = fs.readSync(diagFd, buf, 0, buf.length, null);
  if (n < 16) throw new Error('sock_diag: short reply');
  const type = buf.readUInt16LE(4);
  if (type === NLMSG_ERROR) {
    const err = -buf.readInt32LE(16);
    if (err === 2) return undefined; // ENOENT
    throw new SysError(`sock_diag(unix ${ino})`, err);
  }
  const end = Math.min(n, buf.readUInt32LE(0));
  const d: UnixDiag = { type: buf.readUInt8(17), state: buf.readUInt8(18), ino: buf.readUInt32LE(20) };
  for (let off = 32; off + 4 <= end; ) {
    const len = buf.readUInt16LE(off),
      at = buf.readUInt16LE(off + 2);
    if (len < 4) break;
    const v = buf.subarray(off + 4, off + len);
    switch (at) {
      case 0:
        d.name = Buffer.from(v);
        break;
      case 1:
        d.vfs = { ino: v.readUInt32LE(0), dev: v.readUInt32LE(4) };
        break;
      case 2:
        d.peer = v.readUInt32LE(0);
        break;
      case 3:
        d.icons = [];
        for (let i = 0; i + 4 <= v.length; i += 4) d.icons.push(v.readUInt32LE(i));
        break;
      case 4:
        d.rqlen = { rqueue: v.readUInt32LE(0), wqueue: v.readUInt32LE(4) };
        break;
      case 6:
        d.shutdown = v.readUInt8(0);
        break;
      case 7:
        d.uid = v.readUInt32LE(0);
        break;
    }
    off += (len + 3) & ~3;
  }
  return d;
}
