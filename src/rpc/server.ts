// Serving one RPC connection (CRIU's cr_service_work): read a request, answer it, and go on
// while the client asked to keep the session open. Every failure is a reply with the request's
// type, success false, cr_errno and cr_errmsg; a request that cannot be read gets an EMPTY one.
import fs from 'node:fs';
import path from 'node:path';
import { CriuError } from '../errors.ts';
import { LevelLogger } from '../log.ts';
import { setRecvTimeout, waitpid, SysError, memTrackWorks } from '../kernel/index.ts';
import { checkNamespaces } from '../resources/task/index.ts';
import type { NetOptions } from '../resources/ns/index.ts';
import { joinNetPath } from '../resources/ns/types.ts';
import { dump } from '../dump/dump.ts';
import { restore } from '../restore/restore.ts';
import { runCheck } from '../cli/check.ts';
import { startPageServer } from '../migrate/start.ts';
import { cpuinfo } from '../dump/cpuinfo.ts';
import { cleanStale } from '../dump/journal.ts';
import { checkDumpDir, checkRestoreDir, encodeMessage } from '../images/index.ts';
import { armInterrupts, dieOfInterrupt } from '../interrupt.ts';
import type { ActionName, RunAction } from '../actions.ts';
import { BadRequest, REQ, type RpcConn, typeName, type CriuReq, type CriuResp } from './conn.ts';
import {
  EBADRQC,
  mountsOf,
  resolvePaths,
  screenOpts,
  type CriuOpts,
  type RpcMode,
  type RpcPaths,
  type Screened,
  trustsImages,
  tcpOf,
  noOpts,
} from './options.ts';
import { CG_MODE, leaveCgroups } from '../resources/cgroups.ts';

/** What criu-ts reports to VERSION: CRIU's release whose images and RPC it speaks. */
export const RPC_VERSION = { major_number: 4, minor_number: 2, name: 'criu-ts' };
const EAGAIN = 11,
  ETIMEDOUT = 110;
/** The only request types a session may stay open after (CRIU's chk_keepopen_req). */
const KEEP_OPEN_OK = new Set<number>([
  REQ.PAGE_SERVER,
  REQ.PAGE_SERVER_CHLD,
  REQ.CPUINFO_DUMP,
  REQ.CPUINFO_CHECK,
  REQ.FEATURE_CHECK,
  REQ.VERSION,
]);

export interface ServeOptions {
  mode: RpcMode;
  /**
   * How long the client may take to send each request (service: one silent client would hold
   * every other, as they are served in turn); notifications' answers may take any time.
   */
  requestTimeoutMs?: number;
  /** Command-line --action-script programs, run after each notification is acknowledged. */
  scripts: (imagesDir: string) => RunAction | undefined;
  /**
   * Where bin/criu-ts keeps the version probe's request and answer, to answer the next ones
   * itself (swrk): written by the first VERSION served.
   */
  versionReplay?: string;
}

/** How a connection ended: 0 served, 1 a request failed, 255 the client broke the protocol. */
export type ServeResult = 0 | 1 | 255;

export function serveConnection(conn: RpcConn, o: ServeOptions): ServeResult {
  let preDumped = false;
  for (;;) {
    let req: CriuReq | undefined;
    try {
      if (o.requestTimeoutMs) setRecvTimeout(conn.fd, o.requestTimeoutMs);
      req = conn.recv();
      if (o.requestTimeoutMs) setRecvTimeout(conn.fd, 0);
    } catch (e) {
      let err: { cr_errno: number; cr_errmsg: string };
      if (e instanceof BadRequest) err = { cr_errno: e.crErrno, cr_errmsg: e.message };
      else if (e instanceof SysError && e.errno === EAGAIN)
        err = { cr_errno: ETIMEDOUT, cr_errmsg: `no request within ${o.requestTimeoutMs} ms` };
      else throw e;
      reply(conn, { type: REQ.EMPTY, success: false, ...err });
      return 255;
    }
    if (!req) return 255;
    if (req.keep_open && !KEEP_OPEN_OK.has(req.type)) {
      reply(conn, { type: REQ.EMPTY, success: false, cr_errno: EBADRQC, cr_errmsg: `keep_open is not allowed for ${typeName(req.type)}` });
      return 255;
    }
    if (preDumped && req.type !== REQ.PRE_DUMP && req.type !== REQ.DUMP) {
      // After a PRE_DUMP only more of them or the DUMP that ends the series, as CRIU answers.
      reply(conn, { type: REQ.EMPTY, success: false, cr_errno: EBADRQC, cr_errmsg: `Invalid req after PRE_DUMP: ${typeName(req.type)}` });
      return 255;
    }
    const ok = handle(conn, req, o);
    if (!ok) return 1;
    preDumped = req.type === REQ.PRE_DUMP;
    if (!req.keep_open && !preDumped) return 0;
  }
}

