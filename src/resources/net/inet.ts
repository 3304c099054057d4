// TCP, UDP (and UDP-Lite), raw and ICMP echo sockets over IPv4 and IPv6: inet_sk_entry in
// files.img. Dump works on a pidfd_getfd copy of the task's socket; restore makes a fresh
// socket in criu-ts, binds, listens or connects it, and sets its options. Established TCP
// connections go through tcp.ts, raw and ping options through raw.ts.
import fs from 'node:fs';
import { sock, pidfdOpen, pidfdGetfd, close, fcntl, ioctl, F, O, SysError } from '../../kernel/index.ts';
import { FD_TYPE, FASYNC, fown, statefulKind, type DumpFileCtx, type RestoreFileCtx } from '../files/types.ts';
import { TCP_STATE, stateName, tcpInfo, endpoint, sockaddr, handledState, type Endpoint } from '../../soccr/index.ts';
import { dumpConnection, restoreConnection, repaired, entryEndpoints, type TcpDump } from './tcp.ts';
import { endpointName } from './netlock.ts';
import { diagOf, inetDiag, type DiagSock } from './diag.ts';
import { int, bool, setInt, dumpSkOpts, restoreSkOpts } from './skopts.ts';
import { isRawOrPing, dumpRawOpts, restoreRawOpts, inetSocket } from './raw.ts';
import { forSocket, inOwnNetns, protoNameOf } from './sockfd.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { Message, MessageInput } from '../types.ts';

const { SOL, SO, IP, IPV6, TCP, AF, IPPROTO, SOCK } = sock;
type InetEntry = Message<'inet_sk_entry'>;

/** The sockets this kind handles, by the name their "system.sockprotoname" xattr gives. */
const PROTO_NAMES = new Set(['TCP', 'TCPv6', 'UDP', 'UDPv6', 'UDP-Lite', 'UDPLITEv6', 'RAW', 'RAWv6', 'PING', 'PINGv6']);
/** Other IPv4/IPv6 sockets (CRIU refuses them too): claimed here so that they are refused by name. */
const OTHER_INET = new Set(['MPTCP', 'MPTCPv6', 'SCTP', 'SCTPv6', 'L2TP/IP', 'L2TP/IPv6']);

/** A TCP socket, not a raw one carrying TCP. */
const isTcp = (e: { type: number; proto: number }): boolean => e.type === SOCK.STREAM && e.proto === IPPROTO.TCP;

/** Address words as CRIU stores them: the bytes in network order, read as host u32s. */
function words(addr: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < addr.length; i += 4) out.push(addr.readUInt32LE(i));
  return out;
}
function dumpIpOpts(fd: number, family: number, type: number, proto: number): MessageInput<'ip_opts_entry'> {
  const raw = type === SOCK.RAW ? { raw: dumpRawOpts(fd, family, proto) } : {};
  if (family === AF.INET) {
    return {
      ...raw,
      freebind: bool(fd, SOL.IP, IP.FREEBIND),
      pktinfo: bool(fd, SOL.IP, IP.PKTINFO),
      tos: int(fd, SOL.IP, IP.TOS),
      ttl: int(fd, SOL.IP, IP.TTL),
    };
  }
  return {
    ...raw,
    freebind: bool(fd, SOL.IPV6, IPV6.FREEBIND),
    pktinfo: bool(fd, SOL.IPV6, IPV6.RECVPKTINFO),
    tos: int(fd, SOL.IPV6, IPV6.TCLASS),
  };
}

