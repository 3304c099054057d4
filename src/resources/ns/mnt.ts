// Mount namespace: the tree of mounts (mountpoints-N.img) and every tmpfs's files
// (tmpfs-dev-N.tar.gz.img), dumped from outside (mnt-dump.ts) and built again by the root's
// stub, born in a new mount namespace (mnt-restore.ts). Files the tasks hold are reopened
// through the restored namespace (/proc/ROOT/root).
import { AT_EMPTY_PATH, CLONE, O, OPEN_TREE_CLONE, RESOLVE, close, openat2 } from '../../kernel/index.ts';
import { openPulled, pullFd } from '../../compel/open.ts';
import type { InjectionArea, Tracee } from '../../compel/index.ts';
import { parseMountinfo, readLink, type MountInfo } from '../../proc/index.ts';
import { CriuError } from '../../errors.ts';
import fs from 'node:fs';
import { IMG } from '../../images/index.ts';
import { dumpMntns } from './mnt-dump.ts';
import { mntRestoreRefusal, restoreMntns, type MntRestoreOptions } from './mnt-restore.ts';
import { FSTYPE, kdev, rootMount, under, type MntEntry } from './mnt-tree.ts';
import type { NsImagesIn, NsKind } from './types.ts';
import type { MadeMounts, MountOptions } from './mnt-tree.ts';
import type { Logger } from '../types.ts';

export { checkMntns, checkFilesOnMounts } from './mnt-dump.ts';

export type { MountOptions } from './mnt-tree.ts';

function restoreInput(
  id: number,
  imgs: NsImagesIn,
  mounts: MountOptions | undefined,
  log: Logger,
): { entries: MntEntry[]; opts: MntRestoreOptions } {
  return {
    entries: imgs.all(IMG.MNTS, id).map((e) => e.entry),
    opts: {
      root: mounts?.root ?? '/',
      external: mounts?.external ?? new Map(),
      auto: mounts?.auto !== undefined,
      tmpfs: (dev) => imgs.raw(IMG.TMPFS_DEV, dev),
      binfmt: () => imgs.all(IMG.BINFMT_MISC).map((e) => e.entry),
      log,
    },
  };
}

export const mntNs: NsKind = {
  name: 'mnt',
  cflag: CLONE.NEWNS,
  nested: true,
  // The mounts are checked with the --external marks (checkMntns), before anything is injected.
  dumpRefusal: () => undefined,
  dump: (ctx) => {
    // The root's namespace, then every other one a task is in, read through its first task.
    const first = new Map<number, number>([[ctx.id, ctx.pid]]);
    for (const t of ctx.tasks) if (!first.has(t.id)) first.set(t.id, t.pid);
    let outer: MntEntry[] = [];
    for (const [id, pid] of first) {
      const top = id === ctx.id;
      const d = dumpMntns(
        pid,
        top ? { ...(ctx.mounts ?? { external: new Map() }), top } : { external: new Map(), outer },
        ctx.helper,
        ctx.spareHelper,
      );
      if (top) outer = d.entries;
      // CRIU reads fsname only with FSTYPE__AUTO and refuses it elsewhere: an unsupported fs's
      // name is for criu-ts's messages, not the image.
      for (const e of d.entries) ctx.imgs.add(IMG.MNTS, id, e.fstype === FSTYPE.AUTO ? e : { ...e, fsname: undefined });
      for (const [dev, data] of d.tmpfs) ctx.imgs.raw(IMG.TMPFS_DEV, data, dev);
      for (const e of d.binfmt) ctx.imgs.add(IMG.BINFMT_MISC, e);
    }
  },
  restoreRefusal: ({ id, imgs, mounts, log, nested }) => {
    const { entries, opts } = restoreInput(id, imgs, mounts, log);
    // A nested namespace's sources are in the root's namespace, not criu-ts's: seen at restore.
    // Its file systems may be mounted in the namespace it is copied from: seen when it is made.
    const outer = (m: MntEntry) => (m.root !== '/' || m.fstype === FSTYPE.UNSUPPORTED ? -1n : undefined);
    return mntRestoreRefusal(entries, nested ? { ...opts, external: new Map(), yard: { inStub: '', here: '' }, outer } : opts);
  },
  restore: (ctx) => {
    const { entries, opts } = restoreInput(ctx.id, ctx.imgs, ctx.mounts, ctx.log);
    restoreMntns(ctx.stub, ctx.area, entries, { ...opts, made: ctx.made });
  },
  enter: (ctx) => {
    const { stub, area } = ctx;
    if (ctx.holder !== undefined) {
      if (readLink(stub.tid, 'ns/mnt') === readLink(ctx.holder, 'ns/mnt')) return;
      // Opened by criu-ts: the stub's /proc may be another PID namespace's.
      const fd = openPulled(stub, `/proc/${ctx.holder}/ns/mnt`, O.RDONLY);
      try {
        stub.syscall('setns', fd, CLONE.NEWNS);
      } finally {
        stub.syscallRaw('close', fd);
      }
      return;
    }
    ctx.log.info(`task ${stub.tid}: a mount namespace of its own from mountpoints-${ctx.id}.img`);
    const { entries, opts } = restoreInput(ctx.id, ctx.imgs, ctx.mounts, ctx.log);
    // Made from inside the namespace the task is in: its root is bound from where that
    // namespace has the same files, and the yard is a directory of its /tmp.
    const nested = rootMount(entries);
    const dev = Number(nested.root_dev);
    const from = readMntinfo(stub.tid).find((o) => kdev(o.major, o.minor) === dev && under(o.root, nested.root) !== undefined);
    // Else a root of its own file system (a tmpfs it pivoted into) is made anew.
    const rootAnew = !from && nested.root === '/' && nested.fstype !== FSTYPE.UNSUPPORTED;
    if (!from && !rootAnew)
      throw new CriuError(
        `mountpoints-${ctx.id}.img: the root ${nested.root} of its namespace is nowhere in the namespace of task ${stub.tid}`,
      );
    const rel = from ? under(from.root, nested.root)! : '';
    const copies = outerCopies(stub, area, entries, nested, ctx.made);
    try {
      stub.syscall('unshare', CLONE.NEWNS);
      restoreMntns(stub, area, entries, {
        ...opts,
        root: !from ? '' : rel ? `${from.mountPoint.replace(/\/$/, '')}/${rel}` : from.mountPoint,
        rootAnew,
        external: new Map(),
        yard: { inStub: '/tmp', here: `/proc/${stub.tid}/root/tmp` },
        outer: (m) => copies.get(m.mnt_id),
        made: ctx.made,
      });
    } finally {
      for (const fd of copies.values()) stub.syscallRaw('close', fd);
    }
  },
};

