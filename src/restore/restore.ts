// Restore orchestration: read the dump, create every task at its PID (the root from a
// helper, each child from its parent), rebuild them stage by stage through injected
// syscalls (stages.ts says which, in what order and why), then install the registers and
// let the whole tree go at once.
import fs from 'node:fs';
import { kill, waitpid, W, WALL, WNOHANG, SIG, getpid } from '../kernel/index.ts';
import { InjectionArea, colocate, endColocation, type Tracee } from '../compel/index.ts';
import type { CpuFacts } from '../resources/cpu/index.ts';
import { CriuError, faultPoint } from '../errors.ts';
import { checkInterrupt, disarmInterrupts } from '../interrupt.ts';
import { restoreAddressSpace, shmemSizes, ShmemObjects, VMA } from '../resources/mm/index.ts';
import {
  SessionRestore, cloneAt, pidInUse, sharingFlags, ALL_SIGNALS, restorePersonality, restoreTimersAndLimits, becomeZombie, cloneThread,
  unregisterInheritedRseq, restoreThreadCore, requeueSignals, restoreComm, restoreThreadCreds, finishThread, finishLeader, releaseThreads,
} from '../resources/task/index.ts';
import { restoreSigactions } from '../resources/sigact.ts';
import { restoreFs } from '../resources/fs.ts';
import { openForRestore, installFds, afterInstall, type RestoreFileCtx, type FileEntry } from '../resources/files/index.ts';
import { IMG, writeImageFile } from '../images/index.ts';
import { DumpImages } from './images.ts';
import { plan, threadOf, type TaskPlan } from './plan.ts';
import { startHelper, killHelper, type Helper } from './stub.ts';
import { RESTORE_STAGES, type RestoreStage } from './stages.ts';
import type { Logger, RestoreTask } from '../resources/types.ts';

export interface RestoreRequest {
  dir: string;
  skipVerify?: boolean;
  key?: Buffer;
  detach: boolean;
  shellJob: boolean;
  pidfile?: string;
  log: Logger;
}

export interface RestoreResult { pid: number; exitCode?: number; ms: number }

/** A task being rebuilt: its stub and its threads, all stopped and traced. */
interface Live { plan: TaskPlan; leader: Tracee; threads: Map<number, Tracee>; area: InjectionArea }

interface Ctx {
  req: RestoreRequest;
  imgs: DumpImages;
  /** Every task in pstree order, zombies too. */
  tasks: TaskPlan[];
  live: Map<number, Live>;
  /** Every PID this restore made, killed if it fails. */
  created: number[];
  /** The process the root is cloned from, until FORKING is over. */
  helper?: Helper;
  sessions: SessionRestore;
  /** Tasks that share their parent's mm (CLONE_VM): no memory of their own to restore. */
  sharedVm: Set<number>;
  /** The injection area as seen by a tracee of this restore. */
  scratchOf(t: Tracee): InjectionArea;
  /** fd tables and fs_structs already restored (shared ones are restored once). */
  doneTables: Set<string>;
  /** Open files whose after-install step (epoll targets) is done. */
  installedOnce: Set<number>;
  shmem: ShmemObjects;
  shmemSize: Map<bigint, bigint>;
  files: Map<number, FileEntry>;
  cpuFacts: CpuFacts;
  fileCtx: RestoreFileCtx;
  locals: Map<number, number>;
  opened: number[];
}

export function restore(req: RestoreRequest): RestoreResult {
  // Every injected syscall is a stop and a resume, cheaper with tracer and tracee on one CPU
  // (36 against 44-50 us here; colocate.ts).
  colocate();
  try { return restoreColocated(req); } finally { endColocation(); }
}

function restoreColocated(req: RestoreRequest): RestoreResult {
  const t0 = performance.now();
  const imgs = new DumpImages(req.dir, { skipVerify: req.skipVerify, key: req.key, warn: (m) => req.log.warn(m) });
  try { return restoreImages(req, imgs, t0); } finally { imgs.close(); }
}

