// Mount namespace, restore side, run by the root's stub (single-threaded, traced, born with
// CLONE_NEWNS) through injected calls, as CRIU's mount-v2 does it: a namespace that sends
// nothing to the host's (MS_SLAVE), the root as a bind of --root on a yard directory, every other mount made
// on its parent through an O_PATH fd of that parent (so that a later sibling that covers the
// path does not matter), each made private at once; then pivot_root into the yard, and the
// peer groups and masters again with MOVE_MOUNT_SET_GROUP. Children cloned by the stub later
// are born in the namespace. If the restore fails, the stub dies and the namespace with it.
import fs from 'node:fs';
import path from 'node:path';
import {
  AT_EMPTY_PATH,
  AT_REMOVEDIR,
  AT_FDCWD,
  MNT_DETACH,
  MOVE_MOUNT,
  MS,
  O,
  moveMountSetGroup,
  OPEN_TREE_CLONE,
  close,
  copyTaskFd,
  errnoCode,
  errnoName,
  pidfdGetfd,
  withThreadFsIds,
  pidfdOpen,
} from '../../kernel/index.ts';
import { pullFd } from '../../compel/open.ts';
import { RemoteSysError, type InjectionArea, type Tracee } from '../../compel/index.ts';
import { CriuError } from '../../errors.ts';
import type { Logger } from '../types.ts';
import { tarExtract } from './mnt-dump.ts';
import { type BinfmtEntry, registerBinfmt } from './binfmt.ts';
import { openPtmxAt } from '../files/pty.ts';
import { parseMountinfo } from '../../proc/index.ts';
import {
  AUTODETECTED_MOUNT,
  FSTYPE,
  type MadeMounts,
  type MntEntry,
  externalMaster,
  fstypeName,
  mountOrder,
  rootMount,
  under,
  unreachableMaster,
} from './mnt-tree.ts';

/** Flags that belong to a mount, not to its superblock. */
const PER_MOUNT = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME;

export interface MntRestoreOptions {
  /** The host directory the root mount is a bind of (--root, "/" by default). */
  root: string;
  /** ext_key → the host path bound there (--external mnt[KEY]:PATH, --ext-mount-map KEY:PATH). */
  external: Map<string, string>;
  /** --external mnt[]: mounts found external at dump are bound from the host path in their source. */
  auto?: boolean;
  /** A tmpfs's archive (tmpfs-dev-<dev>.tar.gz.img), by its s_dev. */
  tmpfs(dev: number): Buffer | undefined;
  /** The formats of binfmt_misc (binfmt-misc.img), registered in the first binfmt_misc made anew. */
  binfmt?: () => BinfmtEntry[];
  log: Logger;
  /**
   * Where the yard directory is made: as the stub names it, and as criu-ts does (the same
   * for the root's namespace; a nested one is made inside the root's, through /proc/STUB/root).
   */
  yard?: { inStub: string; here: string };
  /** The root is a file system of its own (a nested namespace's, not a bind): made anew. */
  rootAnew?: boolean;
  /**
   * A nested namespace's: a copy of the mount of its parent's namespace (restored already)
   * that has the file system of `m`, from `m`'s root, as the stub's fd of a detached tree
   * (open_tree made before the stub left that namespace). A superblock the namespaces share
   * stays one; -1n: cannot be known before the restore.
   */
  outer?: (m: MntEntry) => bigint | undefined;
  /**
   * The mounts of the namespaces made so far (criu-ts's O_PATH fds), by mnt_id: a peer group
   * or master that spans namespaces is joined from them. Those made here are added.
   */
  made?: MadeMounts;
}

type How =
  | { kind: 'root' }
  | { kind: 'external'; path: string }
  | { kind: 'rootbind'; path: string }
  | { kind: 'outer'; fd: bigint }
  | { kind: 'bind'; from: MntEntry; rel: string }
  | { kind: 'new'; fstype: string };

