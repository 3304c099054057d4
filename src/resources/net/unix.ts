// Unix sockets (UNIXSK in files.img, queued messages in sk-queues.img). Dump works on
// pidfd_getfd copies: sock_diag tells the peer, name, backlog and shutdown state, and the
// queues are peeked (SO_PEEK_OFF saved and put back). The restore is in unix-restore.ts.
import fs from 'node:fs';
import {
  AF_UNIX,
  SOCK,
  SOL_SOCKET,
  SO,
  SIOCUNIXFILE,
  UDIAG_SHOW,
  getsockoptInt,
  setsockoptInt,
  getsockoptBuf,
  getFilter,
  peekMsg,
  sockDiagOpen,
  unixDiag,
  ioctl,
  close,
  getpid,
  kcmpEpollTfd,
  O,
  SCM_RIGHTS,
  type UnixDiag,
  type SockMsg,
  inNetNsFd,
  sock,
} from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { readFdinfo, parseMountinfo } from '../../proc/index.ts';
import { NotSupportedError } from '../../errors.ts';
import { FD_TYPE, FASYNC, S_IFMT, S_IFSOCK, fown, statefulKind, type FdProbe, type DumpFileCtx } from '../files/types.ts';
import type { MessageInput } from '../types.ts';
import { TCP_ESTABLISHED, TCP_LISTEN, USK_EXTERN, isPathName, showName } from './unix-common.ts';
import { lateSockets, restoreAll } from './unix-restore.ts';
import { encodeFilter } from './skopts.ts';
import { sockIno, withCopy, socketHolders } from './sockfd.ts';

const SHUT_BOTH = 3;
const TYPE_NAMES: Record<number, string> = { [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'datagram', [SOCK.SEQPACKET]: 'seqpacket' };
const PEEK_SIZE = 4 << 20;

/** What a dump knows across fds: the tree's unix socket inodes, which listener holds each pending client, external peers saved. */
interface DumpState {
  treeInos?: Set<number>;
  pendingOf?: Map<number, number>;
  diag?: number;
  /** sock_diag sockets of the other network namespaces, by their inode. */
  diags?: Map<number, number>;
  externs?: Set<number>;
}

const noOpts = (): MessageInput<'sk_opts_entry'> => ({
  so_sndbuf: 0,
  so_rcvbuf: 0,
  so_snd_tmo_sec: 0n,
  so_snd_tmo_usec: 0n,
  so_rcv_tmo_sec: 0n,
  so_rcv_tmo_usec: 0n,
});

/**
 * A peer outside the tree: with --ext-unix-sk, a named datagram socket is saved once as an
 * external entry (USK_EXTERN, no fd), which a restore connects to by name, as CRIU does.
 */
function externalPeer(ctx: DumpFileCtx, st: DumpState, peer: number, what: string): void {
  if (!ctx.extUnixSk)
    throw new Error(`${what} is connected to socket ${peer} outside the dumped tree (--ext-unix-sk allows a named datagram peer)`);
  const pd = diagOf(st, peer);
  if (pd?.type !== SOCK.DGRAM)
    throw new Error(`${what} is one half of a connection with socket ${peer} outside the dumped tree; only datagram peers can be external`);
  if (!pd.name?.length)
    throw new Error(`${what} is connected to socket ${peer} outside the dumped tree, which has no name to connect to again`);
  st.externs ??= new Set();
  if (st.externs.has(peer)) return;
  st.externs.add(peer);
  ctx.addFile((id) => ({
    type: FD_TYPE.UNIXSK,
    id,
    usk: {
      id,
      ino: peer,
      type: SOCK.DGRAM,
      state: TCP_LISTEN,
      flags: 0,
      uflags: USK_EXTERN,
      backlog: 0,
      peer: 0,
      fown: fown(),
      opts: noOpts(),
      name: pd.name!,
    },
  }));
}

function treeSockets(ctx: DumpFileCtx, st: DumpState): Set<number> {
  if (st.treeInos) return st.treeInos;
  const inos = new Set<number>();
  for (const pid of ctx.treePids) {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inos.add(Number(m[1]));
    }
  }
  return (st.treeInos = inos);
}

