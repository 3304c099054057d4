// TCP and UDP (and UDP-Lite) sockets over IPv4 and IPv6: inet_sk_entry in files.img. Dump works
// on a pidfd_getfd copy of the task's socket; restore makes a fresh socket in criu-ts, binds,
// listens or connects it, and sets its options. Established TCP connections go through tcp.ts.
import { sock, pidfdOpen, pidfdGetfd, close, fcntl, ioctl, F, O, SysError } from '../../kernel/index.ts';
import { FD_TYPE, FASYNC, fown, statefulKind, type DumpFileCtx, type RestoreFileCtx } from '../files/types.ts';
import { TCP_STATE, stateName, tcpInfo, endpoint, sockaddr, handledState, type Endpoint } from '../../soccr/index.ts';
import { dumpConnection, restoreConnection, repaired, entryEndpoints, type TcpDump } from './tcp.ts';
import { inetDiag, type DiagSock } from './diag.ts';
import { endpointName } from './netlock.ts';

import { NotSupportedError, CriuError } from '../../errors.ts';
import type { Message, MessageInput } from '../types.ts';

const { SOL, SO, IP, IPV6, TCP, AF, IPPROTO } = sock;
type InetEntry = Message<'inet_sk_entry'>;
type SkOpts = MessageInput<'sk_opts_entry'>;

/** The sockets this kind handles, by the name their "system.sockprotoname" xattr gives. */
const PROTO_NAMES = new Set(['TCP', 'TCPv6', 'UDP', 'UDPv6', 'UDP-Lite', 'UDPLITEv6']);
/** Other IPv4/IPv6 sockets: claimed here so that they are refused by name. */
const OTHER_INET = new Set(['RAW', 'RAWv6', 'PING', 'PINGv6', 'MPTCP', 'MPTCPv6', 'SCTP', 'SCTPv6', 'L2TP/IP', 'L2TP/IPv6']);

function protoName(path: string): string | undefined {
  try {
    return sock.sockProtoName(path);
  } catch {
    return undefined;
  }
}

/** Address words as CRIU stores them: the bytes in network order, read as host u32s. */
function words(addr: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < addr.length; i += 4) out.push(addr.readUInt32LE(i));
  return out;
}
const int = (fd: number, level: number, opt: number): number => sock.getsockoptInt(fd, level, opt);
const bool = (fd: number, level: number, opt: number): boolean => int(fd, level, opt) !== 0;
/** An option some kernels refuse on inet sockets (SO_PASSCRED is unix and netlink only since 6.16). */
const maybeBool = (fd: number, level: number, opt: number): boolean | undefined => {
  const v = sock.getsockoptIntMaybe(fd, level, opt);
  return v === undefined ? undefined : v !== 0;
};

function timeo(fd: number, opt: number): [bigint, bigint] {
  const b = sock.getsockoptBuf(fd, SOL.SOCKET, opt, 16);
  return [b.readBigInt64LE(0), b.readBigInt64LE(8)];
}

function dumpSkOpts(fd: number, where: string): SkOpts {
  const filter = sock.getsockoptIntMaybe(fd, SOL.SOCKET, SO.GET_FILTER);
  // SO_GET_FILTER with a 4-byte buffer fails with EINVAL when a filter is attached (it needs
  // room for every instruction), and returns 0 bytes without one.
  if (filter === undefined) throw new NotSupportedError(`${where}: a socket filter (SO_ATTACH_FILTER)`);
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
  };
}

function setInt(fd: number, level: number, opt: number, v: number | boolean | undefined, onlyIfSet = false): void {
  if (v === undefined) return;
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (onlyIfSet && !n) return;
  sock.setsockoptInt(fd, level, opt, n);
}

function restoreSkOpts(fd: number, o: Message<'sk_opts_entry'>): void {
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
}

