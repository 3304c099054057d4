// The network lock (--network-lock nftables|iptables|skip): DROP rules, in both directions,
// for the 4-tuples of the dumped tree's TCP connections, from before they go into repair mode
// until the restore lets them go (or the dump resumes the tree or fails). Without them the
// peer's segments find no socket and draw a reset. The rules are CRIU's, so that either tool
// removes the other's: an nftables table `inet CRIU-<run id>` (named as CRIU names it, from
// inventory.dump_criu_run_id) with sets of 4-tuples, or one iptables/ip6tables rule pair per
// connection. Packets marked 0xC114 (soccr's forged FIN) pass.
import fs from 'node:fs';
import { CLONE, inNamespaces } from '../../kernel/index.ts';
import type { Endpoint } from '../../soccr/index.ts';
import { failure, runInNet, runTool } from '../ns/nstool.ts';
import {
  BASE,
  HOOK,
  META,
  NftError,
  REG32_00,
  REG_1,
  TYPE,
  VERDICT,
  cmpEq,
  delTable,
  lookup,
  meta,
  newChain,
  newElements,
  newRule,
  newSet,
  newTable,
  nftApply,
  nftablesPresent,
  payload,
  verdict,
  type Expr,
  type NftMsg,
} from './nft.ts';
import type { Logger } from '../types.ts';
import type { DumpFileCtx } from '../files/types.ts';
import { now } from '../../lazy.ts';

export type LockMethod = 'iptables' | 'nftables' | 'skip';
/** inventory.network_lock_method (CRIU's NETWORK_LOCK_METHOD). */
const METHODS: LockMethod[] = ['iptables', 'nftables', 'skip'];
export const lockMethodCode = (m: LockMethod): number => METHODS.indexOf(m);
/** An inventory without the field is from a CRIU that only had iptables. */
export const lockMethodOf = (code: number | undefined): LockMethod => METHODS[code ?? 0] ?? 'iptables';
export const isLockMethod = (s: string): s is LockMethod => (METHODS as string[]).includes(s);

const MARK = 0xc114;
const ENOENT = 2;

/** One connection: its local and peer ends, addresses as text (a v4-mapped v6 one as v4). */
export interface LockedConn {
  v6: boolean;
  local: string;
  lport: number;
  peer: string;
  pport: number;
}

/** What a lock holds: all another process (guardian, next criu-ts, restore) needs to remove it. */
export interface LockSpec {
  method: LockMethod;
  /** The nftables table (inet family). */
  table: string;
  conns: LockedConn[];
  /**
   * A lock of a whole network namespace, the tree's own (CRIU's for a tree with a network
   * namespace): a task in it and the namespace's /proc link, to tell a reused pid.
   */
  netns?: { pid: number; link: string };
}

/** CRIU names the table in a 32-byte buffer: "inet CRIU-<run id>" cut to 31 characters. */
export const tableOf = (runId: string): string => `CRIU-${runId}`.slice(0, 26);

function addrText(a: Buffer): { v6: boolean; text: string } {
  const v4 =
    a.length === 4 ? a : a.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])) ? a.subarray(12) : undefined;
  if (v4) return { v6: false, text: [...v4].join('.') };
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(a.readUInt16BE(i).toString(16));
  return { v6: true, text: g.join(':') };
}

/** An endpoint as people write it: 127.0.0.1:80, [::1]:80. */
export function endpointName(e: Endpoint): string {
  const a = addrText(e.addr);
  return a.v6 ? `[${a.text}]:${e.port}` : `${a.text}:${e.port}`;
}

export function connOf(local: Endpoint, peer: Endpoint): LockedConn {
  const l = addrText(local.addr),
    p = addrText(peer.addr);
  return { v6: l.v6 || p.v6, local: l.text, lport: local.port, peer: p.text, pport: peer.port };
}

export const connKey = (c: LockedConn): string => `${c.local}:${c.lport}-${c.peer}:${c.pport}`;
export const connName = (c: LockedConn): string =>
  c.v6 ? `[${c.local}]:${c.lport} - [${c.peer}]:${c.pport}` : `${c.local}:${c.lport} - ${c.peer}:${c.pport}`;

/** Run a tool, in the network namespace at `/proc/NETNS/ns/net` when given. */
function run(cmd: string, args: string[], input: string, netns?: number): { ok: boolean; err: string } {
  const data = input ? Buffer.from(input) : undefined;
  const r = netns === undefined ? runTool(cmd, args, data) : runInNet(netns, cmd, args, data);
  return { ok: !failure(r), err: `${cmd}: ${failure(r) ?? ''}` };
}

