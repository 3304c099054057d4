// File handles of watched inodes (inotify watches, fanotify marks): saved as fdinfo shows
// them, with the inode's path when one leads to it (as CRIU saves them: a path still works
// where the handle does not, on another machine or a new tmpfs), and opened again by that
// path, else with open_by_handle_at on a mount of the same device. A task in a mount
// namespace of its own is looked at through it (/proc/PID/root): its mounts, its paths, and
// the mount the path was found on (fh_entry.mnt_id), as CRIU does.
import fs from 'node:fs';
import path from 'node:path';
import { parseMountinfo, readLink, type FileHandle, type MountInfo } from '../../proc/index.ts';
import { openByHandleAt, close, O, SysError } from '../../kernel/index.ts';
import { kernelDev } from './ghost.ts';
import type { Message, MessageInput } from '../types.ts';

/**
 * fh_entry of a handle: its bytes as little-endian u64 words, as CRIU keeps them, and the
 * inode's path when `watchedPath` found one.
 */
export function fhEntry(h: FileHandle, where?: Watched): MessageInput<'fh_entry'> {
  const words: bigint[] = [];
  const padded = Buffer.alloc(Math.ceil(h.handle.length / 8) * 8);
  h.handle.copy(padded);
  for (let i = 0; i < padded.length; i += 8) words.push(padded.readBigUInt64LE(i));
  return {
    bytes: h.bytes,
    type: h.type,
    handle: words,
    ...(where === undefined ? {} : { path: where.path }),
    ...(where?.mntId === undefined ? {} : { mnt_id: where.mntId }),
  };
}

/** Where a task's paths lead: criu-ts's own mounts, or those of the task's mount namespace. */
interface MntView {
  mounts: MountInfo[];
  /** '' for criu-ts's own namespace, else /proc/PID/root, the prefix of the task's paths. */
  root: string;
}

function viewOf(pid?: number): MntView {
  const own = pid === undefined || readLink(pid, 'ns/mnt') === fs.readlinkSync('/proc/self/ns/mnt');
  const root = own ? '' : `/proc/${pid}/root`;
  return { mounts: parseMountinfo(fs.readFileSync(own ? '/proc/self/mountinfo' : `/proc/${pid}/mountinfo`, 'utf8')), root };
}

/**
 * The views to look for a watched inode's mount in: the task's own first, then each other
 * mount namespace of the tree (a file system mounted only in a child's namespace, as CRIU
 * looks through every mount of every namespace it dumps).
 */
function viewsOf(pid: number, tree: Iterable<number>): MntView[] {
  const seen = new Set<string>([readLink(pid, 'ns/mnt')]);
  const views = [viewOf(pid)];
  for (const other of tree) {
    let ns: string;
    try {
      ns = readLink(other, 'ns/mnt');
    } catch {
      continue; // a zombie, or gone meanwhile
    }
    if (seen.has(ns)) continue;
    seen.add(ns);
    views.push(viewOf(other));
  }
  return views;
}

/** The inode behind a handle, opened on the first view that has a mount of its device; why not, else. */
function openInViews(sdev: number, h: FileHandle, views: MntView[]): { fd: number; mntId: number; view: MntView } | string {
  let why = '';
  for (const view of views) {
    const found = openRaw(sdev, h.type, h.handle.subarray(0, h.bytes), view);
    if (typeof found !== 'string') return { ...found, view };
    why ||= found;
  }
  return why;
}

/** A watched inode's path in its task's mount namespace, and the mount it is on when that namespace is not criu-ts's. */
export interface Watched {
  path: string;
  mntId?: number;
}

/** CRIU's default places to look for a watched inode (--force-irmap without --irmap-scan-path). */
export const IRMAP_HINTS = [
  '/etc',
  '/var/spool',
  '/var/log',
  '/usr/share/dbus-1/services',
  '/usr/share/dbus-1/system-services',
  '/lib/udev',
];

const sameInode = (p: string, sdev: number, ino: bigint): boolean => {
  try {
    const st = fs.statSync(p, { bigint: true });
    return st.ino === ino && kernelDev(st.dev) === sdev;
  } catch {
    return false;
  }
};

/**
 * A path that leads to the watched inode: the one the kernel gives its handle, else, with
 * --force-irmap (`scan`), the first found under the scan paths (CRIU's irmap); undefined
 * when there is none (a deleted file: the restore then needs the handle).
 */
