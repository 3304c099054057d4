// Network namespace: its links (netdev-N.img), addresses, routes and rules (ifaddr-, route-,
// route6-, rule-N.img: the raw output of `ip addr|route|rule save`, as CRIU keeps them),
// netns-N.img, its netfilter rulesets (netfilter.ts) and conntrack table (conntrack.ts); the
// links themselves are made by netdev.ts. The tools run in the namespace
// through nsenter (criu-ts's own threads stay home).
import fs from 'node:fs';
import { CLONE, inNamespaces, errnoName } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { IMG } from '../../images/index.ts';
import type { NsKind, NetOptions, NsImagesIn, NsImagesOut, NsRestoreCtx } from './types.ts';
import type { Logger } from '../types.ts';
import { pullFd } from '../mm/index.ts';
import { readConf, writeConf, readNetnsConf, writeNetnsConf, hasIpv6 } from './netconf.ts';
import { failure, inNet, runInNet, type NetAt } from './nstool.ts';
import { createLinks, deviceEntry, type Dev, IFF_UP, type IpLink, linksRefusal, linksRestoreRefusal, type TreeNets } from './netdev.ts';
import { changeLink, nsidOf } from './rtnl.ts';
import { tunEntry, tunSysfs } from './tun.ts';
import { dumpConntrack, restoreConntrack } from './conntrack.ts';
import { dumpNetfilter, netfilterRefusal, netfilterRestoreRefusal, restoreNetfilter } from './netfilter.ts';
import { lockNetns } from '../net/netlock.ts';
import { netnsLockOf } from '../net/tcp.ts';

/**
 * Run `fn` with criu-ts's main thread in the network namespace of `pid` (when given): the
 * sockets it makes (sock_diag's, the restored ones) belong there.
 */
export function inNetOf<T>(pid: number | undefined, fn: () => T): T {
  return pid === undefined ? fn() : inNamespaces(pid, CLONE.NEWNET, fn);
}

/** Run `ip ARGS` in the network namespace `at`; its output. */
function ip(at: NetAt, args: string[], input?: Buffer): Buffer {
  const r = runInNet(at, 'ip', args, input);
  const why = failure(r);
  if (why) throw new CriuError(`ip ${args.join(' ')} in the network namespace ${typeof at === 'number' ? `of ${at}` : at} failed: ${why}`);
  return r.stdout;
}

const links = (pid: number): IpLink[] => JSON.parse(ip(pid, ['-d', '-j', 'link', 'show']).toString() || '[]') as IpLink[];

