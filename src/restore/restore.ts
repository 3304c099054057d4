// Restore orchestration: read the dump, create each task at its PID from a helper, rebuild
// it stage by stage through injected syscalls, install the registers and let it go.
import fs from 'node:fs';
import { kill, waitpid, W, WALL, SIG, getpid, PTRACE } from '../kernel/index.ts';
import type { Tracee } from '../compel/index.ts';
import { CriuError, faultPoint } from '../errors.ts';
import { prepareAddressSpace, restoreVmas, restoreMmFields } from '../resources/mm-restore.ts';
import { unregisterInheritedRseq, restoreThreadCore, requeueSignals, finalRegs, finalFpregs } from '../resources/core.ts';
import { restoreSigactions } from '../resources/sigact.ts';
import { restoreItimers } from '../resources/timers.ts';
import { restoreRlimits } from '../resources/rlimits.ts';
import { restoreCreds } from '../resources/creds.ts';
import { restoreFs } from '../resources/fs.ts';
import { openForRestore, installFds } from '../resources/files/index.ts';
import { DumpImages } from './images.ts';
import { startHelper, killHelper, cloneAt, pidInUse, type Helper } from './stub.ts';
import type { Logger, Msg, RestoreTask } from '../resources/types.ts';

export interface RestoreRequest {
  dir: string;
  detach: boolean;
  shellJob: boolean;
  pidfile?: string;
  log: Logger;
}

export interface RestoreResult { pid: number; exitCode?: number; ms: number }

interface TaskPlan {
  pid: number;
  entry: Msg;
  cores: Map<number, Msg>;
  mm: Msg;
  fsEntry: Msg;
  fdinfo: Msg[];
  ids: Msg;
}

function plan(imgs: DumpImages): { tasks: TaskPlan[]; files: Map<number, Msg> } {
  const inv = imgs.one('inventory.img', 'inventory_entry');
  if (inv.img_version !== 2) throw new CriuError(`inventory.img: unsupported image version ${inv.img_version as number}`);
  const pstree = imgs.required('pstree.img').map((e) => e.entry);
  if (!pstree.length) throw new CriuError('pstree.img: no tasks');
  if (pstree.length > 1) throw new CriuError('pstree.img: restoring more than one process is not supported yet');
  const files = new Map<number, Msg>();
  for (const { entry } of imgs.all('files.img')) files.set(entry.id as number, entry);
  const tasks = pstree.map((entry): TaskPlan => {
    const pid = entry.pid as number;
    const threads = entry.threads as number[];
    if (threads[0] !== pid) throw new CriuError(`pstree.img: task ${pid} does not list its leader first`);
    if (threads.length > 1) throw new CriuError(`task ${pid} has ${threads.length} threads; multi-threaded restore is not supported yet`);
    const cores = new Map(threads.map((tid) => [tid, imgs.one(`core-${tid}.img`, 'core_entry')]));
    const ids = imgs.one(`ids-${pid}.img`, 'task_kobj_ids_entry');
    const core = cores.get(pid)!;
    if (core.mtype !== 1) throw new CriuError(`core-${pid}.img: the dump is for another architecture (mtype ${core.mtype as number})`);
    if (!core.tc || !core.thread_info) throw new CriuError(`core-${pid}.img: incomplete core (no tc or thread_info)`);
    return {
      pid, entry, cores, ids,
      mm: imgs.one(`mm-${pid}.img`, 'mm_entry'),
      fsEntry: imgs.one(`fs-${pid}.img`, 'fs_entry'),
      fdinfo: imgs.all(`fdinfo-${ids.files_id as number}.img`).map((e) => e.entry),
    };
  });
  return { tasks, files };
}

