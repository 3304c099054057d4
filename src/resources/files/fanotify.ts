// fanotify groups with their marks: on inodes (found again by file handle, like inotify
// watches) and on mounts (by mount point). Queued events are not saved (nor by CRIU).
import fs from 'node:fs';
import { fanotifyInit, fanotifyMark, close, fcntl, F, FD_CLOEXEC, O, AT_FDCWD } from '../../kernel/index.ts';
import { parseMountinfo, type FanotifyMark } from '../../proc/index.ts';
import { CriuError } from '../../errors.ts';
import { fhEntry, openHandle, checkHandle, watchedPath } from './fhandle.ts';
import { FD_TYPE, FASYNC, fown, fileKind } from './types.ts';
import type { MessageInput } from '../types.ts';

const FAN = { MARK_ADD: 0x1, MARK_MOUNT: 0x10, MARK_IGNORED_MASK: 0x20 } as const;
const MARK_INODE = 1,
  MARK_MOUNT = 2;

type MarkEntry = MessageInput<'fanotify_mark_entry'>;

function mountPoint(pid: number, mntId: number): string | undefined {
  return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).find((m) => m.mntId === mntId)?.mountPoint;
}

function markEntry(pid: number, tree: number[], id: number, m: FanotifyMark, irmap?: readonly string[]): MarkEntry {
  const base = { id, mflags: m.mflags, mask: m.mask, ignored_mask: m.ignoredMask };
  if (m.kind === 'inode')
    return {
      ...base,
      type: MARK_INODE,
      s_dev: m.sdev,
      ie: { i_ino: m.ino, f_handle: fhEntry(m.fhandle, watchedPath(pid, tree, m.sdev, m.ino, m.fhandle, irmap)) },
    };
  if (m.kind === 'mount') return { ...base, type: MARK_MOUNT, s_dev: 0, me: { mnt_id: m.mntId, path: mountPoint(pid, m.mntId) ?? '' } };
  throw new CriuError('a fanotify mark on a whole file system cannot be saved');
}

export const fanotifyFile = fileKind({
  type: FD_TYPE.FANOTIFY,
  field: 'ffy',
  name: 'fanotify',
  claims: {
    flags: O.NONBLOCK | FASYNC,
    check(p, tree) {
      for (const m of p.info.fanotifyMarks) {
        if (m.kind === 'sb') return 'a fanotify mark on a whole file system';
        if (m.kind === 'mount' && mountPoint(p.pid, m.mntId) === undefined)
          return `a fanotify mark on mount ${m.mntId}, which the task's mountinfo does not show`;
        if (m.kind === 'inode') {
          const why = checkHandle(m.sdev, m.fhandle, p.pid, m.ino, tree ?? []);
          if (why) return `the inode of a fanotify mark: ${why}`;
        }
      }
      return undefined;
    },
  },
  matches: (p) => p.link === 'anon_inode:[fanotify]',
  dump(p, id, ctx) {
    const fa = p.info.fanotify ?? { flags: 0, eventFlags: 0 };
    return {
      id,
      flags: p.flags,
      fown: fown(),
      faflags: fa.flags,
      evflags: fa.eventFlags,
      mark: p.info.fanotifyMarks.map((m) => markEntry(p.pid, ctx.treePids, id, m, ctx.irmap)),
    };
  },
  open(e, ctx) {
    // The group keeps its init flags (fdinfo shows them): exactly the dumped ones; criu-ts's
    // own fd is close-on-exec, and the file's O_NONBLOCK is its status flag.
    const fd = ctx.keep(fanotifyInit(e.faflags, e.evflags));
    fcntl(fd, F.SETFD, FD_CLOEXEC);
    fcntl(fd, F.SETFL, e.flags & O.NONBLOCK);
    for (const m of e.mark) {
      let target: number | undefined;
      let path: string;
      let how = FAN.MARK_ADD | m.mflags;
      if (m.type === MARK_MOUNT && m.me) {
        // Its mount point in the namespace of the mount (CRIU's path is relative to that root).
        path = ctx.nsPath(m.me.path ?? '', m.me.mnt_id);
        how |= FAN.MARK_MOUNT;
      } else if (m.ie) {
        const ino = m.ie.i_ino;
        const t = openHandle(m.s_dev, m.ie.f_handle, ctx.nsPath, () => ctx.inodePath(m.s_dev, ino));
        if (typeof t === 'string') throw new CriuError(`fanotify mark on inode ${ino}: ${t}`);
        target = t;
        path = `/proc/self/fd/${t}`;
      } else throw new CriuError(`files.img: fanotify mark of file ${e.id} has neither an inode nor a mount`);
      try {
        if (m.mask) fanotifyMark(fd, how, BigInt(m.mask), AT_FDCWD, path);
        if (m.ignored_mask) fanotifyMark(fd, how | FAN.MARK_IGNORED_MASK, BigInt(m.ignored_mask), AT_FDCWD, path);
      } finally {
        if (target !== undefined) close(target);
      }
    }
    return fd;
  },
});
