// The links of a network namespace (netdev-N.img), as CRIU keeps them: the loopback, veth
// pairs (both ends in the namespace, the other end in another namespace of the tree (its
// peer_nsid), or one outside given back by --external veth[IFNAME]:OUTNAME[@BRIDGE], or a
// device made beforehand moved in by --external netdev[IFNAME]:NAME), bridges with their
// ports, and macvlans (their lower device outside, given back by --external
// macvlan[IFNAME]:PARENT). Each comes back with its ifindex, name, MAC, MTU, master and flags;
// `ip link` does the netlink work, rtnl.ts what `ip` cannot.
import { CriuError } from '../../errors.ts';
import type { Message, MessageInput } from '../../images/index.ts';
import type { Logger } from '../types.ts';
import { failure, runInNet, runTool, type NetAt } from './nstool.ts';
import fs from 'node:fs';
import { changeLink, IFLA } from './rtnl.ts';
import { makeTun } from './tun.ts';

export const ND = { LOOPBACK: 1, VETH: 2, TUN: 3, BRIDGE: 6, MACVLAN: 7 } as const;
const KINDS: Record<string, number> = { veth: ND.VETH, tun: ND.TUN, bridge: ND.BRIDGE, macvlan: ND.MACVLAN };

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
export const IFF_UP = IFF.UP;

// linux/if_link.h: MACVLAN_MODE_* and MACVLAN_FLAG_*.
const MACVLAN_MODES: Record<string, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 };
const MACVLAN_FLAGS: Record<string, number> = { nopromisc: 1, nodst: 2 };

/** One link as `ip -d -j link show` prints it. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  link_type: string;
  address?: string;
  /** The peer (veth) or lower device (macvlan) by name when in the same namespace. */
  link?: string | null;
  link_index?: number;
  link_netnsid?: number;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string; nopromisc?: boolean; nodst?: boolean } };
}

const kindOf = (l: IpLink): string => (l.link_type === 'loopback' ? 'loopback' : (l.linkinfo?.info_kind ?? l.link_type));

/** Why the links of a namespace cannot be saved, if one of them cannot. */
export function linksRefusal(ls: IpLink[]): string | undefined {
  const other = ls.find((l) => l.link_type !== 'loopback' && !(l.linkinfo?.info_kind && l.linkinfo.info_kind in KINDS));
  if (other)
    return `network device ${other.ifname} (${kindOf(other)}) in its network namespace: only the loopback, veth, tun/tap, bridge and macvlan devices are saved`;
  return undefined;
}

const macBytes = (a: string): Buffer => Buffer.from(a.split(':').map((h) => Number.parseInt(h, 16)));
const macText = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/**
 * The entry of one link of namespace `id` (its sysctls apart); `peers` maps the ids this
 * namespace gives the tree's other namespaces to their ids in the images.
 */
export function deviceEntry(l: IpLink, ls: IpLink[], id: number, peers: Map<number, number>): MessageInput<'net_device_entry'> {
  const byName = (n?: string | null) => (n ? ls.find((x) => x.ifname === n)?.ifindex : undefined);
  const flags = l.flags.reduce((a, f) => a | (IFF[f] ?? 0), 0) | (l.flags.includes('UP') ? IFF.RUNNING : 0);
  const type = l.link_type === 'loopback' ? ND.LOOPBACK : KINDS[l.linkinfo?.info_kind ?? ''];
  const data = l.linkinfo?.info_data;
  const master = byName(l.master);
  const peerNs = l.link_netnsid === undefined ? id : peers.get(l.link_netnsid);
  return {
    type,
    ifindex: l.ifindex,
    mtu: l.mtu,
    flags,
    name: l.ifname,
    ...(l.address && type !== ND.LOOPBACK ? { address: macBytes(l.address) } : {}),
    // As CRIU: the peer is the link itself when it has none; a peer in a namespace outside the tree has no nsid.
    peer_ifindex: l.link_index ?? byName(l.link) ?? l.ifindex,
    ...(peerNs !== undefined ? { peer_nsid: peerNs } : {}),
    ...(master !== undefined ? { master } : {}),
    ...(type === ND.MACVLAN
      ? {
          macvlan: {
            mode: MACVLAN_MODES[data?.mode ?? ''] ?? 0,
            flags: (data?.nopromisc ? MACVLAN_FLAGS.nopromisc : 0) | (data?.nodst ? MACVLAN_FLAGS.nodst : 0),
          },
        }
      : {}),
  };
}

