// /dev/net/tun's ioctls (linux/if_tun.h): attach an fd to a tun/tap device (making it if need
// be), read and set the device's settings through it. The same numbers on x86_64 and arm64.
import fs from 'node:fs';
import { close, ioctl } from './syscalls.ts';
import { O } from './constants.ts';
import { SIOCGSKNS } from './inet.ts';

export const TUN_DEVICE = '/dev/net/tun';
/** /dev/net/tun's character device: misc 10, minor 200. */
export const TUN_RDEV = { major: 10, minor: 200 } as const;
export const IFF_TUN = {
  TUN: 0x1,
  TAP: 0x2,
  NAPI: 0x10,
  NAPI_FRAGS: 0x20,
  MULTI_QUEUE: 0x100,
  ATTACH_QUEUE: 0x200,
  DETACH_QUEUE: 0x400,
  PERSIST: 0x800,
  NO_PI: 0x1000,
  VNET_HDR: 0x4000,
} as const;

const TUNSETIFF = 0x400454ca,
  TUNSETPERSIST = 0x400454cb,
  TUNSETOWNER = 0x400454cc,
  TUNSETGROUP = 0x400454ce,
  TUNGETIFF = 0x800454d2,
  TUNGETSNDBUF = 0x800454d3,
  TUNSETSNDBUF = 0x400454d4,
  TUNGETVNETHDRSZ = 0x800454d7,
  TUNSETVNETHDRSZ = 0x400454d8,
  TUNSETQUEUE = 0x400454d9,
  TUNSETIFINDEX = 0x400454da,
  TUNGETFILTER = 0x801054db;

const IFNAMSIZ = 16;

function ifreq(name: string, flags: number): Buffer {
  const b = Buffer.alloc(40);
  b.write(name.slice(0, IFNAMSIZ - 1), 0, 'latin1');
  b.writeUInt16LE(flags & 0xffff, IFNAMSIZ);
  return b;
}

const intArg = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v | 0);
  return b;
};

/** The device a tun fd is attached to and its flags (with DETACH_QUEUE for a detached queue); undefined when none (EBADFD). */
export function tunGetIff(fd: number): { name: string; flags: number } | undefined {
  const b = ifreq('', 0);
  try {
    ioctl(fd, TUNGETIFF, b);
  } catch (e) {
    if ((e as { code?: string }).code === 'EBADFD') return undefined;
    throw e;
  }
  return { name: b.subarray(0, IFNAMSIZ).toString('latin1').replace(/\0.*$/s, ''), flags: b.readUInt16LE(IFNAMSIZ) };
}

/** Attach a fresh tun fd to device `name` (made when missing, at `ifindex` when given). */
export function tunAttach(fd: number, name: string, flags: number, ifindex?: number): void {
  if (ifindex) ioctl(fd, TUNSETIFINDEX, intArg(ifindex));
  ioctl(fd, TUNSETIFF, ifreq(name, flags));
}

/** Detach or attach again a queue of a multi-queue device. */
export const tunSetQueue = (fd: number, flags: number): number => ioctl(fd, TUNSETQUEUE, ifreq('', flags));

function getInt(fd: number, req: number): number {
  const b = intArg(0);
  ioctl(fd, req, b);
  return b.readInt32LE(0);
}

/** The device's settings an attached fd reads: vnet header size, send buffer, length of its socket filter (tap). */
export const tunSettings = (fd: number, tap: boolean): { vnethdr: number; sndbuf: number; filterLen: number } => {
  let filterLen = 0;
  if (tap) {
    const f = Buffer.alloc(16);
    ioctl(fd, TUNGETFILTER, f);
    filterLen = f.readUInt16LE(0);
  }
  return { vnethdr: getInt(fd, TUNGETVNETHDRSZ), sndbuf: getInt(fd, TUNGETSNDBUF), filterLen };
};

/** Set what tun_link_entry keeps through an attached fd; owner and group -1 are left unset. */
export function tunSetup(fd: number, s: { owner: number; group: number; sndbuf: number; vnethdr: number; persist: boolean }): void {
  if (s.owner !== -1) ioctl(fd, TUNSETOWNER, s.owner >>> 0);
  if (s.group !== -1) ioctl(fd, TUNSETGROUP, s.group >>> 0);
  ioctl(fd, TUNSETSNDBUF, intArg(s.sndbuf));
  ioctl(fd, TUNSETVNETHDRSZ, intArg(s.vnethdr));
  ioctl(fd, TUNSETPERSIST, s.persist ? 1 : 0);
}

/** Make the device persistent or not. */
export const tunSetPersist = (fd: number, on: boolean): number => ioctl(fd, TUNSETPERSIST, on ? 1 : 0);

/** Can a tun device be made at a chosen ifindex (TUNSETIFINDEX), and its fd's namespace be asked (SIOCGSKNS)? */
export function tunWorks(ns: boolean): boolean {
  let fd: number;
  try {
    fd = fs.openSync(TUN_DEVICE, O.RDWR | O.CLOEXEC);
  } catch {
    return false;
  }
  try {
    ioctl(fd, TUNSETIFINDEX, intArg(13));
    if (ns) close(ioctl(fd, SIOCGSKNS));
    return true;
  } catch {
    return false;
  } finally {
    close(fd);
  }
}
