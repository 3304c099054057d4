// The steps of a restore for one task, in the order the stages (restore.ts) call them: its
// inheritable state, its memory, its files, its threads and its last registers.
import { getpid, MAP } from '../kernel/index.ts';
import { CriuError, faultPoint } from '../errors.ts';
import { checkInterrupt } from '../interrupt.ts';
import { restoreAddressSpace, installGuards, restoreAioRings, type ShmemObjects, VMA } from '../resources/mm/index.ts';
import {
  restorePersonality,
  restoreMembarrier,
  restoreTimersAndLimits,
  cloneThread,
  unregisterInheritedRseq,
  restoreThreadCore,
  requeueSignals,
  restoreComm,
  finishThread,
  finishLeader,
  restoreSched,
  restoreTaskProps,
} from '../resources/task/index.ts';
import { restoreSigactions } from '../resources/sigact.ts';
import { restoreFs } from '../resources/fs.ts';
import { restorePosixTimers } from '../resources/posix-timers.ts';
import { restoreFileLocks } from '../resources/files/locks.ts';
import {
  openForRestore,
  installFds,
  addFds,
  opensLate,
  restoreCtty,
  checkInheritedCtty,
  afterInstall,
  afterInstallInFlight,
} from '../resources/files/index.ts';
import { IMG } from '../images/index.ts';
import { inNetOf } from '../resources/ns/index.ts';
import type { DumpImages } from './images.ts';
import { threadOf, type LivePlan, type TaskPlan } from './plan.ts';
import type { Logger, Message, RestoreTask } from '../resources/types.ts';
import { step, debugOn, vmaLine, fdLine } from '../log.ts';
import { pageCounts } from './stats.ts';

import { type Ctx, type Live, isLive } from './ctx.ts';

export const fileLocksOf = (ctx: Ctx, pid: number) =>
  ctx.imgs
    .all(IMG.FILE_LOCKS)
    .map((e) => e.entry)
    .filter((e) => e.pid === pid);

export function liveTask(ctx: Ctx, pid: number): Live {
  const l = ctx.live.get(pid);
  if (!l) throw new CriuError(`task ${pid} was not created`);
  return l;
}

/** A task's, thread's or group's id in criu-ts's PID namespace, from the one in the images. */
export function hostPid(ctx: Ctx, pid: number): number {
  for (const l of ctx.live.values()) {
    const th = l.threads.get(pid);
    if (th) return th.tid;
  }
  return pid;
}

/** The tasks that are not zombies, in pstree order. */
export function liveTasks(ctx: Ctx): Live<LivePlan>[] {
  return ctx.tasks.map((t) => liveTask(ctx, t.pid)).filter(isLive);
}

export function withKey<T extends object>(imgs: DumpImages, src: T | undefined): (T & { key?: Buffer }) | undefined {
  return src ? { ...src, key: imgs.key } : undefined;
}

export function memfdObject(imgs: DumpImages, shmem: ShmemObjects, inodeId: number): number {
  const inode = imgs
    .all(IMG.MEMFD_INODE)
    .map((e) => e.entry)
    .find((e) => Number(e.inode_id) === inodeId);
  if (!inode) throw new CriuError(`memfd.img: no memfd inode ${inodeId}`);
  return shmem.memfd(BigInt(inodeId), inode.name, inode.size, inode.seals, () => withKey(imgs, imgs.shmemPagemap(inode.shmid)), {
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    hugetlb: inode.hugetlb_flag,
  });
}

/** thread_core.cg_set of a thread of a task (none for a zombie). */
export function cgSetOf(t: TaskPlan, tid: number): number | undefined {
  return t.zombie ? undefined : t.threadCores.get(tid)?.cg_set;
}

/**
 * The task's address space (see restoreAddressSpace). `bornOfParent`: the task was cloned
 * from its parent itself, not from a session helper, and so starts with its address space.
 */
