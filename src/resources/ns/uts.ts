// UTS namespace: host and domain name (utsns-N.img). Both are read and written through the
// sysctls, which act on the UTS namespace of the thread that reads or writes them: criu-ts's
// main thread joins the namespace for that.
import fs from 'node:fs';
import { CLONE, inNamespaces } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import type { NsKind } from './types.ts';

const HOST = '/proc/sys/kernel/hostname',
  DOMAIN = '/proc/sys/kernel/domainname';
const read = (p: string) => fs.readFileSync(p, 'utf8').replace(/\n$/, '');

export const utsNs: NsKind = {
  name: 'uts',
  cflag: CLONE.NEWUTS,
  dumpRefusal: () => undefined,
  dump: ({ pid, id, imgs, log }) => {
    const e = inNamespaces(pid, CLONE.NEWUTS, () => ({ nodename: read(HOST), domainname: read(DOMAIN) }));
    log.info(`UTS namespace ${id}: host name ${e.nodename}, domain name ${e.domainname} to utsns-${id}.img`);
    imgs.one(IMG.UTSNS, id, e);
  },
  restoreRefusal: ({ id, imgs }) => {
    const e = imgs.one(IMG.UTSNS, id);
    for (const [what, v] of [
      ['nodename', e.nodename],
      ['domainname', e.domainname],
    ])
      if (Buffer.byteLength(v) > 64) return `utsns-${id}.img: ${what} is longer than 64 bytes`;
    return undefined;
  },
  restore: ({ pid, id, imgs }) => {
    const e = imgs.one(IMG.UTSNS, id);
    inNamespaces(pid, CLONE.NEWUTS, () => {
      fs.writeFileSync(HOST, e.nodename);
      fs.writeFileSync(DOMAIN, e.domainname);
    });
  },
};
