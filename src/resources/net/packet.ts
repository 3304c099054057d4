// Packet sockets (PACKETSK in files.img, packet_sock_entry), as CRIU keeps them: type
// (SOCK_RAW, SOCK_DGRAM, the old SOCK_PACKET), protocol, bound interface, the SOL_PACKET
// options, multicast memberships, fanout and the RX/TX ring geometry. A ring mapped into the
// task is a VMA marked VMA_AREA_SOCKET (mm/), mapped again from the restored socket; the
// ring's frames and queued packets are not saved, as in CRIU.
import { sock, ioctl, O } from '../../kernel/index.ts';
import { NotSupportedError } from '../../errors.ts';
import {
  FD_TYPE,
  FASYNC,
  fown,
  statefulKind,
  type FdProbe,
  type DumpFileCtx,
  type KindEntry,
  type RestoreFileCtx,
} from '../files/types.ts';
import type { Message, MessageInput } from '../types.ts';
import { diagDump } from './diag.ts';
import { dumpSkOpts, finishSocket } from './skopts.ts';
import { forSocket, protoNameOf, sockIno, withCopy } from './sockfd.ts';

const { PACKET, SOL, SOCK, AF } = sock;
type PacketEntry = KindEntry<'psk'>;
type Ring = MessageInput<'packet_ring'>;

const PACKET_SHOW = { INFO: 1, MCLIST: 2, RING_CFG: 4, FANOUT: 8 } as const;
const PACKET_DIAG = { INFO: 0, MCLIST: 1, RX_RING: 2, TX_RING: 3, FANOUT: 4 } as const;
const PDI = { AUXDATA: 2, ORIGDEV: 4, VNETHDR: 8, LOSS: 0x10 } as const;
const PACKET_MR = { MULTICAST: 0, PROMISC: 1, ALLMULTI: 2, UNICAST: 3 } as const;
/** MAX_ADDR_LEN: the address room of a membership (struct packet_mreq_max). */
const MAX_ADDR_LEN = 32;
/** packet_sock_entry.fanout when the socket is in no fanout group. */
export const NO_FANOUT = 0xffffffff;

const swap16 = (v: number): number => ((v & 0xff) << 8) | ((v >> 8) & 0xff);

interface PacketDiag {
  type: number;
  /** As socket() takes it: the ethertype in network byte order. */
  protocol: number;
  ifindex: number;
  version: number;
  reserve: number;
  copyThresh: number;
  tstamp: number;
  flags: number;
  mclist: Array<{ index: number; count: number; type: number; addr: Buffer }>;
  fanout?: number;
  rx?: Ring;
  tx?: Ring;
}

function ring(b: Buffer | undefined): Ring | undefined {
  if (!b || b.length < 28) return undefined;
  const w = (i: number): number => b.readUInt32LE(i * 4);
  return { block_size: w(0), block_nr: w(1), frame_size: w(2), frame_nr: w(3), retire_tmo: w(4), sizeof_priv: w(5), features: w(6) };
}

/** Every packet socket of criu-ts's network namespace, by inode. */
function packetSockets(): Map<number, PacketDiag> {
  const req = Buffer.alloc(20);
  req.writeUInt8(AF.PACKET, 0);
  req.writeUInt32LE(PACKET_SHOW.INFO | PACKET_SHOW.MCLIST | PACKET_SHOW.RING_CFG | PACKET_SHOW.FANOUT, 8);
  req.writeUInt32LE(0xffffffff, 12);
  req.writeUInt32LE(0xffffffff, 16);
  const out = new Map<number, PacketDiag>();
  for (const { msg, attrs } of diagDump(req, 16)) {
    const info = attrs.get(PACKET_DIAG.INFO);
    if (!info || info.length < 24) throw new Error(`sock_diag: packet socket ${msg.readUInt32LE(4)} without its info`);
    const mc = attrs.get(PACKET_DIAG.MCLIST) ?? Buffer.alloc(0);
    const mclist: PacketDiag['mclist'] = [];
    for (let i = 0; i + 44 <= mc.length; i += 44) {
      const alen = Math.min(mc.readUInt16LE(i + 10), MAX_ADDR_LEN);
      mclist.push({
        index: mc.readUInt32LE(i),
        count: mc.readUInt32LE(i + 4),
        type: mc.readUInt16LE(i + 8),
        addr: Buffer.from(mc.subarray(i + 12, i + 12 + alen)),
      });
    }
    const fanout = attrs.get(PACKET_DIAG.FANOUT);
    const rx = ring(attrs.get(PACKET_DIAG.RX_RING)),
      tx = ring(attrs.get(PACKET_DIAG.TX_RING));
    out.set(msg.readUInt32LE(4), {
      type: msg.readUInt8(1),
      protocol: swap16(msg.readUInt16LE(2)),
      ifindex: info.readUInt32LE(0),
      version: info.readUInt32LE(4),
      reserve: info.readUInt32LE(8),
      copyThresh: info.readUInt32LE(12),
      tstamp: info.readUInt32LE(16),
      flags: info.readUInt32LE(20),
      mclist,
      ...(fanout && fanout.length >= 4 ? { fanout: fanout.readUInt32LE(0) } : {}),
      ...(rx ? { rx } : {}),
      ...(tx ? { tx } : {}),
    });
  }
  return out;
}

