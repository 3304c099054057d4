// Restore orchestration: read the dump, create every task at its PID (the root from a
// helper, each child from its parent), rebuild them stage by stage through injected
// syscalls, then install the registers and let the whole tree go at once.
import fs from 'node:fs';
import { kill, waitpid, W, WALL, WNOHANG, SIG, getpid, CLONE, PR, SysError } from '../kernel/index.ts';
import { InjectionArea, colocate, endColocation, type Tracee } from '../compel/index.ts';
import { cpu, threadInfo, type CpuFacts } from '../resources/cpu/index.ts';
import { CriuError, faultPoint } from '../errors.ts';
import { checkInterrupt, disarmInterrupts } from '../interrupt.ts';
import { prepareAddressSpace, restoreVmas, restoreMmFields, sameMmFields } from '../resources/mm-restore.ts';
import { unregisterInheritedRseq, restoreThreadCore, requeueSignals, restoreComm } from '../resources/core.ts';
import { restoreSigactions } from '../resources/sigact.ts';
import { restoreItimers } from '../resources/timers.ts';
import { restoreRlimits } from '../resources/rlimits.ts';
import { restoreCreds, dumpCreds, readSecbits } from '../resources/creds.ts';
import { readStatus } from '../proc/index.ts';
import { restoreFs } from '../resources/fs.ts';
import { openForRestore, installFds, afterInstall, type RestoreFileCtx } from '../resources/files/index.ts';
import { ShmemObjects } from '../resources/shmem.ts';
import { VMA } from '../resources/mm-layout.ts';
import { DumpImages } from './images.ts';
import { plan, type TaskPlan } from './plan.ts';
import { startHelper, killHelper, cloneAt, pidInUse, type Helper } from './stub.ts';
import type { Logger, Msg, RestoreTask } from '../resources/types.ts';

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

const ALL_SIGNALS = 0xffffffffffffffffn;
const THREAD_FLAGS = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM | CLONE.SETTLS | CLONE.CHILD_CLEARTID;

/** A task being rebuilt: its stub and its threads, all stopped and traced. */
interface Live { plan: TaskPlan; leader: Tracee; threads: Map<number, Tracee>; area: InjectionArea }

interface Ctx {
  /** Tasks that share their parent's mm (CLONE_VM): no memory of their own to restore. */
  sharedVm: Set<number>;
  /** Helpers standing in for dead session ("s<sid>") and group ("g<pgid>") leaders. */
  leaderHelpers: Map<string, LeaderHelper>;
  /** The injection area as seen by a tracee of this restore. */
  scratchOf(t: Tracee): InjectionArea;
  /** fd tables and fs_structs already restored (shared ones are restored once). */
  doneTables: Set<string>;
  /** Open files whose after-install step (epoll targets) is done. */
  installedOnce: Set<number>;
  shmem: ShmemObjects;
  shmemSize: Map<bigint, bigint>;
  req: RestoreRequest;
  imgs: DumpImages;
  files: Map<number, Msg>;
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
  const imgs = new DumpImages(req.dir, { skipVerify: req.skipVerify, key: req.key });
  try { return restoreImages(req, imgs, t0); } finally { imgs.close(); }
}

