// Unix sockets (UNIXSK in files.img, queued messages in sk-queues.img). Dump works on
// pidfd_getfd copies: sock_diag tells the peer, name, backlog and shutdown state, and the
// queues are peeked (SO_PEEK_OFF saved and put back). Restore makes every socket of the
// dump at the first open: pairs first, then binds, listens and connects (a pending
// connection is a connect to its restored listener), then each queue is sent again from the
// peer, then options and shutdown.
import fs from 'node:fs';
import path from 'node:path';
import {
  AF_UNIX, SOCK, SOL_SOCKET, SO, SIOCUNIXFILE, UDIAG_SHOW, socket, socketpair, bindUnix, connectUnix, listen, shutdown,
  getsockoptInt, setsockoptInt, getsockoptBuf, setsockoptBuf, peekMsg, sendMsg, sockDiagOpen, unixDiag, type UnixDiag, type SockMsg,
  pidfdOpen, pidfdGetfd, ioctl, fcntl, close, getpid, F, O, SysError, SCM_RIGHTS, type Ucred,
} from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { FD_TYPE, S_IFMT, S_IFSOCK, fown, statefulKind, type FdProbe, type DumpFileCtx, type RestoreFileCtx, type KindEntry } from '../files/types.ts';
import type { MessageInput } from '../types.ts';

type UnixEntry = KindEntry<'usk'>;
const TCP_ESTABLISHED = 1, TCP_LISTEN = 10;
const SHUT_BOTH = 3;
const TYPE_NAMES: Record<number, string> = { [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'datagram', [SOCK.SEQPACKET]: 'seqpacket' };
const PEEK_SIZE = 4 << 20;

const sockIno = (p: FdProbe): number => Number(/^socket:\[(\d+)\]$/.exec(p.link)?.[1] ?? p.ino);
const isPathName = (name: Uint8Array): boolean => name.length > 0 && name[0] !== 0;
const showName = (name: Uint8Array): string =>
  isPathName(name) ? Buffer.from(name).toString().replace(/\0$/, '') : `@${Buffer.from(name).subarray(1).toString()}`;

/** What a dump knows across fds: the tree's unix socket inodes, which listener holds each pending client, external peers saved. */
interface DumpState { treeInos?: Set<number>; pendingOf?: Map<number, number>; diag?: number; externs?: Set<number> }

const USK_EXTERN = 1;
const noOpts = (): MessageInput<'sk_opts_entry'> => ({ so_sndbuf: 0, so_rcvbuf: 0, so_snd_tmo_sec: 0n, so_snd_tmo_usec: 0n, so_rcv_tmo_sec: 0n, so_rcv_tmo_usec: 0n });

/**
 * A peer outside the tree: with --ext-unix-sk, a named datagram socket is saved once as an
 * external entry (USK_EXTERN, no fd), which a restore connects to by name, as CRIU does.
 */
function externalPeer(ctx: DumpFileCtx, st: DumpState, peer: number, what: string): void {
  if (!ctx.extUnixSk) throw new Error(`${what} is connected to socket ${peer} outside the dumped tree (--ext-unix-sk allows a named datagram peer)`);
  const pd = diagOf(st, peer);
  if (pd?.type !== SOCK.DGRAM) throw new Error(`${what} is one half of a connection with socket ${peer} outside the dumped tree; only datagram peers can be external`);
  if (!pd.name?.length) throw new Error(`${what} is connected to socket ${peer} outside the dumped tree, which has no name to connect to again`);
  st.externs ??= new Set();
  if (st.externs.has(peer)) return;
  st.externs.add(peer);
  ctx.addFile((id) => ({
    type: FD_TYPE.UNIXSK, id,
    usk: { id, ino: peer, type: SOCK.DGRAM, state: TCP_LISTEN, flags: 0, uflags: USK_EXTERN, backlog: 0, peer: 0, fown: fown(), opts: noOpts(), name: pd.name! },
  }));
}

function treeSockets(ctx: DumpFileCtx, st: DumpState): Set<number> {
  if (st.treeInos) return st.treeInos;
  const inos = new Set<number>();
  for (const pid of ctx.treePids) {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inos.add(Number(m[1]));
    }
  }
  return (st.treeInos = inos);
}