/** How `m` is made; `before`: the mounts made before it (mountOrder). */
function plan(m: MntEntry, before: MntEntry[], root: MntEntry, opts: MntRestoreOptions): How | string {
  if (m === root) return { kind: 'root' };
  if (m.ext_key !== undefined) {
    const p = externalPath(m, opts);
    if (p !== undefined) return { kind: 'external', path: p };
    return m.ext_key === AUTODETECTED_MOUNT
      ? 'found external by --external mnt[] at dump; restore with --external mnt[] too'
      : `external, and no --external mnt[${m.ext_key}]:PATH says where it is`;
  }
  if (m.root_dev === root.root_dev) {
    const rel = under(root.root, m.root);
    if (rel !== undefined) return { kind: 'rootbind', path: rel ? `${opts.root.replace(/\/$/, '')}/${rel}` : opts.root };
  }
  // A file system already mounted is bound again from there (a bind, a peer, a bind of an
  // external mount), from its whole root if it is mounted whole.
  const sources = before.filter((o) => o !== root && o.root_dev === m.root_dev && under(o.root, m.root) !== undefined);
  const from = sources.find((o) => o.root === '/') ?? sources[0];
  if (from) return { kind: 'bind', from, rel: under(from.root, m.root)! };
  const outer = opts.outer?.(m);
  if (outer !== undefined) return { kind: 'outer', fd: outer };
  if (m.root !== '/') return `a bind of ${m.root} whose file system is mounted nowhere else`;
  const fstype = fstypeName(m);
  if (fstype === undefined || m.fstype === FSTYPE.UNSUPPORTED) return `file system ${m.fsname ?? m.fstype} cannot be made anew`;
  return { kind: 'new', fstype };
}

/** The host path an external mount is bound from; a relative one is from "/", as CRIU's (it binds after chdir("/")). */
function externalPath(m: MntEntry, opts: MntRestoreOptions): string | undefined {
  const p = m.ext_key === AUTODETECTED_MOUNT ? (opts.auto ? m.source : undefined) : opts.external.get(m.ext_key!);
  return p === undefined ? undefined : path.resolve('/', p);
}

/**
 * The mount of criu-ts's namespace a path is on, opened at its root (O_PATH): a master outside
 * the namespace is copied from there (the kernel copies a group only from a mount's root).
 */
function openMountOf(p: string): number {
  const real = fs.realpathSync(p);
  const mps = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).map((i) => i.mountPoint);
  const mp = mps.filter((d) => under(d, real) !== undefined).sort((a, b) => b.length - a.length)[0] ?? '/';
  return fs.openSync(mp, O.PATH | O.CLOEXEC);
}

function what(m: MntEntry): string {
  return `mount ${m.mnt_id} (${m.mountpoint}, ${fstypeName(m) ?? m.fsname ?? `fstype ${m.fstype}`})`;
}

/** Why the namespace in `entries` cannot be restored, before anything exists; undefined when it can. */
export function mntRestoreRefusal(entries: MntEntry[], opts: MntRestoreOptions): string | undefined {
  if (entries.length === 0) return 'mountpoints image is empty';
  let root: MntEntry;
  try {
    root = rootMount(entries);
  } catch (e) {
    return (e as Error).message;
  }
  if (!opts.yard && !fs.statSync(opts.root, { throwIfNoEntry: false })?.isDirectory()) return `--root ${opts.root} is not a directory`;
  const ids = new Set(entries.map((e) => e.mnt_id));
  const order = mountOrder(entries);
  for (const [i, m] of order.entries()) {
    const h = plan(m, order.slice(0, i), root, opts);
    if (typeof h === 'string') return `${what(m)}: ${h}`;
    if (!opts.yard && (h.kind === 'external' || (h.kind === 'rootbind' && !m.deleted)) && !fs.existsSync(h.path))
      return `${what(m)}: its source ${h.path} does not exist`;
    const outside = m.master_id && !entries.some((o) => o.shared_id === m.master_id);
    if (outside && (opts.yard || unreachableMaster(m, entries, root)))
      return `${what(m)}: a slave of peer group ${m.master_id}, outside the namespace`;
    if (m !== root && !ids.has(m.parent_mnt_id)) return `${what(m)}: its parent ${m.parent_mnt_id} is not in the image`;
    if (m.fstype === FSTYPE.TMPFS && m.root === '/' && m.ext_key === undefined && !opts.tmpfs(Number(m.root_dev)))
      return `${what(m)}: no tmpfs-dev-${m.root_dev}.tar.gz.img`;
  }
  return undefined;
}

