// File handles of watched inodes (inotify watches, fanotify marks): saved as fdinfo shows
// them, with the inode's path when one leads to it (as CRIU saves them: a path still works
// where the handle does not, on another machine or a new tmpfs), and opened again by that
// path, else with open_by_handle_at on a mount of the same device.
import fs from 'node:fs';
import path from 'node:path';
import { parseMountinfo, type FileHandle } from '../../proc/index.ts';
import { openByHandleAt, close, O, SysError } from '../../kernel/index.ts';
import { kernelDev } from './ghost.ts';
import type { Message, MessageInput } from '../types.ts';

/**
 * fh_entry of a handle: its bytes as little-endian u64 words, as CRIU keeps them, and the
 * inode's path when `watchedPath` found one.
 */
export function fhEntry(h: FileHandle, where?: string): MessageInput<'fh_entry'> {
  const words: bigint[] = [];
  const padded = Buffer.alloc(Math.ceil(h.handle.length / 8) * 8);
  h.handle.copy(padded);
  for (let i = 0; i < padded.length; i += 8) words.push(padded.readBigUInt64LE(i));
  return { bytes: h.bytes, type: h.type, handle: words, ...(where === undefined ? {} : { path: where }) };
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
export function watchedPath(sdev: number, ino: bigint, h: FileHandle, scan?: readonly string[]): string | undefined {
  const fd = openRaw(sdev, h.type, h.handle.subarray(0, h.bytes));
  if (typeof fd === 'number') {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (sameInode(link, sdev, ino)) return link;
    } finally {
      close(fd);
    }
  }
  if (!scan) return undefined;
  for (const top of scan.length ? scan : IRMAP_HINTS) {
    const found = scanFor(top, sdev, ino);
    if (found) return found;
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

/** A mount point of criu-ts's own with the device the kernel calls `sdev` (MAJOR << 20 | MINOR). */
function mountOf(sdev: number): string | undefined {
  const mounts = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const same = mounts.filter((m) => ((m.major << 20) | m.minor) === sdev);
  return (same.find((m) => m.root === '/') ?? same[0])?.mountPoint;
}

/**
 * An O_PATH fd of the inode behind a saved handle: by its saved path, else by the handle, else
 * at the path `ghost` gives (a deleted file made again from its ghost file); or why there is
 * none (the file was removed, or no mount shows its file system).
 */
export function openHandle(sdev: number, fh: Message<'fh_entry'>, ghost?: () => string | undefined): number | string {
  if (fh.path !== undefined) {
    try {
      return fs.openSync(fh.path, O.PATH | O.CLOEXEC);
    } catch {
      // the path is gone: the handle may still find the inode
    }
  }
  const fd = openRaw(sdev, fh.type, handleBytes(fh));
  if (typeof fd === 'number') return fd;
  const g = ghost?.();
  return g === undefined ? fd : fs.openSync(g, O.PATH | O.CLOEXEC);
}

function openRaw(sdev: number, type: number, handle: Buffer): number | string {
  const mnt = mountOf(sdev);
  if (mnt === undefined) return `no mount of device ${sdev >>> 20}:${sdev & 0xfffff} is visible`;
  const mfd = fs.openSync(mnt, O.RDONLY | O.DIRECTORY | O.CLOEXEC); // not O_PATH: open_by_handle_at refuses one (EBADF)
  try {
    return openByHandleAt(mfd, type, handle, O.PATH | O.CLOEXEC);
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
export function checkHandle(sdev: number, h: FileHandle, pid: number, ino: bigint): string | undefined {
  const fd = openRaw(sdev, h.type, h.handle.subarray(0, h.bytes));
  if (typeof fd === 'string') return fd;
  // When only the watch keeps a deleted inode, it is gone once the dumped task is.
  try {
    return fs.fstatSync(fd).nlink === 0 && !openIn(pid, sdev, ino) ? 'its file was deleted' : undefined;
  } finally {
    close(fd);
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
