// Established TCP connections (--tcp-established): frozen in repair mode on the dump's copy and
// saved to tcp-stream-<ino>.img through soccr, recreated in place on restore. With --tcp-close
// they are recorded without their stream and come back as closed sockets.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sock, SysError } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import * as soccr from '../../soccr/index.ts';
import { RepairGuard } from '../../soccr/guard.ts';
import type { DumpFileCtx, RestoreFileCtx } from '../files/types.ts';
import { diagOf, type DiagSock } from './diag.ts';
import { socketHolders } from './sockfd.ts';
import { DumpLock, connOf, defaultLockMethod, lockMethodOf, tableOf, unlock, type LockedConn, type LockSpec } from './netlock.ts';
import type { Message } from '../types.ts';
export { defaultLockMethod } from './netlock.ts';
import { CriuError } from '../../errors.ts';
import { now } from '../../lazy.ts';

const { SOL, SO } = sock;
const BIG_BUF = 0x3fffffff; // INT_MAX / 2: any saved queue fits while it is put back

/** The guardian is criu-ts itself, started with this hidden command (src/cli/main.ts). */
export const GUARD_COMMAND = '__soccr-guard';

/**
 * The guardian's command: its own small bundle beside criu-ts's (bin/criu-ts builds it), which
 * starts in about half the time of the whole CLI, else criu-ts's hidden command.
 */
function guardArgv(): string[] {
  const own = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './guard-main.ts' : './guard-main.mjs', import.meta.url));
  return fs.existsSync(own) ? [process.execPath, own] : [process.execPath, process.argv[1], GUARD_COMMAND];
}

/** What one dump holds for its connections: the guardian, the network lock, the frozen sockets. */
export interface TcpDump {
  guard?: RepairGuard;
  lock?: DumpLock;
  frozen: Array<{ f: soccr.Frozen; where: string }>;
  /** Sockets (inodes) the guardian was told of. */
  noted: Set<number>;
  /** criu-ts's copy of a task's fd, kept for the dump (the inet kind's). */
  copy?: (pid: number, fd: number) => number;
  /** sock_diag's sockets by "family:protocol", read once per dump (the inet kind's). */
  diag: Map<string, Map<number, DiagSock>>;
}

/** A connection of the tree: one fd that has it, and its ends. */
interface TreeConn {
  pid: number;
  fd: number;
  ino: number;
  conn: LockedConn;
}

/** A TCP socket state that is a connection (or was one), not a listener or a fresh socket. */
export const isConnection = (state: number): boolean => state !== soccr.TCP_STATE.LISTEN && state !== soccr.TCP_STATE.CLOSE;

/**
 * Saved through repair mode: a connection in any state but a listener's, including one reset
 * (CLOSE) that still knows its peer: its unread data stays readable after restore, as in CRIU.
 */
export const repaired = (state: number, dstPort: number): boolean =>
  isConnection(state) || (state === soccr.TCP_STATE.CLOSE && dstPort !== 0);

/** A guardian started ahead (prestartGuard) that no connection has taken yet. */
let early: RepairGuard | undefined;

/**
 * Start the guardian of a dump that may meet TCP connections (--tcp-established) before the
 * tree is even frozen: a guardian is a process of its own whose start-up would otherwise hold up
 * the first connection's dump. A dump that meets none lets it go at its end.
 */
export function prestartGuard(atEnd: (fn: () => void) => void): void {
  if (early) return;
  const g = RepairGuard.start(guardArgv());
  early = g;
  atEnd(() => {
    if (early !== g) return;
    early = undefined;
    g.done(false);
  });
}

/** The TCP connections of the tree's sockets, as sock_diag names their ends. */
function treeConnections(pids: number[], ts: TcpDump): TreeConn[] {
  const inos = socketHolders(pids);
  const out: TreeConn[] = [];
  for (const family of [sock.AF.INET, sock.AF.INET6])
    for (const [ino, s] of diagOf(ts.diag, family, sock.IPPROTO.TCP)) {
      const at = inos.get(ino);
      if (at && isConnection(s.state)) out.push({ ...at, ino, conn: connOf(s.src, s.dst) });
    }
  return out;
}

/**
 * Tell the guardian of every connection of the tree in one go: a round trip per connection
 * cost more than the rest of its dump. A socket it cannot copy here is noted on its own later.
 */
