// tun/tap devices of a network namespace (netdev-N.img's tun_link_entry, CRIU's): their flags,
// owner, group, vnet header size and send buffer. What only an attached fd tells is read
// through one of the tree's fds on the device, or, for a persistent device none is attached
// to, through an fd criu-ts attaches for the time of the read. At restore each device is made
// persistent at its ifindex; the first fd of the tree attached to it drops that when it was not.
import fs from 'node:fs';
import { close, ioctl, IFF_TUN, O, sock, TUN_DEVICE, tunAttach, tunGetIff, tunSettings, tunSetup } from '../../kernel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { MessageInput, Message } from '../../images/index.ts';
import { withCopy } from '../net/sockfd.ts';
import { inNet, type NetAt } from './nstool.ts';

export interface TunInfo {
  type?: string;
  pi?: boolean;
  vnet_hdr?: boolean;
  multi_queue?: boolean;
  persist?: boolean;
  /** A name, or the number when criu-ts's /etc/passwd (group) has none. */
  user?: string | number;
  group?: string | number;
}

/** A user or group named by `ip` (a name from criu-ts's /etc/passwd or /etc/group, or a number); -1 when unset. */
function idOfName(name: string | number | undefined, file: string): number {
  if (name === undefined) return -1;
  if (typeof name === 'number' || /^\d+$/.test(name)) return Number(name);
  const line = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  if (!line) throw new CriuError(`tun device owner ${name}: not in ${file}`);
  return Number(line.split(':')[2]);
}

/** The flags `ip` shows of a device, as TUNSETIFF takes them (IFF_NAPI is not shown: such a device is made without). */
const ipFlags = (i: TunInfo): number =>
  (i.type === 'tap' ? IFF_TUN.TAP : IFF_TUN.TUN) |
  (i.pi ? 0 : IFF_TUN.NO_PI) |
  (i.vnet_hdr ? IFF_TUN.VNET_HDR : 0) |
  (i.multi_queue ? IFF_TUN.MULTI_QUEUE : 0);

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

/**
 * What only an attached fd tells of its device, refused with a socket filter on board (as
 * CRIU). Not its flags: TUNGETIFF's say IFF_NOFILTER in the bit of IFF_NO_PI.
 */
function readThrough(fd: number, name: string, tap: boolean): { vnethdr: number; sndbuf: number } {
  const s = tunSettings(fd, tap);
  if (s.filterLen) throw new NotSupportedError(`tun device ${name}: a socket filter on it (TUNSETTXFILTER's) is not saved`);
  return { vnethdr: s.vnethdr, sndbuf: s.sndbuf };
}

/** tun_link_entry of device `name` of the namespace of `pid`; `pids` are the tree's tasks. */
export function tunEntry(name: string, info: TunInfo, pid: number, pids: readonly number[]): MessageInput<'tun_link_entry'> {
  const nsIno = fs.statSync(`/proc/${pid}/ns/net`).ino;
  const held = attachedFd(name, nsIno, pids);
  const flags = ipFlags(info);
  const tap = (flags & IFF_TUN.TAP) !== 0;
  let r: { vnethdr: number; sndbuf: number };
  if (held) r = withCopy({ pid: held[0], fd: held[1] }, (copy) => readThrough(copy, name, tap));
  else if (!info.persist) throw new NotSupportedError(`tun device ${name}: not persistent, and no fd of the tree is attached to it`);
  else
    r = inNet(pid, () => {
      const fd = fs.openSync(TUN_DEVICE, O.RDWR | O.CLOEXEC);
      try {
        tunAttach(fd, name, flags);
        return readThrough(fd, name, tap);
      } finally {
        fs.closeSync(fd);
      }
    });
  return {
    ...r,
    flags: flags | (info.persist ? IFF_TUN.PERSIST : 0),
    owner: idOfName(info.user, '/etc/passwd'),
    group: idOfName(info.group, '/etc/group'),
  };
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
