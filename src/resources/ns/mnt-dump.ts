// Mount namespace, dump side: the tree of the root task's mount namespace to
// mountpoints-N.img (one mnt_entry per mountinfo line, in mountinfo's order, as CRIU), and the
// contents of every tmpfs to tmpfs-dev-<dev>.tar.gz.img. What cannot be made again (a disk
// file system other than the root's, a bind whose source is nowhere in the tree, an
// overmounted tmpfs) is refused naming the mount, unless it is external (--external mnt[]).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { AT_FDCWD, CLONE, O, OPEN_TREE_CLONE, close, pidfdGetfd, pidfdOpen } from '../../kernel/index.ts';
import type { NsHelper } from './types.ts';
import { NotSupportedError } from '../../errors.ts';
import { parseMountinfo } from '../../proc/index.ts';
import { FSTYPE, type MntEntry, rootMount, toEntry, under } from './mnt-tree.ts';

const AT_EMPTY_PATH = 0x1000;

export interface MntDumpOptions {
  /** Mountpoint (as the tree sees it) → the key its entry keeps (--external mnt[PATH]:KEY). */
  external: Map<string, string>;
}

export interface MntDump {
  entries: MntEntry[];
  /** tmpfs contents by the kernel-encoded s_dev (the image's name). */
  tmpfs: Map<number, Buffer>;
}

/** Why the mount `m` cannot be restored; undefined when it can. */
function refusal(pid: number, m: MntEntry, all: MntEntry[], root: MntEntry): string | undefined {
  if (m === root || m.ext_key !== undefined) return undefined;
  const sameDev = all.filter((o) => o !== m && o.root_dev === m.root_dev);
  // A bind of (part of) the root's file system comes from --root.
  if (m.root_dev === root.root_dev && under(root.root, m.root) !== undefined) return undefined;
  if (m.root === '/') {
    if (m.fstype === FSTYPE.BINFMT_MISC && binfmtEntries(pid, m).length)
      return `binfmt_misc entries (${binfmtEntries(pid, m).join(', ')}) are not saved yet`;
    if (m.fstype === FSTYPE.UNSUPPORTED)
      return `${m.fsname} is not a file system criu-ts makes anew; name it with --external mnt[${m.mountpoint}]:KEY`;
    return undefined;
  }
  // Any other bind needs a mount of the whole file system (or of a directory above) in the tree.
  if (sameDev.some((o) => under(o.root, m.root) !== undefined)) return undefined;
  return `a bind of ${m.root} whose file system is mounted nowhere else in the namespace`;
}

/** The formats registered in a binfmt_misc mount (read through the task's root). */
function binfmtEntries(pid: number, m: MntEntry): string[] {
  try {
    return fs.readdirSync(`/proc/${pid}/root${m.mountpoint}`).filter((n) => n !== 'register' && n !== 'status');
  } catch {
    return [];
  }
}

export function mountRefusal(m: MntEntry, why: string): string {
  return `mount ${m.mnt_id} (${m.mountpoint}, ${m.fstype === FSTYPE.UNSUPPORTED ? m.fsname : `fstype ${m.fstype}`}): ${why}`;
}

/** The tree of `pid`'s mount namespace, checked; throws NotSupportedError naming a mount that cannot come back. */
export function readMntns(pid: number, opts: MntDumpOptions): MntEntry[] {
  const infos = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  const entries = infos.map((i) => {
    const e = toEntry(i);
    const key = opts.external.get(i.mountPoint);
    return key === undefined ? e : { ...e, ext_key: key };
  });
  const root = rootMount(entries);
  for (const m of entries) {
    const why = refusal(pid, m, entries, root);
    if (why) throw new NotSupportedError(`task ${pid}: mount namespace: ${mountRefusal(m, why)}`);
    if (m.master_id && !entries.some((o) => o.shared_id === m.master_id))
      throw new NotSupportedError(
        `task ${pid}: mount namespace: ${mountRefusal(m, `a slave of peer group ${m.master_id}, which is outside the namespace`)}`,
      );
  }
  // An external mount that names no mount is ignored, as CRIU does: runc names every device
  // node and masked path, mounted or not.
  return entries;
}