const SHOW = UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN;

function diagOf(st: DumpState, ino: number): UnixDiag | undefined {
  st.diag ??= sockDiagOpen();
  return unixDiag(st.diag, ino, SHOW);
}

/**
 * sock_diag of a socket from its own network namespace (SIOCGSKNS finds it), which may be
 * another than criu-ts works in (a task below the root in a nested one); and that namespace's inode.
 */
function diagInOwnNs(st: DumpState, copy: number, ino: number): { d: UnixDiag | undefined; nsIno: number } {
  const ns = ioctl(copy, sock.SIOCGSKNS);
  try {
    const nsIno = fs.fstatSync(ns).ino;
    if (nsIno === fs.statSync('/proc/thread-self/ns/net').ino) return { d: diagOf(st, ino), nsIno };
    st.diags ??= new Map();
    let diag = st.diags.get(nsIno);
    if (diag === undefined) {
      diag = inNetNsFd(ns, () => sockDiagOpen());
      st.diags.set(nsIno, diag);
    }
    return { d: unixDiag(diag, ino, SHOW), nsIno };
  } finally {
    close(ns);
  }
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
  const [sndS, sndU] = tmo(SO.SNDTIMEO),
    [rcvS, rcvU] = tmo(SO.RCVTIMEO);
  const linger = getsockoptBuf(fd, SOL_SOCKET, SO.LINGER, 8);
  return {
    so_sndbuf: int(SO.SNDBUF),
    so_rcvbuf: int(SO.RCVBUF),
    so_snd_tmo_sec: sndS,
    so_snd_tmo_usec: sndU,
    so_rcv_tmo_sec: rcvS,
    so_rcv_tmo_usec: rcvU,
    reuseaddr: int(SO.REUSEADDR) !== 0,
    so_priority: int(SO.PRIORITY),
    so_rcvlowat: int(SO.RCVLOWAT),
    so_mark: int(SO.MARK),
    so_passcred: int(SO.PASSCRED) !== 0,
    so_passsec: int(SO.PASSSEC) !== 0,
    so_dontroute: int(SO.DONTROUTE) !== 0,
    so_no_check: false,
    so_reuseport: int(SO.REUSEPORT) !== 0,
    so_broadcast: int(SO.BROADCAST) !== 0,
    so_keepalive: int(SO.KEEPALIVE) !== 0,
    so_oobinline: int(SO.OOBINLINE),
    so_linger: linger.readInt32LE(0) ? linger.readInt32LE(4) : 0,
    so_buf_lock: int(SO.BUF_LOCK),
    so_filter: encodeFilter(getFilter(fd)),
  };
}

/** The mount ids of the tree's mount namespaces, read once per dump (keyed by its file context). */
const treeMounts = new WeakMap<DumpFileCtx, Set<number>>();
function treeMountIds(ctx: DumpFileCtx): Set<number> {
  let ids = treeMounts.get(ctx);
  if (!ids) {
    const one = new Map(ctx.treePids.map((pid) => [fs.readlinkSync(`/proc/${pid}/ns/mnt`), pid]));
    ids = new Set(
      [...one.values()].flatMap((pid) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).map((m) => m.mntId)),
    );
    treeMounts.set(ctx, ids);
  }
  return ids;
}

/** The bound file of a path-named socket: its path now, whether it is gone, and its owner and mode. */
function boundFile(
  copy: number,
  d: UnixDiag,
  name: Buffer,
  where: string,
  treeMounts: ReadonlySet<number> | undefined,
): Pick<MessageInput<'unix_sk_entry'>, 'deleted' | 'file_perms' | 'name_dir' | 'mnt_id'> {
  let fd: number;
  try {
    fd = ioctl(copy, SIOCUNIXFILE);
  } catch (e) {
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
    // Its name is bound again in the mount namespace of that mount at restore.
    if (treeMounts) {
      out.mnt_id = Number(/^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]);
      if (!treeMounts.has(out.mnt_id))
        throw new NotSupportedError(
          `${where}: unix socket ${showName(name)} is bound on mount ${out.mnt_id}, of a mount namespace no task of the tree is in`,
        );
    }
    const rel = showName(name);
    if (!rel.startsWith('/')) {
      if (!now.endsWith(`/${rel}`))
        throw new Error(`${where}: the relative name ${rel} of a unix socket is not where its file is (${now})`);
      out.name_dir = now.slice(0, -rel.length - 1) || '/';
    }
    return out;
  } finally {
    close(fd);
  }
}

