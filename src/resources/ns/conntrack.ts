// Connection tracking of a network namespace the tree owns, kept as CRIU keeps it: the raw
// ctnetlink messages of a dump of its table (netns-ct-N.img) and of its expectations
// (netns-exp-N.img), each nlmsghdr and payload as the kernel sent them; on restore they are sent
// back as creations. A TCP entry comes back "be liberal" both ways: its window tracking starts
// again from the restored sockets' sequence numbers.
import { CLONE, close, inNamespaces, sock } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { IMG } from '../../images/index.ts';
import type { Logger } from '../types.ts';
import type { NsImagesIn, NsImagesOut } from './types.ts';
import { netlinkDump } from '../net/diag.ts';
import { align4, nlAttrs, NLM_F, NLMSG } from '../net/nlattr.ts';
import { inNet, type NetAt } from './nstool.ts';

const NETLINK_NETFILTER = 12;
const HDR = 16,
  NFGEN = 4;
const CTA_PROTOINFO = 4,
  CTA_PROTOINFO_TCP = 1,
  CTA_PROTOINFO_TCP_FLAGS_ORIGINAL = 4,
  CTA_PROTOINFO_TCP_FLAGS_REPLY = 5;
const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;

/**
 * The dump requests, by image: ctnetlink's IPCTNL_MSG_CT_GET (subsystem 1, message 1), and
 * IPCTNL_MSG_EXP_GET as CRIU sends it (message 1 of subsystem 1 again, so CRIU's
 * netns-exp-N.img holds the table once more; kept so that each tool reads the other's images).
 */
const REQUESTS = [
  [IMG.NETNF_CT, (1 << 8) | 1],
  [IMG.NETNF_EXP, (1 << 8) | 1],
] as const;

function netfilterSocket(): number {
  return sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, NETLINK_NETFILTER);
}

/** Every message a dump request of `type` answers with, whole (header included). */
const dumpTable = (type: number): Buffer[] => netlinkDump(NETLINK_NETFILTER, type, Buffer.alloc(NFGEN));

/** Save the conntrack table of the namespace of `pid`. */
export function dumpConntrack(pid: number, id: number, imgs: NsImagesOut, log: Logger): void {
  const tables = inNamespaces(pid, CLONE.NEWNET, () => REQUESTS.map(([kind, type]) => [kind, dumpTable(type)] as const));
  for (const [kind, msgs] of tables) imgs.raw(kind, Buffer.concat(msgs), id);
  log.info(`network namespace ${id}: ${tables[0][1].length} conntrack entries to netns-ct-${id}.img and netns-exp-${id}.img`);
}

/** A TCP entry is made "be liberal" in both directions, as CRIU makes it. */
function beLiberal(m: Buffer): void {
  const family = m.readUInt8(HDR);
  if (family !== sock.AF.INET && family !== sock.AF.INET6) return;
  const proto = nlAttrs(m, HDR + NFGEN).get(CTA_PROTOINFO);
  const tcp = proto && nlAttrs(proto, 0).get(CTA_PROTOINFO_TCP);
  if (!tcp) return;
  const flags = nlAttrs(tcp, 0);
  for (const a of [CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, CTA_PROTOINFO_TCP_FLAGS_REPLY]) {
    // A view of the message: the flags are set in it.
    const f = flags.get(a);
    if (!f || f.length < 2) continue;
    f[0] |= IP_CT_TCP_FLAG_BE_LIBERAL;
    f[1] |= IP_CT_TCP_FLAG_BE_LIBERAL;
  }
}

/** The messages of a raw image; throws on a truncated one. */
function messages(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; ) {
    if (off + HDR > data.length) throw new Error(`truncated at byte ${off}`);
    const len = data.readUInt32LE(off);
    if (len < HDR + NFGEN || off + len > data.length) throw new Error(`a message of ${len} bytes at byte ${off}`);
    out.push(Buffer.from(data.subarray(off, off + len)));
    off += len;
  }
  return out;
}

/** Send one creation and wait for its acknowledgement; the kernel's errno, 0 when done. */
function create(fd: number, m: Buffer, seq: number): number {
  m.writeUInt16LE(NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE, 6);
  m.writeUInt32LE(seq, 8);
  m.writeUInt32LE(0, 12);
  if (sock.sendRaw(fd, m, 0) !== m.length) return 5; // EIO
  const buf = Buffer.alloc(4096);
  for (;;) {
    const n = sock.recvRaw(fd, buf, 0);
    if (n < 0) return -n;
    for (let off = 0; off + HDR <= n; off += align4(buf.readUInt32LE(off) || n)) {
      if (buf.readUInt16LE(off + 4) === NLMSG.ERROR && buf.readUInt32LE(off + 8) === seq) return -buf.readInt32LE(off + HDR);
    }
  }
}

/** Put the saved conntrack entries back in the new namespace of `pid`. */
export function restoreConntrack(pid: NetAt, id: number, imgs: NsImagesIn, log: Logger): void {
  let count = 0;
  for (const [kind, name] of [
    [IMG.NETNF_CT, `netns-ct-${id}.img`],
    [IMG.NETNF_EXP, `netns-exp-${id}.img`],
  ] as const) {
    const data = imgs.raw(kind, id);
    if (!data?.length) continue;
    let msgs: Buffer[];
    try {
      msgs = messages(data);
      if (kind === IMG.NETNF_CT) for (const m of msgs) beLiberal(m);
    } catch (e) {
      throw new CriuError(`${name}: not ctnetlink messages: ${(e as Error).message}`);
    }
    inNet(pid, () => {
      const fd = netfilterSocket();
      try {
        msgs.forEach((m, i) => {
          const err = create(fd, m, i + 1);
          if (err) throw new CriuError(`${name}: conntrack entry ${i + 1} of ${msgs.length} refused by the kernel (errno ${err})`);
        });
      } finally {
        close(fd);
      }
    });
    count += msgs.length;
  }
  if (count) log.info(`network namespace ${id}: ${count} conntrack messages restored`);
}