function dumpIpOpts(fd: number, family: number): MessageInput<'ip_opts_entry'> {
  if (family === AF.INET) {
    return {
      freebind: bool(fd, SOL.IP, IP.FREEBIND),
      pktinfo: bool(fd, SOL.IP, IP.PKTINFO),
      tos: int(fd, SOL.IP, IP.TOS),
      ttl: int(fd, SOL.IP, IP.TTL),
    };
  }
  return {
    freebind: bool(fd, SOL.IPV6, IPV6.FREEBIND),
    pktinfo: bool(fd, SOL.IPV6, IPV6.RECVPKTINFO),
    tos: int(fd, SOL.IPV6, IPV6.TCLASS),
  };
}

function restoreIpOpts(fd: number, family: number, o: Message<'ip_opts_entry'> | undefined): void {
  if (!o) return;
  if (family === AF.INET) {
    setInt(fd, SOL.IP, IP.FREEBIND, o.freebind, true);
    setInt(fd, SOL.IP, IP.PKTINFO, o.pktinfo, true);
    setInt(fd, SOL.IP, IP.TOS, o.tos, true);
    // -1 reads back as the route's default, 64 here: set only what the task chose.
    if (o.ttl !== undefined && o.ttl !== 64) sock.setsockoptInt(fd, SOL.IP, IP.TTL, o.ttl);
  } else {
    setInt(fd, SOL.IPV6, IPV6.FREEBIND, o.freebind, true);
    setInt(fd, SOL.IPV6, IPV6.RECVPKTINFO, o.pktinfo, true);
    setInt(fd, SOL.IPV6, IPV6.TCLASS, o.tos, true);
  }
}

function dumpTcpOpts(fd: number): MessageInput<'tcp_opts_entry'> {
  return {
    nodelay: bool(fd, SOL.TCP, TCP.NODELAY),
    cork: bool(fd, SOL.TCP, TCP.CORK),
    keepcnt: int(fd, SOL.TCP, TCP.KEEPCNT),
    keepidle: int(fd, SOL.TCP, TCP.KEEPIDLE),
    keepintvl: int(fd, SOL.TCP, TCP.KEEPINTVL),
  };
}

function restoreTcpOpts(fd: number, o: Message<'tcp_opts_entry'> | undefined): void {
  if (!o) return;
  setInt(fd, SOL.TCP, TCP.NODELAY, o.nodelay, true);
  setInt(fd, SOL.TCP, TCP.CORK, o.cork, true);
  setInt(fd, SOL.TCP, TCP.KEEPCNT, o.keepcnt, true);
  setInt(fd, SOL.TCP, TCP.KEEPIDLE, o.keepidle, true);
  setInt(fd, SOL.TCP, TCP.KEEPINTVL, o.keepintvl, true);
}

/** pidfds of the dumped tasks, and the copies of their sockets (by "pid fd"), held until the dump ends. */
interface DumpState {
  pidfds: Map<number, number>;
  copies: Map<string, number>;
  registered: boolean;
  diag: Map<string, Map<number, DiagSock>>;
  tcp: TcpDump;
}

function copyOf(pid: number, fd: number, ctx: DumpFileCtx, st: DumpState): number {
  if (!st.registered) {
    st.registered = true;
    // Copies go only once the tree is dead: a connection in repair mode then closes silently.
    ctx.atEnd(() => {
      for (const c of st.copies.values()) {
        try {
          close(c);
        } catch {
          /* closed */
        }
      }
      for (const p of st.pidfds.values()) {
        try {
          close(p);
        } catch {
          /* closed */
        }
      }
      st.pidfds.clear();
      st.copies.clear();
    });
  }
  const key = `${pid} ${fd}`;
  const had = st.copies.get(key);
  if (had !== undefined) return had;
  let pidfd = st.pidfds.get(pid);
  if (pidfd === undefined) {
    pidfd = pidfdOpen(pid);
    st.pidfds.set(pid, pidfd);
  }
  const c = pidfdGetfd(pidfd, fd);
  st.copies.set(key, c);
  return c;
}