/** Builds the namespace in `stub` (see the top of this file). */
export function restoreMntns(stub: Tracee, area: InjectionArea, entries: MntEntry[], opts: MntRestoreOptions): void {
  const root = rootMount(entries);
  const order = mountOrder(entries);
  const call = (
    m: MntEntry,
    name: 'mount' | 'openat' | 'move_mount' | 'pivot_root' | 'umount2' | 'fchdir',
    ...args: Array<bigint | number | string | null>
  ): bigint => {
    area.reset();
    const a = args.map((x) => (x === null ? 0n : typeof x === 'string' ? area.putString(x) : x));
    try {
      return stub.syscall(name, ...a);
    } catch (e) {
      if (e instanceof RemoteSysError) throw new CriuError(`${what(m)}: ${name}: ${e.code}`);
      throw e;
    }
  };
  const fds = new Map<number, bigint>();
  const fdPath = (id: number, rel = ''): string => `/proc/self/fd/${fds.get(id)}${rel ? `/${rel}` : ''}`;
  const openPath = (m: MntEntry, p: string): bigint => call(m, 'openat', AT_FDCWD, p, O.PATH | O.CLOEXEC);
  // Nothing done here may reach the host's mounts; the host's may still reach the copy.
  call(root, 'mount', null, '/', null, MS.REC | MS.SLAVE, null);
  const parent = opts.yard?.here ?? '/tmp';
  const here = fs.mkdtempSync(`${parent}/.criu-ts-root-`);
  const name = here.slice(parent.length + 1);
  const yard = opts.yard ? `${opts.yard.inStub}/${name}` : here;
  // Removed through its parent as it is now: after pivot_root, /proc/STUB/root is another tree.
  const parentFd = fs.openSync(parent, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    const fresh = opts.rootAnew ? fstypeName(root) : undefined;
    if (fresh) call(root, 'mount', root.source || fresh, yard, fresh, (root.sb_flags ?? 0) & ~MS.RDONLY, root.options || null);
    else call(root, 'mount', opts.root, yard, null, MS.BIND, null);
    call(root, 'mount', null, yard, null, MS.PRIVATE, null);
    fds.set(root.mnt_id, openPath(root, yard));
    /**
     * A bind of a directory or file that was removed: made again for the bind (of the kind its
     * mountpoint is, as CRIU does), and removed after, as it was.
     */
    const bindDeleted = (m: MntEntry, src: string, targetHere: string, target: string): void => {
      const dir = fs.statSync(targetHere).isDirectory();
      area.reset();
      let made = dir
        ? stub.syscallRaw('mkdirat', AT_FDCWD, area.putString(src), 0o700)
        : stub.syscallRaw('openat', AT_FDCWD, area.putString(src), O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC, 0o600);
      if (made === -BigInt(errnoCode('EOVERFLOW'))) made = makeAsOwner(m, src, dir);
      if (made < 0n)
        throw new CriuError(`${what(m)}: its removed root ${m.root} cannot be made again for the bind: ${errnoName(Number(-made))}`);
      if (!dir && made > 0n) stub.syscallRaw('close', made);
      try {
        call(m, 'mount', src, target, null, MS.BIND, null);
      } finally {
        area.reset();
        stub.syscallRaw('unlinkat', AT_FDCWD, area.putString(src), dir ? AT_REMOVEDIR : 0);
      }
    };
    /**
     * The stub's ids (criu-ts's) are not mapped in the user namespace that owns the file
     * system: made by criu-ts, through the stub's fds, as the owner of the directory it is
     * made in.
     */
    const makeAsOwner = (m: MntEntry, src: string, dir: boolean): bigint => {
      const here = src.startsWith('/proc/self/') ? `/proc/${stub.tid}${src.slice('/proc/self'.length)}` : src;
      const owner = fs.statSync(path.dirname(here));
      try {
        withThreadFsIds(owner.uid, owner.gid, () =>
          dir ? fs.mkdirSync(here, 0o700) : fs.closeSync(fs.openSync(here, O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC, 0o600)),
        );
        return 0n;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? String(e);
        throw new CriuError(`${what(m)}: its removed root ${m.root} cannot be made again for the bind: ${code}`);
      }
    };
    /**
     * A bind of a pty (a console): the pty is made (its master opened at its index) in the new
     * devpts, and its master kept for the tty restore (opts.made.ptys), which opens none then.
     */
    const ptyFor = (devpts: MntEntry, index: number): void => {
      const dir = `/proc/${stub.tid}/fd/${fds.get(devpts.mnt_id)}`;
      if (fs.existsSync(`${dir}/${index}`) || !opts.made) return;
      opts.made.ptys ??= new Map();
      opts.made.ptys.set(index, openPtmxAt(`${dir}/ptmx`, index, O.RDWR));
    };
    /** A path that ends on the top of the stack of mounts at `m`'s mountpoint. */
    const topOf = (m: MntEntry): string => {
      if (m === root) return yard;
      const p = entries.find((e) => e.mnt_id === m.parent_mnt_id)!;
      const rel = under(p.mountpoint, m.mountpoint);
      return rel ? fdPath(p.mnt_id, rel) : topOf(p);
    };
    const rootFiles = fresh && root.fstype === FSTYPE.TMPFS ? opts.tmpfs(Number(root.root_dev)) : undefined;
    if (rootFiles) tarExtract(stub.tid, fds.get(root.mnt_id)!, rootFiles);
    for (const [i, m] of order.entries()) {
      if (m === root) continue;
      const h = plan(m, order.slice(0, i), root, opts);
      if (typeof h === 'string') throw new CriuError(`${what(m)}: ${h}`);
      const parent = entries.find((e) => e.mnt_id === m.parent_mnt_id)!;
      const rel = under(parent.mountpoint, m.mountpoint);
      if (rel === undefined) throw new CriuError(`${what(m)}: not under its parent's mountpoint ${parent.mountpoint}`);
      const target = fdPath(parent.mnt_id, rel);
      opts.log.debug(`mount ${m.mnt_id}: ${h.kind} at ${m.mountpoint}`);
      // A read-only superblock is filled first, then made read-only.
      const sbFlags = m.sb_flags ?? 0;
      if (h.kind === 'new')
        call(
          m,
          'mount',
          m.source || h.fstype,
          target,
          h.fstype,
          (sbFlags & ~MS.RDONLY) | (m.flags & PER_MOUNT & ~MS.RDONLY),
          m.options || null,
        );
      // T_SYMLINKS: the target may end on /proc/self/fd/N, which mount(2) follows too.
      else if (h.kind === 'outer') call(m, 'move_mount', h.fd, '', AT_FDCWD, target, MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_SYMLINKS);
      else {
        // A bind of a directory inside the source is taken from a copy of the source mount
        // alone: a path walked in the source itself would cross what is mounted on it.
        area.reset();
        const copy =
          h.kind === 'bind' && h.rel
            ? stub.syscallRaw('open_tree', fds.get(h.from.mnt_id)!, area.putString(''), OPEN_TREE_CLONE | AT_EMPTY_PATH | O.CLOEXEC)
            : -1n;
        let src: string;
        if (h.kind === 'bind') src = copy >= 0n ? `/proc/self/fd/${copy}/${h.rel}` : fdPath(h.from.mnt_id, h.rel);
        else src = h.kind === 'root' ? opts.root : h.path;
        if (h.kind === 'bind' && h.from.fstype === FSTYPE.DEVPTS && /^\d+$/.test(h.rel)) ptyFor(h.from, Number(h.rel));
        try {
          if (m.deleted && h.kind !== 'root') bindDeleted(m, src, `/proc/${stub.tid}${target.slice('/proc/self'.length)}`, target);
          else call(m, 'mount', src, target, null, MS.BIND, null);
        } finally {
          if (copy >= 0n) stub.syscallRaw('close', copy);
        }
      }
      // /proc/self/fd/N lands on the mount of fd N itself, not on what is mounted over its
      // root: a mount on its parent's root is opened by a path that crosses into it.
      fds.set(m.mnt_id, openPath(m, rel ? target : topOf(parent)));
      call(m, 'mount', null, fdPath(m.mnt_id), null, MS.PRIVATE, null);
      if (h.kind === 'new' && m.fstype === FSTYPE.BINFMT_MISC && !opts.yard)
        registerBinfmt(`/proc/${stub.tid}/fd/${fds.get(m.mnt_id)}`, opts.binfmt?.() ?? []);
      if (h.kind === 'new' && m.fstype === FSTYPE.TMPFS) {
        const data = opts.tmpfs(Number(m.root_dev));
        if (data) tarExtract(stub.tid, fds.get(m.mnt_id)!, data);
      }
      if (h.kind === 'new' && sbFlags & MS.RDONLY) call(m, 'mount', null, fdPath(m.mnt_id), null, MS.REMOUNT | sbFlags, m.options || null);
    }
    // Per-mount flags last: a read-only mount is filled first, or once its ghost files are made.
    const later = opts.made?.readOnlyLater;
    for (const m of order) {
      const flags = later?.has(m.mnt_id) ? m.flags & PER_MOUNT & ~MS.RDONLY : m.flags & PER_MOUNT;
      call(m, 'mount', null, fdPath(m.mnt_id), null, MS.REMOUNT | MS.BIND | flags, null);
    }
    call(root, 'fchdir', fds.get(root.mnt_id)!);
    call(root, 'pivot_root', '.', '.');
    call(root, 'umount2', '.', MNT_DETACH);
    const outside = new Map<number, bigint>();
    const host = new Map<number, number>();
    try {
      for (const { entry, fd } of widestFirst([...(opts.made?.values() ?? [])], (k) => k.entry))
        if (entry.shared_id && !outside.has(entry.shared_id)) outside.set(entry.shared_id, pullFd(stub, fd));
      if (!opts.yard) hostMasters(entries, root, opts, outside, host);
      const fromHost = (m: MntEntry, local: number): void => {
        const to = copyTaskFd(stub.tid, Number(fds.get(m.mnt_id)));
        try {
          moveMountSetGroup(local, to);
        } catch (e) {
          throw new CriuError(`${what(m)}: its master outside the namespace: ${(e as Error).message}`);
        } finally {
          close(to);
        }
      };
      restoreSharing(order, fds, { outside, host, fromHost }, call);
    } finally {
      for (const fd of new Set(outside.values())) stub.syscallRaw('close', fd);
      for (const fd of host.values()) close(fd);
    }
    call(root, 'fchdir', fds.get(root.mnt_id)!);
    if (opts.made) keepMounts(stub, order, fds, opts.made);
  } finally {
    for (const fd of fds.values()) stub.syscallRaw('close', fd);
    fs.rmdirSync(`/proc/self/fd/${parentFd}/${name}`);
    fs.closeSync(parentFd);
  }
}