function diagOf(st: DumpState, ino: number): UnixDiag | undefined {
  st.diag ??= sockDiagOpen();
  return unixDiag(st.diag, ino, UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN);
}

/** Pending (not yet accepted) client inode -> its listener's inode, over the tree's listeners. */
function pendingClients(ctx: DumpFileCtx, st: DumpState): Map<number, number> {
  if (st.pendingOf) return st.pendingOf;
  const m = new Map<number, number>();
  for (const ino of treeSockets(ctx, st)) {
    const d = diagOf(st, ino);
    if (d?.state === TCP_LISTEN) for (const c of d.icons ?? []) m.set(c, ino);
  }
  return (st.pendingOf = m);
}

function dumpOpts(fd: number): MessageInput<'sk_opts_entry'> {
  const int = (o: number): number => getsockoptInt(fd, SOL_SOCKET, o);
  const tmo = (o: number): [bigint, bigint] => {
    const b = getsockoptBuf(fd, SOL_SOCKET, o, 16);
    return [b.readBigInt64LE(0), b.readBigInt64LE(8)];
  };
  const [sndS, sndU] = tmo(SO.SNDTIMEO), [rcvS, rcvU] = tmo(SO.RCVTIMEO);
  const linger = getsockoptBuf(fd, SOL_SOCKET, SO.LINGER, 8);
  return {
    so_sndbuf: int(SO.SNDBUF), so_rcvbuf: int(SO.RCVBUF),
    so_snd_tmo_sec: sndS, so_snd_tmo_usec: sndU, so_rcv_tmo_sec: rcvS, so_rcv_tmo_usec: rcvU,
    reuseaddr: int(SO.REUSEADDR) !== 0, so_priority: int(SO.PRIORITY), so_rcvlowat: int(SO.RCVLOWAT),
    so_mark: int(SO.MARK), so_passcred: int(SO.PASSCRED) !== 0, so_passsec: int(SO.PASSSEC) !== 0,
    so_dontroute: int(SO.DONTROUTE) !== 0, so_no_check: false, so_reuseport: int(SO.REUSEPORT) !== 0,
    so_broadcast: int(SO.BROADCAST) !== 0, so_keepalive: int(SO.KEEPALIVE) !== 0, so_oobinline: int(SO.OOBINLINE),
    so_linger: linger.readInt32LE(0) ? linger.readInt32LE(4) : 0, so_buf_lock: int(SO.BUF_LOCK),
  };
}

/** The bound file of a path-named socket: its path now, whether it is gone, and its owner and mode. */
function boundFile(copy: number, d: UnixDiag, name: Buffer, where: string): Pick<MessageInput<'unix_sk_entry'>, 'deleted' | 'file_perms' | 'name_dir'> {
  let fd: number;
  try { fd = ioctl(copy, SIOCUNIXFILE); } catch (e) {
    throw new Error(`${where}: cannot find the file of unix socket ${showName(name)}: ${(e as Error).message}`);
  }
  try {
    let now = fs.readlinkSync(`/proc/self/fd/${fd}`);
    const st = fs.fstatSync(fd);
    let deleted = now.endsWith(' (deleted)');
    if (deleted) now = now.slice(0, -10);
    else if (d.vfs && d.vfs.ino !== Number(st.ino)) deleted = true;
    const out: ReturnType<typeof boundFile> = { file_perms: { mode: st.mode, uid: st.uid, gid: st.gid } };
    if (deleted) out.deleted = true;
    const rel = showName(name);
    if (!rel.startsWith('/')) {
      if (!now.endsWith(`/${rel}`)) throw new Error(`${where}: the relative name ${rel} of a unix socket is not where its file is (${now})`);
      out.name_dir = now.slice(0, -rel.length - 1) || '/';
    }
    return out;
  } finally { close(fd); }
}

/**
 * Every queued message of a socket, peeked on a copy with the owner's peek offset put back.
 * Files in flight land in criu-ts, which dumps them as its own and keeps them open until
 * it exits (their ids are matched with the tasks' fds by kcmp).
 */