/**
 * Files in flight that criu-ts cannot dump yet: sockets no task of the tree holds (their
 * peers and queues would be criu-ts's own), and epolls (their targets are fd numbers of a task).
 */
function inFlightUnsupported(fd: number, owner: number, tree: readonly number[]): string | undefined {
  const st = fs.fstatSync(fd);
  if ((st.mode & S_IFMT) === S_IFSOCK) {
    const domain = getsockoptInt(fd, SOL_SOCKET, SO.DOMAIN);
    if (domain !== AF_UNIX) return `a socket of family ${domain}`;
    return socketHolders(tree).has(Number(st.ino)) ? undefined : 'a unix socket that no task of the tree holds';
  }
  // An epoll's targets are keyed by fd numbers of the task that added them: they come back
  // registered by the task holding this queue (as CRIU opens the epoll in that task), so
  // they must be its fds.
  if (fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventpoll]') {
    const self = getpid();
    for (const t of readFdinfo(self, fd).tfds)
      if (!kcmpEpollTfd(owner, t.tfd, fd, t.tfd, 0, self)) return `an epoll whose target ${t.tfd} is not fd ${t.tfd} of task ${owner}`;
  }
  return undefined;
}

/**
 * Every queued message of a socket, peeked on a copy with the owner's peek offset put back.
 * Files in flight land in criu-ts, which dumps them as its own and keeps them open until
 * it exits (their ids are matched with the tasks' fds by kcmp); a unix socket in flight is
 * dumped as the fd of the task that holds it (its queue may hold it, or this socket, again).
 */
function peekQueue(copy: number, owner: number, where: string, ctx: DumpFileCtx): Array<{ m: SockMsg; ids: number[] }> {
  const saved = getsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF);
  setsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF, 0);
  const out: Array<{ m: SockMsg; ids: number[] }> = [];
  const idOf = (f: number): number => {
    const st = fs.fstatSync(f);
    const holder = (st.mode & S_IFMT) === S_IFSOCK ? socketHolders(ctx.treePids).get(Number(st.ino)) : undefined;
    return holder ? ctx.fileId(holder.pid, holder.fd) : ctx.fileId(getpid(), f);
  };
  try {
    for (let m = peekMsg(copy, PEEK_SIZE); m; m = peekMsg(copy, PEEK_SIZE)) {
      const unsupported = m.fds.map((f) => inFlightUnsupported(f, owner, ctx.treePids)).find((w) => w);
      if (unsupported) {
        for (const f of m.fds) close(f);
        throw new NotSupportedError(`${where}: its queue holds ${unsupported} in flight (SCM_RIGHTS)`);
      }
      out.push({ m, ids: m.fds.map(idOf) });
    }
  } finally {
    setsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF, saved);
  }
  return out;
}