/**
 * Masters outside the namespace (CRIU's external slavery): each slave's group and master are
 * copied from the host mount its external mount's path (or --root) is on, criu-ts's fd of it
 * by the slave's mnt_id in `host`. criu-ts copies them itself: the kernel wants CAP_SYS_ADMIN
 * over the user namespace of both mounts' namespaces, which a stub in a user namespace of its
 * own lacks for the host's.
 */
function hostMasters(
  entries: MntEntry[],
  root: MntEntry,
  opts: MntRestoreOptions,
  outside: Map<number, bigint>,
  host: Map<number, number>,
): void {
  for (const m of entries) {
    if (!m.master_id || outside.has(m.master_id) || entries.some((o) => o.shared_id === m.master_id)) continue;
    const src = externalMaster(m, entries, root);
    const p = src === 'root' ? opts.root : src && externalPath(src, opts);
    if (p === undefined) continue;
    let local: number;
    try {
      local = openMountOf(p);
    } catch (e) {
      throw new CriuError(`${what(m)}: its master is outside the namespace, and ${p} cannot be opened: ${(e as Error).message}`);
    }
    host.set(m.mnt_id, local);
  }
}

/** `list` by the depth of each one's root, widest first (stable). */
function widestFirst<T>(list: T[], entry: (x: T) => MntEntry): T[] {
  const depth = (x: T) => (entry(x).root === '/' ? 0 : entry(x).root.split('/').length);
  return [...list].sort((a, b) => depth(a) - depth(b));
}