function peekQueue(copy: number, where: string, ctx: DumpFileCtx): Array<{ m: SockMsg; ids: number[] }> {
  const saved = getsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF);
  setsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF, 0);
  const out: Array<{ m: SockMsg; ids: number[] }> = [];
  try {
    for (let m = peekMsg(copy, PEEK_SIZE); m; m = peekMsg(copy, PEEK_SIZE)) {
      if (m.fds.some((f) => (fs.fstatSync(f).mode & S_IFMT) === S_IFSOCK)) {
        for (const f of m.fds) close(f);
        throw new Error(`${where}: its queue holds a socket in flight (SCM_RIGHTS); not supported yet`);
      }
      out.push({ m, ids: m.fds.map((f) => ctx.fileId(getpid(), f)) });
    }
  } finally { setsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF, saved); }
  return out;
}

function dumpUnix(p: FdProbe, id: number, ctx: DumpFileCtx, st: DumpState): MessageInput<'unix_sk_entry'> {
  const ino = sockIno(p);
  const where = `fd ${p.fd} of task ${p.pid}`;
  const pidfd = pidfdOpen(p.pid);
  let copy: number;
  try { copy = pidfdGetfd(pidfd, p.fd); } finally { close(pidfd); }
  try {
    const domain = getsockoptInt(copy, SOL_SOCKET, SO.DOMAIN);
    if (domain !== AF_UNIX) throw new Error(`${where} is a socket of family ${domain}; not supported yet`);
    const d = diagOf(st, ino);
    if (!d) throw new Error(`${where}: unix socket ${ino} is in another network namespace; not supported yet`);
    if (!TYPE_NAMES[d.type]) throw new Error(`${where}: unix socket ${ino} of type ${d.type}; not supported yet`);
    const filterLen = getsockoptBuf(copy, SOL_SOCKET, 26 /* SO_GET_FILTER */, 0).length;
    if (filterLen) throw new Error(`${where}: unix socket ${ino} has a socket filter attached; not supported yet`);
    const name = d.name ?? Buffer.alloc(0);
    const tree = treeSockets(ctx, st);
    let peer = d.peer ?? 0;
    const shut = d.shutdown ?? 0;
    if (peer && !tree.has(peer)) externalPeer(ctx, st, peer, `${where}: unix socket ${ino}`);
    if (d.state === TCP_ESTABLISHED && !peer && d.type !== SOCK.DGRAM) {
      const listener = pendingClients(ctx, st).get(ino);
      if (listener !== undefined) {
        if (d.rqlen?.wqueue) throw new Error(`${where}: unix socket ${ino} has sent data on a connection its listener has not accepted yet; not supported`);
        peer = listener;
      } else if (shut !== SHUT_BOTH) {
        throw new Error(`${where}: unix socket ${ino} is connected, but its peer is gone (dangling connection)`);
      }
    }
    if (d.state === TCP_LISTEN) {
      for (const c of d.icons ?? []) {
        if (!c) throw new Error(`${where}: listening unix socket ${ino} has a pending connection whose client is closed; not supported`);
        if (!tree.has(c)) throw new Error(`${where}: listening unix socket ${ino} has a pending connection from socket ${c} outside the dumped tree; not supported`);
      }
    }
    const peekOff = getsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF);
    const entry: MessageInput<'unix_sk_entry'> = {
      id, ino, type: d.type, state: d.state, flags: p.flags, uflags: 0,
      backlog: d.state === TCP_LISTEN ? d.rqlen?.wqueue ?? 0 : 0, peer, fown: fown(), opts: dumpOpts(copy), name,
      ...(shut ? { shutdown: shut } : {}), ns_id: ctx.netNsId(p.pid), ...(peekOff >= 0 ? { peek_off: peekOff } : {}),
      ...(isPathName(name) ? boundFile(copy, d, name, where) : {}),
    };
    if (d.state !== TCP_LISTEN && d.rqlen?.rqueue) {
      for (const { m, ids } of peekQueue(copy, where, ctx)) {
        ctx.addEntry(IMG.SK_QUEUES, {
          id_for: id, length: m.data.length, scm: ids.length ? [{ type: SCM_RIGHTS, rights: ids }] : [],
          ...(m.creds ? { ucred: { uid: m.creds.uid, gid: m.creds.gid, pid: m.creds.pid } } : {}),
        }, m.data);
      }
    }
    ctx.log.debug(`${where}: unix ${TYPE_NAMES[d.type]} socket ${ino} state ${d.state} peer ${peer}${name.length ? ` name ${showName(name)}` : ''}`);
    return entry;
  } finally { close(copy); }
}