/** The key `--external net[INO]:KEY` gives the root's network namespace, if any. */
function externalKey(pid: number, net?: NetOptions): string | undefined {
  const ino = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/net`))?.[1];
  return ino === undefined ? undefined : net?.external?.get(ino);
}

/** Is the network namespace of `pid` saved whole (neither left empty nor external)? */
export const savesNetns = (pid: number, net?: NetOptions): boolean => !net?.empty && externalKey(pid, net) === undefined;

/** netns-N.img's entry; none (CRIU with --empty-ns net) is an empty namespace's. */
function netnsEntry(imgs: NsImagesIn, id: number): { ext_key?: string } {
  return imgs.all(IMG.NETNS, id)[0]?.entry ?? {};
}

/** The root joins the namespace of one of criu-ts's fds, pulled into it. */
function joinNet(stub: NsRestoreCtx['stub'], own: number): void {
  const fd = pullFd(stub, own);
  try {
    stub.syscall('setns', fd, CLONE.NEWNET);
  } finally {
    stub.syscallRaw('close', fd);
  }
}

/**
 * A new network namespace owned by the root's user namespace, held by criu-ts's returned fd:
 * the root unshares one, then goes back to its own. A task of a tree in a user namespace of
 * its own may join only a namespace its user namespace owns (setns needs CAP_SYS_ADMIN over
 * the namespace's owner), which one criu-ts made would not be.
 */
function newNetNsOf(stub: NsRestoreCtx['stub']): number {
  const home = fs.openSync(`/proc/${stub.tid}/ns/net`, 'r');
  try {
    stub.syscall('unshare', CLONE.NEWNET);
    try {
      return fs.openSync(`/proc/${stub.tid}/ns/net`, 'r');
    } finally {
      joinNet(stub, home);
    }
  } finally {
    fs.closeSync(home);
  }
}

/**
 * For each namespace of the tree (id → a task in it): the ids it gives the tree's others, as
 * IFLA_LINK_NETNSID names them, to the others' ids in the images (CRIU's peer_nsid).
 */
function peerIds(nss: Map<number, number>): Map<number, Map<number, number>> {
  const out = new Map<number, Map<number, number>>();
  for (const [id, pid] of nss) {
    const m = new Map<number, number>();
    out.set(id, m);
    if (nss.size < 2) continue;
    inNet(pid, () => {
      for (const [other, opid] of nss) {
        if (other === id) continue;
        const fd = fs.openSync(`/proc/${opid}/ns/net`, 'r');
        try {
          const nsid = nsidOf(fd);
          if (nsid >= 0) m.set(nsid, other);
        } finally {
          fs.closeSync(fd);
        }
      }
    });
  }
  return out;
}

/** Why the links or rules of namespace `id` cannot be made again. */
const contentsRefusal = (id: number, imgs: NsImagesIn, net?: NetOptions): string | undefined =>
  linksRestoreRefusal(id, devsOf(imgs), net?.devices) ?? netfilterRestoreRefusal(id, imgs);

/** The links of each namespace's netdev-N.img. */
const devsOf =
  (imgs: NsImagesIn) =>
  (id: number): Dev[] =>
    imgs.all(IMG.NETDEV, id).map((e) => e.entry);

export const netNs: NsKind = {
  name: 'net',
  cflag: CLONE.NEWNET,
  dumpRefusal: (root, { net }) => {
    if (net?.empty || externalKey(root, net)) return undefined;
    return linksRefusal(links(root)) ?? netfilterRefusal(root);
  },
  dump: ({ pid, id, imgs, log, net, tasks }) => {
    const peers = peerIds(new Map([[id, pid], ...tasks.map((t) => [t.id, t.pid] as const)]));
    const pids = [pid, ...tasks.map((t) => t.pid)];
    // An external namespace is only named; an empty one (runc's) is saved as nothing, as by CRIU.
    const key = externalKey(pid, net);
    if (key !== undefined || net?.empty) {
      imgs.one(IMG.NETNS, id, key === undefined ? {} : { ext_key: key });
      log.info(`network namespace ${id}: ${key === undefined ? 'left empty (--empty-ns net)' : `external, ${key}`}`);
    } else saveNetns(pid, id, imgs, log, peers.get(id)!, pids);
    // Namespaces of tasks below the root: each saved whole, once.
    const done = new Set([id]);
    for (const t of tasks) {
      if (done.has(t.id)) continue;
      done.add(t.id);
      saveNetns(t.pid, t.id, imgs, log, peers.get(t.id)!, pids);
    }
  },
  nestedDumpRefusal: (pid) => linksRefusal(links(pid)) ?? netfilterRefusal(pid),
  restoreRefusal: ({ id, imgs, net, nested }) => {
    if (nested) return contentsRefusal(id, imgs, net);
    if (net?.join) {
      try {
        fs.closeSync(fs.openSync(net.join, 'r'));
      } catch (e) {
        return `--join-ns net:${net.join}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      }
      return undefined;
    }
    // CRIU writes no netns-N.img for runc's empty_ns: an empty namespace.
    const ns = netnsEntry(imgs, id);
    if (ns.ext_key !== undefined)
      return net?.inherit?.has(ns.ext_key)
        ? undefined
        : `netns-${id}.img: the network namespace is external (${ns.ext_key}); give it with --inherit-fd fd[N]:${ns.ext_key}`;
    if (net?.empty) return undefined;
    return contentsRefusal(id, imgs, net);
  },
  cloneFlag: ({ id, imgs, net }) => (net?.join === undefined && netnsEntry(imgs, id).ext_key === undefined ? CLONE.NEWNET : 0),
  restore: ({ pid, id, imgs, log, net, stub, nsFiles, filled, later }) => {
    if (net?.join) {
      const own = fs.openSync(net.join, 'r');
      try {
        joinNet(stub, own);
      } finally {
        fs.closeSync(own);
      }
      log.info(`network namespace ${id}: ${net.join} joined (--join-ns), its contents left as they are`);
      return;
    }
    const ns = netnsEntry(imgs, id);
    if (ns.ext_key !== undefined) {
      joinNet(stub, net!.inherit!.get(ns.ext_key)!);
      log.info(`network namespace ${id}: the external ${ns.ext_key} joined`);
      return;
    }
    if (net?.empty || !imgs.all(IMG.NETNS, id).length) {
      if (net?.loopbackUp) {
        // A new namespace's loopback is its link 1.
        const r = inNetOf(pid, () => changeLink(1, [], false, IFF_UP, IFF_UP));
        if (r < 0) throw new CriuError(`cannot set the loopback of network namespace ${id} up: ${errnoName(-r)}`);
      }
      log.info(`network namespace ${id}: left empty (--empty-ns net)${net?.loopbackUp ? ', its loopback up' : ''}`);
      return;
    }
    fill(pid, id, imgs, log, net, { nsFiles: nsFiles ?? new Map(), filled: filled ?? new Set() }, later);
  },
  nested: true,
  makeAhead: ({ id, log, stub }) => {
    const fd = newNetNsOf(stub);
    log.info(`network namespace ${id}: made ahead of its tasks`);
    return { file: `/proc/${process.pid}/fd/${fd}`, release: () => fs.closeSync(fd) };
  },
  fillAhead: ({ id, file, imgs, log, net, nsFiles, filled }) => fill(file, id, imgs, log, net, { nsFiles, filled }),
  enter: ({ stub, id, holder, file, log }) => {
    const target = file ?? `/proc/${holder}/ns/net`;
    if (fs.statSync(target).ino === fs.statSync(`/proc/${stub.tid}/ns/net`).ino) return;
    const own = fs.openSync(target, 'r');
    try {
      joinNet(stub, own);
    } finally {
      fs.closeSync(own);
    }
    log.info(`task ${stub.tid}: joined network namespace ${id}`);
  },
};