export function restoreMemory(ctx: Ctx, l: Live<LivePlan>, parent: LivePlan | undefined, bornOfParent: boolean): () => void {
  const t = l.plan;
  const rt: RestoreTask = { pid: l.leader.tid, leader: l.leader, threads: [l.leader], area: l.area, log: ctx.req.log };
  logMemory(ctx.req.log, t, (id) => {
    const f = ctx.files.get(id);
    return f?.reg?.name ?? `${f?.memfd ? 'memfd, ' : ''}file id ${id}`;
  });
  faultPoint('restore-memory');
  checkInterrupt();
  unregisterInheritedRseq(l.leader);
  return restoreAddressSpace(rt, {
    mm: t.mm,
    runs: t.pagemap.runs,
    pagesPath: t.pagemap.pagesPath,
    parents: t.pagemap.parents,
    pathOf: pathResolver(ctx, false, l.leader.tid),
    key: ctx.imgs.key,
    parent: parent ? { pid: liveTask(ctx, parent.pid).leader.tid, mm: parent.mm, runs: parent.pagemap.runs } : undefined,
    bornOfParent,
    shmemFd: (v) => {
      if (v.status & VMA.ANON_SHARED) {
        const id = v.shmid;
        const huge = v.flags & MAP.HUGETLB ? v.flags & (MAP.HUGETLB | (0x3f << 26)) : 0;
        return ctx.shmem.anon(id, ctx.shmemSize.get(id)!, () => withKey(ctx.imgs, ctx.imgs.shmemPagemap(id)), huge);
      }
      const file = ctx.files.get(Number(v.shmid))?.memfd;
      if (!file) throw new CriuError(`files.img: no memfd with id ${v.shmid}`);
      return memfdObject(ctx.imgs, ctx.shmem, file.inode_id);
    },
    socketFd: (v) => {
      const e = t.fdinfo.find((f) => f.id === Number(v.shmid));
      if (!e) throw new CriuError(`mm-${t.pid}.img: the socket mapped at 0x${v.start.toString(16)} (file ${v.shmid}) is no fd of the task`);
      return e.fd;
    },
  });
}

/** The path criu-ts opens the file `id` by; `asTask`: as the tasks name it (they open it themselves). */
export function pathResolver(ctx: Ctx, asTask = false, task?: number): (id: number) => string {
  return (id: number): string => {
    const reg = ctx.files.get(id)?.reg;
    if (!reg) throw new CriuError(`files.img: no regular file with id ${id}`);
    const p = ctx.ghosts.path(reg.id, reg.name);
    return asTask ? p : inNs(ctx, p, reg, task);
  };
}

/**
 * A file of the tree (or a ghost made again for it), by its name in its mount namespace:
 * through the root of a task in the namespace its mount is in (without a mount id, a mapped
 * file's, through the root of the task that maps it, else the root's).
 */
export function inNs(ctx: Ctx, p: string, reg: { name: string; mnt_id?: number }, task?: number): string {
  if (!ctx.nsRoot) return p;
  const ns = reg.mnt_id !== undefined && reg.mnt_id >= 0 ? ctx.mntOf.get(reg.mnt_id) : undefined;
  const holder = (ns !== undefined ? ctx.ns.holders.get('mnt')?.get(ns) : undefined) ?? task ?? ctx.rootHost;
  return `/proc/${holder}/root${p}`;
}

/**
 * What a child copies from its parent at fork: the fd table, root/cwd/umask, the signal
 * actions and the personality. Restored before the task has children, so that they start
 * with it; `parent` is the task this one was forked from after its restore (none for the
 * root and for tasks born from a session helper), and only differences are applied.
 * Tables shared with the parent (CLONE_FILES, CLONE_FS, CLONE_SIGHAND) are done already.
 */