/** Sockets made for a restore, by inode; all of them are made at the first open. */
interface RestoreState { fds?: Map<number, number> }

function unixEntries(ctx: RestoreFileCtx): Map<number, UnixEntry> {
  const m = new Map<number, UnixEntry>();
  for (const f of ctx.files.values()) if (f.usk) m.set(f.usk.ino, f.usk);
  return m;
}

/** What a bind to a deleted file left to undo once every socket has connected and sent to it. */
interface Ghost { full: string; parked?: string; madeDirs: string[] }

/**
 * bind() in criu-ts's root and cwd: a relative name from its directory, a stale socket file
 * replaced. A name whose file was deleted is bound on a file made for it: whatever has the
 * name now is parked aside, and missing directories are made; `ghosts` undoes it later.
 */
function bindName(fd: number, e: UnixEntry, ghosts: Ghost[]): void {
  const name = Buffer.from(e.name);
  if (!isPathName(name)) { bindUnix(fd, name); return; }
  const rel = showName(name);
  const full = e.name_dir ? path.resolve(e.name_dir, rel) : path.resolve(rel);
  const ghost: Ghost | undefined = e.deleted ? { full, madeDirs: [] } : undefined;
  let st: fs.Stats | undefined;
  try { st = fs.lstatSync(full); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; }
  if (ghost) {
    for (let d = path.dirname(full); !fs.existsSync(d); d = path.dirname(d)) ghost.madeDirs.unshift(d);
    for (const d of ghost.madeDirs) fs.mkdirSync(d);
    if (st) { ghost.parked = `${full}.criu-sk-ghost`; fs.renameSync(full, ghost.parked); }
  } else if (st?.isSocket()) fs.unlinkSync(full);
  const cwd = process.cwd();
  if (e.name_dir) process.chdir(e.name_dir);
  try { bindUnix(fd, name); } finally { if (e.name_dir) process.chdir(cwd); }
  if (e.file_perms) {
    fs.chownSync(full, e.file_perms.uid, e.file_perms.gid);
    fs.chmodSync(full, e.file_perms.mode & 0o7777);
  }
  if (ghost) ghosts.push(ghost);
}

function unlinkGhost(g: Ghost): void {
  fs.unlinkSync(g.full);
  if (g.parked) fs.renameSync(g.parked, g.full);
  for (const d of [...g.madeDirs].reverse()) fs.rmdirSync(d);
}

/** A name other sockets connect or send to: a relative one is made absolute through name_dir. */
function addressOfEntry(e: UnixEntry): Buffer {
  const name = Buffer.from(e.name);
  if (!isPathName(name) || !e.name_dir || name[0] === 0x2f) return name;
  return Buffer.from(`${path.resolve(e.name_dir, showName(name))}\0`);
}