function noteAll(conns: TreeConn[], g: RepairGuard, ts: TcpDump, ctx: DumpFileCtx): void {
  const batch: Array<{ pid: number; fd: number; ino: number; reuseaddr: number }> = [];
  for (const c of conns) {
    let copy: number | undefined;
    try {
      copy = ts.copy?.(c.pid, c.fd);
    } catch {
      /* noted with its fd's dump */
    }
    if (copy === undefined) continue;
    batch.push({ pid: c.pid, fd: c.fd, ino: c.ino, reuseaddr: sock.getsockoptInt(copy, SOL.SOCKET, SO.REUSEADDR) });
    ts.noted.add(c.ino);
  }
  ctx.recordRepair(batch);
  g.noteMany(batch);
}

/**
 * The first connection of a dump starts its guardian and locks the network for every
 * connection of the tree at once. At the end the lock goes before repair mode (so that the
 * window probe reaches the peer), unless the tree was killed: then it stays for the restore.
 */
function begin(ctx: DumpFileCtx, ts: TcpDump): void {
  if (ts.guard) return;
  const g = early ?? RepairGuard.start(guardArgv());
  early = undefined;
  ts.guard = g;
  ctx.log.debug(`TCP repair guardian: pid ${g.pid}`);
  ctx.atEnd((how) => g.done(how === 'killed'));
  ctx.atEnd((how) => {
    const lock = ts.lock;
    if (lock && how === 'killed') {
      say(ctx, `network lock kept (locked for ${lock.ms()} ms in the dump): the restore removes it, or criu-ts network-unlock -D DIR`);
      return;
    }
    if (lock) {
      const err = unlock(lock.spec);
      if (err) ctx.log.error(`cannot unlock the network: ${err}`);
      say(ctx, `network locked for ${lock.ms()} ms`);
    }
    for (const { f, where } of ts.frozen.splice(0)) {
      try {
        soccr.resume(f);
      } catch (e) {
        ctx.log.error(`${where}: cannot turn TCP repair off: ${(e as Error).message}`);
      }
    }
  });
  if (ctx.netnsLock) {
    // The namespace is locked as a whole: the guardian removes that lock if criu-ts dies.
    g.extra(JSON.stringify(ctx.netnsLock));
    noteAll(treeConnections(ctx.treePids, ts), g, ts, ctx);
    return;
  }
  // While the guardian starts: which lock, and the connections (noteAll waits for it).
  const method = ctx.tcp.networkLock ?? defaultLockMethod();
  const lock = new DumpLock(method, ctx.runId, (spec) => {
    ctx.recordLock(spec);
    g.extra(JSON.stringify(spec));
  });
  const conns = treeConnections(ctx.treePids, ts);
  noteAll(conns, g, ts, ctx);
  if (method === 'skip') return ctx.recordLock(lock.spec);
  ts.lock = lock;
  lock.add(
    conns.map((c) => c.conn),
    true,
  );
  ctx.log.info(
    `network locked with ${method}${method === 'nftables' ? ` (table inet ${lock.spec.table})` : ''}: ${lock.spec.conns.length} connection(s)`,
  );
}

const say = (ctx: { log: DumpFileCtx['log'] }, msg: string): void => (ctx.log.always ? ctx.log.always(msg) : ctx.log.info(msg));

/**
 * Freeze the connection on criu-ts's copy and save it, its 4-tuple locked first. Repair mode
 * stays on until the dump ends: a killed tree's socket then closes without a word to the peer
 * (the copy is closed after the kill), and a resumed or failed dump turns it off again.
 */
