// What a dump asks to restore: the process tree in pstree order, with each task's images.
import { CriuError, NotSupportedError } from '../errors.ts';
import { IMG, imageFileName } from '../images/index.ts';
import type { DumpImages } from './images.ts';
import type { PageLayer } from './parent-pages.ts';
import type { Message, PageSource } from '../resources/types.ts';
import type { FileEntry } from '../resources/files/index.ts';
import { TASK_STATE } from '../resources/task/index.ts';
import { cpu } from '../resources/cpu/index.ts';
import { splitGuards } from '../resources/mm/index.ts';
import { SIG } from '../kernel/index.ts';
import { checkPstree, validatePlan } from './validate.ts';

export type Core = Message<'core_entry'>;
export type TaskCore = Message<'task_core_entry'>;
export type ThreadCore = Message<'thread_core_entry'>;

interface PlanBase {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  cores: Map<number, Core>;
  /** The leader's task core (cores.get(pid).tc). */
  tc: TaskCore;
}

/** A dumped zombie: only its place in the tree and its exit are left. */
export interface ZombiePlan extends PlanBase {
  zombie: { exitCode: number; comm: string };
}

/** A live task, with every image it needs. */
export interface LivePlan extends PlanBase {
  zombie?: undefined;
  /** Each thread's thread_core (cores.get(tid).thread_core). */
  threadCores: Map<number, ThreadCore>;
  /** Dumped stopped (task_state 3): stopped again with this signal once restored. */
  stopSignal?: number;
  /** mm_entry without its guard-region entries, which are in `guards`. */
  mm: Message<'mm_entry'>;
  /** Guard regions (MADV_GUARD_INSTALL), installed once the task's memory is whole. */
  guards: Array<{ start: bigint; end: bigint }>;
  fsEntry: Message<'fs_entry'>;
  fdinfo: Message<'fdinfo_entry'>[];
  ids: Message<'task_kobj_ids_entry'>;
  /** With the pages its parent dumps hold for it (PE_PARENT runs), one layer per dump. */
  pagemap: { runs: PageSource[]; pagesPath: string; parents: PageLayer[] };
}

export type TaskPlan = LivePlan | ZombiePlan;

export interface RestorePlan {
  tasks: TaskPlan[];
  files: Map<number, FileEntry>;
}

export function plan(imgs: DumpImages): RestorePlan {
  const inv = imgs.one(IMG.INVENTORY);
  if (inv.img_version !== 2) throw new CriuError(`inventory.img: unsupported image version ${inv.img_version}`);
  const pstree = imgs.required(IMG.PSTREE).map((e) => e.entry);
  if (!pstree.length) throw new CriuError('pstree.img: no tasks');
  checkPstree(imgs.dir, pstree);
  const files = new Map<number, FileEntry>();
  for (const { entry } of imgs.all(IMG.FILES)) files.set(entry.id, entry);
  const known = new Set<number>();
  const tasks = pstree.map((entry, i): TaskPlan => {
    const { pid, ppid } = entry;
    if (i === 0 ? ppid !== 0 : !known.has(ppid)) throw new CriuError(`pstree.img: task ${pid} comes before its parent ${ppid}`);
    known.add(pid);
    const threads = entry.threads;
    if (threads.length && threads[0] !== pid) throw new CriuError(`pstree.img: task ${pid} does not list its leader first`);
    const leaderFile = imageFileName(IMG.CORE, pid);
    const leaderCore = imgs.one(IMG.CORE, pid);
    checkArch(leaderCore, leaderFile);
    const tc = leaderCore.tc;
    if (!tc) throw new CriuError(`${leaderFile}: no task core (tc)`);
    const base: PlanBase = {
      pid,
      ppid,
      pgid: entry.pgid,
      sid: entry.sid,
      threads: threads.length ? threads : [pid],
      cores: new Map([[pid, leaderCore]]),
      tc,
    };
    if (tc.task_state === TASK_STATE.DEAD) return { ...base, zombie: { exitCode: tc.exit_code, comm: tc.comm } };
    if (tc.task_state !== TASK_STATE.ALIVE && tc.task_state !== TASK_STATE.STOPPED) {
      throw new NotSupportedError(`${leaderFile}: task state ${tc.task_state}`);
    }
    const threadCores = new Map<number, ThreadCore>();
    for (const tid of base.threads) {
      const file = imageFileName(IMG.CORE, tid);
      const core = tid === pid ? leaderCore : imgs.one(IMG.CORE, tid);
      base.cores.set(tid, core);
      checkArch(core, file);
      cpu.check(core, file);
      if (!core.thread_core) throw new CriuError(`${file}: no thread core (thread_core)`);
      threadCores.set(tid, core.thread_core);
    }
    const ids = imgs.one(IMG.IDS, pid);
    return {
      ...base,
      threadCores,
      ids,
      ...(tc.task_state === TASK_STATE.STOPPED ? { stopSignal: tc.stop_signo ?? SIG.STOP } : {}),
      ...splitGuards(imgs.one(IMG.MM, pid)),
      fsEntry: imgs.one(IMG.FS, pid),
      // A dump writes it even for a task without fds: missing, it was lost.
      fdinfo: imgs.required(IMG.FDINFO, ids.files_id).map((e) => e.entry),
      pagemap: imgs.pagemapWithParents(pid),
    };
  });
  const p = { tasks, files };
  validatePlan(imgs.dir, p);
  return p;
}

/** A thread's core entry and its thread core, which plan() checked are there. */
export function threadOf(t: LivePlan, tid: number): { core: Core; threadCore: ThreadCore } {
  const core = t.cores.get(tid),
    threadCore = t.threadCores.get(tid);
  if (!core || !threadCore) throw new CriuError(`task ${t.pid}: no core image for thread ${tid}`);
  return { core, threadCore };
}

const MARCH: Record<number, string> = {
  1: 'x86_64',
  2: 'arm',
  3: 'aarch64',
  4: 'ppc64',
  5: 's390',
  6: 'mips',
  7: 'loongarch64',
  8: 'riscv64',
};

function checkArch(core: Core, file: string): void {
  const m = core.mtype;
  if (m !== cpu.march)
    throw new CriuError(`${file}: the dump is for ${MARCH[m] ?? `architecture ${m}`}, this machine is ${MARCH[cpu.march]}`);
}
