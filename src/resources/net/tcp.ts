// Established TCP connections (--tcp-established): frozen in repair mode on the dump's copy and
// saved to tcp-stream-<ino>.img through soccr, recreated in place on restore. With --tcp-close
// they are recorded without their stream and come back as closed sockets.
import { sock, SysError } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import * as soccr from '../../soccr/index.ts';
import { RepairGuard } from '../../soccr/guard.ts';
import type { DumpFileCtx, RestoreFileCtx } from '../files/types.ts';
import type { Message } from '../types.ts';

const { SOL, SO } = sock;
const BIG_BUF = 0x3fffffff; // INT_MAX / 2: any saved queue fits while it is put back

/** The guardian is criu-ts itself, started with this hidden command (src/cli/main.ts). */
export const GUARD_COMMAND = '__soccr-guard';

/** One guardian for the dump, started with the first connection and told at its end that all is done. */
export function startGuard(ctx: DumpFileCtx): RepairGuard {
  const g = RepairGuard.start([process.execPath, process.argv[1], GUARD_COMMAND]);
  ctx.log.debug(`TCP repair guardian: pid ${g.pid}`);
  ctx.atEnd((how) => g.done(how === 'killed'));
  return g;
}

/** A TCP socket state that is a connection (or was one), not a listener or a fresh socket. */
export const isConnection = (state: number): boolean => state !== soccr.TCP_STATE.LISTEN && state !== soccr.TCP_STATE.CLOSE;

/**
 * Freeze the connection on criu-ts's copy and save it. Repair mode stays on until the dump
 * ends: a killed tree's socket then closes without a word to the peer (the copy is closed
 * after the kill), and a resumed or failed dump turns it off again.
 */
export function dumpConnection(
  copy: number,
  target: { pid: number; fd: number; ino: number },
  where: string,
  ctx: DumpFileCtx,
  noted: () => void,
): void {
  if (ctx.tcp.close) return;
  if (!ctx.tcp.established) throw new Error(`${where}: an established TCP connection; --tcp-established dumps it (or --tcp-close)`);
  const { ino } = target;
  // The guardian holds it (and turns repair off again if criu-ts dies before the dump ends).
  noted();
  const frozen = soccr.freeze(copy);
  ctx.atEnd((how) => {
    if (how === 'killed') return;
    try {
      soccr.resume(frozen);
    } catch (e) {
      ctx.log.error(`${where}: cannot turn TCP repair off: ${(e as Error).message}`);
    }
  });
  const st = soccr.save(copy);
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
  if (data.length !== t.inq_len + t.outq_len)
    throw new Error(`tcp-stream-${e.ino.toString(16)}.img: ${data.length} bytes of queues, expected ${t.inq_len + t.outq_len}`);
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
  // Out of repair once every socket of the tree exists: a connection whose two ends are both
  // in the tree must not answer the other's segments (the window probe) before it is there.
  ctx.beforeRelease(() => {
    soccr.resume(soccr.frozen(fd, e.opts.reuseaddr ? 1 : 0));
  });
}
