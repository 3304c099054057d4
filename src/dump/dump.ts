// Dump orchestration: freeze, collect every resource from outside, write the images, then
// kill or resume. If anything fails before the images are complete, the tasks are resumed
// exactly as they were and the partial images are removed.
import fs from 'node:fs';
import path from 'node:path';
import { writeImage } from '../images/index.ts';
import { randomUUID } from 'node:crypto';
import { readStat, readStatus, readSmaps, parseMaps, listChildren, type Vma } from '../proc/index.ts';
import { kill, waitpid, clockGettime, WALL, SIG, getpid } from '../kernel/index.ts';
import { InjectionArea, findSyscallInsn, xsaveOffsets, type Tracee } from '../compel/index.ts';
import { CriuError, faultPoint } from '../errors.ts';
import { freezeSnapshot, dumpThreadInfo, dumpThreadCore, siginfoEntries, type FrozenThread } from '../resources/core.ts';
import { dumpMm } from '../resources/mm-dump.ts';
import { dumpSigactions } from '../resources/sigact.ts';
import { dumpRlimits } from '../resources/rlimits.ts';
import { dumpItimers } from '../resources/timers.ts';
import { dumpCreds, readSecbits } from '../resources/creds.ts';
import { dumpFs } from '../resources/fs.ts';
import { dumpFds, FileIdentity } from '../resources/files/index.ts';
import { peekSiginfo } from '../kernel/index.ts';
import { freezeProcess } from './freeze.ts';
import { ImageSet } from './imgset.ts';
import { DumpFileTable } from './filetable.ts';
import { NsIds } from './nsids.ts';
import type { DumpTask, Logger, Msg } from '../resources/types.ts';

export interface DumpRequest {
  pid: number;
  dir: string;
  workDir: string;
  leaveRunning: boolean;
  shellJob: boolean;
  timeoutSec: number;
  log: Logger;
}

export interface DumpResult { pagesWritten: number; pagesScanned: number; frozenMs: number; freezingMs: number }

const PF_KTHREAD = 0x00200000;

function validateTarget(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new CriuError(`invalid pid ${pid}`);
  if (pid === getpid()) throw new CriuError('criu-ts cannot dump itself');
  let stat;
  try { stat = readStat(pid); } catch { throw new CriuError(`no process with pid ${pid}`); }
  if (stat.flags & PF_KTHREAD) throw new CriuError(`pid ${pid} is a kernel thread and cannot be dumped`);
  if (stat.state === 'Z') throw new CriuError(`pid ${pid} is a zombie`);
  const children = listChildren(pid, pid);
  if (children.length) throw new CriuError(`task ${pid} has child processes (${children.join(', ')}); dumping process trees is not supported yet`);
  // Dumping an ancestor would freeze criu-ts's own parent chain.
  for (let p = stat.ppid, n = 0; p > 1 && n < 64; n++) {
    if (p === getpid()) break;
    p = readStat(p).ppid;
  }
}

interface Frozen { threads: Tracee[]; snaps: FrozenThread[]; area?: InjectionArea; vdsoInsn: bigint; vmas: Vma[] }