function restoreImages(req: RestoreRequest, imgs: DumpImages, t0: number): RestoreResult {
  const { tasks, files } = plan(imgs);
  for (const t of tasks) for (const tid of t.threads) {
    if (pidInUse(tid)) throw new CriuError(`pid ${tid} is already in use by another process`);
  }
  const root = tasks[0];
  const created: number[] = [];
  const live = new Map<number, Live>();
  const opened: number[] = [];
  const shmem = new ShmemObjects();
  let helper: Helper | undefined;
  try {
    helper = startHelper(tasks.flatMap((t) => (t.mm?.vmas as Msg[] | undefined) ?? []));
    const helperArea = helper.area;
    const ctx: Ctx = {
      req, imgs, files, cpuFacts: helper.cpuFacts, locals: new Map(), opened, shmem, shmemSize: shmemSizes(tasks), installedOnce: new Set(), doneTables: new Set(), leaderHelpers: new Map(), sharedVm: new Set(),
      scratchOf: (t) => new InjectionArea(t, helperArea.base, helperArea.size),
      fileCtx: {
        log: req.log, shellJob: req.shellJob, files, memo: new Map(),
        entries: (image) => imgs.all(image), keep: (fd) => { opened.push(fd); return fd; },
        memfd: (inodeId) => memfdObject(imgs, shmem, inodeId),
      },
    };
    createTree(ctx, tasks, helper, live, created);
    killHelper(helper.tracee.tid);
    helper = undefined;
    setGroups(ctx, tasks, live, created);
    dropLeaderHelpers(ctx, created);
    for (const t of tasks) {
      checkInterrupt();
      if (!t.zombie) restoreTask(ctx, live.get(t.pid)!);
    }
    for (const fd of opened.splice(0)) fs.closeSync(fd);
    shmem.sealAll();
    shmem.close();
    // Nothing runs before the page data is known to be intact.
    imgs.verifying?.join();
    faultPoint('restore-release');
    // The last safe point: past it, the tree is let go.
    checkInterrupt(true);
    for (const t of tasks) if (t.zombie) becomeZombie(live.get(t.pid)!);
    // Tasks sharing an mm share the injection area too: the last of them removes it.
    for (const t of [...tasks].reverse()) if (!t.zombie) prepareRelease(ctx, live.get(t.pid)!, ctx.sharedVm.has(t.pid));
    for (const t of tasks) if (!t.zombie) release(live.get(t.pid)!);

  } catch (e) {
    for (const fd of opened) { try { fs.closeSync(fd); } catch { /* closed */ } }
    shmem.close();
    imgs.verifying?.cancel();
    if (helper) killHelper(helper.tracee.tid);
    killAll(created);
    throw e;
  }
  disarmInterrupts();
  if (req.pidfile) fs.writeFileSync(req.pidfile, `${root.pid}`);
  const ms = performance.now() - t0;
  req.log.info(`restored ${tasks.length} task(s) in ${ms.toFixed(1)} ms`);
  if (req.detach) return { pid: root.pid, ms };
  const { status } = waitpid(root.pid, 0);
  const exitCode = W.exited(status) ? W.exitStatus(status) : 128 + W.termSig(status);
  return { pid: root.pid, exitCode, ms };
}

function withKey<T extends object>(imgs: DumpImages, src: T | undefined): (T & { key?: Buffer }) | undefined {
  return src ? { ...src, key: imgs.key } : undefined;
}

/** The size of each shared anonymous object: the furthest any task maps it. */
function shmemSizes(tasks: TaskPlan[]): Map<bigint, bigint> {
  const sizes = new Map<bigint, bigint>();
  for (const t of tasks) for (const v of (t.mm?.vmas as Msg[] | undefined) ?? []) {
    if (!((v.status as number) & VMA.ANON_SHARED)) continue;
    const end = (v.pgoff as bigint) + (v.end as bigint) - (v.start as bigint);
    const id = v.shmid as bigint;
    if ((sizes.get(id) ?? 0n) < end) sizes.set(id, end);
  }
  return sizes;
}

