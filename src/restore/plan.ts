// What a dump asks to restore: the process tree in pstree order, with each task's images.
import { CriuError } from '../errors.ts';
import { IMG, imageFileName } from '../images/index.ts';
import type { DumpImages } from './images.ts';
import type { Message, PageSource } from '../resources/types.ts';
import type { FileEntry } from '../resources/files/index.ts';
import { cpu } from '../resources/cpu/index.ts';

export type Core = Message<'core_entry'>;
export type TaskCore = Message<'task_core_entry'>;
export type ThreadCore = Message<'thread_core_entry'>;

export interface TaskPlan {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  cores: Map<number, Core>;
  /** Each thread's thread_core (cores.get(tid).thread_core), for a task that is not a zombie. */
  threadCores: Map<number, ThreadCore>;
  /** The leader's task core (cores.get(pid).tc). */
  tc: TaskCore;
  zombie?: { exitCode: number; comm: string };
  /** Dumped stopped (task_state 3): stopped again with this signal once restored. */
  stopSignal?: number;
  mm?: Message<'mm_entry'>;
  fsEntry?: Message<'fs_entry'>;
  fdinfo?: Message<'fdinfo_entry'>[];
  ids?: Message<'task_kobj_ids_entry'>;
  pagemap?: { runs: PageSource[]; pagesPath: string };
}

export interface RestorePlan { tasks: TaskPlan[]; files: Map<number, FileEntry> }

export function plan(imgs: DumpImages): RestorePlan {
  const inv = imgs.one(IMG.INVENTORY);
  if (inv.img_version !== 2) throw new CriuError(`inventory.img: unsupported image version ${inv.img_version}`);
  const pstree = imgs.required(IMG.PSTREE).map((e) => e.entry);
  if (!pstree.length) throw new CriuError('pstree.img: no tasks');
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
    const t: TaskPlan = {
      pid, ppid, pgid: entry.pgid, sid: entry.sid, threads: threads.length ? threads : [pid],
      cores: new Map([[pid, leaderCore]]), threadCores: new Map(), tc,
    };
    if (tc.task_state === 2) {
      t.zombie = { exitCode: tc.exit_code, comm: tc.comm };
      return t;
    }
    if (tc.task_state !== 1 && tc.task_state !== 3) throw new CriuError(`${leaderFile}: task state ${tc.task_state} is not supported yet`);
    if (tc.task_state === 3) t.stopSignal = tc.stop_signo ?? 19;
    for (const tid of t.threads) {
      const file = imageFileName(IMG.CORE, tid);
      const core = tid === pid ? leaderCore : imgs.one(IMG.CORE, tid);
      t.cores.set(tid, core);
      checkArch(core, file);
      cpu.check(core, file);
      if (!core.thread_core) throw new CriuError(`${file}: no thread core (thread_core)`);
      t.threadCores.set(tid, core.thread_core);
    }
    t.ids = imgs.one(IMG.IDS, pid);
    t.mm = imgs.one(IMG.MM, pid);
    t.fsEntry = imgs.one(IMG.FS, pid);
    t.fdinfo = imgs.all(IMG.FDINFO, t.ids.files_id).map((e) => e.entry);
    t.pagemap = imgs.pagemap(pid);
    return t;
  });
  return { tasks, files };
}

/** A thread's core entry and its thread core, which plan() checked are there. */
export function threadOf(t: TaskPlan, tid: number): { core: Core; threadCore: ThreadCore } {
  const core = t.cores.get(tid), threadCore = t.threadCores.get(tid);
  if (!core || !threadCore) throw new CriuError(`task ${t.pid}: no core image for thread ${tid}`);
  return { core, threadCore };
}

const MARCH: Record<number, string> = { 1: 'x86_64', 2: 'arm', 3: 'aarch64', 4: 'ppc64', 5: 's390', 6: 'mips', 7: 'loongarch64', 8: 'riscv64' };

function checkArch(core: Core, file: string): void {
  const m = core.mtype;
  if (m !== cpu.march) throw new CriuError(`${file}: the dump is for ${MARCH[m] ?? `architecture ${m}`}, this machine is ${MARCH[cpu.march]}`);
}
