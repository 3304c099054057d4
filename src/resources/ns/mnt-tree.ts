// A mount namespace's tree as CRIU saves it (mnt_entry per line of /proc/PID/mountinfo), and
// what each file system type needs to come back. Pure functions: dump and restore use them.
import { MS } from '../../kernel/index.ts';
import { enums } from '../../images/index.ts';
import type { MountInfo } from '../../proc/mountinfo.ts';
import type { Message } from '../types.ts';

export type MntEntry = Message<'mnt_entry'>;

/** CRIU's fstype enum (mnt.proto), from the image schema; FSTYPE_BY_NAME says which criu-ts makes anew. */
export const FSTYPE = enums.fstype.values;

const FSTYPE_BY_NAME: Record<string, number> = {
  proc: FSTYPE.PROC,
  sysfs: FSTYPE.SYSFS,
  devtmpfs: FSTYPE.DEVTMPFS,
  tmpfs: FSTYPE.TMPFS,
  devpts: FSTYPE.DEVPTS,
  mqueue: FSTYPE.MQUEUE,
  overlay: FSTYPE.OVERLAYFS,
  cgroup: FSTYPE.CGROUP,
  cgroup2: FSTYPE.CGROUP2,
  // Kernel file systems whose one instance is mounted again (binfmt_misc only without entries).
  binfmt_misc: FSTYPE.BINFMT_MISC,
  pstore: FSTYPE.PSTORE,
  securityfs: FSTYPE.SECURITYFS,
  fusectl: FSTYPE.FUSECTL,
  debugfs: FSTYPE.DEBUGFS,
  tracefs: FSTYPE.TRACEFS,
};
const NAME_BY_FSTYPE = new Map(Object.entries(FSTYPE_BY_NAME).map(([n, c]) => [c, n]));

export function fstypeCode(name: string): number {
  return FSTYPE_BY_NAME[name] ?? FSTYPE.UNSUPPORTED;
}

/** The name mount(2) takes for an entry's file system. */
export function fstypeName(e: Pick<MntEntry, 'fstype' | 'fsname'>): string | undefined {
  return e.fstype === FSTYPE.AUTO ? e.fsname : NAME_BY_FSTYPE.get(e.fstype);
}

/** The kernel's dev_t encoding CRIU stores (MKKDEV). */
export function kdev(major: number, minor: number): number {
  return ((major << 20) | minor) >>> 0;
}

const MNT_OPTS: Record<string, number> = {
  rw: 0,
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  relatime: MS.RELATIME,
};
const SB_OPTS: Record<string, number> = {
  rw: 0,
  ro: MS.RDONLY,
  sync: MS.SYNCHRONOUS,
  dirsync: MS.DIRSYNC,
  mand: MS.MANDLOCK,
  lazytime: MS.LAZYTIME,
};

/** Per-mount flags and propagation from mountinfo, as CRIU's parse_mountinfo reads them. */
export function mountFlags(m: MountInfo): { flags: number; shared: number; master: number } {
  let flags = 0;
  for (const o of m.options.split(',')) {
    const f = MNT_OPTS[o];
    if (f === undefined) throw new Error(`mount ${m.mntId} (${m.mountPoint}): unknown mount option ${o}`);
    flags |= f;
  }
  // Without relatime or noatime the kernel defaults to relatime: strictatime was set.
  if ((flags & (MS.RELATIME | MS.NOATIME)) === 0) flags |= MS.STRICTATIME;
  let shared = 0,
    master = 0;
  for (const f of m.optionalFields) {
    if (f.startsWith('shared:')) {
      flags |= MS.SHARED;
      shared = Number(f.slice(7));
    } else if (f.startsWith('master:')) {
      flags |= MS.SLAVE;
      master = Number(f.slice(7));
    } else if (f === 'unbindable') flags |= MS.UNBINDABLE;
  }
  return { flags: flags >>> 0, shared, master };
}

/** Superblock flags, and the options mount(2) takes as data. */
export function superFlags(superOptions: string): { sbFlags: number; options: string } {
  let sbFlags = 0;
  const rest: string[] = [];
  for (const o of superOptions.split(',')) {
    const f = SB_OPTS[o];
    if (f === undefined) rest.push(o);
    else sbFlags |= f;
  }
  return { sbFlags, options: rest.join(',') };
}

export function toEntry(m: MountInfo): MntEntry {
  const { flags, shared, master } = mountFlags(m);
  const { sbFlags, options } = superFlags(m.superOptions);
  const code = fstypeCode(m.fstype);
  return {
    fstype: code,
    mnt_id: m.mntId,
    root_dev: kdev(m.major, m.minor),
    parent_mnt_id: m.parentId,
    flags,
    root: m.root,
    mountpoint: m.mountPoint,
    source: m.source,
    options,
    shared_id: shared,
    master_id: master,
    sb_flags: sbFlags,
    ...(code === FSTYPE.UNSUPPORTED ? { fsname: m.fstype } : {}),
    ...(m.rootDeleted ? { deleted: true } : {}),
  };
}

type Tree = Pick<MntEntry, 'mnt_id' | 'parent_mnt_id' | 'mountpoint'>;

