// `criu-ts network-unlock -D DIR`: remove the network lock that a dump left for its restore
// (the connections' DROP rules), when that restore will not happen. The rules are found from
// the images as the restore finds them: the lock method and run id in the inventory, the
// connections in files.img.
import { IMG } from '../images/index.ts';
import { DumpImages } from '../restore/images.ts';
import { restoreLock } from '../resources/net/tcp.ts';
import { unlock } from '../resources/net/netlock.ts';
import type { Logger } from '../resources/types.ts';

export function networkUnlock(dir: string, out: (s: string) => void, log: Logger): number {
  const imgs = new DumpImages(dir, { skipVerify: true, warn: (m) => log.warn(m) });
  try {
    const spec = restoreLock(
      imgs.one(IMG.INVENTORY),
      imgs.all(IMG.FILES).flatMap(({ entry }) => (entry.isk ? [entry.isk] : [])),
    );
    if (!spec || spec.method === 'skip') {
      out(`no network lock for the dump in ${dir}`);
      return 0;
    }
    const err = unlock(spec);
    if (err) {
      log.error(`cannot unlock the network: ${err}`);
      return 1;
    }
    out(
      `network unlocked: ${spec.method === 'nftables' ? `table inet ${spec.table}` : `${spec.conns.length * 2} iptables rule(s)`} removed`,
    );
    return 0;
  } finally {
    imgs.close();
  }
}