/**
 * The root's namespace, which the dump locked whole (the lock is in its saved rules): the same
 * lock goes in alone, ahead of the sockets, and the saved rules once they exist (`later`), so
 * that soccr's marked segments (a peer's FIN sent again) reach the restored connections
 * whatever the tree's own rules drop there: an nftables accept does not overrule another
 * table's drop. False when the dump took no lock (skip).
 */
function lockAhead(pid: number, id: number, imgs: NsImagesIn, log: Logger): boolean {
  const spec = netnsLockOf(imgs.one(IMG.INVENTORY), pid);
  if (spec.method === 'skip') return false;
  lockNetns(spec);
  log.info(`network namespace ${id}: locked with ${spec.method} until its sockets exist, its own netfilter rules after them`);
  return true;
}

/** Fill a new network namespace (`at`) from the images of namespace `id`. */
function fill(
  at: NetAt,
  id: number,
  imgs: NsImagesIn,
  log: Logger,
  net: NetOptions | undefined,
  tree: Omit<TreeNets, 'devsOf'>,
  later?: (fn: () => void) => void,
): void {
  inNet(at, () => writeNetnsConf(imgs.one(IMG.NETNS, id), log));
  const devs = devsOf(imgs)(id);
  createLinks(at, id, devs, net?.devices, log, { ...tree, devsOf: devsOf(imgs) });
  for (const entry of devs) {
    const args = ['link', 'set', 'dev', entry.name, 'mtu', String(entry.mtu)];
    if (entry.flags & IFF_UP) args.push('up');
    ip(at, args);
    // The loopback is born with the namespace, before its defaults are set: all of its conf goes back.
    inNet(at, () => {
      writeConf('ipv4', entry.name, entry.conf4, log);
      if (hasIpv6()) writeConf('ipv6', entry.name, entry.conf6, log);
    });
  }
  // Addresses need their links up; the loopback's own ones exist already (ip skips them).
  for (const [kind, args] of [
    [IMG.IFADDR, ['addr', 'restore']],
    [IMG.ROUTE, ['-4', 'route', 'restore']],
    [IMG.ROUTE6, ['-6', 'route', 'restore']],
  ] as const) {
    const data = imgs.raw(kind, id);
    if (data && data.length > 4) ip(at, [...args], data);
  }
  // The saved rules hold the defaults a new namespace is born with: those go first (CRIU's way).
  const rules = imgs.raw(IMG.RULE, id);
  if (rules && rules.length > 4) {
    ip(at, ['rule', 'flush']);
    ip(at, ['rule', 'delete', 'table', 'local']);
    ip(at, ['rule', 'restore'], rules);
  }
  const netfilter = (replace: boolean): void => {
    restoreNetfilter(at, id, imgs, log, replace);
    restoreConntrack(at, id, imgs, log);
  };
  if (later && typeof at === 'number' && lockAhead(at, id, imgs, log)) later(() => netfilter(true));
  else netfilter(false);
  log.info(`network namespace ${id}: links, addresses, routes and rules restored`);
}

/** Save the contents of the network namespace `id` of task `pid`. */
function saveNetns(pid: number, id: number, imgs: NsImagesOut, log: Logger, peers: Map<number, number>, pids: number[]): void {
  const ls = links(pid);
  const tunNames = ls.filter((l) => l.linkinfo?.info_kind === 'tun').map((l) => l.ifname);
  const sys = tunNames.length ? tunSysfs(pid, tunNames) : new Map();
  const tuns = new Map(tunNames.map((n) => [n, tunEntry(n, sys.get(n)!, pid, pids)]));
  const { netns, devs } = inNamespaces(pid, CLONE.NEWNET, () => ({
    netns: readNetnsConf(),
    devs: ls.map((l) => ({
      ...deviceEntry(l, ls, id, peers),
      ...(tuns.has(l.ifname) ? { tun: tuns.get(l.ifname) } : {}),
      conf4: readConf('ipv4', l.ifname),
      ...(hasIpv6() ? { conf6: readConf('ipv6', l.ifname) } : {}),
    })),
  }));
  for (const d of devs) imgs.add(IMG.NETDEV, id, d);
  imgs.one(IMG.NETNS, id, netns);
  imgs.raw(IMG.IFADDR, ip(pid, ['addr', 'save']), id);
  imgs.raw(IMG.ROUTE, ip(pid, ['-4', 'route', 'save', 'table', 'main']), id);
  imgs.raw(IMG.ROUTE6, ip(pid, ['-6', 'route', 'save', 'table', 'main']), id);
  imgs.raw(IMG.RULE, ip(pid, ['rule', 'save']), id);
  dumpNetfilter(pid, id, imgs, log);
  dumpConntrack(pid, id, imgs, log);
  log.info(`network namespace ${id}: ${ls.map((l) => l.ifname).join(', ')} to netdev-${id}.img, addresses and routes`);
}