function setOpts(fd: number, o: UnixEntry['opts']): void {
  const set = (opt: number, v: number): void => setsockoptInt(fd, SOL_SOCKET, opt, v);
  const force = (f: number, plain: number, v: number): void => {
    try { set(f, v); } catch (e) { if (e instanceof SysError && e.code === 'EPERM') set(plain, v); else throw e; }
  };
  force(SO.SNDBUFFORCE, SO.SNDBUF, Math.floor(o.so_sndbuf / 2));
  force(SO.RCVBUFFORCE, SO.RCVBUF, Math.floor(o.so_rcvbuf / 2));
  const tv = (opt: number, s: bigint, us: bigint): void => {
    const b = Buffer.alloc(16); b.writeBigInt64LE(s, 0); b.writeBigInt64LE(us, 8);
    setsockoptBuf(fd, SOL_SOCKET, opt, b);
  };
  tv(SO.SNDTIMEO, o.so_snd_tmo_sec, o.so_snd_tmo_usec);
  tv(SO.RCVTIMEO, o.so_rcv_tmo_sec, o.so_rcv_tmo_usec);
  if (o.so_priority) set(SO.PRIORITY, o.so_priority);
  if (o.so_rcvlowat !== undefined && o.so_rcvlowat > 1) set(SO.RCVLOWAT, o.so_rcvlowat);
  if (o.so_mark) set(SO.MARK, o.so_mark);
  if (o.so_passcred) set(SO.PASSCRED, 1);
  if (o.so_passsec) set(SO.PASSSEC, 1);
  if (o.so_keepalive) set(SO.KEEPALIVE, 1);
  if (o.so_buf_lock) set(SO.BUF_LOCK, o.so_buf_lock);
  if (o.reuseaddr) set(SO.REUSEADDR, 1);
  if (o.so_reuseport) set(SO.REUSEPORT, 1);
}

/** Credentials to send a message with: the dumped ones, with criu-ts's pid if the sender's is not there (yet). */
function credsFor(c: { uid: number; gid: number; pid: number }, ctx: RestoreFileCtx): Ucred {
  if (fs.existsSync(`/proc/${c.pid}`)) return { ...c };
  ctx.log.warn(`unix socket queue: a message's sender pid ${c.pid} does not exist now; it arrives with criu-ts's`);
  return { uid: c.uid, gid: c.gid, pid: getpid() };
}

