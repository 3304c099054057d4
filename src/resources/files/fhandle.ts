// File handles of watched inodes (inotify watches, fanotify marks): saved as fdinfo shows
// them, opened again with open_by_handle_at on a mount of the same device.
import fs from 'node:fs';
import { parseMountinfo, type FileHandle } from '../../proc/index.ts';
import { openByHandleAt, close, O, SysError } from '../../kernel/index.ts';
import type { Message, MessageInput } from '../types.ts';

/** fh_entry of a handle: its bytes as little-endian u64 words, as CRIU keeps them. */
export function fhEntry(h: FileHandle): MessageInput<'fh_entry'> {
  const words: bigint[] = [];
  const padded = Buffer.alloc(Math.ceil(h.handle.length / 8) * 8);
  h.handle.copy(padded);
  for (let i = 0; i < padded.length; i += 8) words.push(padded.readBigUInt64LE(i));
  return { bytes: h.bytes, type: h.type, handle: words };
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
 * An O_PATH fd of the inode behind a saved handle, or why there is none (the file was
 * removed, or no mount shows its file system).
 */
export function openHandle(sdev: number, fh: Message<'fh_entry'>): number | string {
  return openRaw(sdev, fh.type, handleBytes(fh));
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

/** Why the inode behind a handle cannot be found again, or undefined when it can. */
export function checkHandle(sdev: number, h: FileHandle): string | undefined {
  const fd = openRaw(sdev, h.type, h.handle.subarray(0, h.bytes));
  if (typeof fd === 'string') return fd;
  // Only the watch keeps a deleted inode: it is gone once the dumped task is.
  try {
    return fs.fstatSync(fd).nlink === 0 ? 'its file was deleted' : undefined;
  } finally {
    close(fd);
  }
}
