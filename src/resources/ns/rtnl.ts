// The few rtnetlink requests `ip` cannot make: a namespace's id for another namespace
// (RTM_GETNSID, to tell which namespace of the tree a veth's peer is in) and moving an existing
// link into a namespace under a name and ifindex of its choosing (IFLA_NEW_IFINDEX, which
// `ip link set` lacks); and a loopback set up without starting `ip`. Each runs on a
// NETLINK_ROUTE socket of criu-ts's current namespace.
import { close, sock } from '../../kernel/index.ts';
import { align4, nlAttrs, NLM_F, NLMSG, NLMSG_HDRLEN as HDR } from '../net/nlattr.ts';

const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16,
  RTM_SETLINK = 19,
  RTM_NEWNSID = 88,
  RTM_GETNSID = 90;
const NETNSA_NSID = 1,
  NETNSA_FD = 3;
/** linux/if_link.h */
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, NET_NS_FD: 28, NEW_IFINDEX: 49 } as const;

/** One attribute: a u32/s32 number, a NUL-terminated name or raw bytes. */
function attr(type: number, v: number | string | Uint8Array): Buffer {
  let data: Buffer;
  if (typeof v === 'number') {
    data = Buffer.alloc(4);
    data.writeInt32LE(v | 0);
  } else data = typeof v === 'string' ? Buffer.from(`${v}\0`) : Buffer.from(v);
  const b = Buffer.alloc(align4(4 + data.length));
  b.writeUInt16LE(4 + data.length, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

/** Send one request; the kernel's answer (a message or an ack), or -errno. */
function request(type: number, flags: number, body: Buffer): Buffer | number {
  const fd = sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, NETLINK_ROUTE);
  try {
    const req = Buffer.concat([Buffer.alloc(HDR), body]);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(type, 4);
    req.writeUInt16LE(NLM_F.REQUEST | flags, 6);
    req.writeUInt32LE(1, 8);
    if (sock.sendRaw(fd, req, 0) !== req.length) return -5;
    const buf = Buffer.alloc(8192);
    const n = sock.recvRaw(fd, buf, 0);
    if (n < HDR) return n < 0 ? n : -5;
    if (buf.readUInt16LE(4) === NLMSG.ERROR) return buf.readInt32LE(HDR);
    return Buffer.from(buf.subarray(0, buf.readUInt32LE(0)));
  } finally {
    close(fd);
  }
}

/** The id the current network namespace gives the namespace of `nsFd` (-1: none assigned). */
export function nsidOf(nsFd: number): number {
  const r = request(RTM_GETNSID, 0, Buffer.concat([Buffer.alloc(4), attr(NETNSA_FD, nsFd)]));
  if (typeof r === 'number') return -1;
  if (r.readUInt16LE(4) !== RTM_NEWNSID) return -1;
  return (
    nlAttrs(r, HDR + 4)
      .get(NETNSA_NSID)
      ?.readInt32LE(0) ?? -1
  );
}

/**
 * An RTM_NEWLINK (or SETLINK) on link `index` with `attributes`, and the interface flags in
 * `change` set to `flags`; 0 or -errno.
 */
export function changeLink(
  index: number,
  attributes: Array<[number, number | string | Uint8Array]>,
  set = false,
  flags = 0,
  change = 0,
): number {
  const ifi = Buffer.alloc(16);
  ifi.writeInt32LE(index, 4);
  ifi.writeUInt32LE(flags, 8);
  ifi.writeUInt32LE(change, 12);
  const r = request(set ? RTM_SETLINK : RTM_NEWLINK, NLM_F.ACK, Buffer.concat([ifi, ...attributes.map(([t, v]) => attr(t, v))]));
  return typeof r === 'number' ? r : 0;
}

const ERANGE = 34;

/**
 * Does the kernel take IFLA_NEW_IFINDEX? Asked with a negative index of a link that does not
 * exist: a kernel that reads it refuses the index (ERANGE) before looking for the link.
 */
export const newIfindexWorks = (): boolean =>
  changeLink(
    0,
    [
      [IFLA.NEW_IFINDEX, -1],
      [IFLA.IFNAME, 'criu-kdat'],
    ],
    true,
  ) === -ERANGE;