export function dumpConnection(
  copy: number,
  target: { pid: number; fd: number; ino: number },
  ends: { src: soccr.Endpoint; dst: soccr.Endpoint },
  where: string,
  ctx: DumpFileCtx,
  ts: TcpDump,
): void {
  if (ctx.tcp.close) return;
  if (!ctx.tcp.established) throw new Error(`${where}: an established TCP connection; --tcp-established dumps it (or --tcp-close)`);
  const { ino } = target;
  begin(ctx, ts);
  ts.lock?.add([connOf(ends.src, ends.dst)]);
  // The guardian turns repair off again if criu-ts dies before the dump ends; the journal, if both die.
  if (!ts.noted.has(ino)) {
    const reuseaddr = sock.getsockoptInt(copy, SOL.SOCKET, SO.REUSEADDR);
    ctx.recordRepair([{ pid: target.pid, fd: target.fd, ino, reuseaddr }]);
    ts.guard?.note(target.pid, target.fd, ino, reuseaddr);
    ts.noted.add(ino);
  }
  ts.frozen.push({ f: soccr.freeze(copy), where });
  const st = soccr.save(copy, ends.dst);
  ctx.log.debug(
    `${where}: TCP ${st.inq.length} bytes to read, ${st.outq.length} to send (${st.unsqLen} unsent), seqs ${st.inqSeq}/${st.outqSeq}`,
  );
  ctx.addEntry(
    IMG.TCP_STREAM,
    ino,
    {
      inq_len: st.inq.length,
      inq_seq: st.inqSeq,
      outq_len: st.outq.length,
      outq_seq: st.outqSeq,
      opt_mask: st.optMask,
      snd_wscale: st.sndWscale,
      mss_clamp: st.mssClamp,
      rcv_wscale: st.rcvWscale,
      unsq_len: st.unsqLen,
      ...(st.timestamp !== undefined ? { timestamp: st.timestamp } : {}),
      ...(st.window
        ? {
            snd_wl1: st.window.sndWl1,
            snd_wnd: st.window.sndWnd,
            max_window: st.window.maxWindow,
            rcv_wnd: st.window.rcvWnd,
            rcv_wup: st.window.rcvWup,
          }
        : {}),
    },
    Buffer.concat([st.inq, st.outq]),
  );
}

function bytesOf(w: number[], family: number): Buffer {
  const b = Buffer.alloc(family === sock.AF.INET ? 4 : 16);
  w.forEach((v, i) => {
    if (i * 4 < b.length) b.writeUInt32LE(v >>> 0, i * 4);
  });
  return b;
}
export function entryEndpoints(e: Message<'inet_sk_entry'>): { src: soccr.Endpoint; dst: soccr.Endpoint } {
  return {
    src: { family: e.family, addr: bytesOf(e.src_addr, e.family), port: e.src_port },
    dst: { family: e.family, addr: bytesOf(e.dst_addr, e.family), port: e.dst_port },
  };
}

/** What makes an inet_sk_entry impossible to restore, or undefined (files.img validation). */
export function inetEntryProblem(e: Message<'inet_sk_entry'>): string | undefined {
  if (e.family !== sock.AF.INET && e.family !== sock.AF.INET6) return `family ${e.family} is not AF_INET or AF_INET6`;
  const words = e.family === sock.AF.INET ? 1 : 4;
  if (e.src_addr.length < words || e.dst_addr.length < words) return `an address of fewer than ${words} word(s)`;
  if (e.src_port > 0xffff || e.dst_port > 0xffff) return `port ${Math.max(e.src_port, e.dst_port)} is above 65535`;
  if (
    e.proto === sock.IPPROTO.TCP &&
    e.state !== soccr.TCP_STATE.LISTEN &&
    e.state !== soccr.TCP_STATE.CLOSE &&
    !soccr.handledState(e.state)
  )
    return `TCP state ${e.state} (${soccr.stateName(e.state)}) is not one a socket can be restored in`;
  if (e.shutdown !== undefined && (e.shutdown < 0 || e.shutdown > 3)) return `shutdown ${e.shutdown} is not 0..3`;
  return undefined;
}

/**
 * The lock a dump left on the images' connections (CRIU's or criu-ts's: the rules are the
 * same), to remove once they are back or the restore failed.
 */
export function restoreLock(inv: Message<'inventory_entry'>, entries: Array<Message<'inet_sk_entry'>>): LockSpec | undefined {
  // A --tcp-close dump locks nothing: its connections are not kept.
  if (inv.tcp_close) return undefined;
  const conns = entries
    .filter((e) => e.proto === sock.IPPROTO.TCP && repaired(e.state, e.dst_port))
    .map((e) => {
      const { src, dst } = entryEndpoints(e);
      return connOf(src, dst);
    });
  if (!conns.length) return undefined;
  return { method: lockMethodOf(inv.network_lock_method), table: tableOf(inv.dump_criu_run_id ?? ''), conns };
}

/** The lock a dump left on the whole network namespace of the tree, which `root` is in now. */
export function netnsLockOf(inv: Message<'inventory_entry'>, root: number): LockSpec {
  return {
    method: lockMethodOf(inv.network_lock_method),
    table: tableOf(inv.dump_criu_run_id ?? ''),
    conns: [],
    netns: { pid: root, link: fs.readlinkSync(`/proc/${root}/ns/net`) },
  };
}

