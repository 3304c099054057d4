// memfd files: the inode (name, size, seals, content) is saved once in memfd.img and
// pagemap-shmem; each open description is a MEMFD entry with its own flags and offset.
import fs from 'node:fs';
import { lseek, O } from '../../kernel/index.ts';
import { FD_TYPE, OPEN_FLAGS, fown, fileKind } from './types.ts';

export const memfdFile = fileKind({
  type: FD_TYPE.MEMFD,
  field: 'memfd',
  name: 'memfd',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => p.link.startsWith('/memfd:'),
  dump(p, id, ctx) {
    const inodeId = ctx.memfdInode(`/proc/${p.pid}/fd/${p.fd}`);
    return { id, flags: p.flags, pos: p.pos, fown: fown(), inode_id: inodeId };
  },
  open(m, ctx) {
    const base = ctx.memfd(m.inode_id);
    // A fresh open file description of the same memfd, with its own flags and offset.
    const fd = ctx.keep(fs.openSync(`/proc/self/fd/${base}`, (m.flags & ~(O.CREAT | O.TRUNC)) | O.CLOEXEC));
    if (m.pos !== 0n) lseek(fd, m.pos, 0);
    return fd;
  },
});