function dumpMclist(d: PacketDiag, where: string): Array<MessageInput<'packet_mclist'>> {
  return d.mclist.map((m) => {
    if (m.count !== 1) throw new NotSupportedError(`${where}: a multicast membership taken ${m.count} times (CRIU refuses it too)`);
    if (m.type === PACKET_MR.MULTICAST || m.type === PACKET_MR.UNICAST) return { index: m.index, type: m.type, addr: m.addr };
    if (m.type === PACKET_MR.PROMISC || m.type === PACKET_MR.ALLMULTI) return { index: m.index, type: m.type, addr: Buffer.alloc(0) };
    throw new NotSupportedError(`${where}: a membership of unknown type ${m.type}`);
  });
}

interface DumpState {
  diag?: Map<number, PacketDiag>;
}

function dumpPacket(p: FdProbe, id: number, ctx: DumpFileCtx, st: DumpState): MessageInput<'packet_sock_entry'> {
  const ino = sockIno(p);
  const where = `fd ${p.fd} of task ${p.pid} (packet socket:[${ino}])`;
  st.diag ??= packetSockets();
  const d = st.diag.get(ino);
  if (!d) throw new NotSupportedError(`${where}: not in the packet sockets of criu-ts's network namespace`);
  return withCopy(p, (c) => {
    const inq = Buffer.alloc(4);
    try {
      ioctl(c, sock.SIOCINQ, inq);
    } catch {
      /* no queue */
    }
    if (inq.readInt32LE(0) > 0) ctx.log.warn(`${where}: the packets queued for reading are dropped, as CRIU does`);
    const e: MessageInput<'packet_sock_entry'> = {
      id,
      type: d.type,
      protocol: d.protocol,
      flags: p.flags,
      ifindex: d.ifindex,
      fown: fown(),
      opts: dumpSkOpts(c),
      version: d.version,
      reserve: d.reserve,
      aux_data: (d.flags & PDI.AUXDATA) !== 0,
      orig_dev: (d.flags & PDI.ORIGDEV) !== 0,
      vnet_hdr: (d.flags & PDI.VNETHDR) !== 0,
      loss: (d.flags & PDI.LOSS) !== 0,
      timestamp: d.tstamp,
      copy_thresh: d.copyThresh,
      mclist: dumpMclist(d, where),
      ...(d.fanout !== undefined ? { fanout: d.fanout } : {}),
      ...(d.rx ? { rx_ring: d.rx } : {}),
      ...(d.tx ? { tx_ring: d.tx } : {}),
      ns_id: ctx.netNsId(p.pid),
    };
    ctx.log.debug(
      `${where}: type ${d.type} protocol 0x${swap16(d.protocol).toString(16)} ifindex ${d.ifindex} version ${d.version}${d.rx ? ' rx ring' : ''}${d.tx ? ' tx ring' : ''}`,
    );
    return e;
  });
}

