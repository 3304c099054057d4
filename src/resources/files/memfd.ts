// memfd files: the inode (name, size, seals, content) is saved once in memfd.img and
// pagemap-shmem; each open description is a MEMFD entry with its own flags and offset.
import fs from 'node:fs';
import { lseek, O } from '../../kernel/index.ts';
import { FD_TYPE, OPEN_FLAGS, fown, type FileKind } from './types.ts';

export const memfdFile: FileKind = {
  type: FD_TYPE.MEMFD,
  name: 'memfd',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => p.link.startsWith('/memfd:'),
  dump(p, id, ctx) {
    const inodeId = ctx.memfdInode(`/proc/${p.pid}/fd/${p.fd}`);
    return { memfd: { id, flags: p.flags, pos: p.pos, fown: fown(), inode_id: inodeId } };
  },
  open(file, ctx) {
    const m = file.memfd as Record<string, unknown>;
    const base = ctx.memfd(m.inode_id as number);
    // A fresh open file description of the same memfd, with its own flags and offset.
    const fd = ctx.keep(fs.openSync(`/proc/self/fd/${base}`, ((m.flags as number) & ~(O.CREAT | O.TRUNC)) | O.CLOEXEC));
    if ((m.pos as bigint) !== 0n) lseek(fd, m.pos as bigint, 0);
    return fd;
  },
};
