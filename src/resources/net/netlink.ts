// Netlink sockets (NETLINKSK in files.img, netlink_sk_entry), as CRIU keeps them: protocol,
// bound port id and multicast groups (the first 32), connected destination, options. Queued
// messages cannot be saved (a dump reply in progress lives in the kernel): such a socket is
// refused, as in CRIU. The restore binds the old port id again, or a new one when it is taken.
import { sock, O, SysError } from '../../kernel/index.ts';
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
import type { MessageInput } from '../types.ts';
import { diagDump } from './diag.ts';
import { dumpSkOpts, finishSocket } from './skopts.ts';
import { forSocket, inOwnNetns, protoNameOf, sockIno, withCopy } from './sockfd.ts';

type NetlinkEntry = KindEntry<'nlsk'>;
/** netlink_sock states: a connected socket has a default destination. */
const NETLINK_UNCONNECTED = 0,
  NETLINK_CONNECTED = 1;
/** MAX_LINKS: netlink protocols are 0..31. */
const MAX_LINKS = 32;
const NDIAG_PROTO_ALL = 255,
  NDIAG_SHOW_GROUPS = 2,
  NETLINK_DIAG_GROUPS = 1;

interface NlDiag {
  protocol: number;
  state: number;
  portid: number;
  dstPortid: number;
  dstGroup: number;
  groups: number[];
}

/** Every netlink socket with a port id or groups (sock_diag lists no others), by inode. */
function netlinkSockets(): Map<number, NlDiag> {
  const req = Buffer.alloc(20);
  req.writeUInt8(sock.AF.NETLINK, 0);
  req.writeUInt8(NDIAG_PROTO_ALL, 1);
  req.writeUInt32LE(NDIAG_SHOW_GROUPS, 8);
  req.writeUInt32LE(0xffffffff, 12);
  req.writeUInt32LE(0xffffffff, 16);
  const out = new Map<number, NlDiag>();
  for (const { msg, attrs } of diagDump(req, 28)) {
    const g = attrs.get(NETLINK_DIAG_GROUPS) ?? Buffer.alloc(0);
    const groups: number[] = [];
    for (let i = 0; i + 4 <= g.length; i += 4) groups.push(g.readUInt32LE(i));
    while (groups.length && groups[groups.length - 1] === 0) groups.pop();
    out.set(msg.readUInt32LE(16), {
      protocol: msg.readUInt8(2),
      state: msg.readUInt8(3),
      portid: msg.readUInt32LE(4),
      dstPortid: msg.readUInt32LE(8),
      dstGroup: msg.readUInt32LE(12),
      groups,
    });
  }
  return out;
}

interface DumpState {
  diag?: Map<number, NlDiag>;
}

function dumpNetlink(p: FdProbe, id: number, ctx: DumpFileCtx, st: DumpState): MessageInput<'netlink_sk_entry'> {
  const ino = sockIno(p);
  const where = `fd ${p.fd} of task ${p.pid} (netlink socket:[${ino}])`;
  st.diag ??= netlinkSockets();
  const d = st.diag.get(ino);
  return withCopy(p, (c) => {
    // sock_diag lists the bound sockets of criu-ts's network namespace only.
    if (!d && !inOwnNetns(c)) throw new NotSupportedError(`${where}: a socket of another network namespace`);
    if (sock.pollNow(c, sock.POLL.IN) & sock.POLL.IN)
      throw new NotSupportedError(`${where}: messages queued for reading (CRIU refuses them too)`);
    if (d && d.groups.length > 1) throw new NotSupportedError(`${where}: multicast groups above 32 (CRIU refuses them too)`);
    if (d?.groups.length && !d.portid) throw new NotSupportedError(`${where}: bound to multicast groups but to no port id`);
    const e: MessageInput<'netlink_sk_entry'> = {
      id,
      ino,
      protocol: d?.protocol ?? sock.getsockoptInt(c, sock.SOL.SOCKET, sock.SO.PROTOCOL),
      state: d?.state ?? NETLINK_UNCONNECTED,
      flags: p.flags,
      portid: d?.portid ?? 0,
      groups: d?.groups ?? [],
      dst_portid: d?.dstPortid ?? 0,
      dst_group: d?.dstGroup ?? 0,
      fown: fown(),
      opts: dumpSkOpts(c),
      ns_id: ctx.netNsId(p.pid),
    };
    ctx.log.debug(`${where}: protocol ${e.protocol} port ${e.portid} groups ${d?.groups.join(',') || 0} state ${e.state}`);
    return e;
  });
}

function sockaddrNl(portid: number, groups: number): Buffer {
  const a = Buffer.alloc(12);
  a.writeUInt16LE(sock.AF.NETLINK, 0);
  a.writeUInt32LE(portid >>> 0, 4);
  a.writeUInt32LE(groups >>> 0, 8);
  return a;
}

/** What in a netlink_sk_entry no socket could be made from, for the restore's image check. */
export function netlinkEntryProblem(e: NetlinkEntry): string | undefined {
  if (e.protocol >= MAX_LINKS) return `protocol ${e.protocol} is not a netlink protocol (0..${MAX_LINKS - 1})`;
  // sock_diag shows a socket never connected in TCP_CLOSE (7), the state sockets start in.
  if (![NETLINK_UNCONNECTED, NETLINK_CONNECTED, 7].includes(e.state)) return `state ${e.state} is neither unconnected nor connected`;
  if (e.groups.length > 1) return `${e.groups.length} words of groups: only the first 32 groups can be bound`;
  if (e.dst_group > 32) return `dst_group ${e.dst_group} is above 32`;
  return undefined;
}

function openNetlink(e: NetlinkEntry, ctx: RestoreFileCtx): number {
  const fd = ctx.keep(sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, e.protocol));
  if (e.portid) {
    const groups = e.groups[0] ?? 0;
    try {
      sock.bind(fd, sockaddrNl(e.portid, groups));
    } catch (err) {
      if (!(err instanceof SysError && err.code === 'EADDRINUSE')) throw err;
      // Port ids are mostly the kernel's choice (the binder's pid, or a random one), and few
      // programs care which they have: as CRIU does, take a new one.
      sock.bind(fd, sockaddrNl(0, groups));
      ctx.log.warn(`netlink socket ${e.id}: port id ${e.portid} is taken; it gets a new one`);
    }
  }
  if (e.state === NETLINK_CONNECTED) sock.connect(fd, sockaddrNl(e.dst_portid, e.dst_group ? 2 ** (e.dst_group - 1) : 0));
  return finishSocket(fd, e.opts, e.flags);
}

export const netlinkFile = statefulKind({
  type: FD_TYPE.NETLINKSK,
  field: 'nlsk',
  name: 'netlink socket',
  claims: { flags: O.NONBLOCK | FASYNC },
  matches: (p) => protoNameOf(p) === 'NETLINK',
  state: (): DumpState => ({}),
  dump: (p, id, ctx, st) => dumpNetlink(p, id, ctx, st),
  open: (e, ctx) => forSocket(`netlink socket ${e.id} (protocol ${e.protocol}, port ${e.portid})`, () => openNetlink(e, ctx)),
});
