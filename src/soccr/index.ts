/**
 * soccr: TCP connections frozen, read and recreated through the kernel's TCP repair mode
 * (CRIU's libsoccr), usable without the rest of criu-ts. Every call works on a socket
 * descriptor the caller holds: its own, or a pidfd_getfd copy of another process's, which is
 * the same socket.
 *
 * ```ts
 * import * as soccr from './src/soccr/index.ts';
 * const h = soccr.freeze(fd);          // TCP_REPAIR on: the owner's recv/send now fail
 * const st = soccr.save(fd);           // sequences, queues, window, negotiated options
 * soccr.resume(h);                     // repair off (a window probe goes out), SO_REUSEADDR back
 * // ... or, once the old socket is gone (closed while still in repair):
 * const s = soccr.socketFor(st);       // a fresh TCP socket of the same family
 * soccr.restore(s, st);                // bind, repair connect, options, queues, window
 * soccr.resume(soccr.frozen(s));       // the connection goes on from where it was saved
 * ```
 *
 * Needs CAP_NET_ADMIN in the user namespace owning the socket's network namespace (and
 * CAP_NET_RAW to restore a connection that received a FIN: see fin.ts). Handled states:
 * ESTABLISHED, the half-closed ones (FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING),
 * SYN_SENT (its SYN goes out again) and CLOSE after a reset (its unread data kept).
 * A socket left in repair mode stays unusable for its owner until someone turns repair off
 * (`heal(fd)`), so callers must always `resume` or close what they `freeze`.
 */
import { sock, ioctl, fcntl, F, O, SysError } from '../kernel/index.ts';
import { sendFromPeer, TH } from './fin.ts';

const { SOL, SO, TCP, MSG, AF } = sock;

/** TCP states (include/net/tcp_states.h). */
export const TCP_STATE = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  TIME_WAIT: 6,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
} as const;
const bit = (s: number): number => 1 << s;
const S = TCP_STATE;
/** The states soccr saves and restores. */
const HANDLED =
  bit(S.ESTABLISHED) |
  bit(S.FIN_WAIT1) |
  bit(S.FIN_WAIT2) |
  bit(S.CLOSE_WAIT) |
  bit(S.LAST_ACK) |
  bit(S.CLOSING) |
  bit(S.CLOSE) |
  bit(S.SYN_SENT);
/** Our FIN is in the send queue, restored by shutdown(SHUT_WR): before the peer's FIN, or after it. */
const SNDQ_FIRST_FIN = bit(S.FIN_WAIT1) | bit(S.FIN_WAIT2) | bit(S.CLOSING);
const SNDQ_SECOND_FIN = bit(S.LAST_ACK) | bit(S.CLOSE);
const SNDQ_FIN_ACKED = bit(S.FIN_WAIT2) | bit(S.CLOSE);
/** The peer's FIN was received (it takes a sequence number but no byte of the queue). */
const RCVQ_FIN = bit(S.CLOSE_WAIT) | bit(S.LAST_ACK) | bit(S.CLOSE) | bit(S.CLOSING);
const RCVQ_FIN_ACKED = bit(S.CLOSE);
/** Is this state one that soccr handles? */
export const handledState = (s: number): boolean => (HANDLED & bit(s)) !== 0;

const STATE_NAME = Object.fromEntries(Object.entries(TCP_STATE).map(([k, v]) => [v, k])) as Record<number, string>;
export const stateName = (s: number): string => STATE_NAME[s] ?? `state ${s}`;

/** TCPI_OPT_* bits of tcp_info.tcpi_options: what the two ends negotiated. */
export const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4, ECN: 8 } as const;
const TCPOPT = { MAXSEG: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 } as const;
const QUEUE = { NO: 0, RECV: 1, SEND: 2 } as const;

/** An IPv4 or IPv6 endpoint: `addr` holds 4 or 16 bytes in network order. */
export interface Endpoint {
  family: number;
  addr: Buffer;
  port: number;
  scopeId?: number;
}

/** Everything needed to recreate one connection (CRIU's tcp_stream_entry plus the endpoints). */
export interface TcpState {
  state: number;
  src: Endpoint;
  dst: Endpoint;
  /** rcv_nxt, and the bytes received but not read yet. */
  inqSeq: number;
  inq: Buffer;
  /** write_seq, and the bytes written but not acknowledged (sent first, then unsent). */
  outqSeq: number;
  outq: Buffer;
  /** The unsent tail of outq. */
  unsqLen: number;
  optMask: number;
  sndWscale: number;
  rcvWscale: number;
  mssClamp: number;
  /** TCP_TIMESTAMP when timestamps were negotiated (opaque; bit 0 is the usec mode). */
  timestamp?: number;
  window?: { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number };
}

