// Restore orchestration: read the dump, create every task at its PID (the root from a
// helper, each child from its parent), rebuild them stage by stage through injected
// syscalls (stages.ts says which, in what order and why), then install the registers and
// let the whole tree go at once.
import fs from 'node:fs';
import { kill, waitpid, W, WALL, WNOHANG, SIG } from '../kernel/index.ts';
import { InjectionArea, colocate, endColocation } from '../compel/index.ts';
import { CriuError, faultPoint, faultAt } from '../errors.ts';
import { checkInterrupt, disarmInterrupts, hangPoint } from '../interrupt.ts';
import { shmemSizes, ShmemObjects } from '../resources/mm/index.ts';
import {
  SessionRestore,
  cloneAt,
  pidInUse,
  sharingFlags,
  ALL_SIGNALS,
  becomeZombie,
  restoreThreadCreds,
  releaseThreads,
  restoreAffinity,
  restorePdeathSig,
  restoreSeccomp,
  seccompChain,
  unsetLoginuid,
} from '../resources/task/index.ts';
import { CgroupRestore, CG_MODE, type CgroupRestoreOptions } from '../resources/cgroups.ts';
import { restoreFileLocks } from '../resources/files/locks.ts';
import { GhostRestore } from '../resources/files/ghost.ts';
import { openFileId, restoreOwners, type TcpMode } from '../resources/files/index.ts';
import { IMG, writeImageFile } from '../images/index.ts';
import {
  planNamespaces,
  translateFromUserns,
  prepareNamespaces,
  restoreNamespaces,
  enterNamespaces,
  inAheadNet,
  mountNamespaces,
  commonMountPaths,
  releaseNamespaces,
  namespacesAfterFiles,
} from '../resources/ns/index.ts';
import { CLONE, MS, PR } from '../kernel/index.ts';
import { restoreLock, releaseLock, netnsLockOf } from '../resources/net/tcp.ts';
import { DumpImages } from './images.ts';
import { readStat } from '../proc/index.ts';
import { plan, threadOf, type LivePlan } from './plan.ts';
import { startHelper, killHelper } from './stub.ts';
import type { MountOptions, NetOptions } from '../resources/ns/index.ts';
import type { RunAction } from '../actions.ts';
import { RESTORE_STAGES, type RestoreStage } from './stages.ts';
import type { Logger } from '../resources/types.ts';
import { step, ms } from '../log.ts';
import { writeRestoreStats, pageCounts } from './stats.ts';

import { type Ctx, type Live, isLive, liveMm } from './ctx.ts';
import {
  fileLocksOf,
  liveTask,
  hostPid,
  liveTasks,
  memfdObject,
  cgSetOf,
  restoreMemory,
  inNs,
  restoreInheritable,
  restoreTask,
  prepareRelease,
  logPlan,
} from './task-steps.ts';
import { now } from '../lazy.ts';
export interface RestoreRequest {
  dir: string;
  skipVerify?: boolean;
  key?: Buffer;
  detach: boolean;
  shellJob: boolean;
  pidfile?: string;
  log: Logger;
  /** Where stats-restore goes (default: the images dir). */
  workDir?: string;
  /** Action scripts: pre-restore, post-restore (tasks still stopped), pre-resume, post-resume. */
  actions?: RunAction;
  /** --tcp-established, --tcp-close (a dump made with --tcp-close restores closed anyway). */
  tcp?: TcpMode;
  /** --manage-cgroups and --cgroup-root (CRIU's default: soft, at the dumped paths). */
  cgroups?: CgroupRestoreOptions;
  /** --inherit-fd / inherit_fd: criu-ts's fd `fd` stands for the file the images name `key`. */
  inheritFds?: { key: string; fd: number }[];
  /** --root and the external mounts of the tree's mount namespace. */
  mounts?: MountOptions;
  /** Its network namespace made empty (--empty-ns net) or joined (--inherit-fd fd[N]:KEY). */
  net?: NetOptions;
}

export interface RestoreResult {
  pid: number;
  exitCode?: number;
  ms: number;
}