/**
 * The canonical version probe ({type: VERSION}, what runc, go-criu and pycriu send) and its
 * answer, for bin/criu-ts to compare and replay byte for byte. Each file is put in place whole.
 */
function writeVersionReplay(dir: string, resp: CriuResp): void {
  const put = (name: string, b: Buffer): void => {
    const tmp = path.join(dir, `.${name}.${process.pid}`);
    fs.writeFileSync(tmp, b);
    fs.renameSync(tmp, path.join(dir, name));
  };
  try {
    put('version.req', encodeMessage('criu_req', { type: REQ.VERSION }));
    put('version.resp', encodeMessage('criu_resp', resp));
  } catch {
    /* no replay then: every probe starts criu-ts */
  }
}

/** Sends a reply; a client that has gone is not an error of the server. */
function reply(conn: RpcConn, resp: CriuResp): boolean {
  try {
    conn.send(resp);
    return true;
  } catch (e) {
    if (e instanceof SysError) return false;
    throw e;
  }
}

function failure(type: number, e: unknown, log?: LevelLogger): CriuResp {
  const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
  const crErrno = e instanceof CriuError ? e.crErrno : e instanceof SysError ? e.errno : undefined;
  return { type, success: false, cr_errno: crErrno, cr_errmsg: log?.firstError ?? msg };
}

function handle(conn: RpcConn, req: CriuReq, o: ServeOptions): boolean {
  switch (req.type) {
    case REQ.VERSION: {
      const resp = { type: REQ.VERSION, success: true, version: RPC_VERSION };
      if (o.versionReplay) writeVersionReplay(o.versionReplay, resp);
      return reply(conn, resp);
    }
    case REQ.FEATURE_CHECK: {
      // Answered for criu-ts: lazy pages and the pidfd store are not used yet.
      const f = req.features ?? {};
      const features = {
        mem_track: f.mem_track ? memTrackWorks() : undefined,
        lazy_pages: f.lazy_pages ? false : undefined,
        pidfd_store: f.pidfd_store ? false : undefined,
      };
      return reply(conn, { type: REQ.FEATURE_CHECK, success: true, features });
    }
    case REQ.WAIT_PID: {
      try {
        // 0 would wait for any child of the process group: a pid is required.
        if (!req.pid) throw new CriuError('WAIT_PID needs a pid', 22 /* EINVAL */);
        const { status } = waitpid(req.pid, 0);
        return reply(conn, { type: REQ.WAIT_PID, success: true, status });
      } catch (e) {
        reply(conn, failure(REQ.WAIT_PID, e));
        return false;
      }
    }
    case REQ.DUMP:
    case REQ.RESTORE:
    case REQ.CHECK:
    case REQ.PRE_DUMP:
    case REQ.SINGLE_PRE_DUMP:
      return withOpts(conn, req, o);
    case REQ.PAGE_SERVER:
    case REQ.PAGE_SERVER_CHLD:
      return pageServer(conn, req);
    case REQ.CPUINFO_DUMP:
    case REQ.CPUINFO_CHECK:
      return cpuinfoReq(conn, req);
    default:
      // EMPTY, or NOTIFY outside a notification.
      reply(conn, { type: REQ.EMPTY, success: false, cr_errno: EBADRQC, cr_errmsg: `Invalid req: ${typeName(req.type)}` });
      return false;
  }
}

/**
 * PAGE_SERVER (detached, as CRIU's daemon) and PAGE_SERVER_CHLD (a child of this server, for
 * WAIT_PID): started in the images dir, answered once it listens with its pid and port.
 */
function pageServer(conn: RpcConn, req: CriuReq): boolean {
  try {
    const opts: CriuOpts = req.opts ?? noOpts();
    if (opts.ps?.fd !== undefined) throw new CriuError('not supported yet: ps.fd (an inherited page server socket)', EBADRQC);
    const paths = resolvePaths(opts, conn.peer, true);
    checkDumpDir(paths.imagesDir, false);
    const r = startPageServer({
      dir: paths.imagesDir,
      port: opts.ps?.port ?? 0,
      ...(opts.ps?.address ? { address: opts.ps.address } : {}),
      ...(opts.parent_img !== undefined ? { prevImagesDir: opts.parent_img } : {}),
      ...(paths.logFile ? { logFile: paths.logFile } : {}),
      level: paths.level,
      detached: req.type === REQ.PAGE_SERVER,
    });
    return reply(conn, { type: req.type, success: true, ps: { pid: r.pid, port: r.port } });
  } catch (e) {
    reply(conn, failure(req.type, e));
    return false;
  }
}

