// Restore of unix sockets: every socket of the dump is made at the first open, in criu-ts.
// Pairs first, then binds and listens, then one-way connects (a pending connection is a
// connect to its restored listener), then each queue is sent again from the peer (with its
// files in flight and credentials), then options and shutdown. Path names are bound in the
// root of their mount namespace.
import fs from 'node:fs';
import path from 'node:path';
import {
  AF_UNIX,
  SOCK,
  SOL_SOCKET,
  SO,
  socket,
  socketpair,
  bindUnix,
  connectUnix,
  listen,
  shutdown,
  setsockoptInt,
  setsockoptBuf,
  attachFilter,
  sendMsg,
  fcntl,
  close,
  chroot,
  fchdir,
  getpid,
  withThreadFsIds,
  F,
  O,
  SysError,
  SCM_RIGHTS,
  type SockMsg,
  type Ucred,
} from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { NotSupportedError } from '../../errors.ts';
import type { RestoreFileCtx } from '../files/types.ts';
import { decodeFilter } from './skopts.ts';
import { TCP_ESTABLISHED, TCP_LISTEN, USK_EXTERN, isPathName, showName, type UnixEntry } from './unix-common.ts';

function unixEntries(ctx: RestoreFileCtx): Map<number, UnixEntry> {
  const m = new Map<number, UnixEntry>();
  for (const f of ctx.files.values()) if (f.usk) m.set(f.usk.ino, f.usk);
  return m;
}

/** What a bind to a deleted file left to undo once every socket has connected and sent to it. */
interface Ghost {
  full: string;
  parked?: string;
  madeDirs: string[];
}

/**
 * `fn` with criu-ts's root at the root of the mount namespace the name of `e` is in (as CRIU's
 * prep_unix_sk_cwd): names are bound and connected to exactly as the tasks gave them, and
 * resolved in their namespace. The root and cwd are the whole process's: put back at once.
 */