function memfdObject(imgs: DumpImages, shmem: ShmemObjects, inodeId: number): number {
  const inode = imgs.all('memfd.img').map((e) => e.entry).find((e) => Number(e.inode_id) === inodeId);
  if (!inode) throw new CriuError(`memfd.img: no memfd inode ${inodeId}`);
  return shmem.memfd(BigInt(inodeId), inode.name as string, inode.size as bigint, inode.seals as number,
    () => withKey(imgs, imgs.shmemPagemap(inode.shmid as number)));
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
 * Stubs at their PIDs: the root from the helper (its parent becomes criu-ts once the helper
 * is gone), every other task from its parent's stub, so that parentage and inherited
 * sessions come out as dumped. A task that led its session calls setsid before it has
 * children.
 */
function createTree(ctx: Ctx, tasks: TaskPlan[], helper: Helper, live: Map<number, Live>, created: number[]): void {
  const pids = new Set(tasks.map((t) => t.pid));
  // Tasks whose page data is still being read in by the tasks themselves: one is waited for
  // only when it is needed again (to fork a child, which must inherit its memory whole).
  const filling = new Map<number, () => void>();
  const settle = (pid: number): void => { const f = filling.get(pid); filling.delete(pid); f?.(); };
  for (const t of tasks) {
    settle(t.ppid);
    const parentArea = t.ppid === 0 ? helper.area : live.get(t.ppid)?.area;
    if (!parentArea) throw new CriuError(`task ${t.pid}: its parent ${t.ppid} is not restored before it`);
    // The clone arguments go into the parent's own copy of the area. A child that shared
    // its parent's fd table or fs_struct is cloned sharing them again.
    const parentPlan = tasks.find((p) => p.pid === t.ppid);
    const same = (k: string) => parentPlan?.ids !== undefined && t.ids !== undefined && parentPlan.ids[k] === t.ids[k];
    const sharesVm = same('vm_id');
    let flags = (same('files_id') ? CLONE.FILES : 0) | (same('fs_id') ? CLONE.FS : 0) |
      (sharesVm ? CLONE.VM : 0) | (sharesVm && same('sighand_id') ? CLONE.SIGHAND : 0);
    let from = parentArea, exitSignal: number = SIG.CHLD;
    // A session whose leader is gone: a helper at the leader's PID starts it again with
    // setsid, and the task is born in it, as a sibling of the helper (CLONE_PARENT), that
    // is, still a child of its own parent.
    const deadSession = t.sid !== t.pid && !pids.has(t.sid) && !(ctx.req.shellJob && t.sid === tasks[0].sid);
    if (deadSession) {
      from = sessionHelper(ctx, t.sid, parentArea, helper, created).area;
      flags = CLONE.PARENT;
      exitSignal = 0; // with CLONE_PARENT the kernel gives the child the helper's exit signal
    }
    const stub = cloneAt(from.tracee, from, t.pid, flags, exitSignal);
    created.push(t.pid);
    stub.setSigmask(ALL_SIGNALS);
    const area = helper.area.forTracee(stub);
    live.set(t.pid, { plan: t, leader: stub, threads: new Map([[t.pid, stub]]), area });
    // A shell job joins the session (and terminal) of criu-ts itself, as in CRIU.
    const shellRoot = ctx.req.shellJob && t.sid === tasks[0].sid;
    if (t.sid === t.pid && !shellRoot) stub.syscall('setsid');
    else if (t.ppid === 0 && !ctx.req.shellJob && !deadSession) {
      throw new CriuError(`task ${t.pid} was in session ${t.sid}, outside the dump; restore it with --shell-job`);
    }
    // The fd table, fs and signal actions, which fork copies, before this task has children:
    // a child then only changes where it differs from its parent.
    // A task born of a session helper has the helper's memory, fds and the rest, and the helper
    // may have been cloned from another parent: it inherits nothing from its own.
    if (!t.zombie) restoreInheritable(ctx, live.get(t.pid)!, deadSession ? undefined : parentPlan);
    // Likewise memory: children are cloned from the task and inherit it (or share it, with
    // CLONE_VM). Its page data goes on being read in while other tasks are created.
    if (!t.zombie && !sharesVm) filling.set(t.pid, restoreMemory(ctx, live.get(t.pid)!, parentPlan, !deadSession));
    if (sharesVm) ctx.sharedVm.add(t.pid);
  }
  for (const pid of [...filling.keys()]) settle(pid);
}

/** A short-lived task at the PID of a dead session or group leader (see createTree, setGroups). */
interface LeaderHelper { pid: number; tracee: Tracee; area: InjectionArea; parent: Tracee | undefined }

function sessionHelper(ctx: Ctx, sid: number, creator: InjectionArea, helper: Helper, created: number[]): LeaderHelper {
  let h = ctx.leaderHelpers.get(`s${sid}`);
  if (!h) {
    const t = cloneAt(creator.tracee, creator, sid, 0, SIG.CHLD);
    created.push(sid);
    t.setSigmask(ALL_SIGNALS);
    const area = helper.area.forTracee(t);
    t.syscall('setsid');
    h = { pid: sid, tracee: t, area, parent: creator.tracee === helper.tracee ? undefined : creator.tracee };
    ctx.leaderHelpers.set(`s${sid}`, h);
  }
  return h;
}

/**
 * Process groups, once every group leader exists. A shell job's outside group is criu-ts's.
 * A group whose leader is gone is started again by a helper at its PID, cloned from a
 * member (so, in the member's session); the group lives on after the helper exits.
 */
function setGroups(ctx: Ctx, tasks: TaskPlan[], live: Map<number, Live>, created: number[]): void {
  const root = tasks[0];
  const pids = new Set(tasks.map((t) => t.pid));
  for (const t of tasks) {
    const pgid = t.pgid;
    if (ctx.req.shellJob && pgid === root.pgid) continue;
    const l = live.get(t.pid)!;
    if (Number(l.leader.syscall('getpgid', 0)) === pgid) continue;
    if (!pids.has(pgid) && !ctx.leaderHelpers.has(`g${pgid}`) && !ctx.leaderHelpers.has(`s${pgid}`)) {
      const h = cloneAt(l.leader, l.area, pgid, 0, 0);
      created.push(pgid);
      h.useInjectionPage(l.area.base);
      h.setSigmask(ALL_SIGNALS);
      h.syscall('setpgid', 0, 0);
      ctx.leaderHelpers.set(`g${pgid}`, { pid: pgid, tracee: h, area: l.area.forTracee(h), parent: l.leader });
      l.leader.useInjectionPage(l.area.base);
    }
    l.leader.syscall('setpgid', 0, pgid);
  }
}

/** The helpers exit and are reaped by their parents, which keep no trace of them. */
function dropLeaderHelpers(ctx: Ctx, created: number[]): void {
  const zero = Buffer.alloc(16);
  for (const h of ctx.leaderHelpers.values()) {
    h.tracee.prepareResume('exit_group', 0);
    h.tracee.detach();
    if (!h.parent) {
      waitpid(h.pid, WALL); // re-parented to criu-ts when the first helper died
    } else {
      const p = h.parent;
      p.syscall('wait4', h.pid, 0, WALL, 0);
      // A session helper was made with SIGCHLD: take that signal back from the parent.
      const a = ctx.scratchOf(p);
      a.reset();
      const set = Buffer.alloc(8);
      set.writeBigUInt64LE(1n << BigInt(SIG.CHLD - 1), 0);
      p.syscallRaw('rt_sigtimedwait', a.put(set), 0, a.put(zero), 8);
    }
    const i = created.indexOf(h.pid);
    if (i >= 0) created.splice(i, 1);
  }
  ctx.leaderHelpers.clear();
}

/**
 * The task's address space. A child cloned from its parent after the parent's memory came
 * back keeps every private VMA that is exactly as the parent has it, and with it the pages
 * it still shares copy-on-write (PE_COW_PARENT in its pagemap) and the file pages, instead
 * of a private copy of every page and an mmap per VMA. `bornOfParent`: the task was cloned
 * from its parent itself, not from a session helper, and so starts with its address space.
 */
function restoreMemory(ctx: Ctx, l: Live, parent: TaskPlan | undefined, bornOfParent: boolean): () => void {
  const t = l.plan;
  const stub = l.leader;
  const rt: RestoreTask = { pid: t.pid, leader: stub, threads: [stub], area: l.area, log: ctx.req.log };
  const pathOf = pathResolver(ctx);
  const kept = parent && bornOfParent ? inheritedVmas(t, parent) : new Set<bigint>();
  faultPoint('restore-memory');
  checkInterrupt();
  unregisterInheritedRseq(stub);
  const keepRanges = (t.mm!.vmas as Msg[]).filter((v) => kept.has(v.start as bigint)).map((v) => ({ start: v.start as bigint, end: v.end as bigint }));
  prepareAddressSpace(rt, t.mm!.vmas as Msg[], keepRanges);
  // Before the target's VMAs exist: the kernel refuses a new exe link while the old exe
  // (the helper's program, possibly the same file as the target's) is still mapped.
  if (!bornOfParent || !parent?.mm || !sameMmFields(t.mm!, parent.mm, pathOf)) restoreMmFields(rt, t.mm!, pathOf(t.mm!.exe_file_id as number), ctx.req.log);
  return restoreVmas(rt, {
    mm: t.mm!, runs: t.pagemap!.runs, pagesPath: t.pagemap!.pagesPath, pathOf, key: ctx.imgs.key,
    kept, parentRuns: parent?.pagemap?.runs, parentPid: parent?.pid,
    shmemFd: (v) => {
      if ((v.status as number) & VMA.ANON_SHARED) {
        const id = v.shmid as bigint;
        return ctx.shmem.anon(id, ctx.shmemSize.get(id)!, () => withKey(ctx.imgs, ctx.imgs.shmemPagemap(id)));
      }
      const file = ctx.files.get(Number(v.shmid))?.memfd as Msg | undefined;
      if (!file) throw new CriuError(`files.img: no memfd with id ${v.shmid as bigint}`);
      return memfdObject(ctx.imgs, ctx.shmem, file.inode_id as number);
    },
  });

}

/** Private VMAs of `t` that are exactly as its parent has them (same range, flags, file and offset). */
function inheritedVmas(t: TaskPlan, parent: TaskPlan): Set<bigint> {
  const kept = new Set<bigint>();
  const pvmas = (parent.mm?.vmas as Msg[] | undefined) ?? [];
  const same = (a: Msg, b: Msg) => ['start', 'end', 'prot', 'flags', 'status', 'shmid', 'pgoff'].every((k) => a[k] === b[k]);
  for (const v of (t.mm!.vmas as Msg[])) {
    // Private memory, anonymous or file-backed, exactly as the parent has it: kept with the
    // parent's pages, and only the pages that differ are dropped or written.
    const st = v.status as number;
    if (!(st & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) || (st & (VMA.AREA_VDSO | VMA.AREA_VVAR))) continue;
    if (pvmas.some((p) => same(p, v))) kept.add(v.start as bigint);
  }
  return kept;
}

function pathResolver(ctx: Ctx): (id: number) => string {
  return (id: number): string => {
    const reg = ctx.files.get(id)?.reg as Msg | undefined;
    if (!reg) throw new CriuError(`files.img: no regular file with id ${id}`);
    return reg.name as string;
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
  const tc = t.cores.get(t.pid)!.tc as Msg;
  const ptc = parent?.cores.get(parent.pid)?.tc as Msg | undefined;
  faultPoint('restore-files');
  checkInterrupt();
  const filesId = t.ids!.files_id as number, fsId = t.ids!.fs_id as number;
  if (!ctx.doneTables.has(`files:${filesId}`)) {
    ctx.doneTables.add(`files:${filesId}`);
    const local = openForRestore(t.fdinfo!, ctx.fileCtx, ctx.locals);
    installFds(stub, t.fdinfo!, local, getpid(), parent?.fdinfo);
  }
  if (!ctx.doneTables.has(`fs:${fsId}`)) {
    ctx.doneTables.add(`fs:${fsId}`);
    restoreFs(stub, area, t.fsEntry!, pathResolver(ctx), parent?.fsEntry);
  }
  const sighandId = t.ids!.sighand_id as number;
  if (!ctx.doneTables.has(`sighand:${sighandId}`)) {
    ctx.doneTables.add(`sighand:${sighandId}`);
    restoreSigactions(stub, area, tc.sigactions as Msg[], ptc?.sigactions as Msg[] | undefined);
  }
  if (!ptc || tc.personality !== ptc.personality) stub.syscallRaw('personality', tc.personality as number);
}

function restoreTask(ctx: Ctx, l: Live): void {
  const t = l.plan;
  const stub = l.leader;
  const area = l.area;
  const core = t.cores.get(t.pid)!;
  const tc = core.tc as Msg;

  // Per-file state that needs the whole tree's fds in place (pipe data, a terminal's group).
  afterInstall(stub, area, t.fdinfo!, ctx.files, ctx.installedOnce);
  restoreItimers(stub, area, tc.timers as Msg | undefined);
  if (tc.rlimits) restoreRlimits(stub, area, tc.rlimits as Msg, ctx.req.log);

  // Threads come once the memory they run on is back, and with the leader's name, which
  // most of them share.
  const leaderComm = (core.thread_core as Msg).comm as string | undefined;
  if (t.threads.length > 1) restoreComm(stub, area, leaderComm);
  for (const tid of t.threads.slice(1)) {
    const info = threadInfo(t.cores.get(tid)!)!;
    const th = cloneAt(stub, area, tid, THREAD_FLAGS, 0, { childTid: cpu.clearTid(info), tls: cpu.tls(info) });
    th.useInjectionPage(area.base);
    th.setSigmask(ALL_SIGNALS);
    l.threads.set(tid, th);
  }
  requeueSignals(stub, area, t.pid, tc.signals_s as Msg | undefined, true);
  for (const [tid, th] of l.threads) {
    const c = t.cores.get(tid)!;
    const threadCore = c.thread_core as Msg;
    restoreThreadCore(th, area, threadInfo(c)!, threadCore, tid !== t.pid, t.threads.length > 1 ? leaderComm : undefined);
    requeueSignals(th, area, t.pid, threadCore.signals_p as Msg | undefined, false);
  }
  // Credentials are per thread in the kernel, and last: they may take away our rights.
  // Every thread was cloned from the stub and has its credentials until now: read them once.
  const current = dumpCreds(readStatus(t.pid), readSecbits(stub));
  for (const [tid, th] of l.threads) {
    const creds = (t.cores.get(tid)!.thread_core as Msg).creds as Msg | undefined;
    if (creds) restoreCreds(th, area, creds, current);
  }
}

/**
 * Let every thread of the task go. A thread that is no longer in its ptrace stop when its
 * turn comes was taken down with its process by a thread let go before it (a crash right
 * after restore): its exit status says how.
 */
function release(l: Live): void {
  for (const th of l.threads.values()) {
    try {
      th.detach();
    } catch (e) {
      if (!(e instanceof SysError && e.code === 'ESRCH')) throw e;
      const { status } = waitpid(th.tid, WALL);
      const how = W.signaled(status) ? `killed by signal ${W.termSig(status)}` : `exited with status ${W.exitStatus(status)}`;
      throw new CriuError(`task ${l.plan.pid} died as soon as its first threads were let go: thread ${th.tid} ${how}`);
    }
  }
}

/** A dumped zombie: its stub exits the way the task did, and stays unreaped for its parent. */
function becomeZombie(l: Live): void {
  const code = l.plan.zombie!.exitCode;
  const sig = code & 0x7f;
  const stub = l.leader;
  l.area.reset();
  stub.syscall('prctl', PR.SET_NAME, l.area.putString(l.plan.zombie!.comm), 0, 0, 0);
  stub.setSigmask(0n);
  if (sig) stub.prepareResume('kill', l.plan.pid, sig);
  else stub.prepareResume('exit_group', (code >> 8) & 0xff);
  stub.detach();
}

/** Everything but the last step: final registers of the non-leader threads. */
function prepareRelease(ctx: Ctx, l: Live, keepArea = false): void {
  const t = l.plan;
  for (const [tid, th] of l.threads) {
    if (tid === t.pid) continue;
    const c = t.cores.get(tid)!;
    cpu.apply(th, threadInfo(c)!, ctx.cpuFacts);
    th.setSigmask(((c.thread_core as Msg).blk_sigset as bigint | undefined) ?? 0n);
  }
  // The leader unmaps the injection area by itself, from its own syscall instruction, and
  // stops at syscall exit, never running the trap after it; there its registers go in.
  const core = t.cores.get(t.pid)!;
  const info = threadInfo(core)!;
  if (!keepArea) {
    l.leader.useSyscallInsn(l.area.base);
    l.leader.lastSyscall(cpu.regs(info), 'munmap', l.area.base, l.area.size);
  }
  cpu.apply(l.leader, info, ctx.cpuFacts);
  // A task dumped stopped goes into its job-control stop before its own mask lets any
  // pending signal through.
  if (t.stopSignal) l.leader.enterGroupStop(t.pid, t.stopSignal);
  l.leader.setSigmask((core.tc as Msg).blk_sigset as bigint);
}