export function restore(req: RestoreRequest): RestoreResult {
  // Every injected syscall is a stop and a resume, cheaper with tracer and tracee on one CPU
  // (36 against 44-50 us here; colocate.ts).
  colocate();
  try {
    return restoreColocated(req);
  } finally {
    endColocation();
  }
}

function restoreColocated(req: RestoreRequest): RestoreResult {
  const t0 = now();
  const imgs = new DumpImages(req.dir, { skipVerify: req.skipVerify, key: req.key, warn: (m) => req.log.warn(m) });
  try {
    return restoreImages(req, imgs, t0);
  } finally {
    imgs.close();
  }
}

function restoreImages(req: RestoreRequest, imgs: DumpImages, t0: number): RestoreResult {
  req.actions?.('pre-restore');
  step(req.log, `reading the images of ${req.dir}`);
  translateFromUserns(imgs);
  const { tasks, files } = plan(imgs);
  logPlan(req.log, tasks);
  const root = tasks[0];
  if (root.zombie) throw new CriuError(`pstree.img: the root task ${root.pid} is a zombie`);
  const allIds = tasks.filter((t): t is LivePlan => !t.zombie).map((t) => t.ids);
  const ns = planNamespaces(root.ids, imgs.one(IMG.INVENTORY), root.pid, imgs, req.log, req.mounts, req.net, allIds);
  // In a new PID namespace every pid is free; the kernel picks the ones outside.
  if (!(ns.flags & CLONE.NEWPID))
    for (const t of tasks)
      for (const tid of t.threads) {
        if (pidInUse(tid)) throw new CriuError(`pid ${tid} is already in use by another process`, 17 /* EEXIST */);
      }
  const created: number[] = [];
  const opened: number[] = [];
  const releaseHooks: Array<() => void> = [];
  const shmem = new ShmemObjects();
  const ghosts = new GhostRestore(
    imgs.all(IMG.REMAP_FPATH).map((e) => e.entry),
    (id) => imgs.ghost(id),
    (id) => {
      const reg = files.get(id)?.reg;
      if (!reg) throw new CriuError(`remap-fpath.img: no regular file with id ${id} in files.img`);
      return reg.name;
    },
    (id, p) => (ctx ? inNs(ctx, p, files.get(id)?.reg ?? { name: p }) : p),
    (a, pa, b, pb) => commonMountPaths(ns.made, { mntId: files.get(a)?.reg?.mnt_id, p: pa }, { mntId: files.get(b)?.reg?.mnt_id, p: pb }),
  );
  // A read-only mount with ghost files stays writable until they are made (as CRIU remounts it).
  ns.made.readOnlyLater = new Set(
    ghosts
      .ghostFiles()
      .map((id) => files.get(id)?.reg?.mnt_id)
      .filter((m): m is number => m !== undefined && m >= 0),
  );
  let ctx: Ctx | undefined;
  const installedOnce = new Set<number>();
  const cgroups = new CgroupRestore(
    imgs.all(IMG.CGROUP)[0]?.entry,
    imgs.one(IMG.INVENTORY).root_cg_set ?? 0,
    req.cgroups ?? { mode: CG_MODE.SOFT, roots: [] },
    req.log,
  );
  // The network lock the dump kept on the connections: it goes once they are back, or the restore failed.
  let netLock = restoreLock(
    imgs.one(IMG.INVENTORY),
    [...files.values()].flatMap((f) => (f.isk ? [f.isk] : [])),
  );
  // Before anything is made: a forgotten option must not cost the connections their lock.
  if (netLock && !req.tcp?.established && !req.tcp?.close)
    throw new CriuError(
      `the images hold ${netLock.conns.length} TCP connection(s): restore them with --tcp-established (or --tcp-close); the network lock stays`,
    );
  // A network namespace of the tree's own came back (or was joined) with the dump's lock of it
  // whole, which stands for every connection's (CRIU's): it goes once the tree is back.
  const wholeNet = ns.ownNet && !req.net?.empty;
  if (wholeNet) netLock = undefined;
  const unlockNet = (done = false): void => {
    if (netLock) releaseLock(netLock, req.log, t0);
    netLock = undefined;
    if (done && wholeNet && ctx?.rootHost) releaseLock(netnsLockOf(imgs.one(IMG.INVENTORY), ctx.rootHost), req.log, t0);
  };
  try {
    cgroups.prepare();
    const helper = startHelper(
      liveMm(tasks).flatMap((mm) => mm.vmas),
      tasks.some((t) => !t.zombie && [...t.threadCores.values()].some((tc) => tc.seccomp_mode)),
    );
    const helperArea = helper.area;
    ctx = {
      req,
      imgs,
      tasks,
      cgroups,
      live: new Map(),
      created,
      helper,
      sessions: new SessionRestore(tasks, req.shellJob, created, helper, (ns.flags & CLONE.NEWPID) !== 0),
      files,
      ghosts,
      standIns: [],
      nsStandIns: [],
      cpuFacts: helper.cpuFacts,
      locals: new Map(),
      opened,
      shmem,
      shmemSize: shmemSizes(liveMm(tasks)),
      installedOnce,
      doneTables: new Set(),
      sharedVm: new Set(),
      forkMs: 0,
      ns,
      mntOf:
        ns.flags & CLONE.NEWNS
          ? mountNamespaces(
              imgs,
              allIds.map((i) => i.mnt_ns_id).filter((i) => i !== undefined),
            )
          : new Map(),
      rootHost: 0,
      releaseHooks,
      unlockNetwork: unlockNet,
      scratchOf: (t) => new InjectionArea(t, helperArea.base, helperArea.size),
      fileCtx: {
        log: req.log,
        shellJob: req.shellJob,
        files,
        kinds: new Map(),
        tcp: { established: !!req.tcp?.established, close: !!req.tcp?.close || !!imgs.one(IMG.INVENTORY).tcp_close, skipInFlight: false },
        entries: (kind, ...args) => imgs.all(kind, ...args),
        keep: (fd) => {
          opened.push(fd);
          return fd;
        },
        memfd: (inodeId) => memfdObject(imgs, shmem, inodeId),
        inheritFds: req.inheritFds ?? [],
        inheritedIds: installedOnce,
        pathOf: (reg) => inNs(ctx!, ghosts.path(reg.id, reg.name), reg),
        nsPath: (p, mntId) => inNs(ctx!, p, { name: p, ...(mntId === undefined ? {} : { mnt_id: mntId }) }),
        inodePath: (sdev, ino) => {
          const id = ghosts.fileOfInode(sdev, ino);
          const reg = id === undefined ? undefined : files.get(id)?.reg;
          return reg && inNs(ctx!, ghosts.path(reg.id, reg.name), reg);
        },
        presetPty: (index) => {
          const fd = ns.made.ptys?.get(index);
          ns.made.ptys?.delete(index);
          return fd;
        },
        laterMount: (mntId) => {
          const mntNs = ctx!.mntOf.get(mntId);
          return mntNs !== undefined && mntNs !== ns.rootIds.mnt_ns_id;
        },
        mntRoot: (id) => {
          if (!ctx!.nsRoot) return undefined;
          // The caller chroots criu-ts, every thread with it: the checksum thread, which opens
          // the images by path, is done first.
          imgs.verifying?.join();
          return inNs(ctx!, '', { name: '', mnt_id: id });
        },
        fileFd: (id) => openFileId(id, ctx!.fileCtx, ctx!.locals),
        inNetNs: (nsId, fn) => inAheadNet(ns, nsId, fn),
        beforeRelease: (fn) => {
          releaseHooks.push(fn);
        },
      },
    };
    standIns(ctx);
    for (const { stage } of RESTORE_STAGES) {
      if (stage === 'RESTORE_CREDS') req.actions?.('post-restore', ctx.rootHost);
      if (stage === 'COMPLETE') req.actions?.('pre-resume');
      req.log.debug(`restore stage ${stage}`);
      // The last safe point is before the release: past it, the tree is let go.
      checkInterrupt(stage === 'ZOMBIES');
      STAGES[stage](ctx);
    }
  } catch (e) {
    for (const fd of opened) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
    shmem.close();
    releaseNamespaces(ns);
    ghosts.unlinkAll();
    if (ctx) killAll(ctx.standIns);
    imgs.verifying?.cancel();
    if (ctx?.helper) killHelper(ctx.helper);
    killAll(created);
    cgroups.undo();
    unlockNet();
    throw e;
  }
  disarmInterrupts();
  const rootPid = ctx.rootHost;
  if (req.pidfile) writeImageFile(req.pidfile, `${rootPid}`);
  // The tree runs already: a failure here is only reported.
  try {
    req.actions?.('post-resume');
  } catch (e) {
    req.log.error(`post-resume: ${(e as Error).message}`);
  }
  const total = now() - t0;
  req.log.info(`restored ${tasks.length} task(s) in ${total.toFixed(1)} ms`);
  try {
    writeRestoreStats(req.workDir ?? req.dir, { forkMs: ctx.forkMs, totalMs: total, ...pageCounts(tasks) });
  } catch (e) {
    req.log.warn(`cannot write stats-restore: ${(e as Error).message}`);
  }
  if (req.detach) {
    if (faultAt('root-dies')) killAndAwaitZombie(rootPid);
    // criu-ts is the root's parent until it exits: a root that is gone already failed the restore.
    const w = waitpid(rootPid, WNOHANG);
    if (w.pid === rootPid) {
      const how = W.exited(w.status) ? `exited with status ${W.exitStatus(w.status)}` : `was killed by signal ${W.termSig(w.status)}`;
      throw new CriuError(`the restored task ${rootPid} ${how} before criu-ts let go of it`);
    }
    return { pid: rootPid, ms: total };
  }
  const { status } = waitpid(rootPid, 0);
  const exitCode = W.exited(status) ? W.exitStatus(status) : 128 + W.termSig(status);
  return { pid: rootPid, exitCode, ms: total };
}

