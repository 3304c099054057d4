// nf_tables over netlink (NETLINK_NETFILTER, linux/netfilter/nf_tables.h): the tables, chains,
// rules, sets and elements of the network lock, sent as nfnetlink batches, each one
// transaction the kernel applies whole or not at all. The `nft` tool would do the same after
// starting up and reading the whole ruleset: a process of its own per lock.
import fs from 'node:fs';
import { close, errnoName, sock } from '../../kernel/index.ts';
import { align4, NLM_F, NLMSG, NLMSG_HDRLEN as HDR } from './nlattr.ts';
import { netlinkDump } from './diag.ts';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10,
  NFNL_MSG_BATCH_END = 0x11;
const NLA_F_NESTED = 0x8000;
const NFPROTO_INET = 1;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

const NFT_MSG = { NEWTABLE: 0, DELTABLE: 2, NEWCHAIN: 3, NEWRULE: 6, NEWSET: 9, NEWSETELEM: 12 } as const;

/** Netfilter hooks of the inet family (NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT). */
export const HOOK = { input: 1, output: 3 } as const;
/** NF_DROP, NF_ACCEPT: verdicts and chain policies. */
export const VERDICT = { drop: 0, accept: 1 } as const;
/** nft_meta_keys */
export const META = { MARK: 3, NFPROTO: 15, L4PROTO: 16 } as const;
/** nft_payload_bases */
export const BASE = { network: 1, transport: 2 } as const;
/** nft_registers: the 16-byte NFT_REG_1 and the 32-bit NFT_REG32_00 that starts it. */
export const REG_1 = 1,
  REG32_00 = 8;
/** nft's datatype numbers, 6 bits each in a concatenated set key's type. */
export const TYPE = { ipv4_addr: 7, ipv6_addr: 8, inet_service: 13 } as const;