function dumpUnix(p: FdProbe, id: number, ctx: DumpFileCtx, st: DumpState): MessageInput<'unix_sk_entry'> {
  const ino = sockIno(p);
  const where = `fd ${p.fd} of task ${p.pid}`;
  return withCopy(p, (copy) => {
    const domain = getsockoptInt(copy, SOL_SOCKET, SO.DOMAIN);
    if (domain !== AF_UNIX) throw new NotSupportedError(`${where} is a socket of family ${domain}`);
    const { d, nsIno } = diagInOwnNs(st, copy, ino);
    if (!d) throw new NotSupportedError(`${where}: unix socket ${ino} is in another network namespace`);
    const own = ctx.netNsId(p.pid);
    const nsId = ctx.netNsIdOfIno ? ctx.netNsIdOfIno(nsIno) : own;
    if (nsId === undefined) throw new NotSupportedError(`${where}: unix socket ${ino} is of a network namespace no task of the tree is in`);
    if (!TYPE_NAMES[d.type]) throw new NotSupportedError(`${where}: unix socket ${ino} of type ${d.type}`);
    const name = d.name ?? Buffer.alloc(0);
    const tree = treeSockets(ctx, st);
    let peer = d.peer ?? 0;
    const shut = d.shutdown ?? 0;
    if (peer && !tree.has(peer)) externalPeer(ctx, st, peer, `${where}: unix socket ${ino}`);
    if (d.state === TCP_ESTABLISHED && !peer && d.type !== SOCK.DGRAM) {
      const listener = pendingClients(ctx, st).get(ino);
      if (listener !== undefined) {
        if (d.rqlen?.wqueue)
          throw new Error(`${where}: unix socket ${ino} has sent data on a connection its listener has not accepted yet; not supported`);
        peer = listener;
      } else if (shut !== SHUT_BOTH) {
        throw new Error(`${where}: unix socket ${ino} is connected, but its peer is gone (dangling connection)`);
      }
    }
    if (d.state === TCP_LISTEN) {
      for (const c of d.icons ?? []) {
        if (!c) throw new Error(`${where}: listening unix socket ${ino} has a pending connection whose client is closed; not supported`);
        if (!tree.has(c))
          throw new Error(
            `${where}: listening unix socket ${ino} has a pending connection from socket ${c} outside the dumped tree; not supported`,
          );
      }
    }
    const peekOff = getsockoptInt(copy, SOL_SOCKET, SO.PEEK_OFF);
    const entry: MessageInput<'unix_sk_entry'> = {
      id,
      ino,
      type: d.type,
      state: d.state,
      flags: p.flags,
      uflags: 0,
      backlog: d.state === TCP_LISTEN ? (d.rqlen?.wqueue ?? 0) : 0,
      peer,
      fown: fown(),
      opts: dumpOpts(copy),
      name,
      ...(shut ? { shutdown: shut } : {}),
      ns_id: nsId,
      ...(peekOff >= 0 ? { peek_off: peekOff } : {}),
      ...(isPathName(name) ? boundFile(copy, d, name, where, ctx.mntIds ? treeMountIds(ctx) : undefined) : {}),
    };
    if (d.state !== TCP_LISTEN && d.rqlen?.rqueue) {
      for (const { m, ids } of peekQueue(copy, p.pid, where, ctx)) {
        ctx.addEntry(
          IMG.SK_QUEUES,
          {
            id_for: id,
            length: m.data.length,
            scm: ids.length ? [{ type: SCM_RIGHTS, rights: ids }] : [],
            ...(m.creds ? { ucred: { uid: m.creds.uid, gid: m.creds.gid, pid: m.creds.pid } } : {}),
          },
          m.data,
        );
      }
    }
    ctx.log.debug(
      `${where}: unix ${TYPE_NAMES[d.type]} socket ${ino} state ${d.state} peer ${peer}${name.length ? ` name ${showName(name)}` : ''}`,
    );
    return entry;
  });
}

/**
 * Sockets made for a restore, by inode: all of them at the first open, but those bound in a
 * mount namespace made by a task below the root (and their groups), at the first open of one
 * of them, once every task exists (lateSockets).
 */
interface RestoreState {
  early?: Map<number, number>;
  late?: Map<number, number>;
}

export const unixSocketFile = statefulKind({
  type: FD_TYPE.UNIXSK,
  field: 'usk',
  name: 'unix socket',
  // Files in flight (scm_fds) are saved with the queues.
  claims: { flags: O.NONBLOCK | FASYNC, fields: ['scm_fds'] },
  matches: (p) => (p.mode & S_IFMT) === S_IFSOCK,
  state: (): DumpState & RestoreState => ({}),
  dump: (p, id, ctx, st) => dumpUnix(p, id, ctx, st),
  open(e, ctx, st) {
    const late = lateSockets(ctx);
    const fds = late.has(e.ino)
      ? (st.late ??= restoreAll(ctx, (x) => late.has(x.ino)))
      : (st.early ??= restoreAll(ctx, (x) => !late.has(x.ino)));
    const fd = fds.get(e.ino);
    if (fd === undefined) throw new Error(`unixsk: socket ${e.ino} was not made`);
    return fd;
  },
});