/** A socket in repair mode, with what repair mode changes and `resume` puts back. */
export interface Frozen {
  fd: number;
  reuseaddr: number;
}

/** sockaddr_in / sockaddr_in6 bytes for an endpoint. */
export function sockaddr(e: Endpoint): Buffer {
  if (e.family === AF.INET) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF.INET, 0);
    b.writeUInt16BE(e.port, 2);
    e.addr.copy(b, 4, 0, 4);
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF.INET6, 0);
  b.writeUInt16BE(e.port, 2);
  e.addr.copy(b, 8, 0, 16);
  b.writeUInt32LE(e.scopeId ?? 0, 24);
  return b;
}

/** The endpoint in sockaddr bytes (getsockname, getpeername). */
export function endpoint(sa: Buffer): Endpoint {
  const family = sa.readUInt16LE(0);
  if (family === AF.INET) return { family, port: sa.readUInt16BE(2), addr: Buffer.from(sa.subarray(4, 8)) };
  if (family === AF.INET6) return { family, port: sa.readUInt16BE(2), addr: Buffer.from(sa.subarray(8, 24)), scopeId: sa.readUInt32LE(24) };
  throw new Error(`not an inet address (family ${family})`);
}

/** The first bytes of tcp_info: state, negotiated options and window scales. */
export function tcpInfo(fd: number): {
  state: number;
  options: number;
  sndWscale: number;
  rcvWscale: number;
  unacked: number;
  sacked: number;
} {
  const b = sock.getsockoptBuf(fd, SOL.TCP, TCP.INFO, 104);
  return {
    state: b[0],
    options: b[5],
    sndWscale: b[6] & 0xf,
    rcvWscale: b[6] >> 4,
    unacked: b.readUInt32LE(24),
    sacked: b.readUInt32LE(28),
  };
}

/** Turn repair mode on. */
export function freeze(fd: number): Frozen {
  // Repair mode makes SO_REUSEADDR read 2 while on and 0 once off: keep the owner's value.
  const reuseaddr = sock.getsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR);
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
  return { fd, reuseaddr };
}

/** A socket this process put in repair mode itself (after `restore`). */
export function frozen(fd: number, reuseaddr = 0): Frozen {
  return { fd, reuseaddr };
}

/** Turn repair mode off and put SO_REUSEADDR back. `probe` false skips the window probe. */
export function resume(f: Frozen, probe = true): void {
  sock.setsockoptInt(f.fd, SOL.TCP, TCP.REPAIR, probe ? 0 : -1);
  sock.setsockoptInt(f.fd, SOL.SOCKET, SO.REUSEADDR, f.reuseaddr);
}

/** Turn repair off on a socket someone else left in repair mode; false if it was not. */
export function heal(fd: number, reuseaddr = 0): boolean {
  try {
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 0);
  } catch (e) {
    if (e instanceof SysError) return false;
    throw e;
  }
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, reuseaddr);
  return true;
}

function queueSeq(fd: number, q: number): number {
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, q);
  return sock.getsockoptInt(fd, SOL.TCP, TCP.QUEUE_SEQ) >>> 0;
}

/** Peek a whole repair queue; SO_PEEK_OFF (honoured by TCP peeks since 6.9) is off meanwhile. */
function peekQueue(fd: number, q: number, len: number): Buffer {
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, q);
  if (len === 0) return Buffer.alloc(0);
  const buf = Buffer.alloc(len + 1);
  const n = sock.recvRaw(fd, buf, MSG.PEEK | MSG.DONTWAIT);
  if (n !== len) throw new Error(`TCP ${q === QUEUE.RECV ? 'receive' : 'send'} queue: peeked ${n} bytes of ${len}`);
  return buf.subarray(0, len);
}

/**
 * Read a frozen connection's state. The socket stays in repair mode. `peer`: where a
 * connection not made yet (SYN_SENT, which has no peer name) goes, from sock_diag.
 */