/** criu-ts's copies of the stub's fds of the mounts just made, for the namespaces made later. */
function keepMounts(stub: Tracee, order: MntEntry[], fds: Map<number, bigint>, made: MadeMounts): void {
  const pidfd = pidfdOpen(stub.tid);
  try {
    for (const m of order) made.set(m.mnt_id, { entry: m, fd: pidfdGetfd(pidfd, Number(fds.get(m.mnt_id))) });
  } finally {
    close(pidfd);
  }
}

/**
 * The read-only mounts left writable for their ghost files made read-only, by `stub` (a task
 * of the namespace each is in: only there can a mount be changed), through its working
 * directory, which is put back.
 */
export function readOnlyAfterFiles(made: MadeMounts, stubOf: (m: MntEntry) => { stub: Tracee; area: InjectionArea } | undefined): void {
  for (const id of made.readOnlyLater ?? []) {
    const k = made.get(id);
    if (!k || !(k.entry.flags & MS.RDONLY)) continue;
    const t = stubOf(k.entry);
    if (!k || !t) continue;
    const { stub, area } = t;
    area.reset();
    const cwd = stub.syscall('openat', AT_FDCWD, area.putString('.'), O.PATH | O.CLOEXEC);
    const fd = pullFd(stub, k.fd);
    try {
      stub.syscall('fchdir', fd);
      area.reset();
      stub.syscall('mount', 0, area.putString('.'), 0, MS.REMOUNT | MS.BIND | (k.entry.flags & PER_MOUNT), 0);
    } finally {
      stub.syscallRaw('fchdir', cwd);
      stub.syscallRaw('close', fd);
      stub.syscallRaw('close', cwd);
    }
  }
  made.readOnlyLater?.clear();
}