/** Make every unix socket of the dump, connected as dumped, with its queue, options and shutdown state. */
function restoreAll(ctx: RestoreFileCtx): Map<number, number> {
  const all = unixEntries(ctx);
  const fds = new Map<number, number>();
  const mutual = (e: UnixEntry): UnixEntry | undefined => {
    const p = e.peer ? all.get(e.peer) : undefined;
    return p && p !== e && p.peer === e.ino ? p : undefined;
  };
  const connectStream = (e: UnixEntry): boolean => e.state === TCP_ESTABLISHED && e.type !== SOCK.DGRAM;
  /**
   * Connected once, its peer closed since: a pair whose other end sends the queue and closes.
   * A named datagram socket is ESTABLISHED with no peer also when others connected to it.
   */
  const orphan = (e: UnixEntry): boolean => e.state === TCP_ESTABLISHED && !e.peer && (e.type !== SOCK.DGRAM || !e.name.length);
  /** The other end of a connection whose peer is gone: it sends the queue, then closes. */
  const orphanEnds = new Map<number, number>();
  const ghosts: Ghost[] = [];
  try {
    restoreSockets();
  } finally {
    for (const g of ghosts) unlinkGhost(g);
  }
  return fds;

  function restoreSockets(): void {
    // Sockets, pairs and names.
    for (const e of all.values()) {
      if (fds.has(e.ino) || e.uflags & USK_EXTERN) continue;
      if (e.uflags) throw new Error(`unixsk: socket ${e.ino} has uflags 0x${e.uflags.toString(16)} (a plugin's or an inherited socket); not supported yet`);
      const p = mutual(e);
      if (p || orphan(e)) {
        const [a, b] = socketpair(AF_UNIX, e.type | SOCK.NONBLOCK);
        fds.set(e.ino, ctx.keep(a));
        if (p) fds.set(p.ino, ctx.keep(b)); else orphanEnds.set(e.ino, b);
        for (const x of p ? [e, p] : [e]) if (x.name.length && !connectStream(x)) bindName(fds.get(x.ino)!, x, ghosts);
        continue;
      }
      const fd = ctx.keep(socket(AF_UNIX, e.type | SOCK.NONBLOCK));
      fds.set(e.ino, fd);
      if (e.name.length && !connectStream(e)) bindName(fd, e, ghosts);
      if (e.state === TCP_LISTEN) listen(fd, e.backlog);
    }
    // One-way connections (datagram senders, pending clients of a listener), once every name is bound.
    for (const e of all.values()) {
      if (!e.peer || mutual(e) || e.uflags & USK_EXTERN) continue;
      const p = all.get(e.peer);
      if (!p) throw new Error(`unixsk: socket ${e.ino} is connected to socket ${e.peer}, which is not in the images (external peers are not supported yet)`);
      if (!p.name.length) throw new Error(`unixsk: socket ${e.ino} is connected to socket ${p.ino}, which has no name to connect to`);
      const r = connectUnix(fds.get(e.ino)!, addressOfEntry(p));
      if (r < 0) throw new SysError(`connect(unix socket ${e.ino} to ${showName(p.name)})`, -r);
    }
    // Queues, sent again from the peer (or a temporary socket for a datagram socket with several senders).
    const queues = new Map<number, SockMsg[]>();
    const byId = new Map([...all.values()].map((e) => [e.id, e]));
    for (const { entry, extra } of ctx.entries(IMG.SK_QUEUES)) {
      const e = byId.get(entry.id_for);
      if (!e) continue; // another socket family's queue
      const fdsInFlight = (entry.scm ?? []).flatMap((s) => {
        if (s.type !== SCM_RIGHTS) throw new Error(`sk-queues: socket ${e.ino}: control message type ${s.type} is not supported`);
        return s.rights.map((r) => ctx.fileFd(r));
      });
      const l = queues.get(e.ino) ?? [];
      l.push({ data: extra ?? Buffer.alloc(0), fds: fdsInFlight, ...(entry.ucred ? { creds: credsFor(entry.ucred, ctx) } : {}) });
      queues.set(e.ino, l);
    }
    for (const [ino, msgs] of queues) {
      const e = all.get(ino)!;
      const rfd = fds.get(ino)!;
      setsockoptInt(rfd, SOL_SOCKET, SO.RCVBUFFORCE, 1 << 30);
      const p = e.peer ? all.get(e.peer) : undefined;
      let sender: number, to: Buffer | undefined, temp = false;
      if (p && mutual(e)) sender = fds.get(p.ino)!;
      else if (orphanEnds.has(ino)) sender = orphanEnds.get(ino)!;
      else if (e.type === SOCK.DGRAM && e.name.length) {
        to = addressOfEntry(e);
        if (p) sender = fds.get(p.ino)!;
        else { sender = socket(AF_UNIX, SOCK.DGRAM | SOCK.NONBLOCK); temp = true; }
      } else throw new Error(`sk-queues: no way to send the queue of unix socket ${ino} again`);
      try {
        setsockoptInt(sender, SOL_SOCKET, SO.SNDBUFFORCE, 1 << 30);
        for (const m of msgs) sendMsg(sender, m, to);
      } finally { if (temp) close(sender); }
    }
    for (const fd of orphanEnds.values()) close(fd);
    // Options, shutdown and file flags last: SO_PASSCRED and a shutdown would get in the way of the queues.
    for (const e of all.values()) {
      if (e.uflags & USK_EXTERN) continue;
      const fd = fds.get(e.ino)!;
      setOpts(fd, e.opts);
      if (e.peek_off !== undefined) setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, e.peek_off);
      if (e.shutdown) shutdown(fd, e.shutdown - 1);
      fcntl(fd, F.SETFL, e.flags & (O.NONBLOCK | 0o20000 /* O_ASYNC */));
    }
  }
}

export const unixSocketFile = statefulKind({
  type: FD_TYPE.UNIXSK,
  field: 'usk',
  name: 'unix socket',
  matches: (p) => (p.mode & S_IFMT) === S_IFSOCK,
  state: (): DumpState & RestoreState => ({}),
  dump: (p, id, ctx, st) => dumpUnix(p, id, ctx, st),
  open(e, ctx, st) {
    st.fds ??= restoreAll(ctx);
    const fd = st.fds.get(e.ino);
    if (fd === undefined) throw new Error(`unixsk: socket ${e.ino} was not made`);
    return fd;
  },
});