export function restoreInheritable(ctx: Ctx, l: Live<LivePlan>, parent: LivePlan | undefined): void {
  const t = l.plan;
  const stub = l.leader;
  const area = l.area;
  faultPoint('restore-files');
  checkInterrupt();
  const filesId = t.ids.files_id,
    fsId = t.ids.fs_id;
  if (!ctx.doneTables.has(`files:${filesId}`)) {
    ctx.doneTables.add(`files:${filesId}`);
    step(ctx.req.log, `task ${t.pid}: ${t.fdinfo.length} fd(s) from fdinfo-${filesId}.img and files.img`);
    if (debugOn(ctx.req.log)) for (const e of t.fdinfo) ctx.req.log.debug(fdLine(e, ctx.files.get(e.id)));
    const now = (fdinfo: Message<'fdinfo_entry'>[]) => fdinfo.filter((e) => !late(ctx, e));
    // Sockets are made in the tree's own network namespace, when it has one.
    const netRoot = ctx.ns.ownNet ? ctx.rootHost : undefined;
    const local = inNetOf(netRoot, () => openForRestore(now(t.fdinfo), ctx.fileCtx, ctx.locals));
    installFds(stub, now(t.fdinfo), local, getpid(), parent && now(parent.fdinfo));
  }
  // A session leader takes its controlling terminal back before it has children, which inherit it.
  if (!ctx.req.shellJob && t.sid === t.pid) restoreCtty(stub, area, t.pid, ctx.fileCtx, true);
  if (!ctx.doneTables.has(`fs:${fsId}`)) {
    ctx.doneTables.add(`fs:${fsId}`);
    step(ctx.req.log, `task ${t.pid}: cwd, root and umask from fs-${t.pid}.img`);
    // A task that entered another mount namespace starts at that namespace's root, whatever
    // its parent's root and cwd were (setns and pivot_root move them).
    const sameMnt = parent !== undefined && parent.ids.mnt_ns_id === t.ids.mnt_ns_id;
    restoreFs(stub, area, t.fsEntry, pathResolver(ctx, true), sameMnt ? parent.fsEntry : undefined);
  }
  const sighandId = t.ids.sighand_id;
  if (!ctx.doneTables.has(`sighand:${sighandId}`)) {
    ctx.doneTables.add(`sighand:${sighandId}`);
    step(ctx.req.log, `task ${t.pid}: signal actions from core-${t.pid}.img`);
    restoreSigactions(stub, area, t.tc.sigactions, parent?.tc.sigactions);
  }
  restorePersonality(stub, t.tc, parent?.tc);
}

/** An fd opened once the whole tree exists (opensLate): on a mount of a namespace other than the root's. */
function late(ctx: Ctx, e: Message<'fdinfo_entry'>): boolean {
  return opensLate(ctx.files.get(e.id), treeIds(ctx), ctx.fileCtx);
}

/** Every PID and TID of the restored tree. */
export function treeIds(ctx: Ctx): Set<number> {
  ctx.treeIds ??= new Set(ctx.tasks.flatMap((t) => [t.pid, ...t.threads]));
  return ctx.treeIds;
}

/** Everything of a task but its credentials, once the whole tree exists. */
export function restoreTask(ctx: Ctx, l: Live<LivePlan>): void {
  const t = l.plan;
  const stub = l.leader;
  const area = l.area;

  // Files under /proc/PID of the tree's tasks, now that they all exist with their fds.
  const lateFds = t.fdinfo.filter((e) => late(ctx, e));
  if (lateFds.length && !ctx.doneTables.has(`late:${t.ids.files_id}`)) {
    ctx.doneTables.add(`late:${t.ids.files_id}`);
    step(
      ctx.req.log,
      `task ${t.pid}: ${lateFds.length} fd(s) of files in /proc or mount namespaces of the tree from fdinfo-${t.ids.files_id}.img`,
    );
    const netRoot = ctx.ns.ownNet ? ctx.rootHost : undefined;
    addFds(
      stub,
      lateFds,
      inNetOf(netRoot, () => openForRestore(lateFds, ctx.fileCtx, ctx.locals)),
      getpid(),
      t.fdinfo,
    );
  }
  // A session leader takes back its controlling terminal (a pseudo-terminal of the dump) with
  // its foreground group, before any task of the session opens /dev/tty again.
  if (!ctx.req.shellJob && t.sid === t.pid) restoreCtty(stub, area, t.pid, ctx.fileCtx);
  else if (!ctx.req.shellJob) checkInheritedCtty(stub.tid, t.pid, t.sid, ctx.fileCtx);
  // Per-file state that needs the whole tree's fds in place (pipe data, /dev/tty).
  step(ctx.req.log, `task ${t.pid}: pipe data and terminals, itimers and rlimits from core-${t.pid}.img`);
  afterInstall(stub, area, t.fdinfo, ctx.fileCtx, ctx.installedOnce);
  afterInstallInFlight(stub, area, t.fdinfo, ctx.fileCtx, ctx.locals, ctx.installedOnce);
  const locks = fileLocksOf(ctx, t.pid);
  if (locks.length) step(ctx.req.log, `task ${t.pid}: file locks from filelocks.img`);
  restoreFileLocks(stub, area, locks, ctx.req.log);
  restoreTimersAndLimits(stub, area, t.tc, ctx.req.log);

  // Threads come once the memory they run on is back, and with the leader's name, which
  // most of them share.
  const leaderComm = threadOf(t, t.pid).threadCore.comm;
  if (t.threads.length > 1) restoreComm(stub, area, leaderComm);
  for (const tid of t.threads.slice(1)) {
    step(ctx.req.log, `task ${t.pid}: thread ${tid} created from core-${tid}.img`);
    const th = cloneThread(stub, area, tid, threadOf(t, tid).core);
    l.threads.set(tid, th);
    ctx.cgroups.enter(th.tid, cgSetOf(t, tid), cgSetOf(t, t.pid), true);
  }
  step(
    ctx.req.log,
    `task ${t.pid}: pending signals, thread state (rseq, sigaltstack, robust list) of ${l.threads.size} thread(s) from core-*.img`,
  );
  requeueSignals(stub, area, t.pid, t.tc.signals_s, true);
  for (const [tid, th] of l.threads) {
    const { core, threadCore } = threadOf(t, tid);
    restoreThreadCore(th, area, core, threadCore, tid !== t.pid, t.threads.length > 1 ? leaderComm : undefined);
    restoreSched(th, area, threadCore);
    requeueSignals(th, area, t.pid, threadCore.signals_p, false);
  }
  if (t.guards.length) {
    step(ctx.req.log, `task ${t.pid}: ${t.guards.length} guard region(s) from mm-${t.pid}.img`);
    installGuards(stub, t.guards);
  }
  if (t.mm.aios.length) {
    step(ctx.req.log, `task ${t.pid}: ${t.mm.aios.length} AIO ring(s) from mm-${t.pid}.img`);
    restoreAioRings(stub, area, t.mm.aios);
  }
  // POSIX timers once the threads they may signal exist.
  restorePosixTimers(stub, area, t.tc.timers?.posix ?? [], ctx.req.log);
  restoreTaskProps(stub, area, stub.tid, t.tc);
  restoreMembarrier(stub, t.tc);
}

