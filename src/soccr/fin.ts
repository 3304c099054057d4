/**
 * A segment "from the peer" for a restored half-closed connection: no socket call puts a FIN
 * into a receive queue, so the peer's FIN (and its ACK of ours) is sent again as a raw packet
 * to the restored socket. It carries the lock's mark (0xC114), which the network lock lets
 * through. Needs CAP_NET_RAW in the socket's network namespace.
 */
import { sock, close } from '../kernel/index.ts';
import type { Endpoint } from './index.ts';

/** The mark that the network lock lets through (CRIU's SOCCR_MARK). */
export const SOCCR_MARK = 0xc114;
export const TH = { FIN: 0x01, ACK: 0x10 } as const;

function checksum(parts: Buffer[]): number {
  let sum = 0;
  for (const b of parts) for (let i = 0; i < b.length; i += 2) sum += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A v4-mapped IPv6 address's IPv4 bytes, else undefined. */
function mapped(a: Buffer): Buffer | undefined {
  if (a.length === 4) return a;
  return a.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])) ? a.subarray(12) : undefined;
}

/**
 * Send `flags` from `peer` to `local`, with sequence `seq`, acknowledging `ack`, and the
 * peer's window `win` (unscaled).
 */
export function sendFromPeer(peer: Endpoint, local: Endpoint, seq: number, ack: number, win: number, flags: number): void {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(peer.port, 0);
  tcp.writeUInt16BE(local.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(Math.min(win, 0xffff), 14);
  const p4 = mapped(peer.addr),
    l4 = mapped(local.addr);
  const v4 = !!(p4 && l4);
  let pkt: Buffer, to: Buffer;
  if (v4 && p4 && l4) {
    const pseudo = Buffer.concat([p4, l4, Buffer.from([0, sock.IPPROTO.TCP, 0, 20])]);
    tcp.writeUInt16BE(checksum([pseudo, tcp]), 16);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(40, 2);
    ip[8] = 64; // TTL
    ip[9] = sock.IPPROTO.TCP;
    p4.copy(ip, 12);
    l4.copy(ip, 16);
    ip.writeUInt16BE(checksum([ip]), 10);
    pkt = Buffer.concat([ip, tcp]);
    to = Buffer.alloc(16);
    to.writeUInt16LE(sock.AF.INET, 0);
    l4.copy(to, 4);
  } else {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(20, 0);
    const pseudo = Buffer.concat([peer.addr, local.addr, len, Buffer.from([0, 0, 0, sock.IPPROTO.TCP])]);
    tcp.writeUInt16BE(checksum([pseudo, tcp]), 16);
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(20, 4);
    ip[6] = sock.IPPROTO.TCP;
    ip[7] = 64; // hop limit
    peer.addr.copy(ip, 8);
    local.addr.copy(ip, 24);
    pkt = Buffer.concat([ip, tcp]);
    to = Buffer.alloc(28);
    to.writeUInt16LE(sock.AF.INET6, 0);
    local.addr.copy(to, 8);
    to.writeUInt32LE(local.scopeId ?? 0, 24);
  }
  // IPPROTO_RAW: the packet goes as built, IP header included.
  const fd = sock.socket(v4 ? sock.AF.INET : sock.AF.INET6, sock.SOCK.RAW | sock.SOCK.CLOEXEC, sock.IPPROTO.RAW);
  try {
    sock.setsockoptInt(fd, sock.SOL.SOCKET, sock.SO.MARK, SOCCR_MARK);
    sock.sendTo(fd, pkt, to);
  } finally {
    close(fd);
  }
}