export function save(fd: number, peer?: Endpoint): TcpState {
  const ti = tcpInfo(fd);
  if (!handledState(ti.state)) throw new Error(`TCP connections in ${stateName(ti.state)} are not supported`);
  let outqLen = ioctlInt(fd, sock.SIOCOUTQ),
    unsqLen = ioctlInt(fd, sock.SIOCOUTQNSD);
  const inqLen = ioctlInt(fd, sock.SIOCINQ);
  // A reset connection's send queue cannot be read by anyone any more.
  if (ti.state === S.CLOSE) outqLen = unsqLen = 0;
  // Our FIN takes a sequence number in the send queue, not a byte.
  if (bit(ti.state) & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN)) {
    if (outqLen) outqLen--;
    if (unsqLen) unsqLen--;
  }
  const mssClamp = sock.getsockoptInt(fd, SOL.TCP, TCP.MAXSEG);
  const timestamp = ti.options & TCPI_OPT.TIMESTAMPS ? sock.getsockoptInt(fd, SOL.TCP, TCP.TIMESTAMP) >>> 0 : undefined;
  const w = sock.getsockoptBuf(fd, SOL.TCP, TCP.REPAIR_WINDOW, 20);
  const window = {
    sndWl1: w.readUInt32LE(0),
    sndWnd: w.readUInt32LE(4),
    maxWindow: w.readUInt32LE(8),
    rcvWnd: w.readUInt32LE(12),
    rcvWup: w.readUInt32LE(16),
  };
  const peekOff = sock.getsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF);
  if (peekOff !== -1) sock.setsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, -1);
  let inq: Buffer, outq: Buffer, inqSeq: number, outqSeq: number;
  try {
    inqSeq = queueSeq(fd, QUEUE.RECV);
    inq = peekQueue(fd, QUEUE.RECV, inqLen);
    outqSeq = queueSeq(fd, QUEUE.SEND);
    outq = peekQueue(fd, QUEUE.SEND, outqLen);
  } finally {
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.NO);
    if (peekOff !== -1) sock.setsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, peekOff);
  }
  const peerName = sock.getpeername(fd);
  const dst = peerName ? endpoint(peerName) : peer;
  if (!dst) throw new Error(`TCP connection in ${stateName(ti.state)} without a peer address`);
  return {
    state: ti.state,
    src: endpoint(sock.getsockname(fd)),
    dst,
    inqSeq,
    inq,
    outqSeq,
    outq,
    unsqLen,
    optMask: ti.options,
    sndWscale: ti.sndWscale,
    rcvWscale: ti.rcvWscale,
    mssClamp,
    timestamp,
    window,
  };
}

function ioctlInt(fd: number, req: number): number {
  const b = Buffer.alloc(4);
  ioctl(fd, req, b);
  return b.readInt32LE(0);
}

/** A fresh, unbound TCP socket for this state's family (close-on-exec). */
export function socketFor(st: TcpState): number {
  return sock.socket(st.src.family, sock.SOCK.STREAM | sock.SOCK.CLOEXEC, sock.IPPROTO.TCP);
}

function sendAll(fd: number, data: Buffer, what: string): void {
  let off = 0,
    chunk = data.length;
  while (off < data.length) {
    const n = sock.sendRaw(fd, data.subarray(off, off + Math.min(chunk, data.length - off)), 0);
    if (n > 0) {
      off += n;
      continue;
    }
    // In repair mode the receive queue takes one linear skb per send: halve until it fits.
    if (chunk > 1024) {
      chunk >>= 1;
      continue;
    }
    throw new SysError(`restoring the TCP ${what} queue (${off} of ${data.length} bytes)`, n < 0 ? -n : 5);
  }
}

/**
 * Recreate a saved connection on a fresh socket (see `socketFor`), leaving it in repair
 * mode: `resume(frozen(fd))` lets it go. The 4-tuple must be free: the original socket
 * closed (in repair mode, so that the peer sees nothing).
 */