/** CPUINFO_DUMP and CPUINFO_CHECK, in the images dir; a failed check is success false with its reason. */
function cpuinfoReq(conn: RpcConn, req: CriuReq): boolean {
  let log: LevelLogger | undefined;
  try {
    const paths = resolvePaths(req.opts ?? noOpts(), conn.peer, true);
    log = new LevelLogger(paths.level, paths.logFile);
    cpuinfo(paths.imagesDir, req.type === REQ.CPUINFO_DUMP ? 'dump' : 'check', log);
    return reply(conn, { type: req.type, success: true });
  } catch (e) {
    log?.failed(e instanceof Error ? e.message.split('\n')[0] : String(e));
    reply(conn, failure(req.type, e, log));
    return false;
  } finally {
    log?.close();
  }
}

/** DUMP, RESTORE, CHECK: options screened and mapped, a log opened, the operation run. */
function withOpts(conn: RpcConn, req: CriuReq, o: ServeOptions): boolean {
  const type = req.type;
  const pre = type === REQ.PRE_DUMP || type === REQ.SINGLE_PRE_DUMP;
  const kind = type === REQ.DUMP || pre ? 'dump' : type === REQ.RESTORE ? 'restore' : 'check';
  const restoreFailed = (r: CriuResp): CriuResp => (kind === 'restore' ? { ...r, restore: { pid: -1 } } : r);
  let log: LevelLogger | undefined;
  try {
    const opts: CriuOpts = req.opts ?? noOpts();
    const paths = resolvePaths(opts, conn.peer, kind !== 'check');
    // As on the command line, before the log is written there: a directory someone else controls is refused.
    if (kind === 'dump') for (const d of new Set([paths.imagesDir, paths.workDir])) checkDumpDir(d, false);
    if (kind === 'restore') checkRestoreDir(paths.imagesDir, fs.readdirSync(paths.imagesDir), trustsImages(opts));
    log = new LevelLogger(paths.level, paths.logFile);
    log.info(`RPC ${typeName(type)} from pid ${conn.peer} (${o.mode})`);
    const screened = screenOpts(opts, kind, o.mode);
    const actions = actionRunner(conn, !!opts.notify_scripts, o.scripts(paths.imagesDir), log);
    if (kind !== 'check') {
      // A signal aborts the operation cleanly (interrupt.ts); the server dies of it once it has answered.
      armInterrupts();
      cleanStale(log);
    }
    const resp = pre
      ? { ...runners.dump(opts, screened, paths, conn.peer, actions, log, o.mode, true), type }
      : runners[kind](opts, screened, paths, conn.peer, actions, log, o.mode);
    return reply(conn, resp);
  } catch (e) {
    log?.failed(e instanceof Error ? e.message.split('\n')[0] : String(e));
    reply(conn, restoreFailed(failure(type, e, log)));
    return false;
  } finally {
    log?.close();
    dieOfInterrupt();
  }
}