function restoreImages(req: RestoreRequest, imgs: DumpImages, t0: number): RestoreResult {
  const { tasks, files } = plan(imgs);
  for (const t of tasks) for (const tid of t.threads) {
    if (pidInUse(tid)) throw new CriuError(`pid ${tid} is already in use by another process`);
  }
  const root = tasks[0];
  const created: number[] = [];
  const opened: number[] = [];
  const shmem = new ShmemObjects();
  let ctx: Ctx | undefined;
  try {
    const helper = startHelper(tasks.flatMap((t) => t.mm?.vmas ?? []));
    const helperArea = helper.area;
    ctx = {
      req, imgs, tasks, live: new Map(), created, helper, sessions: new SessionRestore(tasks, req.shellJob, created, helper),
      files, cpuFacts: helper.cpuFacts, locals: new Map(), opened, shmem, shmemSize: shmemSizes(tasks.flatMap((t) => (t.mm ? [t.mm] : []))),
      installedOnce: new Set(), doneTables: new Set(), sharedVm: new Set(),
      scratchOf: (t) => new InjectionArea(t, helperArea.base, helperArea.size),
      fileCtx: {
        log: req.log, shellJob: req.shellJob, files, kinds: new Map(),
        entries: (kind, ...args) => imgs.all(kind, ...args), keep: (fd) => { opened.push(fd); return fd; },
        memfd: (inodeId) => memfdObject(imgs, shmem, inodeId),
      },
    };
    for (const { stage } of RESTORE_STAGES) {
      req.log.debug(`restore stage ${stage}`);
      // The last safe point is before the release: past it, the tree is let go.
      checkInterrupt(stage === 'ZOMBIES');
      STAGES[stage](ctx);
    }
  } catch (e) {
    for (const fd of opened) { try { fs.closeSync(fd); } catch { /* closed */ } }
    shmem.close();
    imgs.verifying?.cancel();
    if (ctx?.helper) killHelper(ctx.helper.tracee.tid);
    killAll(created);
    throw e;
  }
  disarmInterrupts();
  if (req.pidfile) writeImageFile(req.pidfile, `${root.pid}`);
  const ms = performance.now() - t0;
  req.log.info(`restored ${tasks.length} task(s) in ${ms.toFixed(1)} ms`);
  if (req.detach) return { pid: root.pid, ms };
  const { status } = waitpid(root.pid, 0);
  const exitCode = W.exited(status) ? W.exitStatus(status) : 128 + W.termSig(status);
  return { pid: root.pid, exitCode, ms };
}

/** What each stage does; stages.ts orders them and says why. */
const STAGES: Record<RestoreStage, (ctx: Ctx) => void> = {
  FORKING: (ctx) => {
    createTree(ctx);
    if (ctx.helper) killHelper(ctx.helper.tracee.tid);
    ctx.helper = undefined;
  },
  GROUPS: (ctx) => {
    ctx.sessions.setGroups(ctx.tasks, (pid) => liveTask(ctx, pid));
    ctx.sessions.dropHelpers(ctx.scratchOf);
  },
  RESTORE: (ctx) => { for (const l of liveTasks(ctx)) { checkInterrupt(); restoreTask(ctx, l); } },
  RESTORE_CREDS: (ctx) => {
    for (const l of liveTasks(ctx)) {
      restoreThreadCreds(l.leader, l.area, l.plan.pid, [...l.threads].map(([tid, tracee]) => ({ tracee, creds: threadOf(l.plan, tid).threadCore.creds })));
    }
  },
  SEAL: (ctx) => {
    for (const fd of ctx.opened.splice(0)) fs.closeSync(fd);
    ctx.shmem.sealAll();
    ctx.shmem.close();
    ctx.imgs.verifying?.join();
    faultPoint('restore-release');
  },
  ZOMBIES: (ctx) => {
    for (const t of ctx.tasks) {
      if (!t.zombie) continue;
      const l = liveTask(ctx, t.pid);
      becomeZombie(l.leader, l.area, t.pid, t.zombie);
    }
  },
  PREPARE_RELEASE: (ctx) => { for (const l of liveTasks(ctx).reverse()) prepareRelease(ctx, l, ctx.sharedVm.has(l.plan.pid)); },
  COMPLETE: (ctx) => { for (const l of liveTasks(ctx)) releaseThreads(l.plan.pid, l.threads.values()); },
};

function liveTask(ctx: Ctx, pid: number): Live {
  const l = ctx.live.get(pid);
  if (!l) throw new CriuError(`task ${pid} was not created`);
  return l;
}

