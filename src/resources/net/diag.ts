// INET_DIAG (NETLINK_SOCK_DIAG): what only sock_diag tells of an inet socket: its state, its
// two ends (a connection not made yet has no peer name) and its shutdown state (poll shows a
// read shutdown, never a write one). One dump per family and protocol, matched by inode; it
// sees the sockets of criu-ts's network namespace.
import { sock, close } from '../../kernel/index.ts';
import type { Endpoint } from '../../soccr/index.ts';

const NETLINK_SOCK_DIAG = 4,
  SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1,
  NLM_F_DUMP = 0x300,
  NLMSG_DONE = 3,
  NLMSG_ERROR = 2;
const INET_DIAG_SHUTDOWN = 8;
const MSG_HDR = 16,
  DIAG_MSG = 72;

/** An inet socket as sock_diag shows it. */
export interface DiagSock {
  state: number;
  /** RCV_SHUTDOWN 1, SEND_SHUTDOWN 2 */
  shutdown: number;
  src: Endpoint;
  dst: Endpoint;
}

/** Every socket of one family and protocol, by inode. */
export function inetDiag(family: number, proto: number): Map<number, DiagSock> {
  const fd = sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, NETLINK_SOCK_DIAG);
  const out = new Map<number, DiagSock>();
  const alen = family === sock.AF.INET ? 4 : 16;
  try {
    const req = Buffer.alloc(MSG_HDR + 56);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt8(family, MSG_HDR);
    req.writeUInt8(proto, MSG_HDR + 1);
    req.writeUInt8(0, MSG_HDR + 2); // no extensions: the shutdown attribute always comes
    req.writeUInt32LE(0xffffffff, MSG_HDR + 4); // every state
    if (sock.sendRaw(fd, req, 0) !== req.length) throw new Error('sock_diag: short request');
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = sock.recvRaw(fd, buf, 0);
      if (n < 0) throw new Error(`sock_diag: recv failed (errno ${-n})`);
      for (let off = 0; off + MSG_HDR <= n; ) {
        const len = buf.readUInt32LE(off),
          type = buf.readUInt16LE(off + 4);
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) throw new Error(`sock_diag: error ${-buf.readInt32LE(off + MSG_HDR)}`);
        const msg = off + MSG_HDR;
        const ino = buf.readUInt32LE(msg + 68);
        let shutdown = 0;
        for (let a = msg + DIAG_MSG; a + 4 <= off + len; ) {
          const alen = buf.readUInt16LE(a),
            atype = buf.readUInt16LE(a + 2);
          if (alen < 4) break;
          if (atype === INET_DIAG_SHUTDOWN) shutdown = buf.readUInt8(a + 4);
          a += (alen + 3) & ~3;
        }
        const end = (port: number, at: number): Endpoint => ({
          family,
          port: buf.readUInt16BE(msg + port),
          addr: Buffer.from(buf.subarray(msg + at, msg + at + alen)),
        });
        out.set(ino, { state: buf.readUInt8(msg + 1), shutdown, src: end(4, 8), dst: end(6, 24) });
        off += (len + 3) & ~3;
      }
    }
  } finally {
    close(fd);
  }
}
