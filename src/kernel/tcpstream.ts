// Blocking TCP streams for the page server protocol: whole-buffer sends and receives on
// sockets criu-ts opens itself. A dump runs synchronously, so its page data goes out from
// the same thread that reads it, with no event loop between.
import { addressOf, syscallErr } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';
import { close } from './syscalls.ts';
import { AF, SO, SOCK, SOL, TCP, bind, connect, getsockname, listen, setsockoptInt, socket } from './inet.ts';

const NR = { accept4: sysnr('accept4'), sendto: sysnr('sendto'), recvfrom: sysnr('recvfrom') };
const EINTR = 4;
const MSG_WAITALL = 0x100,
  MSG_NOSIGNAL = 0x4000;

/** sockaddr_in / sockaddr_in6 for a numeric address ('' or '::' for any). */
export function inetSockaddr(address: string, port: number): Buffer {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF.INET, 0);
    b.writeUInt16BE(port, 2);
    for (let i = 0; i < 4; i++) {
      const n = Number(v4[i + 1]);
      if (n > 255) throw new SysError(`address ${address}`, 22);
      b[4 + i] = n;
    }
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF.INET6, 0);
  b.writeUInt16BE(port, 2);
  const words = ipv6Words(address === '' ? '::' : address);
  if (!words) throw new SysError(`address ${address}`, 22);
  for (const [i, w] of words.entries()) b.writeUInt16BE(w, 8 + 2 * i);
  return b;
}

function ipv6Words(s: string): number[] | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const a = part(halves[0]);
  const z = halves.length === 2 ? part(halves[1]) : [];
  if (!a || !z) return undefined;
  if (halves.length === 1) return a.length === 8 ? a : undefined;
  if (a.length + z.length > 7) return undefined;
  return [...a, ...new Array<number>(8 - a.length - z.length).fill(0), ...z];
}

/** The port a socket is bound to. */
export function boundPort(fd: number): number {
  return getsockname(fd).readUInt16BE(2);
}

/** A listening TCP socket at addr (port 0: one the kernel picks). */
export function tcpListen(addr: Buffer): number {
  const fd = socket(addr.readUInt16LE(0), SOCK.STREAM | SOCK.CLOEXEC, 0);
  try {
    setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
    bind(fd, addr);
    listen(fd, 1);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

export function tcpAccept(fd: number): number {
  for (;;) {
    const r = syscallErr(NR.accept4, fd, 0, 0, SOCK.CLOEXEC);
    if (r === -EINTR) continue;
    if (r < 0) throw new SysError('accept', -r);
    return r;
  }
}

export function tcpConnect(addr: Buffer): number {
  const fd = socket(addr.readUInt16LE(0), SOCK.STREAM | SOCK.CLOEXEC, 0);
  try {
    connect(fd, addr);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

export function setNodelay(fd: number, on: boolean): void {
  setsockoptInt(fd, SOL.TCP, TCP.NODELAY, on ? 1 : 0);
}

/** Receive until buf is full or the peer closes; returns the bytes received. */
export function recvFull(fd: number, buf: Buffer): number {
  let got = 0;
  while (got < buf.length) {
    const r = syscallErr(NR.recvfrom, fd, addressOf(buf) + BigInt(got), buf.length - got, MSG_WAITALL, 0, 0);
    if (r === -EINTR) continue;
    if (r < 0) throw new SysError('recv', -r);
    if (r === 0) break;
    got += r;
  }
  return got;
}

/** Send all of buf (no SIGPIPE: a peer gone is an EPIPE error). */
export function sendFull(fd: number, buf: Uint8Array): void {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let sent = 0;
  while (sent < b.length) {
    const r = syscallErr(NR.sendto, fd, addressOf(b) + BigInt(sent), b.length - sent, MSG_NOSIGNAL, 0, 0);
    if (r === -EINTR) continue;
    if (r < 0) throw new SysError('send', -r);
    sent += r;
  }
}

/** TCP_CORK: hold partial frames (headers between page data) until uncorked or NODELAY is set. */
export function setCork(fd: number, on: boolean): void {
  setsockoptInt(fd, SOL.TCP, TCP.CORK, on ? 1 : 0);
}