/** The tasks that are not zombies, in pstree order. */
function liveTasks(ctx: Ctx): Live[] {
  return ctx.tasks.filter((t) => !t.zombie).map((t) => liveTask(ctx, t.pid));
}

function withKey<T extends object>(imgs: DumpImages, src: T | undefined): (T & { key?: Buffer }) | undefined {
  return src ? { ...src, key: imgs.key } : undefined;
}

function memfdObject(imgs: DumpImages, shmem: ShmemObjects, inodeId: number): number {
  const inode = imgs.all(IMG.MEMFD_INODE).map((e) => e.entry).find((e) => Number(e.inode_id) === inodeId);
  if (!inode) throw new CriuError(`memfd.img: no memfd inode ${inodeId}`);
  return shmem.memfd(BigInt(inodeId), inode.name, inode.size, inode.seals,
    () => withKey(imgs, imgs.shmemPagemap(inode.shmid)));
}

/** Kill what a failed restore created and reap it: no stray process is left behind. */
function killAll(pids: number[]): void {
  for (const pid of pids) { try { kill(pid, SIG.KILL); } catch { /* gone */ } }
  for (const pid of [...pids].reverse()) {
    for (let i = 0; i < 200; i++) {
      try { if (waitpid(pid, WALL | WNOHANG).pid === pid && !pidInUse(pid)) break; } catch { break; }
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
  // Tasks whose page data is still being read in by the tasks themselves: one is waited for
  // only when it is needed again (to fork a child, which must inherit its memory whole).
  const filling = new Map<number, () => void>();
  const settle = (pid: number): void => { const f = filling.get(pid); filling.delete(pid); f?.(); };
  for (const t of tasks) {
    settle(t.ppid);
    const parentArea = t.ppid === 0 ? ctx.helper?.area : live.get(t.ppid)?.area;
    if (!parentArea) throw new CriuError(`task ${t.pid}: its parent ${t.ppid} is not restored before it`);
    // The clone arguments go into the parent's own copy of the area. A child that shared
    // its parent's fd table or fs_struct is cloned sharing them again.
    const parentPlan = tasks.find((p) => p.pid === t.ppid);
    const { flags, sharesVm } = sharingFlags(t.ids, parentPlan?.ids);
    const born = ctx.sessions.birthplace(t, parentArea, flags);
    const stub = cloneAt(born.area.tracee, born.area, t.pid, born.flags, born.exitSignal);
    ctx.created.push(t.pid);
    stub.setSigmask(ALL_SIGNALS);
    const l: Live = { plan: t, leader: stub, threads: new Map([[t.pid, stub]]), area: parentArea.forTracee(stub) };
    live.set(t.pid, l);
    ctx.sessions.enter(t, stub, born);
    // A task born of a session helper has the helper's memory, fds and the rest, and the helper
    // may have been cloned from another parent: it inherits nothing from its own.
    if (!t.zombie) restoreInheritable(ctx, l, born.ofParent ? parentPlan : undefined);
    // Likewise memory: children are cloned from the task and inherit it (or share it, with
    // CLONE_VM). Its page data goes on being read in while other tasks are created.
    if (!t.zombie && !sharesVm) filling.set(t.pid, restoreMemory(ctx, l, parentPlan, born.ofParent));
    if (sharesVm) ctx.sharedVm.add(t.pid);
  }
  for (const pid of [...filling.keys()]) settle(pid);
}

/**
 * The task's address space (see restoreAddressSpace). `bornOfParent`: the task was cloned
 * from its parent itself, not from a session helper, and so starts with its address space.
 */
function restoreMemory(ctx: Ctx, l: Live, parent: TaskPlan | undefined, bornOfParent: boolean): () => void {
  const t = l.plan;
  const rt: RestoreTask = { pid: t.pid, leader: l.leader, threads: [l.leader], area: l.area, log: ctx.req.log };
  faultPoint('restore-memory');
  checkInterrupt();
  unregisterInheritedRseq(l.leader);
  return restoreAddressSpace(rt, {
    mm: t.mm!, runs: t.pagemap!.runs, pagesPath: t.pagemap!.pagesPath, pathOf: pathResolver(ctx), key: ctx.imgs.key,
    parent: parent ? { pid: parent.pid, mm: parent.mm, runs: parent.pagemap?.runs } : undefined, bornOfParent,
    shmemFd: (v) => {
      if (v.status & VMA.ANON_SHARED) {
        const id = v.shmid;
        return ctx.shmem.anon(id, ctx.shmemSize.get(id)!, () => withKey(ctx.imgs, ctx.imgs.shmemPagemap(id)));
      }
      const file = ctx.files.get(Number(v.shmid))?.memfd;
      if (!file) throw new CriuError(`files.img: no memfd with id ${v.shmid}`);
      return memfdObject(ctx.imgs, ctx.shmem, file.inode_id);
    },
  });
}

function pathResolver(ctx: Ctx): (id: number) => string {
  return (id: number): string => {
    const reg = ctx.files.get(id)?.reg;
    if (!reg) throw new CriuError(`files.img: no regular file with id ${id}`);
    return reg.name;
  };
}

/**
 * What a child copies from its parent at fork: the fd table, root/cwd/umask, the signal
 * actions and the personality. Restored before the task has children, so that they start
 * with it; `parent` is the task this one was forked from after its restore (none for the
 * root and for tasks born from a session helper), and only differences are applied.
 * Tables shared with the parent (CLONE_FILES, CLONE_FS, CLONE_SIGHAND) are done already.
 */
function restoreInheritable(ctx: Ctx, l: Live, parent: TaskPlan | undefined): void {
  const t = l.plan;
  const stub = l.leader;
  const area = l.area;
  faultPoint('restore-files');
  checkInterrupt();
  const filesId = t.ids!.files_id, fsId = t.ids!.fs_id;
  if (!ctx.doneTables.has(`files:${filesId}`)) {
    ctx.doneTables.add(`files:${filesId}`);
    const local = openForRestore(t.fdinfo!, ctx.fileCtx, ctx.locals);
    installFds(stub, t.fdinfo!, local, getpid(), parent?.fdinfo);
  }
  if (!ctx.doneTables.has(`fs:${fsId}`)) {
    ctx.doneTables.add(`fs:${fsId}`);
    restoreFs(stub, area, t.fsEntry!, pathResolver(ctx), parent?.fsEntry);
  }
  const sighandId = t.ids!.sighand_id;
  if (!ctx.doneTables.has(`sighand:${sighandId}`)) {
    ctx.doneTables.add(`sighand:${sighandId}`);
    restoreSigactions(stub, area, t.tc.sigactions, parent?.tc.sigactions);
  }
  restorePersonality(stub, t.tc, parent?.tc);
}

/** Everything of a task but its credentials, once the whole tree exists. */
function restoreTask(ctx: Ctx, l: Live): void {
  const t = l.plan;
  const stub = l.leader;
  const area = l.area;

  // Per-file state that needs the whole tree's fds in place (pipe data, a terminal's group).
  afterInstall(stub, area, t.fdinfo!, ctx.files, ctx.installedOnce);
  restoreTimersAndLimits(stub, area, t.tc, ctx.req.log);

  // Threads come once the memory they run on is back, and with the leader's name, which
  // most of them share.
  const leaderComm = threadOf(t, t.pid).threadCore.comm;
  if (t.threads.length > 1) restoreComm(stub, area, leaderComm);
  for (const tid of t.threads.slice(1)) l.threads.set(tid, cloneThread(stub, area, tid, threadOf(t, tid).core));
  requeueSignals(stub, area, t.pid, t.tc.signals_s, true);
  for (const [tid, th] of l.threads) {
    const { core, threadCore } = threadOf(t, tid);
    restoreThreadCore(th, area, core, threadCore, tid !== t.pid, t.threads.length > 1 ? leaderComm : undefined);
    requeueSignals(th, area, t.pid, threadCore.signals_p, false);
  }
}

/** Everything but the last step: the final state of every thread, the leader last. */
function prepareRelease(ctx: Ctx, l: Live, keepArea: boolean): void {
  const t = l.plan;
  for (const [tid, th] of l.threads) {
    if (tid === t.pid) continue;
    const { core, threadCore } = threadOf(t, tid);
    finishThread(th, core, threadCore, ctx.cpuFacts);
  }
  finishLeader(l.leader, l.area, threadOf(t, t.pid).core, t.tc, ctx.cpuFacts, { keepArea, stopSignal: t.stopSignal });
}