function dumpInet(
  p: { pid: number; fd: number; ino: number; flags: number },
  id: number,
  ctx: DumpFileCtx,
  st: DumpState,
): MessageInput<'inet_sk_entry'> {
  const where = `fd ${p.fd} of task ${p.pid} (socket:[${p.ino}])`;
  const name = protoName(`/proc/${p.pid}/fd/${p.fd}`) ?? '?';
  if (!PROTO_NAMES.has(name)) throw new NotSupportedError(`${where}: a ${name} socket`);
  const c = copyOf(p.pid, p.fd, ctx, st);
  const family = int(c, SOL.SOCKET, SO.DOMAIN),
    type = int(c, SOL.SOCKET, SO.TYPE),
    proto = int(c, SOL.SOCKET, SO.PROTOCOL);
  const key = `${family}:${proto}`;
  let diag = st.diag.get(key);
  if (!diag) {
    diag = inetDiag(family, proto);
    st.diag.set(key, diag);
  }
  const d = diag.get(p.ino);
  const src = endpoint(sock.getsockname(c));
  const peerName = sock.getpeername(c);
  // A TCP connection reset or not made yet (SYN_SENT) has no peer name, but SO_PEERNAME (and
  // sock_diag, while it is hashed) still has where it went.
  const peerAny = peerName ?? (proto === IPPROTO.TCP ? sock.peerNameOpt(c, family) : undefined);
  const dst = peerAny ? endpoint(peerAny) : d && d.dst.port ? d.dst : { family, addr: Buffer.alloc(family === AF.INET ? 4 : 16), port: 0 };
  let state: number = peerName ? TCP_STATE.ESTABLISHED : TCP_STATE.CLOSE;
  let backlog = 0;
  if (proto === IPPROTO.TCP) {
    const ti = tcpInfo(c);
    state = ti.state;
    if (state === TCP_STATE.LISTEN) {
      backlog = ti.sacked;
      if (ti.unacked > 0) {
        if (!ctx.tcp.skipInFlight)
          throw new Error(
            `${where}: a listening TCP socket with ${ti.unacked} connection(s) not accepted yet; --skip-in-flight drops them`,
          );
        ctx.log.warn(`${where}: ${ti.unacked} connection(s) not yet accepted are dropped (--skip-in-flight)`);
      }
    } else if (!handledState(state)) {
      throw new NotSupportedError(`${where}: a TCP socket in ${stateName(state)}`);
    }
  } else {
    if (sock.getsockoptIntMaybe(c, IPPROTO.UDP, sock.UDP.CORK)) throw new NotSupportedError(`${where}: a corked UDP socket`);
    const inq = Buffer.alloc(4);
    try {
      ioctl(c, sock.SIOCINQ, inq);
    } catch {
      /* no queue */
    }
    if (inq.readInt32LE(0) > 0) ctx.log.warn(`${where}: the datagrams queued for reading are dropped, as CRIU does`);
  }
  // sock_diag does not list a TCP socket that is neither bound to a connection nor listening:
  // poll tells a read shutdown there (as CRIU does), which a write one comes with on close.
  const hup = sock.POLL.RDHUP | sock.POLL.HUP;
  const shutdown = d?.shutdown ?? (proto === IPPROTO.TCP && (sock.pollNow(c, hup) & hup) === hup ? 1 : 0);
  const e: MessageInput<'inet_sk_entry'> = {
    id,
    ino: p.ino,
    family,
    type,
    proto,
    state,
    src_port: src.port,
    dst_port: dst.port,
    flags: p.flags,
    backlog,
    src_addr: words(src.addr),
    dst_addr: words(dst.addr),
    fown: fown(),
    opts: dumpSkOpts(c, where),
    ip_opts: dumpIpOpts(c, family),
    ...(family === AF.INET6 ? { v6only: bool(c, SOL.IPV6, IPV6.V6ONLY) } : {}),
    ...(proto === IPPROTO.TCP ? { tcp_opts: dumpTcpOpts(c) } : {}),
    ...(shutdown ? { shutdown } : {}),
  };
  if (proto === IPPROTO.TCP && repaired(state, dst.port)) {
    st.tcp.copy ??= (pid, fd) => copyOf(pid, fd, ctx, st);
    dumpConnection(c, p, { src, dst }, where, ctx, st.tcp);
  }
  return e;
}

/**
 * Bind to the dumped address. The old socket's TIME_WAIT children may still hold the port,
 * and they keep the reuse flags they had: a TCP socket in repair mode binds regardless
 * (SK_FORCE_REUSE), and leaves repair before it listens.
 */
