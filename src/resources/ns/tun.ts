// tun/tap devices of a network namespace (netdev-N.img's tun_link_entry, CRIU's): their flags,
// owner, group, vnet header size and send buffer. What only an attached fd tells is read
// through one of the tree's fds on the device, or, for a persistent device none is attached
// to, through an fd criu-ts attaches for the time of the read. At restore each device is made
// persistent at its ifindex; the first fd of the tree attached to it drops that when it was not.
import fs from 'node:fs';
import { close, ioctl, IFF_TUN, O, sock, TUN_DEVICE, tunAttach, tunSettings, tunSetup } from '../../kernel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { MessageInput, Message } from '../../images/index.ts';
import { withCopy } from '../net/sockfd.ts';
import { failure, inNet, runInNet, type NetAt } from './nstool.ts';

/**
 * Each tun device's tun_flags, owner and group as its namespace's sysfs shows them (-1: none),
 * read in a sysfs mounted there (criu-ts's /sys is its own namespace's): `ip` shows neither
 * IFF_NAPI nor numeric ids, and TUNGETIFF says IFF_NOFILTER in the bit of IFF_NO_PI.
 */
export function tunSysfs(pid: number, names: string[]): Map<string, { flags: number; owner: number; group: number }> {
  const script =
    'mount -t sysfs sysfs /sys && for d; do cat /sys/class/net/$d/tun_flags /sys/class/net/$d/owner /sys/class/net/$d/group; done';
  const r = runInNet(pid, 'unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...names]);
  const why = failure(r);
  if (why) throw new CriuError(`tun devices ${names.join(', ')}: their sysfs settings: ${why}`);
  const v = r.stdout.toString().trim().split('\n');
  return new Map(names.map((n, i) => [n, { flags: Number(v[3 * i]), owner: Number(v[3 * i + 1]), group: Number(v[3 * i + 2]) }]));
}

/** A tree's fd on the tun device `name` of the namespace `nsIno`, if any: [pid, fd]. */
function attachedFd(name: string, nsIno: number, pids: readonly number[]): [number, number] | undefined {
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== TUN_DEVICE) continue;
        if (!fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').includes(`\niff:\t${name}\n`)) continue;
      } catch {
        continue;
      }
      const p = { pid, fd: Number(fd) };
      if (withCopy(p, (copy) => nsInoOf(copy)) === nsIno) return [pid, Number(fd)];
    }
  }
  return undefined;
}

/** The inode of the network namespace a tun fd belongs to. */
export function nsInoOf(fd: number): number {
  const ns = ioctl(fd, sock.SIOCGSKNS);
  try {
    return fs.fstatSync(ns).ino;
  } finally {
    close(ns);
  }
}

/** What only an attached fd tells of its device, refused with a socket filter on board (as CRIU). */
function readThrough(fd: number, name: string, tap: boolean): { vnethdr: number; sndbuf: number } {
  const s = tunSettings(fd, tap);
  if (s.filterLen) throw new NotSupportedError(`tun device ${name}: a socket filter attached to it (TUNATTACHFILTER) is not saved`);
  return { vnethdr: s.vnethdr, sndbuf: s.sndbuf };
}

/**
 * tun_link_entry of device `name` of the namespace of `pid` (its sysfs settings `sys`); `pids`
 * are the tree's tasks, one of whose fds on it is read, else one criu-ts attaches with the
 * device's own flags (attaching sets them).
 */
export function tunEntry(
  name: string,
  sys: { flags: number; owner: number; group: number },
  pid: number,
  pids: readonly number[],
): MessageInput<'tun_link_entry'> {
  const nsIno = fs.statSync(`/proc/${pid}/ns/net`).ino;
  const held = attachedFd(name, nsIno, pids);
  const tap = (sys.flags & IFF_TUN.TAP) !== 0;
  let r: { vnethdr: number; sndbuf: number };
  if (held) r = withCopy({ pid: held[0], fd: held[1] }, (copy) => readThrough(copy, name, tap));
  else if (!(sys.flags & IFF_TUN.PERSIST))
    throw new NotSupportedError(`tun device ${name}: not persistent, and no fd of the tree is attached to it`);
  else
    r = inNet(pid, () => {
      const fd = fs.openSync(TUN_DEVICE, O.RDWR | O.CLOEXEC);
      try {
        tunAttach(fd, name, sys.flags & ~IFF_TUN.PERSIST);
        return readThrough(fd, name, tap);
      } finally {
        fs.closeSync(fd);
      }
    });
  return { ...r, ...sys };
}

/** Make tun device `d` in the namespace `at`, persistent for now, at its ifindex. */
export function makeTun(at: NetAt, d: Message<'net_device_entry'>): void {
  const t = d.tun!;
  inNet(at, () => {
    const fd = fs.openSync(TUN_DEVICE, O.RDWR | O.CLOEXEC);
    try {
      tunAttach(fd, d.name, t.flags & ~IFF_TUN.PERSIST, d.ifindex);
      tunSetup(fd, { owner: t.owner, group: t.group, sndbuf: t.sndbuf, vnethdr: t.vnethdr, persist: true });
    } catch (e) {
      throw new CriuError(`netdev: tun device ${d.name}: ${(e as Error).message}`);
    } finally {
      fs.closeSync(fd);
    }
  });
}
