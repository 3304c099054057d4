// Mount namespace, dump side: the tree of the root task's mount namespace to
// mountpoints-N.img (one mnt_entry per mountinfo line, in mountinfo's order, as CRIU), and the
// contents of every tmpfs to tmpfs-dev-<dev>.tar.gz.img. What cannot be made again (a disk
// file system other than the root's, a bind whose source is nowhere in the tree, an
// overmounted tmpfs) is refused naming the mount, unless it is external (--external mnt[]).
import { gunzipSync, gzipSync } from 'node:zlib';
import fs from 'node:fs';
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  CLONE,
  MNT_DETACH,
  MS,
  O,
  OPEN_TREE_CLONE,
  close,
  copyTaskFd,
  errnoName,
  internalShmemDev,
  runProgram,
  type ProgramResult,
} from '../../kernel/index.ts';
import type { Tracee } from '../../compel/index.ts';
import type { NsDumpCtx, NsHelper } from './types.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { type BinfmtEntry, readBinfmt } from './binfmt.ts';
import { parseMountinfo, type MountInfo } from '../../proc/index.ts';
import {
  AUTODETECTED_MOUNT,
  FSTYPE,
  type MntEntry,
  type MountOptions,
  kdev,
  mountFlags,
  rootMount,
  toEntry,
  under,
  unreachableMaster,
} from './mnt-tree.ts';

/** external: mountpoint (as the tree sees it) → the key its entry keeps (--external mnt[PATH]:KEY). */
export type MntDumpOptions = Pick<MountOptions, 'external' | 'auto'> & {
  /** The root task's namespace: a master outside it may be taken from an external mount or --root at restore. */
  top?: boolean;
  /** A nested namespace's: the mounts of the root task's, restored before it, which its binds may be copied from. */
  outer?: MntEntry[];
};

export interface MntDump {
  entries: MntEntry[];
  /** The formats of its binfmt_misc superblock (the root task's namespace only, as CRIU). */
  binfmt: BinfmtEntry[];
  /** tmpfs contents by the kernel-encoded s_dev (the image's name). */
  tmpfs: Map<number, Buffer>;
}

/** Why the mount `m` cannot be restored; undefined when it can. */
function refusal(m: MntEntry, all: MntEntry[], root: MntEntry, outer: MntEntry[]): string | undefined {
  if (m === root || m.ext_key !== undefined) return undefined;
  const sameDev = all.filter((o) => o !== m && o.root_dev === m.root_dev);
  // A bind of (part of) the root's file system comes from --root.
  if (m.root_dev === root.root_dev && under(root.root, m.root) !== undefined) return undefined;
  if (m.root === '/') {
    if (m.fstype === FSTYPE.UNSUPPORTED)
      return `${m.fsname} is not a file system criu-ts makes anew; name it with --external mnt[${m.mountpoint}]:KEY`;
    return undefined;
  }
  // Any other bind needs a mount of the whole file system (or of a directory above) in the
  // tree, or in the root task's namespace, which a nested one's is copied from.
  if (sameDev.some((o) => under(o.root, m.root) !== undefined)) return undefined;
  if (outer.some((o) => o.root_dev === m.root_dev && under(o.root, m.root) !== undefined)) return undefined;
  return `a bind of ${m.root} whose file system is mounted nowhere else in the namespace`;
}

export function mountRefusal(m: MntEntry, why: string): string {
  return `mount ${m.mnt_id} (${m.mountpoint}, ${m.fstype === FSTYPE.UNSUPPORTED ? m.fsname : `fstype ${m.fstype}`}): ${why}`;
}

/** The tree of `pid`'s mount namespace, checked; throws NotSupportedError naming a mount that cannot come back. */
export function readMntns(pid: number, opts: MntDumpOptions): MntEntry[] {
  const infos = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  const marked = infos.map((i) => {
    const e = toEntry(i);
    const key = opts.external.get(i.mountPoint);
    return key === undefined ? e : { ...e, ext_key: key };
  });
  const root = rootMount(marked);
  const entries = opts.auto ? autodetect(marked, infos, root, opts.auto) : marked;
  for (const m of entries) {
    const why = refusal(m, entries, root, opts.outer ?? []);
    if (why) throw new NotSupportedError(`task ${pid}: mount namespace: ${mountRefusal(m, why)}`);
    const outside = m.master_id && !entries.some((o) => o.shared_id === m.master_id);
    if (outside && (!opts.top || unreachableMaster(m, entries, root)))
      throw new NotSupportedError(
        `task ${pid}: mount namespace: ${mountRefusal(
          m,
          opts.top
            ? `a slave of peer group ${m.master_id}, which is outside the namespace, and neither an external mount, a bind of one nor of the root`
            : `a slave of peer group ${m.master_id}, which is outside the namespace`,
        )}`,
      );
  }
  // An external mount that names no mount is ignored, as CRIU does: runc names every device
  // node and masked path, mounted or not.
  return entries;
}