function attr(type: number, data: Buffer): Buffer {
  const b = Buffer.alloc(align4(4 + data.length));
  b.writeUInt16LE(4 + data.length, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}
const be32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const u32 = (type: number, v: number): Buffer => attr(type, be32(v));
const str = (type: number, s: string): Buffer => attr(type, Buffer.from(`${s}\0`));
const nest = (type: number, ...inner: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(inner));
/** NFTA_LIST_ELEM, NFTA_DATA_VALUE */
const LIST_ELEM = 1,
  DATA_VALUE = 1;

/** One rule expression (an NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS). */
export type Expr = Buffer;
const expr = (name: string, ...data: Buffer[]): Expr => nest(LIST_ELEM, str(1, name), nest(2, ...data));

/** Load a meta key into `dreg`. */
export const meta = (key: number, dreg: number): Expr => expr('meta', u32(2, key), u32(1, dreg));
/** Go on only if `sreg` holds `value` (host order, as the load put it there). */
export const cmpEq = (sreg: number, value: Buffer): Expr => expr('cmp', u32(1, sreg), u32(2, 0), nest(3, attr(DATA_VALUE, value)));
/** Load `len` bytes at `offset` of a header into `dreg`. */
export const payload = (base: number, offset: number, len: number, dreg: number): Expr =>
  expr('payload', u32(1, dreg), u32(2, base), u32(3, offset), u32(4, len));
/** Go on only if the key from `sreg` is in the set (named, and its id when made in the same batch). */
export const lookup = (set: string, sreg: number, setId?: number): Expr =>
  expr('lookup', str(1, set), u32(2, sreg), ...(setId === undefined ? [] : [u32(4, setId)]));
/** The rule's verdict. */
export const verdict = (code: number): Expr => expr('immediate', u32(1, 0), nest(2, nest(2, u32(1, code))));

/** One message of a batch, and what it does, for errors. */
export interface NftMsg {
  type: number;
  flags: number;
  body: Buffer;
  what: string;
}

const msg = (type: number, flags: number, what: string, ...attrs: Buffer[]): NftMsg => ({ type, flags, what, body: Buffer.concat(attrs) });

/** `create`: fail if the table exists (nft's `create table`), else take it as it is (`add table`). */
export const newTable = (table: string, create = false): NftMsg =>
  msg(NFT_MSG.NEWTABLE, NLM_F.CREATE | (create ? NLM_F.EXCL : 0), `add table inet ${table}`, str(1, table), u32(2, 0));

export const delTable = (table: string): NftMsg => msg(NFT_MSG.DELTABLE, 0, `delete table inet ${table}`, str(1, table));

/** A base chain of type filter at priority 0 on `hook`; `policy` when not accept. */
export const newChain = (table: string, name: string, hook: number, policy?: number): NftMsg =>
  msg(
    NFT_MSG.NEWCHAIN,
    NLM_F.CREATE,
    `add chain inet ${table} ${name}`,
    str(1, table),
    str(3, name),
    nest(4, u32(1, hook), u32(2, 0)),
    ...(policy === undefined ? [] : [u32(5, policy)]),
    str(7, 'filter'),
  );

export const newRule = (table: string, chain: string, exprs: Expr[]): NftMsg =>
  msg(NFT_MSG.NEWRULE, NLM_F.CREATE | NLM_F.APPEND, `add rule inet ${table} ${chain}`, str(1, table), str(2, chain), nest(4, ...exprs));

/** A hash set of concatenated keys: `types` (TYPE), `keyLen` bytes (each part padded to 4). */
export const newSet = (table: string, name: string, id: number, types: number[], keyLen: number): NftMsg =>
  msg(
    NFT_MSG.NEWSET,
    NLM_F.CREATE,
    `add set inet ${table} ${name}`,
    str(1, table),
    str(2, name),
    u32(3, 0),
    u32(
      4,
      types.reduce((k, t) => k * 64 + t, 0),
    ),
    u32(5, keyLen),
    u32(0xa, id),
  );

/** A nested attribute's length is 16 bits: elements go in messages of at most this many bytes. */
const ELEMENTS_MAX = 60_000;

/** Add keys to a set: as many messages as their size takes. */
export function newElements(table: string, set: string, keys: Buffer[]): NftMsg[] {
  const out: NftMsg[] = [];
  let part: Buffer[] = [];
  let size = 0;
  const flush = (): void => {
    if (!part.length) return;
    out.push(
      msg(
        NFT_MSG.NEWSETELEM,
        NLM_F.CREATE,
        `add element inet ${table} ${set} (${part.length})`,
        str(1, table),
        str(2, set),
        nest(3, ...part),
      ),
    );
    part = [];
    size = 0;
  };
  for (const k of keys) {
    const el = nest(LIST_ELEM, nest(1, attr(DATA_VALUE, k)));
    if (size + el.length > ELEMENTS_MAX) flush();
    part.push(el);
    size += el.length;
  }
  flush();
  return out;
}

/** A failed nf_tables request: the kernel's errno and the message it refused. */
export class NftError extends Error {
  readonly errno: number;
  constructor(errno: number, what: string) {
    super(`${what}: ${errnoName(errno)}`);
    this.errno = errno;
  }
}

/** What one sendmsg carries at most: the socket's send buffer holds about 200 KiB. */
const BATCH_MAX = 128 * 1024;

function header(len: number, type: number, flags: number, seq: number, family: number, resId: number): Buffer {
  const h = Buffer.alloc(HDR + 4);
  h.writeUInt32LE(len, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt8(family, HDR);
  h.writeUInt16BE(resId, HDR + 2);
  return h;
}

/**
 * Apply the messages on a NETLINK_NETFILTER socket of criu-ts's network namespace: in one
 * batch (one transaction) when they fit, else in batches sent in order, each whole or not at
 * all. Throws NftError naming the first message refused; those of earlier batches stay.
 */
export function nftApply(msgs: NftMsg[]): void {
  const own = fs.readlinkSync('/proc/thread-self/ns/net') === home;
  const fd = own ? homeSocket() : sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, NETLINK_NETFILTER);
  try {
    let seq = 1;
    for (let i = 0; i < msgs.length; ) {
      const parts: Buffer[] = [header(HDR + 4, NFNL_MSG_BATCH_BEGIN, NLM_F.REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES)];
      const bySeq = new Map<number, NftMsg>();
      let size = 2 * (HDR + 4);
      do {
        const m = msgs[i++];
        const len = HDR + 4 + m.body.length;
        parts.push(header(len, (NFNL_SUBSYS_NFTABLES << 8) | m.type, NLM_F.REQUEST | NLM_F.ACK | m.flags, seq, NFPROTO_INET, 0), m.body);
        bySeq.set(seq++, m);
        size += len;
      } while (i < msgs.length && size + HDR + 4 + msgs[i].body.length <= BATCH_MAX);
      parts.push(header(HDR + 4, NFNL_MSG_BATCH_END, NLM_F.REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES));
      transact(fd, Buffer.concat(parts), bySeq);
    }
  } finally {
    // A socket of another namespace would keep that namespace alive.
    if (!own) close(fd);
  }
}

/**
 * The NETLINK_NETFILTER socket of criu-ts's own network namespace, kept open until criu-ts
 * exits: closing one waits for the tables deleted through it to be freed (nf_tables flushes
 * its destroy work on NETLINK_URELEASE, an RCU grace period), which a restore's unlock need
 * not wait for.
 */
const home = fs.readlinkSync('/proc/self/ns/net');
let homeFd: number | undefined;
const homeSocket = (): number => (homeFd ??= sock.socket(sock.AF.NETLINK, sock.SOCK.RAW | sock.SOCK.CLOEXEC, NETLINK_NETFILTER));

/** Send one batch and read what the kernel answered while it ran it: an ack or an error per message. */
function transact(fd: number, batch: Buffer, bySeq: Map<number, NftMsg>): void {
  const n = sock.sendRaw(fd, batch, 0);
  if (n < 0) throw new NftError(-n, 'nf_tables batch');
  const buf = Buffer.alloc(64 * 1024);
  let acked = 0;
  let failed: NftError | undefined;
  // The kernel runs the batch inside sendmsg: every answer is queued when it returns.
  for (;;) {
    const got = sock.recvRaw(fd, buf, MSG_DONTWAIT);
    if (got === -EAGAIN) break;
    if (got < 0) throw new NftError(-got, 'nf_tables answer');
    for (let off = 0; off + HDR <= got; ) {
      const len = buf.readUInt32LE(off);
      if (len < HDR) break;
      if (buf.readUInt16LE(off + 4) === NLMSG.ERROR) {
        const err = -buf.readInt32LE(off + HDR);
        const m = bySeq.get(buf.readUInt32LE(off + HDR + 4 + 8));
        if (err) failed ??= new NftError(err, m?.what ?? 'nf_tables batch');
        else if (m) acked++;
      }
      off += align4(len);
    }
  }
  if (failed) throw failed;
  if (acked !== bySeq.size) throw new NftError(5, `nf_tables batch (${acked} of ${bySeq.size} messages acknowledged)`);
}

const NFT_MSG_GETTABLE = 1;

/** Does the kernel answer nf_tables requests? A dump of the tables of the inet family. */
export function nftablesPresent(): boolean {
  try {
    netlinkDump(NETLINK_NETFILTER, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, Buffer.from([NFPROTO_INET, 0, 0, 0]));
    return true;
  } catch {
    return false;
  }
}