/** Close what keepMounts kept. */
export function releaseMounts(made: MadeMounts): void {
  for (const { fd } of made.values()) close(fd);
  made.clear();
  for (const fd of made.ptys?.values() ?? []) close(fd);
  made.ptys?.clear();
}

/**
 * Peer groups and masters: the first member of each group is made shared, the others join it
 * with MOVE_MOUNT_SET_GROUP (which copies its master too); a slave joins its master's group the
 * same way and is then made a slave. A mount waits for the mounts it copies from. A group that
 * has members in a namespace made before (`outside`: the stub's fd of one, by group) is joined
 * from there: peer groups span namespaces (a copy made by unshare is a peer of its original).
 * A master on the host (`host`, criu-ts's fd by the slave's mnt_id) is copied by `fromHost`.
 */
function restoreSharing(
  order: MntEntry[],
  fds: Map<number, bigint>,
  from: { outside: Map<number, bigint>; host: Map<number, number>; fromHost: (m: MntEntry, local: number) => void },
  call: (m: MntEntry, name: 'mount' | 'move_mount' | 'fchdir', ...args: Array<bigint | number | string | null>) => bigint,
): void {
  const outside = from.outside;
  const rep = new Map<number, MntEntry>();
  // A group is joined from its member of the widest root: MOVE_MOUNT_SET_GROUP copies only to
  // a mount whose root is inside the source's.
  for (const m of widestFirst(order, (x) => x)) if (m.shared_id && !rep.has(m.shared_id)) rep.set(m.shared_id, m);
  const done = new Set<MntEntry>(order.filter((m) => !m.shared_id && !m.master_id));
  const setGroup = (from: MntEntry | bigint, to: MntEntry) =>
    call(
      to,
      'move_mount',
      typeof from === 'bigint' ? from : fds.get(from.mnt_id)!,
      '',
      fds.get(to.mnt_id)!,
      '',
      MOVE_MOUNT.SET_GROUP | MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH,
    );
  // By the working directory: after pivot_root the namespace may have no /proc.
  const propagate = (m: MntEntry, flag: number) => {
    call(m, 'fchdir', fds.get(m.mnt_id)!);
    call(m, 'mount', null, '.', null, flag, null);
  };
  for (let progress = true; progress && done.size < order.length; ) {
    progress = false;
    for (const m of order) {
      if (done.has(m)) continue;
      const r = m.shared_id ? rep.get(m.shared_id)! : undefined;
      const peer = m.shared_id ? outside.get(m.shared_id) : undefined;
      if (peer !== undefined) setGroup(peer, m);
      else if (r && r !== m) {
        if (!done.has(r)) continue;
        setGroup(r, m);
      } else {
        const local = from.host.get(m.mnt_id);
        const master = m.master_id ? (outside.get(m.master_id) ?? rep.get(m.master_id) ?? local) : undefined;
        if (m.master_id && master === undefined)
          throw new CriuError(`${what(m)}: its master, peer group ${m.master_id}, is in no namespace made before it`);
        if (typeof master === 'object' && !done.has(master)) continue;
        if (master !== undefined) {
          if (typeof master === 'number') from.fromHost(m, master);
          else setGroup(master, m);
          propagate(m, MS.SLAVE);
        }
        if (m.shared_id) propagate(m, MS.SHARED);
      }
      done.add(m);
      progress = true;
    }
  }
  // Last: nothing can be bound from an unbindable mount.
  for (const m of order) if (m.flags & MS.UNBINDABLE) propagate(m, MS.UNBINDABLE);
  const left = order.find((m) => !done.has(m));
  if (left) throw new CriuError(`${what(left)}: its peer group ${left.shared_id} or master ${left.master_id} cannot be restored`);
}