/** Refuse, before anything is injected, a namespace whose mounts or open files cannot come back. */
export function checkMntns(pids: number[], external: Map<string, string>): void {
  const seen = new Map<string, MntEntry[]>();
  for (const pid of pids) {
    const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
    // --external marks the root's namespace only, as CRIU's.
    if (!seen.has(ns)) seen.set(ns, readMntns(pid, { external: seen.size === 0 ? external : new Map() }));
  }
  checkFilesInMntns(pids, [...seen.values()].flat());
}

/**
 * Files and directories the tasks hold open (fds, cwd, root) must be on mounts of their
 * namespace: anything else has no path there to be reopened by.
 */
function checkFilesInMntns(pids: number[], entries: MntEntry[]): void {
  const ids = new Set(entries.map((e) => e.mnt_id));
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
      if (!link.startsWith('/') || link.startsWith('/memfd:')) continue;
      const mnt = Number(/^mnt_id:\s*(\d+)$/m.exec(text)?.[1]);
      if (!ids.has(mnt))
        throw new NotSupportedError(`task ${pid}: fd ${fd} (${link}) is on mount ${mnt}, which is not in the task's mount namespace`);
    }
  }
}

/**
 * The tree and its tmpfs contents. The contents are read from a clean copy of each tmpfs
 * (open_tree without its submounts), made by `helper` inside the namespace.
 */
export function dumpMntns(pid: number, opts: MntDumpOptions, helper: () => NsHelper): MntDump {
  const entries = readMntns(pid, opts);
  const tmpfs = new Map<number, Buffer>();
  const todo = entries.filter((m) => m.fstype === FSTYPE.TMPFS && m.root === '/' && m.ext_key === undefined);
  if (todo.length === 0) return { entries, tmpfs };
  const { tracee: t, area } = helper();
  // By pidfd: the helper may be in another namespace already, whose /proc is not criu-ts's.
  const nsfd = t.syscall('pidfd_open', pid, 0);
  try {
    t.syscall('setns', nsfd, CLONE.NEWNS);
  } finally {
    t.syscallRaw('close', nsfd);
  }
  const hpidfd = pidfdOpen(t.tid);
  try {
    for (const m of todo) {
      if (tmpfs.has(m.root_dev)) continue;
      area.reset();
      const fd = t.syscall('openat', AT_FDCWD, area.putString(m.mountpoint), O.PATH | O.DIRECTORY | O.CLOEXEC);
      let tree: bigint | undefined;
      try {
        const at = /^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${t.tid}/fdinfo/${fd}`, 'utf8'));
        if (Number(at?.[1]) !== m.mnt_id)
          throw new NotSupportedError(
            `task ${pid}: mount namespace: ${mountRefusal(m, 'a tmpfs covered by another mount; its contents cannot be read')}`,
          );
        area.reset();
        // An unbindable mount cannot be cloned: read in place, where tar stays on its file system.
        const clone = t.syscallRaw('open_tree', fd, area.putString(''), OPEN_TREE_CLONE | AT_EMPTY_PATH | O.CLOEXEC);
        tree = clone >= 0n ? clone : undefined;
      } finally {
        if (tree !== undefined) t.syscallRaw('close', fd);
      }
      const local = pidfdGetfd(hpidfd, Number(tree ?? fd));
      t.syscallRaw('close', tree ?? fd);
      try {
        tmpfs.set(m.root_dev, tarCreate(`/proc/${process.pid}/fd/${local}`));
      } finally {
        close(local);
      }
    }
  } finally {
    close(hpidfd);
  }
  return { entries, tmpfs };
}

/** CRIU's tmpfs archive: a gzip'd tar of the whole file system, numeric owners, sparse. */
function tarCreate(dir: string): Buffer {
  return execFileSync(
    'tar',
    [
      '--create',
      '--gzip',
      '--no-unquote',
      '--no-wildcards',
      '--one-file-system',
      '--check-links',
      '--preserve-permissions',
      '--sparse',
      '--numeric-owner',
      '--directory',
      dir,
      '.',
    ],
    { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

export function tarExtract(dir: string, data: Buffer): void {
  execFileSync(
    'tar',
    ['--extract', '--gzip', '--no-unquote', '--no-wildcards', '--numeric-owner', '--preserve-permissions', '--directory', dir, '-f', '-'],
    {
      input: data,
      stdio: ['pipe', 'ignore', 'pipe'],
    },
  );
}
