// Network namespace: its links (netdev-N.img), addresses and routes (ifaddr-, route-,
// route6-N.img: the raw output of `ip addr|route save`, as CRIU keeps them) and netns-N.img.
// Only the loopback is restored: any other link refuses the dump. `ip` runs in the
// namespace through nsenter (criu-ts's own threads stay home).
import { spawnSync } from 'node:child_process';
import { CLONE } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { IMG, type MessageInput } from '../../images/index.ts';
import type { NsKind } from './types.ts';

const ND_LOOPBACK = 1;
const IFF: Record<string, number> = {
  UP: 0x1,
  BROADCAST: 0x2,
  DEBUG: 0x4,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  NOTRAILERS: 0x20,
  RUNNING: 0x40,
  NOARP: 0x80,
  PROMISC: 0x100,
  ALLMULTI: 0x200,
  MULTICAST: 0x1000,
  LOWER_UP: 0x10000,
  DORMANT: 0x20000,
};

/** Run `ip ARGS` in the network namespace of `pid`; its output. */
function ip(pid: number, args: string[], input?: Buffer): Buffer {
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', ...args], { input, maxBuffer: 1 << 28 });
  if (r.error) throw new CriuError(`cannot run ip ${args.join(' ')} in the network namespace of ${pid}: ${r.error.message}`);
  if (r.status !== 0)
    throw new CriuError(
      `ip ${args.join(' ')} in the network namespace of ${pid} failed: ${r.stderr.toString().trim() || `status ${r.status}`}`,
    );
  return r.stdout;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  link_type: string;
  address?: string;
}

const links = (pid: number): IpLink[] => JSON.parse(ip(pid, ['-j', 'link', 'show']).toString() || '[]') as IpLink[];

function deviceEntry(l: IpLink): MessageInput<'net_device_entry'> {
  const flags = l.flags.reduce((a, f) => a | (IFF[f] ?? 0), 0) | (l.flags.includes('UP') ? IFF.RUNNING : 0);
  return {
    type: ND_LOOPBACK,
    ifindex: l.ifindex,
    mtu: l.mtu,
    flags,
    name: l.ifname,
    ...(l.address ? { address: Buffer.from(l.address.split(':').map((h) => Number.parseInt(h, 16))) } : {}),
  };
}

export const netNs: NsKind = {
  name: 'net',
  cflag: CLONE.NEWNET,
  dumpRefusal: (root) => {
    const other = links(root).filter((l) => l.link_type !== 'loopback');
    if (other.length)
      return `network device ${other[0].ifname} (${other[0].link_type}) in its network namespace: only the loopback is saved yet`;
    return undefined;
  },
  dump: ({ pid, id, imgs, log }) => {
    const ls = links(pid);
    for (const l of ls) imgs.add(IMG.NETDEV, id, deviceEntry(l));
    imgs.one(IMG.NETNS, id, {});
    imgs.raw(IMG.IFADDR, ip(pid, ['addr', 'save']), id);
    imgs.raw(IMG.ROUTE, ip(pid, ['-4', 'route', 'save', 'table', 'main']), id);
    imgs.raw(IMG.ROUTE6, ip(pid, ['-6', 'route', 'save', 'table', 'main']), id);
    log.info(`network namespace ${id}: ${ls.map((l) => l.ifname).join(', ')} to netdev-${id}.img, addresses and routes`);
  },
  restoreRefusal: ({ id, imgs }) => {
    for (const { entry } of imgs.all(IMG.NETDEV, id))
      if (entry.type !== ND_LOOPBACK)
        return `netdev-${id}.img: device ${entry.name} of type ${entry.type}: only the loopback is restored yet`;
    // No netns-N.img: CRIU dumped it empty (runc's empty_ns), and it comes back fresh.
    const ns = imgs.all(IMG.NETNS, id)[0]?.entry;
    if (ns?.ext_key) return `netns-${id}.img: an external network namespace (${ns.ext_key}) is not restored yet`;
    return undefined;
  },
  restore: ({ pid, id, imgs, log }) => {
    for (const { entry } of imgs.all(IMG.NETDEV, id)) {
      const args = ['link', 'set', 'dev', entry.name, 'mtu', String(entry.mtu)];
      if (entry.flags & IFF.UP) args.push('up');
      ip(pid, args);
    }
    // Addresses need their links up; the loopback's own ones exist already (ip skips them).
    for (const [kind, args] of [
      [IMG.IFADDR, ['addr', 'restore']],
      [IMG.ROUTE, ['-4', 'route', 'restore']],
      [IMG.ROUTE6, ['-6', 'route', 'restore']],
    ] as const) {
      const data = imgs.raw(kind, id);
      if (data && data.length > 4) ip(pid, [...args], data);
    }
    log.info(`network namespace ${id}: links, addresses and routes restored`);
  },
};