type Runner = (
  opts: CriuOpts,
  screened: Screened,
  paths: RpcPaths,
  peer: number,
  actions: RunAction,
  log: LevelLogger,
  mode: RpcMode,
  pre?: boolean,
) => CriuResp;
const runners: Record<'dump' | 'restore' | 'check', Runner> = {
  dump: (opts, screened, paths, peer, actions, log, _mode, pre) => {
    // No pid: the client dumps itself, as with CRIU.
    const pid = opts.pid ?? peer;
    const net = rpcNet(opts);
    checkNamespaces([pid], { net });
    dump({
      pid,
      dir: paths.imagesDir,
      workDir: paths.workDir,
      leaveRunning: !!opts.leave_running,
      shellJob: !!opts.shell_job,
      timeoutSec: opts.timeout || 10,
      log,
      freezeCgroup: opts.freeze_cgroup,
      extUnixSk: !!opts.ext_unix_sk,
      fileLocks: !!opts.file_locks,
      actions,
      ghostLimit: opts.ghost_limit,
      linkRemap: !!opts.link_remap,
      tcp: tcpOf(opts),
      manageCgroups: screened.cgMode !== CG_MODE.IGNORE,
      cgroupYard: opts.cgroup_yard,
      mounts: mountsOf(opts),
      net,
      pre: !!pre,
      prevImagesDir: opts.parent_img,
      trackMem: !!opts.track_mem,
      ...(opts.ps ? { pageServer: rpcPageServer(opts.ps) } : {}),
    });
    return { type: REQ.DUMP, success: true, dump: { restored: false } };
  },
  restore: (opts, screened, paths, peer, actions, log, mode) => {
    if (!fs.existsSync(`${paths.imagesDir}/inventory.img`)) throw new CriuError(`no dump in ${paths.imagesDir}: it has no inventory.img`);
    // rst_sibling: the tree is the client's once criu-ts exits (a client that is a child
    // subreaper, as runc is, gets the root then; criu-ts has no way to make it the client's
    // child before).
    // runc moved its criu into the container's cgroups: criu-ts goes back to runc's, and the
    // restored root goes where criu-ts was.
    const home = mode === 'swrk' && screened.cgMode !== CG_MODE.IGNORE ? leaveCgroups(peer, log) : undefined;
    const r = restore({
      dir: paths.imagesDir,
      workDir: paths.workDir,
      detach: true,
      shellJob: !!opts.shell_job,
      log,
      actions,
      tcp: tcpOf(opts),
      skipVerify: screened.skipVerify,
      cgroups: {
        mode: screened.cgMode,
        roots: opts.cg_root.map((c) => ({ ctrl: c.ctrl ?? '', path: c.path })),
        home,
        yard: opts.cgroup_yard,
      },
      inheritFds: opts.inherit_fd.map((i) => ({ key: i.key, fd: i.fd })),
      mounts: mountsOf(opts),
      // runc's empty_ns: the loopback it would have set up (runc does not at restore).
      net: { ...rpcNet(opts), loopbackUp: true },
    });
    return { type: REQ.RESTORE, success: true, restore: { pid: r.pid } };
  },
  check: (_opts, _screened, _paths, _peer, _actions, log) => {
    const rc = runCheck(undefined, (s) => log.info(s), log);
    if (rc !== 0) throw new CriuError('criu-ts check failed: see the log');
    return { type: REQ.CHECK, success: true };
  },
};

/** empty_ns (runc sends CLONE_NEWNET), `net[INODE]:KEY` externals, the namespaces given as inherit_fd, join_ns net. */
/** criu_opts.ps of a DUMP (screened: address and port): send the page data there (CRIU's use_page_server). */
function rpcPageServer(ps: NonNullable<CriuOpts['ps']>): { address: string; port: number } {
  return { address: ps.address ?? '', port: ps.port ?? 0 };
}

function rpcNet(opts: CriuOpts): NetOptions {
  const external = new Map<string, string>();
  for (const x of opts.external) {
    const m = /^net\[(\d+)\]:(.+)$/.exec(x);
    if (m) external.set(m[1], m[2]);
  }
  // inherit_fd keys that name no file: a network namespace given by the client (runc's extRootNetNS).
  const inherit = new Map(opts.inherit_fd.filter((i) => /^\w+$/.test(i.key)).map((i) => [i.key, i.fd]));
  const join = opts.join_ns.find((j) => j.ns === 'net')?.ns_file;
  return { empty: ((opts.empty_ns ?? 0) & 0x40000000) !== 0, external, inherit, ...(join ? { join: joinNetPath(join) } : {}) };
}

/**
 * Actions of an RPC operation: with notify_scripts each is a NOTIFY round trip the client must
 * acknowledge, then the command line's scripts. Without notifications the client is still
 * checked before post-dump, the last point where a dump can leave the tree as it was.
 */
function actionRunner(conn: RpcConn, notify: boolean, scripts: RunAction | undefined, log: LevelLogger): RunAction {
  return (name: ActionName, pid?: number) => {
    if (notify) {
      log.debug(`RPC notification ${name}${pid !== undefined ? ` (pid ${pid})` : ''}`);
      if (!reply(conn, { type: REQ.NOTIFY, success: true, notify: { script: name, pid } }))
        throw new CriuError(`RPC client went away at ${name}`);
      let ack: CriuReq | undefined;
      try {
        ack = conn.recv();
      } catch (e) {
        throw new CriuError(`RPC client answered ${name} with a bad message: ${(e as Error).message}`);
      }
      if (!ack) throw new CriuError(`RPC client went away at ${name}`);
      if (ack.type !== REQ.NOTIFY || !ack.notify_success) throw new CriuError(`RPC client reported script error at ${name}`);
      if (name === 'query-ext-files' && ack.opts?.external.length)
        throw new CriuError('not supported yet: external files from query-ext-files', EBADRQC);
    } else if (name === 'post-dump' && conn.gone()) {
      throw new CriuError('RPC client went away during the dump');
    }
    scripts?.(name, pid);
  };
}