/**
 * CRIU's autodetection of external mounts (--external mnt[]): a mount (not the root) of a
 * superblock criu-ts's own namespace has mounted, under that mount's root, is external; its
 * source keeps the host path it is bound from at restore. A shared mount only with `sharing`,
 * a slave only with `masters` and when its master is that mount's group or master.
 */
function autodetect(entries: MntEntry[], infos: MountInfo[], root: MntEntry, auto: NonNullable<MountOptions['auto']>): MntEntry[] {
  const host = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  return entries.map((m, i) => {
    if (m === root || m.ext_key !== undefined) return m;
    const info = infos[i];
    const same = host.filter(
      (h) =>
        kdev(h.major, h.minor) === m.root_dev &&
        h.fstype === info.fstype &&
        h.source === info.source &&
        h.superOptions === info.superOptions &&
        under(h.root, m.root) !== undefined,
    );
    // The one of the same peer group (or whose group is the master), else the last, as CRIU.
    const match =
      same.find((h) => {
        const f = mountFlags(h).shared;
        return f !== 0 && (f === m.shared_id || f === m.master_id);
      }) ?? same.at(-1);
    if (!match) return m;
    if (m.flags & MS.SHARED && !auto.sharing) return m;
    const f = mountFlags(match);
    if (m.flags & MS.SLAVE && (!auto.masters || (m.master_id !== f.shared && m.master_id !== f.master))) return m;
    const cut = under(match.root, m.root)!;
    return { ...m, ext_key: AUTODETECTED_MOUNT, source: `${match.mountPoint.slice(1)}${cut ? `/${cut}` : ''}` };
  });
}

/** Refuse, before anything is injected, a namespace whose mounts or open files cannot come back. */
export function checkMntns(pids: number[], mounts: MntDumpOptions): void {
  const seen = new Map<string, MntEntry[]>();
  for (const pid of pids) {
    const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
    // --external marks the root's namespace only, as CRIU's.
    const top = [...seen.values()][0];
    if (!seen.has(ns)) seen.set(ns, readMntns(pid, top ? { external: new Map(), outer: top } : { ...mounts, top: true }));
  }
  const own = new Map(pids.map((p) => [p, new Set(seen.get(fs.readlinkSync(`/proc/${p}/ns/mnt`))!.map((e) => e.mnt_id))]));
  checkFilesInMntns(pids, new Set([...seen.values()].flat().map((e) => e.mnt_id)), own);
}

/**
 * A tree in criu-ts's mount namespace reopens its files by path there: each must be on a mount
 * of its task's namespace, not a detached one (open_tree, fsmount) nor an internal one of the
 * kernel (a POSIX message queue's), and not covered since, or the path leads to another file.
 */
export function checkFilesOnMounts(pids: number[]): void {
  // A chrooted task's mountinfo shows only the mounts under its root: criu-ts's shows them all.
  const self = fs.readlinkSync('/proc/self/ns/mnt');
  const byNs = new Map<string, Set<number>>();
  const ids = (p: number) => {
    const ns = fs.readlinkSync(`/proc/${p}/ns/mnt`);
    let got = byNs.get(ns);
    if (!got) {
      const from = ns === self ? 'self' : String(p);
      got = new Set(parseMountinfo(fs.readFileSync(`/proc/${from}/mountinfo`, 'utf8')).map((m) => m.mntId));
      // Another task's own, chrooted elsewhere, would show other mounts: only criu-ts's is shared.
      if (ns === self) byNs.set(ns, got);
    }
    return got;
  };
  const own = new Map(pids.map((p) => [p, ids(p)]));
  checkFilesInMntns(pids, new Set([...own.values()].flatMap((s) => [...s])), own);
}

/**
 * Files and directories the tasks hold open (fds, cwd, root) must be on mounts of their
 * namespace: anything else has no path there to be reopened by.
 */