/** Remove the dump's lock in a restore that started at `t0`. */
export function releaseLock(spec: LockSpec, log: DumpFileCtx['log'], t0: number): void {
  if (spec.method === 'skip') return;
  const err = unlock(spec);
  if (err) log.error(`cannot unlock the network: ${err}`);
  say({ log }, `network locked for ${(now() - t0).toFixed(1)} ms of the restore, since its start (the dump kept the lock)`);
}

/** Recreate a saved connection on a fresh socket, out of repair mode when it returns. */
export function restoreConnection(
  fd: number,
  e: Message<'inet_sk_entry'>,
  eps: { src: soccr.Endpoint; dst: soccr.Endpoint },
  where: string,
  ctx: RestoreFileCtx,
): void {
  if (ctx.tcp.close) {
    try {
      sock.shutdown(fd, sock.SHUT.RDWR);
    } catch (err) {
      if (!(err instanceof SysError && err.code === 'ENOTCONN')) throw err;
    }
    return;
  }
  if (!ctx.tcp.established) throw new Error(`${where}: an established TCP connection; restore it with --tcp-established (or --tcp-close)`);
  const recs = ctx.entries(IMG.TCP_STREAM, e.ino);
  const rec = recs[0];
  if (!rec) throw new Error(`${where}: no tcp-stream-${e.ino.toString(16)}.img`);
  const t = rec.entry;
  const data = rec.extra ?? Buffer.alloc(0);
  const img = `tcp-stream-${e.ino.toString(16)}.img`;
  if (data.length !== t.inq_len + t.outq_len)
    throw new CriuError(`${img}: ${data.length} bytes of queues, expected inq_len + outq_len = ${t.inq_len + t.outq_len}`);
  if ((t.unsq_len ?? 0) > t.outq_len) throw new CriuError(`${img}: unsq_len ${t.unsq_len} is above outq_len ${t.outq_len}`);
  const st: soccr.TcpState = {
    state: e.state,
    src: eps.src,
    dst: eps.dst,
    inqSeq: t.inq_seq,
    inq: data.subarray(0, t.inq_len),
    outqSeq: t.outq_seq,
    outq: data.subarray(t.inq_len),
    unsqLen: t.unsq_len ?? 0,
    optMask: t.opt_mask,
    sndWscale: t.snd_wscale,
    rcvWscale: t.rcv_wscale ?? 0,
    mssClamp: t.mss_clamp,
    ...(t.timestamp !== undefined ? { timestamp: t.timestamp } : {}),
    ...(t.snd_wl1 !== undefined &&
    t.snd_wnd !== undefined &&
    t.max_window !== undefined &&
    t.rcv_wnd !== undefined &&
    t.rcv_wup !== undefined
      ? { window: { sndWl1: t.snd_wl1, sndWnd: t.snd_wnd, maxWindow: t.max_window, rcvWnd: t.rcv_wnd, rcvWup: t.rcv_wup } }
      : {}),
  };
  // Room for the whole saved queues; the task's own sizes are set afterwards.
  for (const opt of [SO.SNDBUFFORCE, SO.RCVBUFFORCE]) {
    try {
      sock.setsockoptInt(fd, SOL.SOCKET, opt, BIG_BUF);
    } catch {
      /* not in the initial user ns */
    }
  }
  soccr.restore(fd, st);
  ctx.log.debug(`${where}: TCP connection ${st.inq.length}/${st.outq.length} bytes queued, restored in repair mode`);
  // The states past a FIN come from segments sent "by the peer" (soccr/fin.ts): one dropped
  // on its way leaves the connection a state short, which the task sees only as a reset later.
  const now = soccr.tcpInfo(fd).state;
  if (now !== st.state)
    ctx.log.warn(
      `${where}: TCP connection restored in ${soccr.stateName(now)}, not ${soccr.stateName(st.state)}: a segment from the peer sent again did not reach it (a netfilter rule dropped it?)`,
    );
  // Out of repair once every socket of the tree exists: a connection whose two ends are both
  // in the tree must not answer the other's segments (the window probe) before it is there.
  ctx.beforeRelease(() => {
    soccr.resume(soccr.frozen(fd, e.opts.reuseaddr ? 1 : 0));
  });
}