function inNameRoot<T>(ctx: RestoreFileCtx, e: UnixEntry, fn: () => T): T {
  // An abstract name is in no file system.
  const root = isPathName(Buffer.from(e.name)) ? ctx.mntRoot?.(e.mnt_id !== undefined && e.mnt_id >= 0 ? e.mnt_id : undefined) : undefined;
  const cwd = process.cwd();
  if (!root)
    try {
      return fn();
    } finally {
      if (process.cwd() !== cwd) process.chdir(cwd);
    }
  const oldRoot = fs.openSync('/', O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  const newRoot = fs.openSync(root, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    fchdir(newRoot);
    chroot('.');
    try {
      return fn();
    } finally {
      fchdir(oldRoot);
      chroot('.');
      process.chdir(cwd);
    }
  } finally {
    fs.closeSync(newRoot);
    fs.closeSync(oldRoot);
  }
}

/**
 * bind() in the root of the name's mount namespace and criu-ts's cwd: a relative name from its
 * directory, a stale socket file replaced. A name whose file was deleted is bound on a file
 * made for it: whatever has the name now is parked aside, and missing directories are made;
 * unlinkGhost undoes it. The files are made as the socket file's owner: a file system of a
 * user namespace takes no file from an id it does not map (criu-ts's root).
 */
function bindName(fd: number, e: UnixEntry): Ghost | undefined {
  const name = Buffer.from(e.name);
  if (!isPathName(name)) {
    bindUnix(fd, name);
    return undefined;
  }
  const owner = e.file_perms;
  return owner ? withThreadFsIds(owner.uid, owner.gid, () => bindPath(fd, e, name)) : bindPath(fd, e, name);
}

function bindPath(fd: number, e: UnixEntry, name: Buffer): Ghost | undefined {
  const rel = showName(name);
  const full = e.name_dir ? path.resolve(e.name_dir, rel) : path.resolve(rel);
  const ghost: Ghost | undefined = e.deleted ? { full, madeDirs: [] } : undefined;
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(full);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (ghost) {
    for (let d = path.dirname(full); !fs.existsSync(d); d = path.dirname(d)) ghost.madeDirs.unshift(d);
    for (const d of ghost.madeDirs) fs.mkdirSync(d);
    if (st) {
      ghost.parked = `${full}.criu-sk-ghost`;
      fs.renameSync(full, ghost.parked);
    }
  } else if (st?.isSocket()) fs.unlinkSync(full);
  // inNameRoot puts criu-ts's cwd back.
  if (e.name_dir) process.chdir(e.name_dir);
  bindUnix(fd, name);
  if (e.file_perms) {
    fs.chownSync(full, e.file_perms.uid, e.file_perms.gid);
    fs.chmodSync(full, e.file_perms.mode & 0o7777);
  }
  return ghost;
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
    try {
      set(f, v);
    } catch (e) {
      if (e instanceof SysError && e.code === 'EPERM') set(plain, v);
      else throw e;
    }
  };
  force(SO.SNDBUFFORCE, SO.SNDBUF, Math.floor(o.so_sndbuf / 2));
  force(SO.RCVBUFFORCE, SO.RCVBUF, Math.floor(o.so_rcvbuf / 2));
  const tv = (opt: number, s: bigint, us: bigint): void => {
    const b = Buffer.alloc(16);
    b.writeBigInt64LE(s, 0);
    b.writeBigInt64LE(us, 8);
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
  if (o.so_filter.length) attachFilter(fd, decodeFilter(o.so_filter));
}

/** Credentials to send a message with: the dumped ones, with criu-ts's pid if the sender's is not there (yet). */
function credsFor(c: { uid: number; gid: number; pid: number }, ctx: RestoreFileCtx): Ucred {
  if (fs.existsSync(`/proc/${c.pid}`)) return { ...c };
  ctx.log.warn(`unix socket queue: a message's sender pid ${c.pid} does not exist now; it arrives with criu-ts's`);
  return { uid: c.uid, gid: c.gid, pid: getpid() };
}

/**
 * A queued message; a unix socket in flight is named by its inode (`socks`, by position), its
 * fd known only once the sockets are made.
 */
type QueuedMsg = SockMsg & { socks: Array<number | undefined> };

/** Queued messages by receiving socket inode, with local fds of the files in flight (but unix sockets). */
function readQueues(ctx: RestoreFileCtx, all: Map<number, UnixEntry>): Map<number, QueuedMsg[]> {
  const queues = new Map<number, QueuedMsg[]>();
  const byId = new Map([...all.values()].map((e) => [e.id, e]));
  for (const { entry, extra } of ctx.entries(IMG.SK_QUEUES)) {
    const e = byId.get(entry.id_for);
    if (!e) continue; // another socket family's queue
    const rights = (entry.scm ?? []).flatMap((sc) => {
      if (sc.type !== SCM_RIGHTS) throw new Error(`sk-queues: socket ${e.ino}: control message type ${sc.type} is not supported`);
      return sc.rights;
    });
    const socks = rights.map((r) => byId.get(r)?.ino);
    const fds = rights.map((r, i) => (socks[i] === undefined ? ctx.fileFd(r) : -1));
    const l = queues.get(e.ino) ?? [];
    l.push({ data: extra ?? Buffer.alloc(0), fds, socks, ...(entry.ucred ? { creds: credsFor(entry.ucred, ctx) } : {}) });
    queues.set(e.ino, l);
  }
  return queues;
}

/** Memo of lateSockets, per restore (its file map). */
const lateMemo = new WeakMap<Map<number, unknown>, Set<number>>();

/**
 * The unix sockets (inodes) made once every task exists: a name on a mount of a mount
 * namespace that a task below the root makes is bound in that namespace, reachable only then.
 * Every socket connected to such a socket, or in flight in its queue, or holding it in flight,
 * comes with it (and theirs in turn): each group is made whole at once.
 */
export function lateSockets(ctx: RestoreFileCtx): Set<number> {
  const memo = lateMemo.get(ctx.files);
  if (memo) return memo;
  const late = new Set<number>();
  lateMemo.set(ctx.files, late);
  const laterMount = ctx.laterMount;
  if (!laterMount) return late;
  const all = unixEntries(ctx);
  const links = new Map<number, number[]>();
  const link = (a: number, b: number): void => {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ]) {
      const l = links.get(x) ?? [];
      l.push(y);
      links.set(x, l);
    }
  };
  for (const e of all.values()) if (e.peer) link(e.ino, e.peer);
  const byId = new Map([...all.values()].map((e) => [e.id, e]));
  for (const { entry } of ctx.entries(IMG.SK_QUEUES)) {
    const e = byId.get(entry.id_for);
    if (e) for (const r of entry.scm.flatMap((sc) => sc.rights)) if (byId.has(r)) link(e.ino, byId.get(r)!.ino);
  }
  const todo = [...all.values()]
    .filter((e) => isPathName(Buffer.from(e.name)) && e.mnt_id !== undefined && e.mnt_id >= 0 && laterMount(e.mnt_id))
    .map((e) => e.ino);
  for (let ino = todo.pop(); ino !== undefined; ino = todo.pop()) {
    if (late.has(ino)) continue;
    late.add(ino);
    todo.push(...(links.get(ino) ?? []));
  }
  return late;
}

/**
 * Make every unix socket of the dump that `pick` selects (a whole group: see lateSockets),
 * connected as dumped, with its queue, options and shutdown state. A socket bound to a deleted
 * file is settled at once (its clients connect, its queue is sent by name, the file is
 * removed), so that another can bind the same name.
 */
