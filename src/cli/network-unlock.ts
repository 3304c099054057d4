// `criu-ts network-unlock -D DIR`: remove the network lock that a dump left for its restore
// (the connections' DROP rules), when that restore will not happen. The rules are found from
// the images as the restore finds them: the lock method and run id in the inventory, the
// connections in files.img.
import { IMG } from '../images/index.ts';
import { DumpImages } from '../restore/images.ts';
import { restoreLock } from '../resources/net/tcp.ts';
import { lockMethodOf, unlock } from '../resources/net/netlock.ts';
import type { Logger } from '../resources/types.ts';

export function networkUnlock(dir: string, out: (s: string) => void, log: Logger): number {
  const imgs = new DumpImages(dir, { skipVerify: true, warn: (m) => log.warn(m) });
  try {
    // A tree with a network namespace of its own had it locked whole, inside: the lock is in
    // its saved rules, and went with the namespace, unless a restore joins it (--join-ns net).
    const inv = imgs.one(IMG.INVENTORY);
    const root = imgs.all(IMG.PSTREE)[0]?.entry.pid;
    const rootNet = root === undefined ? undefined : imgs.one(IMG.IDS, root).net_ns_id;
    if (rootNet !== undefined && rootNet !== inv.root_ids?.net_ns_id && lockMethodOf(inv.network_lock_method) !== 'skip') {
      out(
        `the dump in ${dir} locked the tree's own network namespace as a whole: the lock is in that namespace, which a restore with --join-ns net unlocks`,
      );
      return 0;
    }
    const spec = restoreLock(
      inv,
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
