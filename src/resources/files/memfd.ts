// memfd files: the inode (name, size, seals, content) is saved once in memfd.img and
// pagemap-shmem; each open description is a MEMFD entry with its own flags and offset. Any
// file of the kernel's internal shmem mount is one, as for CRIU: MAP_SHARED anonymous memory
// opened through map_files (/dev/zero (deleted)) comes back as a memfd of the same content.
import fs from 'node:fs';
import { fcntl, F, lseek, O, internalShmemDev } from '../../kernel/index.ts';
import { FD_TYPE, OPEN_FLAGS, S_IFMT, S_IFREG, fown, statefulKind } from './types.ts';

/** Status flags F_SETFL sets (O_NOATIME too); O_ASYNC goes on with the owner (fown.ts). */
const SETFL_FLAGS = O.APPEND | O.NONBLOCK | O.DIRECT | 0o1000000;

export const memfdFile = statefulKind({
  type: FD_TYPE.MEMFD,
  field: 'memfd',
  name: 'memfd',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => p.link.startsWith('/memfd:') || ((p.mode & S_IFMT) === S_IFREG && p.dev === internalShmemDev()),
  /** Inode ids whose memfd_create'd description a task's fd has taken already. */
  state: () => new Set<number>(),
  dump(p, id, ctx) {
    const inodeId = ctx.memfdInode(`/proc/${p.pid}/fd/${p.fd}`);
    return { id, flags: p.flags, pos: p.pos, fown: fown(), inode_id: inodeId };
  },
  open(m, ctx, given) {
    const base = ctx.memfd(m.inode_id);
    let fd: number;
    if ((m.flags & O.ACCMODE) === O.RDWR && !given.has(m.inode_id)) {
      // The description memfd_create made holds no write access to the inode, which a reopen
      // takes: execveat(fd, "", AT_EMPTY_PATH) of a memfd open for write elsewhere is ETXTBSY.
      // The first read-write description is that one, as the task's memfd_create gave it.
      given.add(m.inode_id);
      fcntl(base, F.SETFL, m.flags & SETFL_FLAGS);
      fd = base;
    } else {
      // A fresh open file description of the same memfd, with its own flags and offset.
      fd = ctx.keep(fs.openSync(`/proc/self/fd/${base}`, (m.flags & ~(O.CREAT | O.TRUNC)) | O.CLOEXEC));
    }
    lseek(fd, m.pos, 0);
    return fd;
  },
});