/** What each stage does; stages.ts orders them and says why. */
const STAGES: Record<RestoreStage, (ctx: Ctx) => void> = {
  FORKING: (ctx) => {
    const t0 = now();
    createTree(ctx);
    ctx.forkMs = now() - t0;
    ctx.req.log.info(`created ${ctx.tasks.length} task(s) in ${ms(t0)}`);
    if (ctx.helper) killHelper(ctx.helper);
    ctx.helper = undefined;
    // Limits once every task exists: the restore's own work must not run into them.
    ctx.cgroups.properties();
  },
  GROUPS: (ctx) => {
    ctx.sessions.setGroups(ctx.tasks, (pid) => liveTask(ctx, pid));
    ctx.sessions.dropHelpers(ctx.scratchOf);
  },
  RESTORE: (ctx) => {
    for (const l of liveTasks(ctx)) {
      checkInterrupt();
      restoreTask(ctx, l);
    }
    afterFiles(ctx);
    restoreOwners(ctx.locals, ctx.files, (pid) => hostPid(ctx, pid));
  },
  RESTORE_CREDS: (ctx) => {
    for (const l of liveTasks(ctx)) {
      step(ctx.req.log, `task ${l.plan.pid}: credentials of ${l.threads.size} thread(s) from core-*.img`);
      restoreThreadCreds(
        l.leader,
        l.area,
        l.leader.tid,
        [...l.threads].map(([tid, tracee]) => ({ tracee, creds: threadOf(l.plan, tid).threadCore.creds })),
        (ctx.ns.flags & CLONE.NEWUSER) !== 0,
      );
      for (const [tid, th] of l.threads) restorePdeathSig(th, threadOf(l.plan, tid).threadCore.pdeath_sig, l.plan.ppid === 0, ctx.req.log);
      // A change of effective ids resets the dumpable flag (to fs.suid_dumpable), as in a
      // user namespace, where the task takes its ids only now: it is set again after them.
      const dumpable = l.plan.mm.dumpable;
      if (dumpable !== undefined && Number(l.leader.syscallRaw('prctl', PR.GET_DUMPABLE, 0, 0, 0, 0)) !== dumpable)
        l.leader.syscall('prctl', PR.SET_DUMPABLE, dumpable, 0, 0, 0);
    }
  },
  SEAL: (ctx) => {
    ctx.unlockNetwork(true);
    for (const fn of ctx.releaseHooks.splice(0)) fn();
    for (const l of liveTasks(ctx)) {
      if (l.leader.criuPidfd !== undefined) l.leader.syscallRaw('close', l.leader.criuPidfd);
      if (l.leader.courier) l.leader.syscallRaw('close', l.leader.courier.remote);
    }
    for (const fd of ctx.opened.splice(0)) fs.closeSync(fd);
    ctx.ghosts.unlinkAll();
    // Once gone, their /proc/PID directories are what the tasks had: those of dead processes.
    killAll(ctx.standIns.splice(0));
    dropNsStandIns(ctx);
    ctx.cgroups.close();
    ctx.shmem.sealAll();
    ctx.shmem.close();
    if (ctx.imgs.verifying) step(ctx.req.log, 'waiting for the checksums of the page data');
    ctx.imgs.verifying?.join();
    faultPoint('restore-release');
  },
  LEASES: (ctx) => {
    for (const l of liveTasks(ctx)) restoreFileLocks(l.leader, l.area, fileLocksOf(ctx, l.plan.pid), ctx.req.log, true);
  },
  ZOMBIES: (ctx) => {
    for (const t of ctx.tasks) {
      if (!t.zombie) continue;
      const l = liveTask(ctx, t.pid);
      step(ctx.req.log, `task ${t.pid}: becomes a zombie (exit status 0x${t.zombie.exitCode.toString(16)}) as in core-${t.pid}.img`);
      becomeZombie(l.leader, l.area, t.pid, t.zombie);
    }
  },
  SECCOMP: (ctx) => {
    const image = ctx.imgs.all(IMG.SECCOMP)[0]?.entry;
    for (const l of liveTasks(ctx)) {
      for (const [tid, th] of l.threads) {
        const tc = threadOf(l.plan, tid).threadCore;
        if (!tc.seccomp_mode) continue;
        step(ctx.req.log, `task ${l.plan.pid}: seccomp mode ${tc.seccomp_mode} of thread ${tid} from core-${tid}.img and seccomp.img`);
        restoreSeccomp(th, l.area, tc.seccomp_mode, tc.seccomp_mode === 2 ? seccompChain(image, tc.seccomp_filter ?? 0, tid) : []);
      }
    }
  },
  PREPARE_RELEASE: (ctx) => {
    for (const l of liveTasks(ctx).reverse()) prepareRelease(ctx, l, ctx.sharedVm.has(l.plan.pid));
  },
  COMPLETE: (ctx) => {
    step(ctx.req.log, `releasing ${ctx.tasks.length} task(s)`);
    for (const l of liveTasks(ctx)) {
      ctx.req.log.debug(`task ${l.plan.pid}: let go (${l.threads.size} thread(s))`);
      releaseThreads(l.plan.pid, l.threads.values());
    }
    for (const l of liveTasks(ctx))
      for (const [tid, th] of l.threads) restoreAffinity(th.tid, threadOf(l.plan, tid).threadCore.cpu_affinity, ctx.req.log);
  },
};