export function watchedPath(
  pid: number,
  tree: Iterable<number>,
  sdev: number,
  ino: bigint,
  h: FileHandle,
  scan?: readonly string[],
): Watched | undefined {
  const views = viewsOf(pid, tree);
  const found = openInViews(sdev, h, views);
  if (typeof found !== 'string') {
    try {
      // In another mount namespace the kernel names the file from that namespace's root.
      const link = fs.readlinkSync(`/proc/self/fd/${found.fd}`);
      if (sameInode(found.view.root + link, sdev, ino)) return { path: link, ...(found.view.root ? { mntId: found.mntId } : {}) };
    } finally {
      close(found.fd);
    }
  }
  if (!scan) return undefined;
  const view = views[0]!;
  for (const top of scan.length ? scan : IRMAP_HINTS) {
    const hit = scanFor(view.root + top, sdev, ino);
    if (hit) return { path: hit.slice(view.root.length) };
  }
  return undefined;
}

/** The first path under `top` (itself included) of the inode, without crossing into other file systems' dirs. */
function scanFor(top: string, sdev: number, ino: bigint): string | undefined {
  const todo = [top];
  for (let dir = todo.pop(); dir !== undefined; dir = todo.pop()) {
    if (sameInode(dir, sdev, ino)) return dir;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of ents) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) todo.push(p);
      else if (sameInode(p, sdev, ino)) return p;
    }
  }
  return undefined;
}

function handleBytes(e: Message<'fh_entry'>): Buffer {
  const b = Buffer.alloc(e.handle.length * 8);
  e.handle.forEach((w, i) => {
    b.writeBigUInt64LE(w, i * 8);
  });
  return b.subarray(0, e.bytes);
}

/** A mount of the view with the device the kernel calls `sdev` (MAJOR << 20 | MINOR). */
function mountOf(sdev: number, view: MntView): MountInfo | undefined {
  const same = view.mounts.filter((m) => ((m.major << 20) | m.minor) === sdev);
  return same.find((m) => m.root === '/') ?? same[0];
}

/**
 * An O_PATH fd of the inode behind a saved handle: by its saved path, else by the handle, else
 * at the path `ghost` gives (a deleted file made again from its ghost file); or why there is
 * none (the file was removed, or no mount shows its file system).
 */
export function openHandle(
  sdev: number,
  fh: Message<'fh_entry'>,
  nsPath: (path: string, mntId?: number) => string,
  ghost?: () => string | undefined,
): number | string {
  if (fh.path !== undefined) {
    try {
      return fs.openSync(nsPath(fh.path, fh.mnt_id), O.PATH | O.CLOEXEC);
    } catch {
      // the path is gone: the handle may still find the inode
    }
  }
  const found = openRaw(sdev, fh.type, handleBytes(fh), viewOf());
  if (typeof found !== 'string') return found.fd;
  const g = ghost?.();
  return g === undefined ? found : fs.openSync(g, O.PATH | O.CLOEXEC);
}

function openRaw(sdev: number, type: number, handle: Buffer, view: MntView): { fd: number; mntId: number } | string {
  const mnt = mountOf(sdev, view);
  if (mnt === undefined) return `no mount of device ${sdev >>> 20}:${sdev & 0xfffff} is visible`;
  // not O_PATH: open_by_handle_at refuses one (EBADF)
  const mfd = fs.openSync(view.root + mnt.mountPoint, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    return { fd: openByHandleAt(mfd, type, handle, O.PATH | O.CLOEXEC), mntId: mnt.mntId };
  } catch (e) {
    if (e instanceof SysError) return `its inode cannot be opened by its handle (${e.code}): the file is gone`;
    throw e;
  } finally {
    close(mfd);
  }
}

/**
 * Why the inode behind a handle cannot be found again, or undefined when it can. A deleted
 * one can when task `pid` also has it open: the fd's ghost file brings it back.
 */
export function checkHandle(sdev: number, h: FileHandle, pid: number, ino: bigint, tree: Iterable<number>): string | undefined {
  const found = openInViews(sdev, h, viewsOf(pid, tree));
  if (typeof found === 'string') return found;
  // When only the watch keeps a deleted inode, it is gone once the dumped task is.
  try {
    return fs.fstatSync(found.fd).nlink === 0 && !openIn(pid, sdev, ino) ? 'its file was deleted' : undefined;
  } finally {
    close(found.fd);
  }
}

/** Does task `pid` have the inode open by an fd? */
function openIn(pid: number, sdev: number, ino: bigint): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => sameInode(`/proc/${pid}/fd/${fd}`, sdev, ino));
}