/** What in a packet_sock_entry no socket could be made from, for the restore's image check. */
export function packetEntryProblem(e: PacketEntry): string | undefined {
  if (![SOCK.RAW, SOCK.DGRAM, sock.SOCK_PACKET].includes(e.type as 2)) return `type ${e.type} is not raw, datagram or SOCK_PACKET`;
  if (e.protocol > 0xffff) return `protocol ${e.protocol} is not an ethertype`;
  if (e.version > 2) return `version ${e.version} is not TPACKET_V1..V3`;
  for (const m of e.mclist) {
    if (m.addr.length > MAX_ADDR_LEN) return `a membership address of ${m.addr.length} bytes is longer than ${MAX_ADDR_LEN}`;
    if (!Object.values(PACKET_MR).includes(m.type as 0)) return `membership type ${m.type} is unknown`;
  }
  return undefined;
}

const setInt = (fd: number, opt: number, v: number): void => sock.setsockoptInt(fd, SOL.PACKET, opt, v);

/** SOCK_PACKET binds by device name (struct sockaddr with the name in sa_data). */
function bindSpkt(fd: number, ifindex: number): void {
  const ifr = Buffer.alloc(40);
  ifr.writeInt32LE(ifindex, 16);
  ioctl(fd, sock.SIOCGIFNAME, ifr);
  const a = Buffer.alloc(16);
  a.writeUInt16LE(AF.PACKET, 0);
  ifr.copy(a, 2, 0, 13);
  sock.bind(fd, a);
}

function setRing(fd: number, opt: number, r: Message<'packet_ring'> | undefined): void {
  if (!r) return;
  const b = Buffer.alloc(28);
  [r.block_size, r.block_nr, r.frame_size, r.frame_nr, r.retire_tmo, r.sizeof_priv, r.features].forEach((v, i) => {
    b.writeUInt32LE(v >>> 0, i * 4);
  });
  sock.setsockoptBuf(fd, SOL.PACKET, opt, b);
}

function openPacket(e: PacketEntry, ctx: RestoreFileCtx): number {
  const fd = ctx.keep(sock.socket(AF.PACKET, e.type | SOCK.CLOEXEC, e.protocol));
  if (e.type === sock.SOCK_PACKET) {
    if (e.ifindex > 0) bindSpkt(fd, e.ifindex);
  } else {
    const a = Buffer.alloc(20);
    a.writeUInt16LE(AF.PACKET, 0);
    a.writeInt32LE(e.ifindex, 4);
    sock.bind(fd, a);
    // The version and the reserve must come before the rings, which fix the frame layout.
    setInt(fd, PACKET.VERSION, e.version);
    setInt(fd, PACKET.RESERVE, e.reserve);
    setInt(fd, PACKET.TIMESTAMP, e.timestamp);
    setInt(fd, PACKET.COPY_THRESH, e.copy_thresh);
    if (e.aux_data) setInt(fd, PACKET.AUXDATA, 1);
    if (e.orig_dev) setInt(fd, PACKET.ORIGDEV, 1);
    if (e.vnet_hdr) setInt(fd, PACKET.VNET_HDR, 1);
    if (e.loss) setInt(fd, PACKET.LOSS, 1);
    for (const m of e.mclist) {
      const mr = Buffer.alloc(8 + MAX_ADDR_LEN);
      mr.writeInt32LE(m.index, 0);
      mr.writeUInt16LE(m.type, 4);
      mr.writeUInt16LE(m.addr.length, 6);
      Buffer.from(m.addr).copy(mr, 8);
      sock.setsockoptBuf(fd, SOL.PACKET, PACKET.ADD_MEMBERSHIP, mr);
    }
    setRing(fd, PACKET.RX_RING, e.rx_ring);
    setRing(fd, PACKET.TX_RING, e.tx_ring);
    if (e.fanout !== undefined && e.fanout !== NO_FANOUT) setInt(fd, PACKET.FANOUT, e.fanout);
  }
  return finishSocket(fd, e.opts, e.flags);
}

export const packetFile = statefulKind({
  type: FD_TYPE.PACKETSK,
  field: 'psk',
  name: 'packet socket',
  claims: { flags: O.NONBLOCK | FASYNC },
  matches: (p) => protoNameOf(p) === 'PACKET',
  state: (): DumpState => ({}),
  dump: (p, id, ctx, st) => dumpPacket(p, id, ctx, st),
  open: (e, ctx) => forSocket(`packet socket ${e.id} (type ${e.type}, ifindex ${e.ifindex})`, () => openPacket(e, ctx)),
});