/** Map an injection area in the leader via a syscall instruction of its vDSO. */
function prepareInjection(f: Frozen, pid: number): void {
  const maps = parseMaps(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
  const vdso = maps.find((v) => v.path === '[vdso]');
  if (!vdso) throw new CriuError(`task ${pid} has no [vdso]; cannot run syscalls in it`);
  const leader = f.threads[0];
  const insn = findSyscallInsn(leader.readMem(vdso.start, Number(vdso.end - vdso.start)), vdso.start);
  if (insn === undefined) throw new CriuError(`no syscall instruction found in the [vdso] of task ${pid}`);
  f.vdsoInsn = insn;
  leader.useSyscallInsn(insn);
  leader.setSigmask(0xffffffffffffffffn);
  f.area = InjectionArea.map(leader);
}

/** Put every thread back exactly as frozen: unmap our area, restore regs and masks, detach. */
function thaw(f: Frozen, log: Logger): void {
  const leader = f.threads[0];
  try {
    if (f.area) {
      leader.useSyscallInsn(f.vdsoInsn);
      leader.syscall('munmap', f.area.base, f.area.size);
    }
  } catch (e) { log.error(`cannot remove the injection area: ${(e as Error).message}`); }
  for (const s of f.snaps) {
    try {
      s.tracee.setRegs(s.regs);
      s.tracee.setSigmask(s.sigmask);
    } catch (e) { log.error(`cannot restore the state of thread ${s.tracee.tid}: ${(e as Error).message}`); }
  }
  for (const t of f.threads) { try { t.detach(); } catch (e) { log.error(`detach ${t.tid}: ${(e as Error).message}`); } }
}

function killFrozen(f: Frozen, pid: number): void {
  for (const t of f.threads) t.release();
  kill(pid, SIG.KILL);
  // Collect the tracer's exit notifications; the real parent reaps the process.
  for (const t of [...f.threads].reverse()) { try { waitpid(t.tid, WALL); } catch { /* already gone */ } }
}

export function dump(req: DumpRequest): DumpResult {
  const { pid, log } = req;
  validateTarget(pid);
  fs.mkdirSync(req.dir, { recursive: true });
  const t0 = performance.now();
  const imgs = new ImageSet(req.dir);
  const f: Frozen = { threads: [], snaps: [], vdsoInsn: 0n, vmas: [] };
  let result: DumpResult;
  try {
    f.threads = freezeProcess(pid, Date.now() + req.timeoutSec * 1000);
    if (f.threads.length > 1) throw new CriuError(`task ${pid} has ${f.threads.length} threads; multi-threaded processes are not supported yet`);
    const kids = f.threads.flatMap((t) => listChildren(pid, t.tid));
    if (kids.length) throw new CriuError(`task ${pid} has child processes (${kids.join(', ')}); dumping process trees is not supported yet`);
    f.snaps = f.threads.map(freezeSnapshot);
    faultPoint('freeze');
    // The VMAs as the task has them, before our injection area joins them.
    f.vmas = readSmaps(pid);
    prepareInjection(f, pid);
    const tFrozen = performance.now();
    result = collectAndWrite(req, f, imgs);
    faultPoint('write-images');
    imgs.closeAll();
    result.freezingMs = tFrozen - t0;
  } catch (e) {
    imgs.discard();
    if (f.threads.length) thaw(f, log);
    throw e;
  }
  if (req.leaveRunning) thaw(f, log);
  else killFrozen(f, pid);
  result.frozenMs = performance.now() - t0;
  try { writeStats(req, result, result.freezingMs, result.frozenMs); } catch (e) { log.warn(`cannot write stats-dump: ${(e as Error).message}`); }
  return result;
}

function collectAndWrite(req: DumpRequest, f: Frozen, imgs: ImageSet): DumpResult {
  const { pid, log } = req;
  const area = f.area!;
  const leader = f.threads[0];
  const stat = readStat(pid);
  const status = readStatus(pid);
  const files = new DumpFileTable();
  const task: DumpTask = {
    pid, leader, threads: f.threads, area, stat, status, vmas: f.vmas, files, log,
  };
  if (!req.shellJob && stat.session !== pid) {
    throw new CriuError(`task ${pid} is in session ${stat.session}, which is outside the dumped tree; dump a session leader or pass --shell-job`);
  }
  const offs = xsaveOffsets(area);

  // Memory first: it is the bulk, and the mm fields need injected calls in the leader.
  faultPoint('memory');
  const pm = imgs.pagemap(pid);
  const exe = fs.readlinkSync(`/proc/${pid}/exe`);
  const { mm, stats } = (() => { try { return dumpMm(task, pm, exe); } finally { pm.close(); } })();
  imgs.one(`mm-${pid}.img`, 'mm_entry', mm);

  faultPoint('files');
  const identity = new FileIdentity();
  const seen = new Set<string>();
  const fdinfo = dumpFds(pid, files, identity, {
    log, shellJob: req.shellJob, seen, regPath: (p, fl, ex) => files.regPath(p, fl, ex),
    addEntry: (image, entry, extra) => imgs.add(image, image === 'tty-info.img' ? 'tty_info_entry' : 'pipe_data_entry', entry, extra),
  });
  const filesId = 1;
  for (const e of fdinfo) imgs.add(`fdinfo-${filesId}.img`, 'fdinfo_entry', e);
  imgs.closeImage(`fdinfo-${filesId}.img`);
  imgs.one(`fs-${pid}.img`, 'fs_entry', dumpFs(pid, status.umask, files));

  // Per-task and per-thread state, all gathered before anything is written.
  const secbits = readSecbits(leader);
  const tc: Msg = {
    task_state: 1, exit_code: 0, personality: parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8'), 16),
    flags: stat.flags, blk_sigset: f.snaps[0].sigmask, comm: stat.comm,
    timers: dumpItimers(leader, area), rlimits: dumpRlimits(pid),
    signals_s: siginfoEntries(peekSiginfo(pid, true)),
    loginuid: Number(fs.readFileSync(`/proc/${pid}/loginuid`, 'utf8')),
    oom_score_adj: Number(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8')),
    sigactions: dumpSigactions(leader, area),
    child_subreaper: readSubreaper(leader, area),
  };
  for (const snap of f.snaps) {
    const t = snap.tracee;
    const isLeader = t === leader;
    if (!isLeader) t.useInjectionPage(area.base);
    const thStatus = isLeader ? status : readStatus(pid, t.tid);
    const threadCore = dumpThreadCore(snap, pid, area, isLeader);
    threadCore.creds = dumpCreds(thStatus, secbits);
    const core: Msg = { mtype: 1, thread_info: dumpThreadInfo(snap, area, offs), thread_core: threadCore };
    if (isLeader) core.tc = tc;
    imgs.one(`core-${t.tid}.img`, 'core_entry', core);
  }

  const ns = new NsIds();
  imgs.one(`ids-${pid}.img`, 'task_kobj_ids_entry', { vm_id: 1, files_id: filesId, fs_id: 1, sighand_id: 1, ...ns.idsOf(pid) });
  imgs.one('pstree.img', 'pstree_entry', {
    pid, ppid: 0, pgid: stat.pgrp, sid: stat.session, threads: f.threads.map((t) => t.tid),
  });
  for (const e of files.entries) imgs.add('files.img', 'file_entry', e);
  imgs.closeImage('files.img');
  imgs.one('seccomp.img', 'seccomp_entry', {});
  const mono = clockGettime(1), boot = clockGettime(7);
  imgs.one('timens-0.img', 'timens_entry', {
    monotonic: { tv_sec: mono.sec, tv_nsec: mono.nsec }, boottime: { tv_sec: boot.sec, tv_nsec: boot.nsec },
  });
  imgs.one('inventory.img', 'inventory_entry', {
    img_version: 2, fdinfo_per_id: true, root_ids: { vm_id: 0, files_id: 0, fs_id: 0, sighand_id: 0, ...ns.idsOf(getpid()) },
    ns_per_id: true, lsmtype: 0, network_lock_method: 0, plugins_entry: {}, dump_criu_run_id: randomUUID(),
  });
  return { pagesWritten: stats.pagesWritten, pagesScanned: stats.pagesScanned, frozenMs: 0, freezingMs: 0 };
}

function readSubreaper(t: Tracee, area: InjectionArea): boolean {
  area.reset();
  const a = area.alloc(4);
  t.syscall('prctl', 37 /* PR_GET_CHILD_SUBREAPER */, a, 0, 0, 0);
  return area.read(a, 4).readInt32LE(0) !== 0;
}

/** stats-dump in the work dir, as CRIU writes it (ZDTM checks pages_written against pages-*.img). */
function writeStats(req: DumpRequest, r: DumpResult, freezeMs: number, totalMs: number): void {
  const us = (ms: number) => Math.round(ms * 1000);
  writeImage(path.join(req.workDir, 'stats-dump'), 'stats_entry', [{
    dump: {
      freezing_time: us(freezeMs), frozen_time: us(totalMs - freezeMs), memdump_time: 0, memwrite_time: 0,
      pages_scanned: BigInt(r.pagesScanned), pages_skipped_parent: 0n, pages_written: BigInt(r.pagesWritten), pages_lazy: 0n,
    },
  }]);
}