/**
 * For each mount of a nested namespace whose file system the namespace `stub` is in has (one
 * restored already, in `made`), a detached copy of that mount from the mount's root, made by
 * the stub while it is still there (open_tree copies only mounts of the caller's namespace,
 * and mount(2) binds from no other): moved into place after, the superblock stays one (a tmpfs
 * both namespaces see). By the kept fds, not by path: the mount may be covered. Returns the
 * stub's fds by mnt_id.
 */
function outerCopies(stub: Tracee, area: InjectionArea, entries: MntEntry[], root: MntEntry, made: MadeMounts): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const m of entries) {
    // The root's file system is bound from the namespace's root path (rootbind).
    if (m === root || (m.root_dev === root.root_dev && under(root.root, m.root) !== undefined)) continue;
    for (const { entry, fd } of made.values()) {
      const rel = entry.root_dev === m.root_dev ? under(entry.root, m.root) : undefined;
      if (rel === undefined) continue;
      let local: number;
      try {
        // Not across a mount on the way: that would be another file system.
        local = rel ? openat2(fd, rel, O.PATH | O.CLOEXEC, 0, RESOLVE.NO_XDEV) : fd;
      } catch {
        continue;
      }
      try {
        const pulled = pullFd(stub, local);
        area.reset();
        const copy = stub.syscallRaw('open_tree', pulled, area.putString(''), OPEN_TREE_CLONE | AT_EMPTY_PATH | O.CLOEXEC);
        stub.syscallRaw('close', pulled);
        if (copy >= 0n) out.set(m.mnt_id, copy);
      } finally {
        if (local !== fd) close(local);
      }
      if (out.has(m.mnt_id)) break;
    }
  }
  return out;
}

function readMntinfo(pid: number): MountInfo[] {
  return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
}

/** Which namespace (mountpoints-N.img) each mount id of the images is in. */
export function mountNamespaces(imgs: NsImagesIn, ids: Iterable<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const id of new Set(ids)) for (const { entry } of imgs.all(IMG.MNTS, id)) out.set(entry.mnt_id, id);
  return out;
}

/**
 * Paths (criu-ts's) of `a` and `b`, files by their names in the tree on two mounts of one file
 * system, through one mount made that has both: a hard link cannot cross mounts. Undefined
 * when they are on one mount, or no mount has both.
 */
export function commonMountPaths(
  made: MadeMounts,
  a: { mntId?: number; p: string },
  b: { mntId?: number; p: string },
): [string, string] | undefined {
  if (a.mntId === undefined || b.mntId === undefined || a.mntId === b.mntId) return undefined;
  const ma = made.get(a.mntId)?.entry,
    mb = made.get(b.mntId)?.entry;
  if (!ma || !mb || ma.root_dev !== mb.root_dev) return undefined;
  // Each path as the file system has it (from its root).
  const onDev = (e: MntEntry, p: string) => {
    const rel = under(e.mountpoint, p);
    return rel === undefined ? undefined : rel ? `${e.root.replace(/\/$/, '')}/${rel}` : e.root;
  };
  const da = onDev(ma, a.p),
    db = onDev(mb, b.p);
  if (da === undefined || db === undefined) return undefined;
  for (const { entry, fd } of made.values()) {
    if (entry.root_dev !== ma.root_dev) continue;
    const ra = under(entry.root, da),
      rb = under(entry.root, db);
    if (ra && rb) return [`/proc/self/fd/${fd}/${ra}`, `/proc/self/fd/${fd}/${rb}`];
  }
  return undefined;
}
