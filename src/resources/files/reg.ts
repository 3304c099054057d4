// Regular files, directories and plain character devices (/dev/null, /dev/zero, ...):
// reopened by path with the same flags and offset. A symlink itself is open only as an
// O_PATH|O_NOFOLLOW fd, which the same flags open again.
import fs from 'node:fs';
import { lseek, O } from '../../kernel/index.ts';
import { deletedName, deadProcPid } from './ghost.ts';
import { FD_TYPE, S_IFMT, S_IFREG, S_IFDIR, S_IFCHR, OPEN_FLAGS, fown, fileKind } from './types.ts';

const S_IFLNK = 0o120000;

const O_TMPFILE_BIT = 0o20000000;

export const regFile = fileKind({
  type: FD_TYPE.REG,
  field: 'reg',
  name: 'regular file',
  claims: { flags: OPEN_FLAGS },
  matches(p) {
    const fmt = p.mode & S_IFMT;
    return fmt === S_IFREG || fmt === S_IFDIR || fmt === S_IFCHR || (fmt === S_IFLNK && (p.flags & O.PATH) !== 0);
  },
  dump(p, id, ctx) {
    const entry = {
      id,
      flags: p.flags,
      pos: p.pos,
      fown: fown(),
      name: p.link,
      size: BigInt(p.size),
      mode: p.mode,
      // The mount (of a dumped mount namespace) the file is reopened through.
      ...(ctx.mntIds ? { mnt_id: p.info.mntId } : {}),
    };
    const deleted = deletedName(p.link);
    const source = `/proc/${p.pid}/fd/${p.fd}`;
    const name = deleted ?? p.link;
    const dead = deadProcPid(source, name, deleted !== undefined, `/proc/${p.pid}/root`);
    if (dead !== undefined) {
      ctx.ghosts.deadPid(id, dead);
      return { ...entry, name };
    }
    if (deleted !== undefined && p.ino !== 0) {
      // Its content goes to a ghost file, once per inode; this open file keeps its own entry.
      ctx.ghosts.remap(id, source, deleted);
      return { ...entry, name: deleted };
    }
    if (!p.link.startsWith('/')) throw new Error(`fd ${p.fd} of task ${p.pid} (${p.link}) is not a file reachable by path`);
    return entry;
  },
  open(reg, ctx) {
    // O_TMPFILE (__O_TMPFILE with O_DIRECTORY) made the file: it is reopened as the file it is now.
    const tmpfile = (reg.flags & O_TMPFILE_BIT) !== 0 ? O_TMPFILE_BIT | O.DIRECTORY : 0;
    const flags = reg.flags & ~(O.CREAT | O.TRUNC | O.EXCL | tmpfile);
    const fd = ctx.keep(fs.openSync(ctx.pathOf(reg), flags | O.CLOEXEC));
    const mode = reg.mode;
    if (mode === undefined || (mode & S_IFMT) === S_IFREG || (mode & S_IFMT) === S_IFDIR) {
      const pos = reg.pos;
      if (pos !== 0n) lseek(fd, pos, 0);
    }
    return fd;
  },
});