export function restore(fd: number, st: TcpState): void {
  if (!handledState(st.state)) throw new Error(`TCP connections in ${stateName(st.state)} are not supported`);
  const m = bit(st.state);
  const synSent = st.state === S.SYN_SENT;
  // The FINs take a sequence number each: the queues start one earlier.
  let inSeq = st.inqSeq - (m & RCVQ_FIN ? 1 : 0);
  let outSeq = st.outqSeq - (m & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN) ? 1 : 0);
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
  sock.bind(fd, sockaddr(st.src));
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.RECV);
  sock.setsockoptInt(fd, SOL.TCP, TCP.QUEUE_SEQ, (inSeq - st.inq.length) | 0);
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.SEND);
  // A SYN_SENT connection's SYN took the first number.
  sock.setsockoptInt(fd, SOL.TCP, TCP.QUEUE_SEQ, (outSeq - st.outq.length - (synSent ? 1 : 0)) | 0);
  if (synSent) {
    // Its SYN goes out again (the lock holds it until the unlock): a real, non-blocking connect.
    const fl = fcntl(fd, F.GETFL, 0);
    fcntl(fd, F.SETFL, fl | O.NONBLOCK);
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, -1);
    try {
      sock.connect(fd, sockaddr(st.dst));
    } catch (e) {
      if (!(e instanceof SysError && e.code === 'EINPROGRESS')) throw e;
    }
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
    fcntl(fd, F.SETFL, fl);
  } else {
    // In repair mode connect completes at once, without a SYN.
    sock.connect(fd, sockaddr(st.dst));
    setOptions(fd, st);
  }
  if (st.timestamp !== undefined && st.optMask & TCPI_OPT.TIMESTAMPS) sock.setsockoptInt(fd, SOL.TCP, TCP.TIMESTAMP, st.timestamp | 0);
  if (st.inq.length) {
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.RECV);
    sendAll(fd, st.inq, 'receive');
  }
  const sent = st.outq.length - st.unsqLen;
  if (sent > 0) {
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.SEND);
    sendAll(fd, st.outq.subarray(0, sent), 'send');
  }
  if (st.unsqLen > 0) {
    // The never-sent tail goes through a plain send, outside repair mode.
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, -1);
    sendAll(fd, st.outq.subarray(sent), 'unsent');
    sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
  }
  sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.NO);
  if (st.window) {
    const w = Buffer.alloc(20);
    const { sndWnd, maxWindow } = st.window;
    // The peer's FIN, sent below, moves the receive window by one.
    const fin = m & RCVQ_FIN ? 1 : 0;
    const rcvWnd = st.window.rcvWnd + fin;
    // A segment the socket held out of order (not saved: the peer sends it again) may have
    // moved snd_wl1 past the receive window, which the kernel refuses (EINVAL): the window is
    // then taken from the peer's next segment, as from any segment past the received data.
    const sndWl1 = seqAfter(st.window.sndWl1, inSeq + rcvWnd) ? inSeq - 1 : st.window.sndWl1;
    [sndWl1, sndWnd, maxWindow, rcvWnd, st.window.rcvWup - fin].forEach((v, i) => {
      w.writeUInt32LE(v >>> 0, i * 4);
    });
    sock.setsockoptBuf(fd, SOL.TCP, TCP.REPAIR_WINDOW, w);
  }
  // The FINs come back in the order they came: ours by shutdown (as already sent if it was
  // acknowledged), the peer's as a segment from the peer.
  const win = st.window ? st.window.sndWnd >>> st.sndWscale : 0xffff;
  const peerSays = (flags: number): void => sendFromPeer(st.dst, st.src, inSeq, outSeq - st.outq.length, win, flags);
  if (m & SNDQ_FIRST_FIN) finInSendQueue(fd, (m & SNDQ_FIN_ACKED) !== 0);
  if (m & RCVQ_FIN) peerSays(TH.FIN | TH.ACK);
  if (m & SNDQ_SECOND_FIN) finInSendQueue(fd, (m & SNDQ_FIN_ACKED) !== 0);
  if (m & RCVQ_FIN_ACKED) inSeq++;
  if (m & SNDQ_FIN_ACKED) {
    outSeq++;
    peerSays(TH.ACK);
  }
}

/** Is sequence number a after b (modulo 2^32, as the kernel's after())? */
function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

function setOptions(fd: number, st: TcpState): void {
  const opts: Array<[number, number]> = [];
  if (st.optMask & TCPI_OPT.SACK) opts.push([TCPOPT.SACK_PERM, 0]);
  if (st.optMask & TCPI_OPT.WSCALE) opts.push([TCPOPT.WINDOW, st.sndWscale + (st.rcvWscale << 16)]);
  if (st.optMask & TCPI_OPT.TIMESTAMPS) opts.push([TCPOPT.TIMESTAMP, 0]);
  opts.push([TCPOPT.MAXSEG, st.mssClamp]);
  const ob = Buffer.alloc(opts.length * 8);
  opts.forEach(([code, val], i) => {
    ob.writeUInt32LE(code, i * 8);
    ob.writeUInt32LE(val >>> 0, i * 8 + 4);
  });
  sock.setsockoptBuf(fd, SOL.TCP, TCP.REPAIR_OPTIONS, ob);
}

/** Our FIN, by shutdown(SHUT_WR): with the SEND queue selected it counts as already sent. */
function finInSendQueue(fd: number, acked: boolean): void {
  if (acked) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.SEND);
  try {
    sock.shutdown(fd, sock.SHUT.WR);
  } finally {
    if (acked) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.NO);
  }
}