function bindBack(fd: number, e: InetEntry, src: Endpoint): void {
  // The task's own IP_FREEBIND before the bind: its address need not exist (here, or yet).
  if (e.ip_opts?.freebind) setInt(fd, e.family === AF.INET ? SOL.IP : SOL.IPV6, e.family === AF.INET ? IP.FREEBIND : IPV6.FREEBIND, 1);
  const freebind = e.family === AF.INET6 && e.ip_opts?.freebind !== true;
  const repair = e.proto === IPPROTO.TCP;
  if (freebind) setInt(fd, SOL.IPV6, IPV6.FREEBIND, 1);
  if (repair) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
  try {
    sock.bind(fd, sockaddr(src));
  } finally {
    if (repair) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, -1);
    if (freebind) setInt(fd, SOL.IPV6, IPV6.FREEBIND, 0);
  }
}

function openInet(e: InetEntry, ctx: RestoreFileCtx): number {
  const where = `inet socket ${e.id} (ino ${e.ino})`;
  const fd = ctx.keep(sock.socket(e.family, e.type | sock.SOCK.CLOEXEC, e.proto));
  if (e.v6only) sock.setsockoptInt(fd, SOL.IPV6, IPV6.V6ONLY, 1);
  // Bound on top of the old socket's leftovers (TIME_WAIT, a listener's port); the task's
  // own SO_REUSEADDR and SO_REUSEPORT come back last.
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEPORT, 1);
  const { src, dst } = entryEndpoints(e);
  if (e.proto === IPPROTO.TCP && repaired(e.state, e.dst_port)) {
    restoreConnection(fd, e, { src, dst }, where, ctx);
  } else {
    if (e.src_port || e.state === TCP_STATE.LISTEN) bindBack(fd, e, src);
    if (e.state === TCP_STATE.LISTEN) sock.listen(fd, e.backlog);
    else if (e.dst_port) sock.connect(fd, sockaddr(dst));
  }
  if (e.shutdown && !(ctx.tcp.close && e.proto === IPPROTO.TCP && repaired(e.state, e.dst_port))) {
    // sk_shutdown READ 1, WRITE 2, BOTH 3 are SHUT_RD, SHUT_WR and SHUT_RDWR plus one. An
    // unconnected socket takes the shutdown and still says ENOTCONN.
    try {
      sock.shutdown(fd, e.shutdown - 1);
    } catch (err) {
      if (!(err instanceof SysError && err.code === 'ENOTCONN')) throw err;
    }
  }
  restoreIpOpts(fd, e.family, e.ip_opts);
  restoreSkOpts(fd, e.opts);
  restoreTcpOpts(fd, e.tcp_opts);
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, e.opts.reuseaddr ? 1 : 0);
  // O_ASYNC comes back with the owner (fown.ts).
  fcntl(fd, F.SETFL, e.flags & O.NONBLOCK);
  return fd;
}

export const inetFile = statefulKind({
  type: FD_TYPE.INETSK,
  field: 'isk',
  name: 'inet socket',
  claims: { flags: O.NONBLOCK | FASYNC },
  matches: (p) => {
    if (!p.link.startsWith('socket:')) return false;
    const name = protoName(`/proc/${p.pid}/fd/${p.fd}`) ?? '';
    return PROTO_NAMES.has(name) || OTHER_INET.has(name);
  },
  state: (): DumpState => ({
    pidfds: new Map(),
    copies: new Map(),
    registered: false,
    diag: new Map(),
    tcp: { frozen: [], noted: new Set() },
  }),
  dump: (p, id, ctx, st) => dumpInet(p, id, ctx, st),
  open(e, ctx) {
    try {
      return openInet(e, ctx);
    } catch (err) {
      if (err instanceof SysError) {
        const { src, dst } = entryEndpoints(e);
        const ends = `${endpointName(src)}${e.dst_port ? ` to ${endpointName(dst)}` : ''}`;
        throw new CriuError(`inet socket ${e.id} (${stateName(e.state)} ${ends}): ${err.message}`);
      }
      throw err;
    }
  },
});