function restoreIpOpts(fd: number, e: InetEntry): void {
  const { family, ip_opts: o } = e;
  if (!o) return;
  restoreRawOpts(fd, family, e.proto, o.raw);
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

/**
 * Datagrams (and raw packets) queued for reading are not saved, as in CRIU: re-queueing them
 * would mean sending them again from their sources. Dropping them is said by name, and so is
 * a write queue not yet empty (CRIU warns of it too).
 */
function droppedQueue(c: number, where: string, ctx: DumpFileCtx): void {
  const len = (req: number): number => {
    const b = Buffer.alloc(4);
    try {
      ioctl(c, req, b);
    } catch {
      return 0;
    }
    return b.readInt32LE(0);
  };
  if (len(sock.SIOCINQ) > 0) ctx.log.warn(`${where}: the datagrams queued for reading are dropped, as CRIU does`);
  const out = len(sock.SIOCOUTQ);
  if (out > 0) ctx.log.warn(`${where}: ${out} bytes were still queued for sending; what the kernel had not sent yet is lost`);
}

const DGRAM_PROTOS: readonly number[] = [IPPROTO.IP, IPPROTO.UDP, IPPROTO.UDPLITE, IPPROTO.ICMP, IPPROTO.ICMPV6];

/** What of an inet_sk_entry's type and protocol no socket could be made from (tcp.ts checks the rest). */
export function inetKindProblem(e: InetEntry): string | undefined {
  if (e.type === SOCK.STREAM && e.proto !== IPPROTO.TCP && e.proto !== IPPROTO.IP) return `protocol ${e.proto} is not TCP`;
  if (e.type === SOCK.DGRAM && !DGRAM_PROTOS.includes(e.proto)) return `protocol ${e.proto} is not UDP, UDP-Lite or ICMP`;
  if (e.type === SOCK.RAW && e.proto >= 263) return `protocol ${e.proto} is not below IPPROTO_MAX (263)`;
  if (e.type !== SOCK.STREAM && e.type !== SOCK.DGRAM && e.type !== SOCK.RAW) return `type ${e.type} is not stream, datagram or raw`;
  return undefined;
}

/** pidfds of the dumped tasks, and the copies of their sockets (by "pid fd"), held until the dump ends. */
interface DumpState {
  pidfds: Map<number, number>;
  copies: Map<string, number>;
  registered: boolean;
  diag: Map<string, Map<number, DiagSock>>;
  tcp: TcpDump;
  /** Restore: the listeners this restore made (by inode), which share ports only with each other. */
  listeners: Set<number>;
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
  const name = protoNameOf({ ...p, link: 'socket:' }) ?? '?';
  if (!PROTO_NAMES.has(name)) throw new NotSupportedError(`${where}: a ${name} socket`);
  const c = copyOf(p.pid, p.fd, ctx, st);
  // It would come back in criu-ts's network namespace, and sock_diag would not show it.
  if (!inOwnNetns(c)) throw new NotSupportedError(`${where}: a socket of another network namespace`);
  const family = int(c, SOL.SOCKET, SO.DOMAIN),
    type = int(c, SOL.SOCKET, SO.TYPE),
    proto = int(c, SOL.SOCKET, SO.PROTOCOL);
  // sock_diag has tables for TCP, UDP and UDP-Lite only (raw_diag keys on the protocol).
  let d: DiagSock | undefined;
  if (!isRawOrPing(type, proto)) {
    d = diagOf(st.diag, family, proto).get(p.ino);
  }
  const src = endpoint(sock.getsockname(c));
  const peerName = sock.getpeername(c);
  // A TCP connection reset or not made yet (SYN_SENT) has no peer name, but SO_PEERNAME (and
  // sock_diag, while it is hashed) still has where it went.
  const peerAny = peerName ?? (isTcp({ type, proto }) ? sock.peerNameOpt(c, family) : undefined);
  const dst = peerAny ? endpoint(peerAny) : d?.dst.port ? d.dst : { family, addr: Buffer.alloc(family === AF.INET ? 4 : 16), port: 0 };
  let state: number = peerName ? TCP_STATE.ESTABLISHED : TCP_STATE.CLOSE;
  let backlog = 0;
  if (isTcp({ type, proto })) {
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
    if (!isRawOrPing(type, proto) && sock.getsockoptIntMaybe(c, IPPROTO.UDP, sock.UDP.CORK))
      throw new NotSupportedError(`${where}: a corked UDP socket`);
    droppedQueue(c, where, ctx);
  }
  // Only TCP and UDP keep a shutdown (as in CRIU). sock_diag does not list a TCP socket that
  // is neither bound to a connection nor listening: poll tells a read shutdown there (as CRIU
  // does), which a write one comes with on close.
  const hup = sock.POLL.RDHUP | sock.POLL.HUP;
  const shutdown = isRawOrPing(type, proto) ? 0 : (d?.shutdown ?? (isTcp({ type, proto }) && (sock.pollNow(c, hup) & hup) === hup ? 1 : 0));
  const opts = dumpSkOpts(c);
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
    opts,
    ip_opts: dumpIpOpts(c, family, type, proto),
    ...(family === AF.INET6 ? { v6only: bool(c, SOL.IPV6, IPV6.V6ONLY) } : {}),
    // A bound link-local (or link-scoped multicast) address names its device, as in CRIU.
    ...(src.port && opts.so_bound_dev && needsScope(src) ? { ifname: opts.so_bound_dev } : {}),
    ...(isTcp({ type, proto }) ? { tcp_opts: dumpTcpOpts(c) } : {}),
    ...(shutdown ? { shutdown } : {}),
  };
  if (isTcp({ type, proto }) && repaired(state, dst.port)) {
    st.tcp.copy ??= (pid, fd) => copyOf(pid, fd, ctx, st);
    dumpConnection(c, p, { src, dst }, where, ctx, st.tcp);
  }
  return e;
}

/** An IPv6 address with a link scope: link-local, or multicast of node or link scope. */
const needsScope = (a: Endpoint): boolean =>
  a.family === AF.INET6 && ((a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80) || (a.addr[0] === 0xff && (a.addr[1] & 0x0f) <= 2));

/**
 * Bind to the dumped address. The old socket's TIME_WAIT children may still hold the port,
 * and they keep the reuse flags they had: a TCP socket in repair mode binds regardless
 * (SK_FORCE_REUSE), and leaves repair before it listens.
 */