export type Dev = Message<'net_device_entry'>;

/** Restore: `--external veth[IFNAME]:OUT[@BR]`, `netdev[IFNAME]:NAME` and `macvlan[IFNAME]:PARENT`, by their keys. */
export type DeviceMap = Map<string, string>;

/** The tree's network namespaces at restore: each one's file, which are filled, each one's links. */
export interface TreeNets {
  nsFiles: ReadonlyMap<number, string>;
  filled: ReadonlySet<number>;
  devsOf: (id: number) => Dev[];
}

/** The veth at the other end of `d`, in its namespace of the tree. */
const peerOf = (d: Dev, devsOf: (id: number) => Dev[]): Dev | undefined =>
  d.peer_nsid === undefined ? undefined : devsOf(d.peer_nsid).find((p) => p.type === ND.VETH && p.ifindex === d.peer_ifindex);

/** Why the links of netdev-`id`.img cannot be made, if one cannot. */
export function linksRestoreRefusal(id: number, devsOf: (id: number) => Dev[], ext: DeviceMap | undefined): string | undefined {
  const devs = devsOf(id);
  for (const d of devs) {
    const at = `netdev-${id}.img: device ${d.name}`;
    if (d.type === ND.VETH) {
      if (ext?.has(`veth[${d.name}]`) || ext?.has(`netdev[${d.name}]`)) continue;
      if (d.peer_nsid === undefined)
        return `${at}: a veth whose peer is outside the tree; give its outer end with --external veth[${d.name}]:OUTNAME[@BRIDGE], or a device to move in with --external netdev[${d.name}]:NAME`;
      if (!peerOf(d, devsOf)) return `${at}: its veth peer ${d.peer_ifindex} is not in netdev-${d.peer_nsid}.img`;
    } else if (d.type === ND.MACVLAN) {
      if (!ext?.has(`macvlan[${d.name}]`)) return `${at}: a macvlan needs its parent: give --external macvlan[${d.name}]:PARENT`;
      if (!d.macvlan) return `${at}: a macvlan without its mode`;
    } else if (d.type === ND.TUN) {
      if (!d.tun) return `${at}: a tun device without its tun_link_entry`;
    } else if (d.type !== ND.LOOPBACK && d.type !== ND.BRIDGE)
      return `${at} of type ${d.type}: only the loopback, veth, tun/tap, bridge and macvlan are restored`;
    if (d.master !== undefined && !devs.some((m) => m.ifindex === d.master)) return `${at}: its master ${d.master} is not in the image`;
  }
  return undefined;
}

/** `ip ARGS` in criu-ts's own namespace (pid undefined) or at `pid`. */
function ip(pid: NetAt | undefined, args: string[]): void {
  const r = pid === undefined ? runTool('ip', args) : runInNet(pid, 'ip', args);
  const why = failure(r);
  if (why) throw new CriuError(`ip ${args.join(' ')}${pid === undefined ? '' : ` in the network namespace ${pid}`} failed: ${why}`);
}

/** The `ip link add` words naming and shaping a new link as saved. */
const shape = (d: Dev): string[] => [
  'name',
  d.name,
  'index',
  String(d.ifindex),
  ...(d.address?.length ? ['address', macText(d.address)] : []),
  'mtu',
  String(d.mtu),
];

/**
 * Move the device `host` of criu-ts's namespace into the namespace `at` as `d`: its name,
 * ifindex (IFLA_NEW_IFINDEX, which `ip link set` lacks), MTU and MAC (CRIU's netdev[]).
 */