function checkFilesInMntns(pids: number[], ids: Set<number>, own: Map<number, Set<number>>): void {
  for (const pid of pids) {
    const fds = fs.readdirSync(`/proc/${pid}/fd`);
    for (const fd of fds) {
      let st: fs.Stats;
      let text: string;
      try {
        st = fs.statSync(`/proc/${pid}/fd/${fd}`);
        text = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        continue;
      }
      if (!st.isFile() && !st.isDirectory()) continue;
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      // memfds and other files of the kernel's internal shmem mount are no path's.
      if (!link.startsWith('/') || link.startsWith('/memfd:') || st.dev === internalShmemDev()) continue;
      const mnt = Number(/^mnt_id:\s*(\d+)$/m.exec(text)?.[1]);
      if (!ids.has(mnt))
        throw new NotSupportedError(
          `task ${pid}: fd ${fd} (${link}) is on mount ${mnt}, which is not in the task's mount namespace (a detached mount, open_tree's or fsmount's, or one the kernel keeps to itself: a POSIX message queue's, secretmem's)`,
        );
      // A file on a mount of the task's own namespace that another mount covers now (a file on
      // a mount of another namespace of the tree, kept across unshare, is opened through that one).
      const top = own.get(pid)?.has(mnt) ? mountAt(pid, link) : undefined;
      if (top !== undefined && top !== mnt)
        throw new NotSupportedError(
          `task ${pid}: fd ${fd} (${link}) is on mount ${mnt}, which mount ${top} covers at that path: it could not be opened there again (CRIU refuses it too)`,
        );
    }
  }
}

/** The mount a path of the task's namespace leads to now, or undefined (gone, deleted, unreadable). */
function mountAt(pid: number, p: string): number | undefined {
  if (p.endsWith(' (deleted)')) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${pid}/root${p}`, O.PATH | O.NOFOLLOW | O.CLOEXEC);
  } catch {
    return undefined;
  }
  try {
    return Number(/^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The tree and its tmpfs contents. The contents are read from a clean copy of each tmpfs
 * (open_tree without its submounts), made by `helper` inside the namespace; a covered one's
 * from a copy of the namespace (see uncover).
 */
export function dumpMntns(pid: number, opts: MntDumpOptions, helper: () => NsHelper, spare?: NsDumpCtx['spareHelper']): MntDump {
  const entries = readMntns(pid, opts);
  const tmpfs = new Map<number, Buffer>();
  const binfmt = opts.top ? dumpBinfmt(pid, entries) : [];
  const todo = entries.filter((m) => m.fstype === FSTYPE.TMPFS && m.root === '/' && m.ext_key === undefined);
  if (todo.length === 0) return { entries, tmpfs, binfmt };
  const h = helper();
  const archive = archiver(h, pid, tmpfs);
  enterMntns(h.tracee, pid);
  const covered = todo.filter((m) => !tmpfs.has(m.root_dev) && !archive(m, m.mnt_id));
  if (covered.length === 0) return { entries, tmpfs, binfmt };
  // The copy is made in the user namespace that owns the namespace: made from any other, its
  // mounts are locked together (CL_UNPRIVILEGED) and none can be unmounted. Entering a user
  // namespace cannot be undone: a helper of its own does it, as CRIU's ns_open_mountpoint.
  const own = fs.readlinkSync(`/proc/${pid}/ns/user`) !== fs.readlinkSync('/proc/self/ns/user');
  if (!own || !spare) {
    uncover(h, entries, covered, archive, () => enterMntns(h.tracee, pid));
    return { entries, tmpfs, binfmt };
  }
  const s = spare();
  try {
    enterMntns(s.tracee, pid, CLONE.NEWUSER);
    uncover(s, entries, covered, archiver(s, pid, tmpfs), () => enterMntns(s.tracee, pid));
  } finally {
    s.end();
  }
  return { entries, tmpfs, binfmt };
}

/** `t` into the mount namespace of `pid` (and `more` of its others), by pidfd: `t` may be in another namespace already, whose /proc is not criu-ts's. */
function enterMntns(t: Tracee, pid: number, more = 0): void {
  const nsfd = t.syscall('pidfd_open', pid, 0);
  try {
    t.syscall('setns', nsfd, CLONE.NEWNS | more);
  } finally {
    t.syscallRaw('close', nsfd);
  }
}

/**
 * The files of the mount at `m`'s mountpoint, as `h` sees it, into `tmpfs`, if it is the
 * mount `want`; false when it is not.
 */
function archiver(h: NsHelper, pid: number, tmpfs: Map<number, Buffer>): (m: MntEntry, want: number) => boolean {
  const { tracee: t, area } = h;
  const mntIdOf = (fd: bigint): number => Number(/^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${t.tid}/fdinfo/${fd}`, 'utf8'))?.[1]);
  return (m, want) => {
    area.reset();
    // Under a mount that covers a directory above it, the mountpoint may not even exist.
    const fd = t.syscallRaw('openat', AT_FDCWD, area.putString(m.mountpoint), O.PATH | O.DIRECTORY | O.CLOEXEC);
    if (fd < 0n) return false;
    if (mntIdOf(fd) !== want) {
      t.syscallRaw('close', fd);
      return false;
    }
    area.reset();
    // An unbindable mount cannot be cloned: read in place, where tar stays on its file system.
    const clone = t.syscallRaw('open_tree', fd, area.putString(''), OPEN_TREE_CLONE | AT_EMPTY_PATH | O.CLOEXEC);
    const tree = clone >= 0n ? clone : fd;
    if (tree !== fd) t.syscallRaw('close', fd);
    let local: number;
    try {
      local = copyTaskFd(t.tid, Number(tree));
    } finally {
      t.syscallRaw('close', tree);
    }
    try {
      tmpfs.set(m.root_dev, tarCreate(local, pid));
    } finally {
      close(local);
    }
    return true;
  };
}