export function restoreAll(ctx: RestoreFileCtx, pick: (e: UnixEntry) => boolean = () => true): Map<number, number> {
  const all = new Map([...unixEntries(ctx)].filter(([, e]) => pick(e)));
  const fds = new Map<number, number>();
  const queues = readQueues(ctx, all);
  const connected = new Set<number>(),
    queued = new Set<number>();
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
  // A socket belongs to the network namespace it is made in, which its abstract names live in.
  const inOwnNs = <T>(e: UnixEntry, fn: () => T): T => (ctx.inNetNs ? ctx.inNetNs(e.ns_id, fn) : fn());

  /** bind() and listen(); a name on a deleted file is settled before the next bind. */
  const bind = (fd: number, e: UnixEntry): void => {
    const ghost = e.name.length && !connectStream(e) ? inNameRoot(ctx, e, () => bindName(fd, e)) : undefined;
    if (e.state === TCP_LISTEN) listen(fd, e.backlog);
    if (!ghost) return;
    try {
      for (const c of all.values()) if (c.peer === e.ino && !mutual(c) && !(c.uflags & USK_EXTERN)) connectOne(c);
      sendQueue(e.ino);
    } finally {
      inNameRoot(ctx, e, () => unlinkGhost(ghost));
    }
  };
  const make = (e: UnixEntry): void => {
    if (fds.has(e.ino) || e.uflags & USK_EXTERN) return;
    if (e.uflags)
      throw new NotSupportedError(`unixsk: socket ${e.ino} has uflags 0x${e.uflags.toString(16)} (a plugin's or an inherited socket)`);
    const p = mutual(e);
    if (p || orphan(e)) {
      const [a, b] = inOwnNs(e, () => socketpair(AF_UNIX, e.type | SOCK.NONBLOCK));
      fds.set(e.ino, ctx.keep(a));
      if (p) fds.set(p.ino, ctx.keep(b));
      else orphanEnds.set(e.ino, b);
      for (const x of p ? [e, p] : [e]) bind(fds.get(x.ino)!, x);
      return;
    }
    const fd = ctx.keep(inOwnNs(e, () => socket(AF_UNIX, e.type | SOCK.NONBLOCK)));
    fds.set(e.ino, fd);
    bind(fd, e);
  };
  /** A one-way connection: a datagram sender, or a pending client of a listener. */
  const connectOne = (e: UnixEntry): void => {
    if (connected.has(e.ino)) return;
    connected.add(e.ino);
    make(e);
    const p = all.get(e.peer);
    if (!p) throw new Error(`unixsk: socket ${e.ino} is connected to socket ${e.peer}, which is not in the images`);
    if (!p.name.length) throw new Error(`unixsk: socket ${e.ino} is connected to socket ${p.ino}, which has no name to connect to`);
    const r = inNameRoot(ctx, p, () => connectUnix(fds.get(e.ino)!, addressOfEntry(p)));
    if (r < 0) throw new SysError(`connect(unix socket ${e.ino} to ${showName(p.name)})`, -r);
  };
  /** A queue is sent again from the peer, or from a temporary socket to a datagram socket's name. */
  const sendQueue = (ino: number): void => {
    const msgs = queues.get(ino);
    if (!msgs || queued.has(ino)) return;
    queued.add(ino);
    const e = all.get(ino)!;
    setsockoptInt(fds.get(ino)!, SOL_SOCKET, SO.RCVBUFFORCE, 1 << 30);
    const p = e.peer ? all.get(e.peer) : undefined;
    let sender: number | undefined, to: Buffer | undefined;
    if (p && mutual(e)) sender = fds.get(p.ino)!;
    else if (orphanEnds.has(ino)) sender = orphanEnds.get(ino)!;
    else if (e.type === SOCK.DGRAM && e.name.length) {
      to = addressOfEntry(e);
      if (p) {
        make(p);
        sender = fds.get(p.ino);
      }
    } else throw new Error(`sk-queues: no way to send the queue of unix socket ${ino} again`);
    const temp = sender === undefined;
    const fd = sender ?? inOwnNs(e, () => socket(AF_UNIX, SOCK.DGRAM | SOCK.NONBLOCK));
    try {
      setsockoptInt(fd, SOL_SOCKET, SO.SNDBUFFORCE, 1 << 30);
      inNameRoot(ctx, e, () => {
        for (const m of msgs) {
          // A unix socket in flight (this one, too) is made now if it is not yet.
          const inFlight = m.fds.map((f, i) => {
            const ino = m.socks[i];
            if (ino === undefined) return f;
            make(all.get(ino)!);
            const sk = fds.get(ino);
            if (sk === undefined)
              throw new Error(`sk-queues: the unix socket ${ino} in flight in socket ${e.ino}'s queue is not made by criu-ts`);
            return sk;
          });
          sendMsg(fd, { ...m, fds: inFlight }, to);
        }
      });
    } finally {
      if (temp) close(fd);
    }
  };

  for (const e of all.values()) make(e);
  for (const e of all.values()) if (e.peer && !mutual(e) && !(e.uflags & USK_EXTERN)) connectOne(e);
  for (const ino of queues.keys()) sendQueue(ino);
  for (const fd of orphanEnds.values()) close(fd);
  // Options, shutdown and file flags last: SO_PASSCRED and a shutdown would get in the way of the queues.
  for (const e of all.values()) {
    if (e.uflags & USK_EXTERN) continue;
    const fd = fds.get(e.ino)!;
    setOpts(fd, e.opts);
    if (e.peek_off !== undefined) setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, e.peek_off);
    if (e.shutdown) shutdown(fd, e.shutdown - 1);
    fcntl(fd, F.SETFL, e.flags & O.NONBLOCK); // O_ASYNC: with the owner, after install
  }
  return fds;
}