function moveIn(at: NetAt, d: Dev, host: string): void {
  const shown = runTool('ip', ['-j', 'link', 'show', 'dev', host]);
  const why = failure(shown);
  if (why) throw new CriuError(`--external netdev[${d.name}]:${host}: ${why}`);
  const index = (JSON.parse(shown.stdout.toString()) as IpLink[])[0].ifindex;
  const fd = fs.openSync(typeof at === 'number' ? `/proc/${at}/ns/net` : at, 'r');
  try {
    const err = changeLink(index, [
      [IFLA.NET_NS_FD, fd],
      [IFLA.IFNAME, d.name],
      [IFLA.MTU, d.mtu],
      [IFLA.NEW_IFINDEX, d.ifindex],
      ...(d.address?.length ? [[IFLA.ADDRESS, d.address] as [number, Uint8Array]] : []),
    ]);
    if (err) throw new CriuError(`--external netdev[${d.name}]:${host}: moving it in as ifindex ${d.ifindex} failed (errno ${-err})`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Make the links of netdev-`id`.img but the loopback in the namespace `at` (down), then plug
 * the ports into their masters. A veth into another namespace of the tree is made with both
 * ends by whichever of the two is filled first. The caller sets MTU, flags and sysctls of each.
 */
export function createLinks(at: NetAt, id: number, devs: Dev[], ext: DeviceMap | undefined, log: Logger, tree: TreeNets): void {
  const made = new Set<number>();
  for (const d of devs) {
    if (d.type === ND.LOOPBACK || made.has(d.ifindex)) continue;
    if (d.type === ND.BRIDGE) ip(at, ['link', 'add', ...shape(d), 'type', 'bridge']);
    else if (d.type === ND.TUN) {
      makeTun(at, d);
      if (d.address?.length) ip(at, ['link', 'set', 'dev', d.name, 'address', macText(d.address)]);
    } else if (d.type === ND.MACVLAN) {
      // Made where its parent is (criu-ts's namespace), born in the task's.
      const parent = ext!.get(`macvlan[${d.name}]`)!;
      const m = d.macvlan!;
      const mode = Object.entries(MACVLAN_MODES).find(([, v]) => v === m.mode)?.[0] ?? String(m.mode);
      const flag = Object.entries(MACVLAN_FLAGS).find(([, v]) => v === m.flags)?.[0];
      ip(undefined, [
        'link',
        'add',
        'link',
        parent,
        ...shape(d),
        'netns',
        typeof at === 'number' ? String(at) : at,
        'type',
        'macvlan',
        'mode',
        mode,
        ...(flag ? ['flag', flag] : []),
      ]);
    } else if (ext?.has(`netdev[${d.name}]`)) moveIn(at, d, ext.get(`netdev[${d.name}]`)!);
    else if (d.peer_nsid !== undefined && d.peer_nsid !== id) {
      if (tree.filled.has(d.peer_nsid)) continue;
      const peer = peerOf(d, tree.devsOf)!;
      ip(at, ['link', 'add', ...shape(d), 'type', 'veth', 'peer', ...shape(peer), 'netns', tree.nsFiles.get(d.peer_nsid)!]);
    } else {
      const out = ext?.get(`veth[${d.name}]`);
      const peer = out === undefined ? devs.find((p) => p.type === ND.VETH && p.ifindex === d.peer_ifindex)! : undefined;
      const peerArgs = peer ? shape(peer) : ['name', out!.split('@')[0], 'netns', String(process.pid)];
      ip(at, ['link', 'add', ...shape(d), 'type', 'veth', 'peer', ...peerArgs]);
      if (peer) made.add(peer.ifindex);
      const br = out?.split('@')[1];
      // The outer end joins its bridge, up (CRIU's way).
      if (br) ip(undefined, ['link', 'set', 'dev', out!.split('@')[0], 'master', br, 'up']);
    }
    made.add(d.ifindex);
    log.info(`link ${d.name} (type ${d.type}, ifindex ${d.ifindex}) made`);
  }
  for (const d of devs) {
    if (d.master === undefined) continue;
    ip(at, ['link', 'set', 'dev', d.name, 'master', devs.find((m) => m.ifindex === d.master)!.name]);
  }
}