/** The namespace's root mount: the one whose parent is not in the namespace. */
export function rootMount<T extends Tree>(mounts: T[]): T {
  const ids = new Set(mounts.map((m) => m.mnt_id));
  const roots = mounts.filter((m) => !ids.has(m.parent_mnt_id) || m.parent_mnt_id === m.mnt_id);
  if (roots.length !== 1) throw new Error(`the mount tree has ${roots.length} roots`);
  return roots[0];
}

/** `p` relative to `dir` ("" when equal), or undefined when `p` is not under `dir`. */
export function under(dir: string, p: string): string | undefined {
  if (p === dir) return '';
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return p.startsWith(d) ? p.slice(d.length) : undefined;
}

/**
 * The order mounts are made in: parents first, depth first; among siblings, one mounted
 * below another's mountpoint before it, since the other then covers it. A bind of a
 * directory inside a file system waits for a mount of more of it (the whole, if there is one
 * such), which it is bound from, wherever that one is in the tree.
 */
export function mountOrder<T extends Tree & Partial<Pick<MntEntry, 'root_dev' | 'root'>>>(mounts: T[]): T[] {
  const root = rootMount(mounts);
  const kids = new Map<number, T[]>();
  for (const m of mounts) {
    if (m === root) continue;
    const l = kids.get(m.parent_mnt_id) ?? [];
    l.push(m);
    kids.set(m.parent_mnt_id, l);
  }
  const walked: T[] = [];
  const walk = (m: T): void => {
    walked.push(m);
    // By id, but a sibling mounted below another's mountpoint goes before it.
    const list: T[] = [];
    for (const k of (kids.get(m.mnt_id) ?? []).sort((a, b) => a.mnt_id - b.mnt_id)) {
      const i = list.findIndex((o) => o.mountpoint !== k.mountpoint && under(o.mountpoint, k.mountpoint) !== undefined);
      if (i < 0) list.push(k);
      else list.splice(i, 0, k);
    }
    for (const k of list) walk(k);
  };
  walk(root);
  const byId = new Map(mounts.map((m) => [m.mnt_id, m]));
  const needs = new Map<T, T[]>(walked.map((m) => [m, m === root ? [] : [byId.get(m.parent_mnt_id)!]]));
  for (const m of walked) {
    const r = m.root;
    if (m === root || r === undefined || r === '/') continue;
    const wider = walked.filter(
      (o) => o !== m && o.root !== undefined && o.root_dev === m.root_dev && o.root !== r && under(o.root, r) !== undefined,
    );
    const from = wider.find((o) => o.root === '/') ?? wider[0];
    if (from) needs.get(m)!.push(from);
  }
  // The walk's order, but each mount once what it needs is made (a cycle: the walk's order).
  const out: T[] = [];
  const done = new Set<T>();
  while (out.length < walked.length) {
    const next = walked.find((m) => !done.has(m) && needs.get(m)!.every((n) => done.has(n))) ?? walked.find((m) => !done.has(m))!;
    out.push(next);
    done.add(next);
  }
  return out;
}

/** --root and the external mounts (--external mnt[A]:B, --ext-mount-map A:B): at dump mountpoint → key, at restore key → host path. */
export interface MountOptions {
  root?: string;
  external: Map<string, string>;
  /**
   * --external mnt[] (--ext-mount-map auto): at dump, a mount of a file system criu-ts's own
   * namespace has is external, found by itself (shared ones with --enable-external-sharing or
   * mnt[]:s, slaves with --enable-external-masters or mnt[]:m); at restore, such mounts are
   * bound from the path saved in their source.
   */
  auto?: { sharing: boolean; masters: boolean };
}

/** CRIU's ext_key of a mount found external by --external mnt[]; its source holds the host path without the leading "/". */
export const AUTODETECTED_MOUNT = 'CRIU:AUTOGENERATED';

/**
 * Where a mount whose master is outside the namespace takes that master from at restore
 * (CRIU's external slavery): the host path of its external mount (itself, or one of its file
 * system whose root holds its root), or --root for a bind of the root's file system.
 */
export function externalMaster(m: MntEntry, entries: MntEntry[], root: MntEntry): MntEntry | 'root' | undefined {
  if (m.ext_key !== undefined) return m;
  const ext = entries.find((e) => e.ext_key !== undefined && e.root_dev === m.root_dev && under(e.root, m.root) !== undefined);
  if (ext) return ext;
  return m.root_dev === root.root_dev && under(root.root, m.root) !== undefined ? 'root' : undefined;
}

/** A master outside the namespace `entries` that the mount cannot take from anywhere (see externalMaster). */
export function unreachableMaster(m: MntEntry, entries: MntEntry[], root: MntEntry): boolean {
  return !!m.master_id && !entries.some((o) => o.shared_id === m.master_id) && externalMaster(m, entries, root) === undefined;
}

/**
 * The mounts of the namespaces a restore made so far: criu-ts's O_PATH fd of each, its entry
 * and namespace, by mnt_id; `readOnlyLater`: read-only mounts left writable until the ghost
 * files on them are made (set before the namespaces are made), made read-only by
 * readOnlyAfterFiles.
 */
export type MadeMounts = Map<number, { entry: MntEntry; fd: number }> & {
  readOnlyLater?: Set<number>;
  /** Masters of the ptys bound somewhere (/dev/console), opened to make them, by index: for the tty restore. */
  ptys?: Map<number, number>;
};