/** The formats of the namespace's binfmt_misc superblock, read through a mount of it (one superblock, as CRIU). */
function dumpBinfmt(pid: number, entries: MntEntry[]): BinfmtEntry[] {
  const mounts = entries.filter((m) => m.fstype === FSTYPE.BINFMT_MISC && m.ext_key === undefined);
  if (mounts.length === 0) return [];
  if (new Set(mounts.map((m) => m.root_dev)).size > 1)
    throw new NotSupportedError(`task ${pid}: mount namespace: ${mountRefusal(mounts[1], 'a second binfmt_misc superblock')}`);
  for (const m of mounts) {
    const dir = `/proc/${pid}/root${m.mountpoint}`;
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch {
      continue;
    }
    // Not covered: the path leads to this superblock.
    if (kdev(Math.floor(st.dev / 256) & 0xfff, (st.dev & 0xff) | (Math.floor(st.dev / 4096) & 0xfff00)) === m.root_dev)
      return readBinfmt(dir);
  }
  throw new NotSupportedError(
    `task ${pid}: mount namespace: ${mountRefusal(mounts[0], 'binfmt_misc covered by another mount: its formats cannot be read')}`,
  );
}

/**
 * Covered tmpfs mounts are read each in a private copy of the namespace (the helper, back in
 * it by `enter`, unshares it), where what covers it is unmounted, as CRIU's
 * ns_open_mountpoint does: a copy per mount, since taking off what covers one may take
 * another with it. The copy's mounts have other ids: each is found by its mountpoint, device
 * and root (and rank among equals).
 */