function bindBack(fd: number, e: InetEntry, src: Endpoint): void {
  // A link-local address binds on a device (the kernel takes it for the scope id).
  const dev = e.ifname ?? e.opts.so_bound_dev;
  if (dev) sock.setsockoptBuf(fd, SOL.SOCKET, SO.BINDTODEVICE, Buffer.from(`${dev}\0`));
  // An address the socket had with IP_FREEBIND may not be local now; IPv6 addresses may still
  // be tentative. The flag is on for the bind, and left on only if the task had it.
  const own = e.ip_opts?.freebind === true;
  const freebind = own || (e.family === AF.INET6 && e.type !== SOCK.RAW);
  const repair = isTcp(e);
  const [level, opt] = e.family === AF.INET6 ? [SOL.IPV6, IPV6.FREEBIND] : [SOL.IP, IP.FREEBIND];
  if (freebind) setInt(fd, level, opt, 1);
  if (repair) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, 1);
  try {
    sock.bind(fd, sockaddr(src));
  } finally {
    if (repair) sock.setsockoptInt(fd, SOL.TCP, TCP.REPAIR, -1);
    if (freebind && !own) setInt(fd, level, opt, 0);
  }
}

/**
 * bindBack forces the bind (the old socket's leftovers may hold the port), which would also
 * share the port with a listener another process opened meanwhile: that one is refused here.
 */
function refuseTakenPort(e: InetEntry, src: Endpoint, ours: Set<number>): void {
  const wild = (a: Buffer): boolean => a.every((b) => b === 0);
  for (const family of e.family === AF.INET6 ? [AF.INET6] : [AF.INET, AF.INET6])
    for (const [ino, s] of inetDiag(family, e.proto, e.proto === sock.IPPROTO.TCP)) {
      if (s.state !== TCP_STATE.LISTEN || s.src.port !== src.port || ours.has(ino)) continue;
      const same = family === e.family ? s.src.addr.equals(src.addr) : false;
      if (same || wild(s.src.addr) || wild(src.addr))
        throw new CriuError(
          `inet socket ${e.id} (LISTEN ${endpointName(src)}): the port is taken by another listening socket (EADDRINUSE)`,
        );
    }
}

function openInet(e: InetEntry, ctx: RestoreFileCtx, st: DumpState): number {
  const where = `inet socket ${e.id} (ino ${e.ino})`;
  const fd = ctx.keep(inetSocket(e.family, e.type | sock.SOCK.CLOEXEC, e.proto));
  if (e.v6only) sock.setsockoptInt(fd, SOL.IPV6, IPV6.V6ONLY, 1);
  // Bound on top of the old socket's leftovers (TIME_WAIT, a listener's port); the task's
  // own SO_REUSEADDR and SO_REUSEPORT come back last.
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
  sock.setsockoptInt(fd, SOL.SOCKET, SO.REUSEPORT, 1);
  const { src, dst } = entryEndpoints(e);
  if (isTcp(e) && repaired(e.state, e.dst_port)) {
    restoreConnection(fd, e, { src, dst }, where, ctx);
  } else {
    // A raw socket's port is its protocol, which bind ignores; its address still counts.
    if (e.state === TCP_STATE.LISTEN && !e.opts.so_reuseport) refuseTakenPort(e, src, st.listeners);
    if (e.src_port || e.state === TCP_STATE.LISTEN) bindBack(fd, e, src);
    if (e.state === TCP_STATE.LISTEN) {
      sock.listen(fd, e.backlog);
      st.listeners.add(fs.fstatSync(fd).ino);
    } else if (e.dst_port || (e.type === SOCK.RAW && e.state === TCP_STATE.ESTABLISHED)) sock.connect(fd, sockaddr(dst));
  }
  if (e.shutdown && !isRawOrPing(e.type, e.proto) && !(ctx.tcp.close && isTcp(e) && repaired(e.state, e.dst_port))) {
    // sk_shutdown READ 1, WRITE 2, BOTH 3 are SHUT_RD, SHUT_WR and SHUT_RDWR plus one. An
    // unconnected socket takes the shutdown and still says ENOTCONN.
    try {
      sock.shutdown(fd, e.shutdown - 1);
    } catch (err) {
      if (!(err instanceof SysError && err.code === 'ENOTCONN')) throw err;
    }
  }
  restoreIpOpts(fd, e);
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
    const name = protoNameOf(p) ?? '';
    return PROTO_NAMES.has(name) || OTHER_INET.has(name);
  },
  state: (): DumpState => {
    const diag = new Map<string, Map<number, DiagSock>>();
    return {
      pidfds: new Map(),
      copies: new Map(),
      registered: false,
      diag,
      tcp: { frozen: [], noted: new Set(), diag },
      listeners: new Set(),
    };
  },
  dump: (p, id, ctx, st) => dumpInet(p, id, ctx, st),
  open(e, ctx, st) {
    const { src, dst } = entryEndpoints(e);
    const ends = `${endpointName(src)}${e.dst_port ? ` to ${endpointName(dst)}` : ''}`;
    return forSocket(`inet socket ${e.id} (${stateName(e.state)} ${ends})`, () => openInet(e, ctx, st));
  },
});
