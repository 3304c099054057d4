// What a dump asks to restore: the process tree in pstree order, with each task's images.
import { CriuError } from '../errors.ts';
import type { DumpImages } from './images.ts';
import type { Msg, PageSource } from '../resources/types.ts';
import { cpu, threadInfo } from '../resources/cpu/index.ts';

export interface TaskPlan {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  cores: Map<number, Msg>;
  zombie?: { exitCode: number; comm: string };
  /** Dumped stopped (task_state 3): stopped again with this signal once restored. */
  stopSignal?: number;
  mm?: Msg;
  fsEntry?: Msg;
  fdinfo?: Msg[];
  ids?: Msg;
  pagemap?: { runs: PageSource[]; pagesPath: string };
}

export interface RestorePlan { tasks: TaskPlan[]; files: Map<number, Msg> }

export function plan(imgs: DumpImages): RestorePlan {
  const inv = imgs.one('inventory.img', 'inventory_entry');
  if (inv.img_version !== 2) throw new CriuError(`inventory.img: unsupported image version ${inv.img_version as number}`);
  const pstree = imgs.required('pstree.img').map((e) => e.entry);
  if (!pstree.length) throw new CriuError('pstree.img: no tasks');
  const files = new Map<number, Msg>();
  for (const { entry } of imgs.all('files.img')) files.set(entry.id as number, entry);
  const known = new Set<number>();
  const tasks = pstree.map((entry, i): TaskPlan => {
    const pid = entry.pid as number, ppid = entry.ppid as number;
    if (i === 0 ? ppid !== 0 : !known.has(ppid)) throw new CriuError(`pstree.img: task ${pid} comes before its parent ${ppid}`);
    known.add(pid);
    const threads = entry.threads as number[];
    if (threads.length && threads[0] !== pid) throw new CriuError(`pstree.img: task ${pid} does not list its leader first`);
    const leaderCore = imgs.one(`core-${pid}.img`, 'core_entry');
    checkArch(leaderCore, `core-${pid}.img`);
    const tc = leaderCore.tc as Msg | undefined;
    if (!tc) throw new CriuError(`core-${pid}.img: no task core (tc)`);
    const t: TaskPlan = {
      pid, ppid, pgid: entry.pgid as number, sid: entry.sid as number, threads: threads.length ? threads : [pid],
      cores: new Map([[pid, leaderCore]]),
    };
    if (tc.task_state === 2) {
      t.zombie = { exitCode: tc.exit_code as number, comm: tc.comm as string };
      return t;
    }
    if (tc.task_state !== 1 && tc.task_state !== 3) throw new CriuError(`core-${pid}.img: task state ${tc.task_state as number} is not supported yet`);
    if (tc.task_state === 3) t.stopSignal = (tc.stop_signo as number | undefined) ?? 19;
    for (const tid of t.threads) {
      const file = `core-${tid}.img`;
      if (tid !== pid) t.cores.set(tid, imgs.one(file, 'core_entry'));
      const core = t.cores.get(tid)!;
      checkArch(core, file);
      const info = threadInfo(core);
      if (!info) throw new CriuError(`${file}: no ${cpu.infoField}`);
      cpu.check(info, file);
    }
    t.ids = imgs.one(`ids-${pid}.img`, 'task_kobj_ids_entry');
    t.mm = imgs.one(`mm-${pid}.img`, 'mm_entry');
    t.fsEntry = imgs.one(`fs-${pid}.img`, 'fs_entry');
    t.fdinfo = imgs.all(`fdinfo-${t.ids.files_id as number}.img`).map((e) => e.entry);
    t.pagemap = imgs.pagemap(pid);
    return t;
  });
  return { tasks, files };
}

const MARCH: Record<number, string> = { 1: 'x86_64', 2: 'arm', 3: 'aarch64', 4: 'ppc64', 5: 's390', 6: 'mips', 7: 'loongarch64', 8: 'riscv64' };

function checkArch(core: Msg, file: string): void {
  const m = core.mtype as number;
  if (m !== cpu.march) throw new CriuError(`${file}: the dump is for ${MARCH[m] ?? `architecture ${m}`}, this machine is ${MARCH[cpu.march]}`);
}