function uncover(
  { tracee: t, area }: NsHelper,
  entries: MntEntry[],
  covered: MntEntry[],
  archive: (m: MntEntry, want: number) => boolean,
  enter: () => void,
): void {
  const key = (mp: string, dev: number, root: string) => `${dev} ${root} ${mp}`;
  for (const m of covered) {
    enter();
    t.syscall('unshare', CLONE.NEWNS);
    area.reset();
    t.syscall('mount', 0, area.putString('/'), 0, MS.REC | MS.PRIVATE, 0);
    const copy = parseMountinfo(fs.readFileSync(`/proc/${t.tid}/mountinfo`, 'utf8'));
    const k = key(m.mountpoint, Number(m.root_dev), m.root);
    const rank = entries.filter((e) => key(e.mountpoint, Number(e.root_dev), e.root) === k).indexOf(m);
    const twin = copy.filter((c) => key(c.mountPoint, kdev(c.major, c.minor), c.root) === k)[rank];
    if (!twin) throw new NotSupportedError(`${mountRefusal(m, 'a covered tmpfs not found in a copy of its namespace')}`);
    // Unmount, from the top, whatever the path leads to until it is the tmpfs itself.
    let read = false;
    for (let i = 0; i < 32 && !(read = archive(m, twin.mntId)); i++) {
      // The mount the path ends on, or, where it does not exist, the one its longest existing part ends on.
      let top = -1;
      for (let p = m.mountpoint; top < 0; p = p.slice(0, Math.max(1, p.lastIndexOf('/')))) {
        area.reset();
        const fd = t.syscallRaw('openat', AT_FDCWD, area.putString(p), O.PATH | O.CLOEXEC);
        if (fd >= 0n) {
          top = Number(/^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${t.tid}/fdinfo/${fd}`, 'utf8'))?.[1]);
          t.syscallRaw('close', fd);
        } else if (p === '/') break;
      }
      const cover = parseMountinfo(fs.readFileSync(`/proc/${t.tid}/mountinfo`, 'utf8')).find((c) => c.mntId === top);
      if (!cover) break;
      area.reset();
      // EINVAL: a locked mount, inherited from a namespace of another user namespace.
      const r = t.syscallRaw('umount2', area.putString(cover.mountPoint), MNT_DETACH);
      if (r < 0n) {
        const why = `a tmpfs covered by mount ${cover.mntId} (${cover.mountPoint}), which a copy of the namespace cannot take off`;
        throw new NotSupportedError(mountRefusal(m, `${why} (umount2: ${errnoName(Number(-r))}; a locked mount)`));
      }
    }
    if (!read) throw new NotSupportedError(`${mountRefusal(m, 'a tmpfs covered by another mount that could not be taken off in a copy')}`);
  }
}

/**
 * `tar ARGS` on the directory criu-ts holds open as `dirFd`, given to it as its fd 3. In a
 * user namespace of its own (the user namespace of `pid`, when not criu-ts's), tar runs in it,
 * as CRIU's does, so that the archive keeps the ids the namespace sees and the files it makes
 * on a tmpfs of the namespace get owners it can see: as its uid 0, or with criu-ts's ids
 * (`keepIds`), which keep no capability in it but reach files owned by criu-ts's user.
 */
function tar(args: string[], dirFd: number, pid: number, keepIds: boolean, input?: Buffer): Buffer {
  const own = fs.readlinkSync(`/proc/${pid}/ns/user`) !== fs.readlinkSync('/proc/self/ns/user');
  const argv = [
    'tar',
    '--no-unquote',
    '--no-wildcards',
    '--numeric-owner',
    '--preserve-permissions',
    '--directory',
    '/proc/self/fd/3',
    ...args,
  ];
  const enter = [`--user=/proc/${pid}/ns/user`, ...(keepIds ? ['--preserve-credentials'] : [])];
  let r: ProgramResult;
  try {
    r = runProgram(own ? ['nsenter', ...enter, ...argv] : argv, { input, fds: { 3: dirFd } });
  } catch (e) {
    throw new CriuError(`tar ${args[0]} of a tmpfs's contents failed: ${(e as Error).message}`);
  }
  if (r.status !== 0) {
    const why = r.stderr.trim().split('\n')[0];
    throw new CriuError(`tar ${args[0]} of a tmpfs's contents failed${why ? `: ${why}` : ` (exit status ${r.status})`}`);
  }
  return r.stdout;
}

/**
 * CRIU's tmpfs archive: a gzip'd tar of the whole file system, numeric owners, sparse. The
 * gzip is made here (zlib), not by a gzip program tar would start.
 */
function tarCreate(dirFd: number, pid: number): Buffer {
  const args = ['--create', '--one-file-system', '--check-links', '--sparse', '.'];
  try {
    return gzipSync(tar(args, dirFd, pid, false));
  } catch (e) {
    // A file only criu-ts's user may read, in a user namespace of its own, where uid 0 cannot.
    if (fs.readlinkSync(`/proc/${pid}/ns/user`) === fs.readlinkSync('/proc/self/ns/user')) throw e;
    return gzipSync(tar(args, dirFd, pid, true));
  }
}

/** Fill the tmpfs `pid` holds open as `fd` from its archive. */
export function tarExtract(pid: number, fd: number | bigint, data: Buffer): void {
  let plain: Buffer;
  try {
    plain = gunzipSync(data);
  } catch (e) {
    throw new CriuError(`a tmpfs's archive is not gzip data: ${(e as Error).message}`);
  }
  const dirFd = fs.openSync(`/proc/${pid}/fd/${fd}`, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    tar(['--extract', '-f', '-'], dirFd, pid, false, plain);
  } finally {
    fs.closeSync(dirFd);
  }
}

/**
 * The mount the fd `source` (/proc/PID/fd/N) is on, and the root (/proc/T/root, "" when
 * criu-ts's own) of one of `pids` (the holder first) whose mount namespace has it: an fd
 * inherited across unshare may be on a mount of another namespace than its holder's.
 */
export function mountOf(source: string, pids: number[]): { root: string; mntId: number } | undefined {
  const m = /^\/proc\/(\d+)\/fd\/(\d+)$/.exec(source);
  if (!m) return undefined;
  const mntId = Number(/^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${m[1]}/fdinfo/${m[2]}`, 'utf8'))?.[1]);
  const own = fs.readlinkSync('/proc/self/ns/mnt');
  for (const pid of [Number(m[1]), ...pids]) {
    if (!parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).some((i) => i.mntId === mntId)) continue;
    return { root: fs.readlinkSync(`/proc/${pid}/ns/mnt`) === own ? '' : `/proc/${pid}/root`, mntId };
  }
  return undefined;
}