/** Everything but the last step: the final state of every thread, the leader last. */
export function prepareRelease(ctx: Ctx, l: Live<LivePlan>, keepArea: boolean): void {
  const t = l.plan;
  step(ctx.req.log, `task ${t.pid}: registers and signal masks of ${l.threads.size} thread(s) from core-*.img`);
  for (const [tid, th] of l.threads) {
    if (tid === t.pid) continue;
    const { core, threadCore } = threadOf(t, tid);
    finishThread(th, core, threadCore, ctx.cpuFacts);
  }
  finishLeader(l.leader, l.area, threadOf(t, t.pid).core, t.tc, ctx.cpuFacts, { keepArea, stopSignal: t.stopSignal });
}

/** The tree to restore (level 3). */
export function logPlan(log: Logger, tasks: TaskPlan[]): void {
  log.info(`${tasks.length} task(s) to restore`);
  for (const t of tasks) {
    log.info(
      `task ${t.pid}: parent ${t.ppid}, group ${t.pgid}, session ${t.sid}, ${t.threads.length} thread(s)${t.zombie ? ', a zombie' : ''}`,
    );
  }
}

/** A task's memory step (level 3) and its VMAs, with what backs each (level 4). */
export function logMemory(log: Logger, t: LivePlan, pathOf: (id: number) => string): void {
  const vmas = t.mm.vmas;
  const { pagesRestored, pagesSkippedCow } = pageCounts([t]);
  const pages = t.pagemap?.pagesPath.replace(/.*\//, '') ?? 'no page data';
  step(
    log,
    `task ${t.pid}: memory from mm-${t.pid}.img, pagemap-${t.pid}.img and ${pages}: ${vmas.length} VMAs, ${pagesRestored} pages to write, ${pagesSkippedCow} kept from the parent`,
  );
  if (!debugOn(log)) return;
  const what = (v: (typeof vmas)[number]): string => {
    const st = v.status;
    if (st & VMA.AREA_VDSO) return '[vdso]';
    if (st & VMA.AREA_VSYSCALL) return '[vsyscall]';
    if (st & VMA.AREA_VVAR) return '[vvar]';
    if (st & VMA.AREA_HEAP) return '[heap]';
    if (st & VMA.AREA_STACK) return '[stack]';
    if (st & VMA.ANON_SHARED) return `shared anonymous memory ${v.shmid}`;
    if (st & (VMA.FILE_PRIVATE | VMA.FILE_SHARED | VMA.AREA_MEMFD)) return pathOf(Number(v.shmid));
    return '';
  };
  for (const v of vmas)
    log.debug(vmaLine(v.start, v.end, v.prot, (v.flags & 1) !== 0, `${what(v)} (status 0x${v.status.toString(16)})`.trimStart()));
}