/** For CRIU_TS_FAULT=root-dies: SIGKILL takes effect when the task runs next, so wait for its zombie. */
function killAndAwaitZombie(pid: number): void {
  kill(pid, SIG.KILL);
  for (let i = 0; i < 1000; i++) {
    try {
      if (readStat(pid).state === 'Z') return;
    } catch {
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

/**
 * A directory /proc/PID of a process that was dead at dump time (CRIU's procfs remap) exists
 * only while a process has that pid: one is cloned there, a child of criu-ts (CLONE_PARENT),
 * and killed once the tasks hold the directory (SEAL).
 */
function standIns(ctx: Ctx): void {
  const h = ctx.helper;
  for (const pid of ctx.ghosts.deadPids()) {
    if (ctx.tasks.some((t) => t.pid === pid || t.threads.includes(pid)))
      throw new CriuError(`remap-fpath.img: /proc/${pid} is of a process gone at dump time, but pid ${pid} is a task of the tree`);
    if (ctx.ns.flags & CLONE.NEWPID) continue; // pids of the namespace: made by its init (nsStandIns)
    if (!h) throw new CriuError(`remap-fpath.img: /proc/${pid} of a dead process needs a process at that pid`);
    step(ctx.req.log, `pid ${pid}: a process stands there while the tasks open /proc/${pid} (remap-fpath.img)`);
    cloneAt(h.tracee, h.area, pid, CLONE.PARENT, 0);
    ctx.standIns.push(pid);
  }
}

/** In a new PID namespace the stand-ins are children of its init, cloned once it exists. */
function nsStandIns(ctx: Ctx, root: Live): void {
  for (const pid of ctx.ghosts.deadPids()) {
    step(ctx.req.log, `pid ${pid}: a process stands there while the tasks open /proc/${pid} (remap-fpath.img)`);
    const t = cloneAt(root.leader, root.area, pid, 0, 0);
    ctx.created.push(t.tid);
    ctx.nsStandIns.push({ tracee: t, pid });
  }
}

/** The init reaps its stand-ins once criu-ts, their tracer, has seen them die. */
function dropNsStandIns(ctx: Ctx): void {
  const init = ctx.nsStandIns.length ? liveTask(ctx, ctx.tasks[0].pid).leader : undefined;
  for (const { tracee, pid } of ctx.nsStandIns.splice(0)) {
    kill(tracee.tid, SIG.KILL);
    waitpid(tracee.tid, WALL);
    init?.syscall('wait4', pid, 0, WALL, 0);
    const i = ctx.created.indexOf(tracee.tid);
    if (i >= 0) ctx.created.splice(i, 1);
  }
}

/** Kill what a failed restore created and reap it: no stray process is left behind. */
function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      kill(pid, SIG.KILL);
    } catch {
      /* gone */
    }
  }
  for (const pid of [...pids].reverse()) {
    for (let i = 0; i < 200; i++) {
      try {
        if (waitpid(pid, WALL | WNOHANG).pid === pid && !pidInUse(pid)) break;
      } catch {
        break;
      }
      if (!pidInUse(pid)) break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

/**
 * Stubs at their PIDs, parents first (see SessionRestore.birthplace for who clones whom),
 * each with what its children inherit from it restored before it has any.
 */
function createTree(ctx: Ctx): void {
  const { tasks, live } = ctx;
  // Tasks in a new PID namespace cannot name criu-ts to take its fds: they inherit a pidfd of
  // it from the helper, at an fd above every one the dump has.
  if (ctx.helper) prepareNamespaces(ctx.ns, ctx.helper.tracee, ctx.imgs, ctx.req.log);
  const above = tasks.reduce((m, t) => (t.zombie ? m : Math.max(m, ...t.fdinfo.map((e) => e.fd))), 2) + 2;
  if (ctx.ns.flags & CLONE.NEWPID) ctx.helper?.tracee.holdTracerPidfd(above);
  // A tree in a user namespace of its own may not take fds from criu-ts: they are sent to it.
  if (ctx.ns.flags & CLONE.NEWUSER && ctx.helper) {
    const h = ctx.helper.tracee;
    unsetLoginuid(h, ctx.helper.area);
    h.holdCourier(above + 1);
    const { local } = h.courier!;
    ctx.releaseHooks.push(() => fs.closeSync(local));
  }
  // Tasks whose page data is still being read in by the tasks themselves: one is waited for
  // only when it is needed again (to fork a child, which must inherit its memory whole).
  const filling = new Map<number, () => void>();
  const settle = (pid: number): void => {
    const f = filling.get(pid);
    filling.delete(pid);
    f?.();
  };
  for (const t of tasks) {
    settle(t.ppid);
    const parentArea = t.ppid === 0 ? ctx.helper?.area : live.get(t.ppid)?.area;
    if (!parentArea) throw new CriuError(`task ${t.pid}: its parent ${t.ppid} is not restored before it`);
    // A zombie has no children: they were given to another parent when it died.
    const parentPlan = tasks.find((p): p is LivePlan => p.pid === t.ppid && !p.zombie);
    // The clone arguments go into the parent's own copy of the area. A child that shared
    // its parent's fd table, fs_struct, mm or signal actions is cloned sharing them again.
    const { flags, sharesVm } = sharingFlags(t.zombie ? undefined : t.ids, parentPlan?.ids);
    const born = ctx.sessions.birthplace(t, parentArea, t.ppid === 0 ? flags | ctx.ns.flags : flags, (pid) => live.get(pid)?.area);
    step(
      ctx.req.log,
      `task ${t.pid}: created at its pid by ${born.area === ctx.helper?.area ? 'the helper' : born.area === parentArea ? `its parent ${t.ppid}` : born.area === live.get(t.sid)?.area ? `its session leader ${t.sid}` : `the helper of session ${t.sid}`} (clone flags 0x${born.flags.toString(16)})`,
    );
    const stub = cloneAt(born.area.tracee, born.area, t.pid, born.flags, born.exitSignal);
    ctx.created.push(stub.tid);
    // Into its cgroups before it has children, which inherit them.
    const area = parentArea.forTracee(stub);
    ctx.cgroups.enter(stub.tid, cgSetOf(t, t.pid), parentPlan && cgSetOf(parentPlan, parentPlan.pid), false, () =>
      stub.syscall('unshare', CLONE.NEWCGROUP),
    );
    stub.setSigmask(ALL_SIGNALS);
    const l: Live = { plan: t, leader: stub, threads: new Map([[t.pid, stub]]), area };
    live.set(t.pid, l);
    if (t.ppid === 0) {
      ctx.rootHost = stub.tid;
      if (stub.tid !== t.pid) ctx.req.log.info(`task ${t.pid}: pid ${stub.tid} outside its PID namespace`);
      // As CRIU, for a root in namespaces of its own: once it exists in them (runc runs its
      // prestart hooks there), and once they are filled.
      if (ctx.ns.flags) ctx.req.actions?.('setup-namespaces', stub.tid);
      restoreNamespaces(ctx.ns, { stub, area: l.area, pid: stub.tid, vpid: t.pid, imgs: ctx.imgs, log: ctx.req.log });
      if (ctx.ns.flags & CLONE.NEWNS) ctx.nsRoot = true;
      if (ctx.ns.flags & CLONE.NEWPID) nsStandIns(ctx, l);
      if (ctx.ns.flags) ctx.req.actions?.('post-setup-namespaces');
      hangPoint('root-created');
    } else if (!t.zombie) enterNamespaces(ctx.ns, { stub, area: l.area, ids: t.ids, imgs: ctx.imgs, log: ctx.req.log });
    ctx.sessions.enter(t, stub, born);
    if (isLive(l)) {
      // A task born of a session helper has the helper's memory, fds and the rest, and the helper
      // may have been cloned from another parent: it inherits nothing from its own.
      restoreInheritable(ctx, l, born.ofParent ? parentPlan : undefined);
      // Likewise memory: children are cloned from the task and inherit it (or share it, with
      // CLONE_VM). Its page data goes on being read in while other tasks are created.
      if (!sharesVm) filling.set(t.pid, restoreMemory(ctx, l, parentPlan, born.ofParent));
    }
    if (sharesVm) ctx.sharedVm.add(t.pid);
  }
  for (const pid of [...filling.keys()]) settle(pid);
  ctx.sessions.startDeferred();
}

/**
 * Every file is open (those on mounts of other namespaces too, opened once the tree exists):
 * the ghosts on the mounts kept writable for them go, then those mounts are made read-only.
 */
function afterFiles(ctx: Ctx): void {
  const later = ctx.ns.made.readOnlyLater;
  const readOnly = (mnt: number | undefined): boolean =>
    mnt !== undefined && later!.has(mnt) && !!((ctx.ns.made.get(mnt)?.entry.flags ?? 0) & MS.RDONLY);
  if (later?.size) ctx.ghosts.unlinkFiles(ctx.ghosts.ghostFiles().filter((id) => readOnly(ctx.files.get(id)?.reg?.mnt_id)));
  namespacesAfterFiles(ctx.ns, ctx.mntOf, (tid) => {
    const l = [...ctx.live.values()].find((x) => x.leader.tid === tid);
    return l && { stub: l.leader, area: l.area };
  });
  releaseNamespaces(ctx.ns);
}