/** An address as the kernel holds it, v4-mapped v6 as v4. */
function addrBytes(text: string, v6: boolean): Buffer {
  if (!v6) return Buffer.from(text.split('.').map(Number));
  const b = Buffer.alloc(16);
  text.split(':').forEach((g, i) => {
    b.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  return b;
}

/** A port as a set key part: network order, padded to the 4 bytes of a register. */
const portBytes = (p: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(p);
  return b;
};

/** The set keys of connections (saddr . sport . daddr . dport), each direction. */
function nftKeys(conns: LockedConn[], v6: boolean): Buffer[] {
  return conns
    .filter((c) => c.v6 === v6)
    .flatMap((c) => {
      const l = [addrBytes(c.local, v6), portBytes(c.lport)],
        p = [addrBytes(c.peer, v6), portBytes(c.pport)];
      return [Buffer.concat([...p, ...l]), Buffer.concat([...l, ...p])];
    });
}

const nftAdd = (table: string, conns: LockedConn[]): NftMsg[] =>
  [false, true].flatMap((v6) => newElements(table, v6 ? 'conns6' : 'conns4', nftKeys(conns, v6)));

/** `meta mark 0xc114 accept`: soccr's forged packets pass. */
const markAccept = (): Expr[] => {
  const mark = Buffer.alloc(4);
  mark.writeUInt32LE(MARK);
  return [meta(META.MARK, REG_1), cmpEq(REG_1, mark), verdict(VERDICT.accept)];
};

/** `ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop` (ip6 and conns6 for v6). */
function connDrop(v6: boolean, setId: number): Expr[] {
  const [alen, at, set] = v6 ? [16, 8, 'conns6'] : [4, 12, 'conns4'];
  // Each part starts at a 32-bit register; an address fills as many as it needs.
  const sport = REG32_00 + alen / 4,
    daddr = sport + 1,
    dport = daddr + alen / 4;
  return [
    meta(META.NFPROTO, REG_1),
    cmpEq(REG_1, Buffer.from([v6 ? 10 : 2])),
    meta(META.L4PROTO, REG_1),
    cmpEq(REG_1, Buffer.from([6])),
    payload(BASE.network, at, alen, REG_1),
    payload(BASE.transport, 0, 2, sport),
    payload(BASE.network, at + alen, alen, daddr),
    payload(BASE.transport, 2, 2, dport),
    lookup(set, REG_1, setId),
    verdict(VERDICT.drop),
  ];
}

function nftCreate(table: string): NftMsg[] {
  const out = [newTable(table)];
  for (const hook of ['output', 'input'] as const) out.push(newChain(table, hook, HOOK[hook]), newRule(table, hook, markAccept()));
  for (const [id, v6] of [
    [1, false],
    [2, true],
  ] as const) {
    const a = v6 ? TYPE.ipv6_addr : TYPE.ipv4_addr;
    out.push(newSet(table, v6 ? 'conns6' : 'conns4', id, [a, TYPE.inet_service, a, TYPE.inet_service], v6 ? 40 : 16));
    for (const hook of ['output', 'input']) out.push(newRule(table, hook, connDrop(v6, id)));
  }
  return out;
}

/** Apply nf_tables messages; the error's first line, or undefined. */
function nft(msgs: NftMsg[]): string | undefined {
  try {
    nftApply(msgs);
    return undefined;
  } catch (e) {
    return `nf_tables: ${(e as Error).message}`;
  }
}

/** CRIU's rule pair for a connection: what comes from the peer, and what goes to it. */
function iptRules(c: LockedConn): string[] {
  const m = `-p tcp -m mark ! --mark 0x${MARK.toString(16)}`;
  return [
    `INPUT ${m} -s ${c.peer} --sport ${c.pport} -d ${c.local} --dport ${c.lport} -j DROP`,
    `OUTPUT ${m} -s ${c.local} --sport ${c.lport} -d ${c.peer} --dport ${c.pport} -j DROP`,
  ];
}

function iptables(conns: LockedConn[], op: '-I' | '-D'): string | undefined {
  for (const v6 of [false, true]) {
    const rules = conns.filter((c) => c.v6 === v6).flatMap(iptRules);
    if (!rules.length) continue;
    const r = run(
      v6 ? 'ip6tables-restore' : 'iptables-restore',
      ['-w', '--noflush'],
      `*filter\n${rules.map((x) => `${op} ${x}\n`).join('')}COMMIT\n`,
    );
    if (r.ok) continue;
    if (op === '-I') return r.err;
    // One batch is all or nothing: a rule already gone fails it, so remove them one by one.
    for (const x of rules) run(v6 ? 'ip6tables' : 'iptables', ['-w', '-D', ...x.split(' ')], '');
  }
  return undefined;
}

/**
 * Lock connections: the first call for a spec creates the table (nftables). Throws with
 * the tool's first line when the rules cannot be added.
 */
export function lockConns(spec: LockSpec, conns: LockedConn[], create: boolean): void {
  if (spec.method === 'skip' || (!conns.length && !create)) return;
  if (spec.method === 'nftables') {
    const err = nft([...(create ? nftCreate(spec.table) : []), ...nftAdd(spec.table, conns)]);
    if (err) throw new Error(`cannot lock the network with nftables: ${err}`);
    return;
  }
  const err = iptables(conns, '-I');
  if (err) throw new Error(`cannot lock the network with iptables: ${err}`);
}

/** Remove a lock. A rule or table already gone is no error; anything else is returned. */
export function unlock(spec: LockSpec): string | undefined {
  if (spec.method === 'skip') return undefined;
  if (spec.netns) return unlockNetns(spec, spec.netns);
  if (spec.method === 'nftables') return nftDrop(spec.table);
  return iptables(spec.conns, '-D');
}

/** Delete a lock's table; one already gone is no error. */
function nftDrop(table: string): string | undefined {
  try {
    nftApply([delTable(table)]);
    return undefined;
  } catch (e) {
    return e instanceof NftError && e.errno === ENOENT ? undefined : `nf_tables: ${(e as Error).message}`;
  }
}

/** Does this machine have what a method needs? nftables: a lock's whole table made and deleted. */
export function lockAvailable(m: LockMethod): boolean {
  if (m === 'skip') return true;
  if (m === 'nftables') {
    const table = `CRIU-check-${process.pid}`;
    const conn = { v6: true, local: '0:0:0:0:0:0:0:1', lport: 1, peer: '0:0:0:0:0:0:0:1', pport: 2 };
    const made = nft([
      ...nftCreate(table),
      ...nftAdd(table, [conn, { v6: false, local: '127.0.0.1', lport: 1, peer: '127.0.0.1', pport: 2 }]),
    ]);
    return made === undefined && nftDrop(table) === undefined;
  }
  return ['iptables', 'ip6tables'].every((cmd) => run(cmd, ['-w', '-L', 'INPUT', '-n'], '').ok);
}

/**
 * A dump's lock, taken once for every connection of the tree before the first goes into
 * repair mode; a connection it did not see then is added on its own. `record` is told the
 * whole spec before any rule is added, so that whoever must undo it knows it.
 */
export class DumpLock {
  readonly spec: LockSpec;
  readonly t0 = now();
  private readonly keys = new Set<string>();
  private readonly record: (spec: LockSpec) => void;
  constructor(method: LockMethod, runId: string, record: (spec: LockSpec) => void) {
    this.spec = { method, table: tableOf(runId), conns: [] };
    this.record = record;
  }

  /** Lock these connections too (those not locked yet). */
  add(conns: LockedConn[], create = false): void {
    const fresh = conns.filter((c) => !this.keys.has(connKey(c)));
    for (const c of fresh) {
      this.keys.add(connKey(c));
      this.spec.conns.push(c);
    }
    if (!fresh.length && !create) return;
    this.record(this.spec);
    lockConns(this.spec, fresh, create);
  }

  /** Milliseconds since the lock was taken. */
  ms(): string {
    return (now() - this.t0).toFixed(1);
  }
}

/**
 * CRIU's lock of a whole network namespace: everything in and out is dropped but soccr's
 * marked packets, by an nftables table `inet CRIU-<run id>` whose input and output chains
 * drop by policy, or an iptables/ip6tables chain CRIU jumped to from INPUT and OUTPUT.
 */
function netnsLockNft(table: string): NftMsg[] {
  return [
    newTable(table, true),
    ...(['output', 'input'] as const).flatMap((hook) => [
      newChain(table, hook, HOOK[hook], VERDICT.drop),
      newRule(table, hook, markAccept()),
    ]),
  ];
}

const netnsLockScript = (): string =>
  `*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n-A CRIU -m mark --mark 0x${MARK.toString(16)} -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n`;

const iptFamilies = (): Array<'iptables' | 'ip6tables'> => (fs.existsSync('/proc/sys/net/ipv6') ? ['iptables', 'ip6tables'] : ['iptables']);

/** Is the namespace of the spec still the one that was locked? A reused pid's is not. */
function reachable(ns: { pid: number; link: string }): boolean {
  try {
    return fs.readlinkSync(`/proc/${ns.pid}/ns/net`) === ns.link;
  } catch {
    return false;
  }
}

/** Lock the whole network namespace of `pid`; throws with the tool's first line. */
export function lockNetns(spec: LockSpec): void {
  if (spec.method === 'skip' || !spec.netns) return;
  const fail = (err: string, ns: { pid: number; link: string }): never => {
    unlockNetns(spec, ns);
    throw new Error(`cannot lock the network namespace of ${ns.pid} with ${spec.method}: ${err}`);
  };
  if (spec.method === 'nftables') {
    const table = spec.table;
    const err = inNamespaces(spec.netns.pid, CLONE.NEWNET, () => nft(netnsLockNft(table)));
    if (err) fail(err, spec.netns);
    return;
  }
  for (const f of iptFamilies()) {
    const r = run(`${f}-restore`, ['-w', '--noflush'], netnsLockScript(), spec.netns.pid);
    if (!r.ok) fail(r.err, spec.netns);
  }
}

/** Undo lockNetns: a namespace gone, or a lock not there, is no error. */
function unlockNetns(spec: LockSpec, ns: { pid: number; link: string }): string | undefined {
  if (!reachable(ns)) return undefined;
  if (spec.method === 'nftables') {
    const table = spec.table;
    return inNamespaces(ns.pid, CLONE.NEWNET, () => nftDrop(table));
  }
  for (const f of iptFamilies()) {
    const restore = (body: string) => run(`${f}-restore`, ['-w', '--noflush'], `*filter\n:CRIU - [0:0]\n${body}COMMIT\n`, ns.pid);
    // Each jump on its own: a batch fails whole when one of them is already gone.
    for (const chain of ['INPUT', 'OUTPUT'])
      while (run(f, ['-w', '-C', chain, '-j', 'CRIU'], '', ns.pid).ok) if (!restore(`-D ${chain} -j CRIU\n`).ok) break;
    if (run(f, ['-w', '-n', '-L', 'CRIU'], '', ns.pid).ok) {
      const r = restore('-X CRIU\n');
      if (!r.ok) return r.err;
    }
  }
  return undefined;
}

/** The method when --network-lock does not name one: nftables where the kernel has it. */
let probed: LockMethod | undefined;
export const defaultLockMethod = (): LockMethod => (probed ??= nftablesPresent() ? 'nftables' : 'iptables');

const say = (log: Logger, msg: string): void => (log.always ? log.always(msg) : log.info(msg));

/**
 * Lock the network namespace the tree owns (`pid` is in it) as a whole, as CRIU does, before
 * any of it is saved: the lock is then part of its saved rules, and the restore removes it. A
 * dump that fails or leaves the tree running removes it at its end.
 */
export function lockTreeNetns(pid: number, ctx: DumpFileCtx): LockSpec | undefined {
  const method = ctx.tcp.networkLock ?? defaultLockMethod();
  const spec: LockSpec = { method, table: tableOf(ctx.runId), conns: [], netns: { pid, link: fs.readlinkSync(`/proc/${pid}/ns/net`) } };
  ctx.recordLock(spec);
  if (method === 'skip') return undefined;
  const t0 = now();
  lockNetns(spec);
  ctx.log.info(
    `network namespace of ${pid} locked with ${method}${method === 'nftables' ? ` (table inet ${spec.table})` : ' (chain CRIU)'}`,
  );
  ctx.atEnd((how) => {
    const ms = (now() - t0).toFixed(1);
    if (how === 'killed')
      return say(ctx.log, `network namespace lock kept (${ms} ms in the dump): it is in the saved rules, the restore removes it`);
    const err = unlock(spec);
    if (err) ctx.log.error(`cannot unlock the network namespace: ${err}`);
    say(ctx.log, `network namespace locked for ${ms} ms`);
  });
  return spec;
}
