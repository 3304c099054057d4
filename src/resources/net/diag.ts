// sock_diag (NETLINK_SOCK_DIAG) dumps: what only the kernel's socket tables tell of a socket
// (an inet socket's shutdown state, a netlink socket's port and groups, a packet socket's
// rings and multicast list). One dump per family (and protocol), matched by inode; it sees
// the sockets of criu-ts's network namespace.
import { sock, close } from '../../kernel/index.ts';
import type { Endpoint } from '../../soccr/index.ts';
import { NLM_F, NLMSG, NLMSG_HDRLEN } from './nlattr.ts';

const NETLINK_SOCK_DIAG = 4,
  SOCK_DIAG_BY_FAMILY = 20;

/** One socket of a dump: its fixed message (family specific) and its attributes by type. */
export interface DiagMsg {
  msg: Buffer;
  attrs: Map<number, Buffer>;
}

/** Where dumps are received, kept: every message is copied out of it. */
let recvBuf: Buffer | undefined;

/**
 * Every message (header included) a netlink dump request of `type` answers with, on a socket of
 * `protocol` in criu-ts's network namespace; `body` follows the request's header.
 */
export function netlinkDump(protocol: number, type: number, body: Buffer): Buffer[] {
  const fd = sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, protocol);
  const out: Buffer[] = [];
  try {
    const req = Buffer.alloc(NLMSG_HDRLEN + body.length);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(type, 4);
    req.writeUInt16LE(NLM_F.REQUEST | NLM_F.DUMP, 6);
    body.copy(req, NLMSG_HDRLEN);
    if (sock.sendRaw(fd, req, 0) !== req.length) throw new Error(`netlink ${protocol}: short request`);
    recvBuf ??= Buffer.allocUnsafeSlow(256 * 1024);
    const buf = recvBuf;
    for (;;) {
      const n = sock.recvRaw(fd, buf, 0);
      if (n < 0) throw new Error(`netlink ${protocol}: recv failed (errno ${-n})`);
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const len = buf.readUInt32LE(off),
          t = buf.readUInt16LE(off + 4);
        if (t === NLMSG.DONE) return out;
        if (t === NLMSG.ERROR) {
          const err = -buf.readInt32LE(off + NLMSG_HDRLEN);
          if (err === 0) return out;
          throw new Error(`netlink ${protocol}: error ${err}`);
        }
        if (len < NLMSG_HDRLEN || off + len > n) throw new Error(`netlink ${protocol}: a message of ${len} bytes`);
        out.push(Buffer.from(buf.subarray(off, off + len)));
        off += (len + 3) & ~3;
      }
    }
  } finally {
    close(fd);
  }
}

/** Every socket a SOCK_DIAG_BY_FAMILY dump request (`body`, after the netlink header) lists. */
export function diagDump(body: Buffer, msgLen: number): DiagMsg[] {
  return netlinkDump(NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, body).map((m) => {
    if (m.length < NLMSG_HDRLEN + msgLen) throw new Error(`sock_diag: short message of ${m.length} bytes`);
    const attrs = new Map<number, Buffer>();
    for (let a = NLMSG_HDRLEN + msgLen; a + 4 <= m.length; ) {
      const alen = m.readUInt16LE(a),
        atype = m.readUInt16LE(a + 2) & 0x3fff;
      if (alen < 4) break;
      attrs.set(atype, Buffer.from(m.subarray(a + 4, a + alen)));
      a += (alen + 3) & ~3;
    }
    return { msg: Buffer.from(m.subarray(NLMSG_HDRLEN, NLMSG_HDRLEN + msgLen)), attrs };
  });
}

const INET_DIAG_SHUTDOWN = 8;

/** An inet socket as sock_diag shows it. */
export interface DiagSock {
  state: number;
  /** RCV_SHUTDOWN 1, SEND_SHUTDOWN 2 */
  shutdown: number;
  src: Endpoint;
  dst: Endpoint;
}

/**
 * Every socket of one family and protocol (TCP, UDP, UDP-Lite), by inode; with `listening`,
 * TCP's listeners only, which spares the walk of the whole established hash.
 */
export function inetDiag(family: number, proto: number, listening = false): Map<number, DiagSock> {
  const req = Buffer.alloc(56);
  req.writeUInt8(family, 0);
  req.writeUInt8(proto, 1);
  req.writeUInt8(0, 2); // no extensions: the shutdown attribute always comes
  req.writeUInt32LE(listening ? 1 << 10 : 0xffffffff, 4); // TCPF_LISTEN, or every state
  const alen = family === sock.AF.INET ? 4 : 16;
  const out = new Map<number, DiagSock>();
  for (const { msg, attrs } of diagDump(req, 72)) {
    const end = (port: number, at: number): Endpoint => ({
      family,
      port: msg.readUInt16BE(port),
      addr: Buffer.from(msg.subarray(at, at + alen)),
    });
    out.set(msg.readUInt32LE(68), {
      state: msg.readUInt8(1),
      shutdown: attrs.get(INET_DIAG_SHUTDOWN)?.readUInt8(0) ?? 0,
      src: end(4, 8),
      dst: end(6, 24),
    });
  }
  return out;
}

/** A family's and protocol's sockets from `cache`, read once. */
export function diagOf(cache: Map<string, Map<number, DiagSock>>, family: number, proto: number): Map<number, DiagSock> {
  const key = `${family}:${proto}`;
  let d = cache.get(key);
  if (!d) {
    d = inetDiag(family, proto);
    cache.set(key, d);
  }
  return d;
}

/** Does this kernel list raw sockets through sock_diag (raw_diag, CRIU's net_diag_raw)? */
export function hasRawDiag(): boolean {
  const req = Buffer.alloc(56);
  req.writeUInt8(sock.AF.INET, 0);
  req.writeUInt8(sock.IPPROTO.RAW, 1);
  req.writeUInt32LE(0xffffffff, 4);
  try {
    diagDump(req, 72);
    return true;
  } catch {
    return false;
  }
}