export function restore(req: RestoreRequest): RestoreResult {
  const t0 = performance.now();
  const imgs = new DumpImages(req.dir);
  const { tasks, files } = plan(imgs);
  const task = tasks[0];
  const pagemap = imgs.pagemap(task.pid);
  const pathOf = (id: number): string => {
    const f = files.get(id);
    const reg = f?.reg as Msg | undefined;
    if (!reg) throw new CriuError(`files.img: no regular file with id ${id}`);
    return reg.name as string;
  };
  if (pidInUse(task.pid)) throw new CriuError(`pid ${task.pid} is already in use by another process`);

  let helper: Helper | undefined;
  let stub: Tracee | undefined;
  const locals: number[] = [];
  try {
    helper = startHelper(task.mm.vmas as Msg[]);
    stub = cloneAt(helper.tracee, helper.area, task.pid, 0, SIG.CHLD);
    killHelper(helper.tracee.tid);
    const area = helper.area.forTracee(stub);
    const offs = helper.offs;
    helper = undefined;
    const rt: RestoreTask = { pid: task.pid, leader: stub, threads: [stub], area, log: req.log };
    const core = task.cores.get(task.pid)!;
    const tc = core.tc as Msg;
    const info = core.thread_info as Msg;
    const threadCore = core.thread_core as Msg;

    faultPoint('restore-session');
    const sid = task.entry.sid as number, pgid = task.entry.pgid as number;
    if (!req.shellJob) {
      if (sid === task.pid) stub.syscall('setsid');
      else throw new CriuError(`task ${task.pid} was in session ${sid}, outside the dump; restore it with --shell-job`);
      if (pgid !== sid) stub.syscall('setpgid', 0, pgid);
    }

    faultPoint('restore-memory');
    unregisterInheritedRseq(stub);
    prepareAddressSpace(rt, task.mm.vmas as Msg[]);
    // Before the target's VMAs exist: the kernel refuses a new exe link while the old exe
    // (the helper's program, possibly the same file as the target's) is still mapped.
    restoreMmFields(rt, task.mm, pathOf(task.mm.exe_file_id as number));
    restoreVmas(rt, { mm: task.mm, runs: pagemap.runs, pagesPath: pagemap.pagesPath, pathOf });

    faultPoint('restore-files');
    const local = openForRestore(task.fdinfo, {
      log: req.log, shellJob: req.shellJob, files, memo: new Map(),
      entries: (image) => imgs.all(image), keep: (fd) => { locals.push(fd); return fd; },
    });
    installFds(stub, area, task.fdinfo, local, getpid());
    for (const fd of locals.splice(0)) fs.closeSync(fd);

    restoreFs(stub, area, task.fsEntry, pathOf);
    restoreSigactions(stub, area, tc.sigactions as Msg[]);
    restoreItimers(stub, area, tc.timers as Msg | undefined);
    if (tc.rlimits) restoreRlimits(stub, area, tc.rlimits as Msg, req.log);
    stub.syscallRaw('personality', tc.personality as number);
    restoreThreadCore(stub, area, info, threadCore);
    requeueSignals(stub, area, task.pid, tc.signals_s as Msg | undefined, true);
    requeueSignals(stub, area, task.pid, threadCore.signals_p as Msg | undefined, false);
    if (threadCore.creds) restoreCreds(stub, area, threadCore.creds as Msg);

    faultPoint('restore-release');
    release(stub, area.base, area.size, info, finalFpregs(stub, info, offs), tc.blk_sigset as bigint);
    stub = undefined;
  } catch (e) {
    for (const fd of locals) { try { fs.closeSync(fd); } catch { /* closed */ } }
    if (helper) killHelper(helper.tracee.tid);
    if (stub) { try { kill(stub.tid, SIG.KILL); } catch { /* gone */ } try { waitpid(stub.tid, WALL); } catch { /* reaped */ } }
    throw e;
  }
  if (req.pidfile) fs.writeFileSync(req.pidfile, `${task.pid}`);
  const ms = performance.now() - t0;
  if (req.detach) return { pid: task.pid, ms };
  const { status } = waitpid(task.pid, 0);
  const exitCode = W.exited(status) ? W.exitStatus(status) : 128 + W.termSig(status);
  return { pid: task.pid, exitCode, ms };
}

/**
 * The last step: the stub unmaps the injection area by itself, from its own syscall
 * instruction, and stops at syscall exit, never running the trap after it. There the dumped
 * registers go in and the task is let go.
 */
function release(t: Tracee, base: bigint, size: number, info: Msg, fpregs: Buffer, sigmask: bigint): void {
  t.useSyscallInsn(base);
  t.syscall('munmap', base, size);
  t.setFpRegs(fpregs);
  t.setRegs(finalRegs(info));
  t.setSigmask(sigmask);
  t.detach();
  void PTRACE;
}
