// What raw (SOCK_RAW, any protocol) and ICMP echo ("ping", SOCK_DGRAM with IPPROTO_ICMP or
// ICMPV6) sockets add to an inet socket: CRIU's ip_opts_raw_entry (IP_HDRINCL, IP_NODEFRAG,
// the ICMP type filters). Their queued packets are not saved, as in CRIU.
import fs from 'node:fs';
import { sock, withThreadEgid, SysError } from '../../kernel/index.ts';
import { int } from './skopts.ts';
import type { Message, MessageInput } from '../types.ts';

const { SOL, IP, IPV6, AF, IPPROTO, SOCK } = sock;

const isPing = (type: number, proto: number): boolean => type === SOCK.DGRAM && (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6);

/** A socket whose "port" is not an inet port: a raw socket's protocol, a ping socket's ident. */
export const isRawOrPing = (type: number, proto: number): boolean => type === SOCK.RAW || isPing(type, proto);

/**
 * A new socket in criu-ts's network namespace. The kernel lets a ping socket be made only by
 * a gid in the namespace's net.ipv4.ping_group_range, which in a user namespace of its own
 * holds the namespace's gids, not root's: as the tree's tasks made it (and CRIU's task makes
 * it again), it is made with the range's first gid as this thread's effective gid.
 */
export function inetSocket(family: number, type: number, proto: number): number {
  try {
    return sock.socket(family, type, proto);
  } catch (e) {
    if (!(e instanceof SysError && e.code === 'EACCES' && isPing(type & 0xf, proto))) throw e;
    const [low, high] = fs.readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
    if (!(low <= high)) throw e;
    return withThreadEgid(low, () => sock.socket(family, type, proto));
  }
}

/** sizeof(struct icmp_filter) and sizeof(struct icmp6_filter), in u32 words. */
const filterWords = (family: number): number => (family === AF.INET6 ? 8 : 1);

function icmpFilterOpt(family: number, proto: number): [number, number] | undefined {
  if (family === AF.INET && proto === IPPROTO.ICMP) return [SOL.RAW, sock.ICMP_FILTER];
  if (family === AF.INET6 && proto === IPPROTO.ICMPV6) return [SOL.ICMPV6, sock.ICMP_FILTER];
  return undefined;
}

export function dumpRawOpts(fd: number, family: number, proto: number): MessageInput<'ip_opts_raw_entry'> {
  const hdrincl = family === AF.INET6 ? int(fd, SOL.IPV6, IPV6.HDRINCL) : int(fd, SOL.IP, IP.HDRINCL);
  const out: MessageInput<'ip_opts_raw_entry'> = {};
  if (hdrincl) out.hdrincl = true;
  if (family === AF.INET && int(fd, SOL.IP, IP.NODEFRAG)) out.nodefrag = true;
  const f = icmpFilterOpt(family, proto);
  if (f) {
    const b = sock.getsockoptBuf(fd, f[0], f[1], filterWords(family) * 4);
    const words: number[] = [];
    for (let i = 0; i + 4 <= b.length; i += 4) words.push(b.readUInt32LE(i));
    out.icmpv_filter = words;
  }
  return out;
}

export function restoreRawOpts(fd: number, family: number, proto: number, r: Message<'ip_opts_raw_entry'> | undefined): void {
  if (!r) return;
  const f = icmpFilterOpt(family, proto);
  if (f && r.icmpv_filter.length) {
    if (r.icmpv_filter.length > filterWords(family))
      throw new Error(`ip_opts.raw.icmpv_filter has ${r.icmpv_filter.length} words, more than ${filterWords(family)}`);
    const b = Buffer.alloc(r.icmpv_filter.length * 4);
    r.icmpv_filter.forEach((w, i) => {
      b.writeUInt32LE(w >>> 0, i * 4);
    });
    sock.setsockoptBuf(fd, f[0], f[1], b);
  }
  if (r.nodefrag) sock.setsockoptInt(fd, SOL.IP, IP.NODEFRAG, 1);
  if (r.hdrincl) {
    if (family === AF.INET6) sock.setsockoptInt(fd, SOL.IPV6, IPV6.HDRINCL, 1);
    else sock.setsockoptInt(fd, SOL.IP, IP.HDRINCL, 1);
  }
}
