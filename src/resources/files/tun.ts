// An fd of /dev/net/tun (CRIU's tunfile_entry): just opened, or attached to a tun/tap device of
// the tree's network namespace (a queue of it, maybe detached). The device itself is the
// network namespace's (ns/tun.ts); the fd is opened again in that namespace and attached to it.
import fs from 'node:fs';
import { IFF_TUN, O, TUN_DEVICE, TUN_RDEV, tunAttach, tunGetIff, tunSetPersist, tunSetQueue, SysError } from '../../kernel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { IMG } from '../../images/index.ts';
import { withCopy } from '../net/sockfd.ts';
import { nsInoOf } from '../ns/tun.ts';
import { FD_TYPE, fileKind, fown } from './types.ts';

const S_IFCHR = 0o020000;
const isTun = (rdev: number): boolean =>
  ((rdev >> 8) & 0xfff) === TUN_RDEV.major && ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) === TUN_RDEV.minor;

export const tunFile = fileKind({
  type: FD_TYPE.TUNF,
  field: 'tunf',
  name: 'tun file',
  claims: {
    flags: 0,
    fields: ['iff'],
    check: (p) => ((p.flags & 3) === O.RDWR ? undefined : 'a tun file not open O_RDWR'),
  },
  matches: (p) => (p.mode & 0o170000) === S_IFCHR && isTun(p.rdev),
  dump(p, id, ctx) {
    return withCopy(p, (copy) => {
      const ino = nsInoOf(copy);
      // The holder's own namespace may not be numbered yet; another one of the tree is.
      const nsId = fs.statSync(`/proc/${p.pid}/ns/net`).ino === ino ? ctx.netNsId(p.pid) : ctx.netNsIdOfIno?.(ino);
      if (nsId === undefined || !ctx.netnsSaved)
        throw new NotSupportedError(
          `task ${p.pid}: fd ${p.fd} (${TUN_DEVICE}): a tun file of a network namespace the tree does not own and save (as CRIU, tun files need the tree's own)`,
        );
      // As CRIU: a REG entry of the same id, /dev/net/tun itself, which CRIU opens the file by.
      ctx.addEntry(IMG.FILES, { type: FD_TYPE.REG, id, reg: { id, flags: p.flags, pos: 0n, fown: fown(), name: TUN_DEVICE } });
      const iff = tunGetIff(copy);
      ctx.log.info(`task ${p.pid}: fd ${p.fd}: tun file${iff ? ` on ${iff.name} (flags 0x${iff.flags.toString(16)})` : ''}`);
      return {
        id,
        ns_id: nsId,
        ...(iff ? { netdev: iff.name } : {}),
        ...(iff && iff.flags & IFF_TUN.DETACH_QUEUE ? { detached: true } : {}),
      };
    });
  },
  open(e, ctx) {
    const fd = ctx.keep((ctx.inNetNs ?? ((_, fn) => fn()))(e.ns_id, () => fs.openSync(TUN_DEVICE, O.RDWR | O.CLOEXEC)));
    if (e.netdev === undefined) return fd;
    const dev = ctx.entries(IMG.NETDEV, e.ns_id ?? 0).find((d) => d.entry.name === e.netdev && d.entry.tun)?.entry;
    if (!dev) throw new CriuError(`files.img: tun file ${e.id}: its device ${e.netdev} is not in netdev-${e.ns_id}.img`);
    const flags = dev.tun!.flags;
    try {
      tunAttach(fd, dev.name, flags & ~IFF_TUN.PERSIST);
      if (e.detached) tunSetQueue(fd, IFF_TUN.DETACH_QUEUE);
      // Made persistent by the namespace's restore; the first fd attached drops it when it was not.
      if (!(flags & IFF_TUN.PERSIST)) tunSetPersist(fd, false);
    } catch (err) {
      if (err instanceof SysError) throw new CriuError(`tun file ${e.id} on ${e.netdev}: ${err.message}`);
      throw err;
    }
    return fd;
  },
});
