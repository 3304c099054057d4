// The thread_core_entry fields that belong to a thread and are the same on every
// architecture: robust list, sigaltstack, rseq, scheduling, blocked mask, pending signals.
// Registers and the rest of the CPU state are in cpu/.
import {
  waitpid,
  W,
  WALL,
  SysError,
  getRobustList,
  getRseqConfig,
  peekSiginfo,
  getPriority,
  schedGetScheduler,
  schedGetPriority,
  PR,
  RSEQ_FLAG_UNREGISTER,
  SIGINFO_SIZE,
  STACK_T_SIZE,
  parseStackT,
  stackT,
} from '../../kernel/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { cpu, type CpuSnapshot, type CpuFacts, type CoreThreadInfo } from '../cpu/index.ts';
import { cloneAt, THREAD_FLAGS, ALL_SIGNALS } from './fork.ts';
import { CriuError } from '../../errors.ts';
import { dumpCreds } from './creds.ts';
import { freezeRseq, restoreRseq, restoreRseqCs } from './rseq.ts';
import type { Status } from '../../proc/index.ts';
import type { Message, MessageInput } from '../types.ts';
import type { ResourceClaims, Check } from '../claims.ts';
import { readComm } from '../../proc/index.ts';

const TRAP_BIT = 1n << 4n; // SIGTRAP

/**
 * Pending signals come back with their siginfo: a signal pending without one would be lost.
 * Not SIGTRAP: the traps that end injected calls would take it (as CRIU, which refuses it too).
 */
export const queued =
  (shared: boolean): Check =>
  (v, at) => {
    let pending = BigInt(`0x${v}`);
    if (pending & TRAP_BIT) return "SIGTRAP is pending; criu-ts's injected calls end with traps that would take it";
    for (const si of peekSiginfo(shared ? at.pid : at.tid, shared)) pending &= ~(1n << BigInt(si.readInt32LE(0) - 1));
    for (let s = 1; s <= 64; s++) if ((pending >> BigInt(s - 1)) & 1n) return `signal ${s} is pending without a siginfo to queue it again`;
    return undefined;
  };

export const threadClaims: ResourceClaims = {
  status: { Name: true, SigBlk: true, SigPnd: queued(false) },
  files: { comm: true },
};

/** What a thread looked like the moment it was frozen, before any injection touched it. */
export interface FrozenThread {
  tracee: Tracee;
  cpu: CpuSnapshot;
  sigmask: bigint;
  rseq?: MessageInput<'rseq_entry'>;
}

export function freezeSnapshot(t: Tracee): FrozenThread {
  const snap = cpu.snapshot(t);
  // Its IP may move to an rseq abort handler: the task resumes there too if the dump fails.
  const rseq = freezeRseq(t, snap.regs);
  return { tracee: t, cpu: snap, sigmask: t.getSigmask(), ...(rseq ? { rseq } : {}) };
}

function tidAddress(t: Tracee, area: InjectionArea): bigint {
  area.reset();
  const a = area.alloc(8);
  t.syscall('prctl', PR.GET_TID_ADDRESS, a, 0, 0, 0);
  return area.read(a, 8).readBigUInt64LE(0);
}

/** This architecture's thread_info for the core image. */
export function dumpThreadInfo(f: FrozenThread, area: InjectionArea, facts: CpuFacts): CoreThreadInfo {
  return cpu.dumpInfo(f.tracee, f.cpu, area, facts, tidAddress(f.tracee, area));
}

function sigaltstack(t: Tracee, area: InjectionArea): Message<'thread_sas_entry'> {
  area.reset();
  const a = area.alloc(STACK_T_SIZE);
  t.syscall('sigaltstack', 0, a);
  const s = parseStackT(area.read(a, STACK_T_SIZE));
  return { ss_sp: s.sp, ss_size: s.size, ss_flags: s.flags };
}

export function siginfoEntries(list: Buffer[]): Message<'signal_queue_entry'> {
  return { signals: list.map((s) => ({ siginfo: s })) };
}

/** thread_core_entry without creds (the caller adds them); `comm` from the thread's status. */
export function dumpThreadCore(f: FrozenThread, comm: string, area: InjectionArea, isLeader: boolean): MessageInput<'thread_core_entry'> {
  const tid = f.tracee.tid;
  const rl = getRobustList(tid);
  const policy = schedGetScheduler(tid);
  const e: MessageInput<'thread_core_entry'> = {
    futex_rla: rl.head,
    futex_rla_len: rl.len,
    sched_nice: getPriority(0, tid),
    sched_policy: policy,
  };
  const rt = policy & ~0x40000000; // without SCHED_RESET_ON_FORK
  if (rt === 1 || rt === 2) e.sched_prio = schedGetPriority(tid);
  if (!isLeader) e.blk_sigset = f.sigmask;
  e.sas = sigaltstack(f.tracee, area);
  e.signals_p = siginfoEntries(peekSiginfo(tid, false));
  e.comm = comm;
  if (f.rseq) e.rseq_entry = f.rseq;
  return e;
}

/**
 * A thread's whole core_entry: its CPU state, thread core and credentials (`status` is the
 * thread's, `secbits` the task's), and for the leader the task core `tc`.
 */
export function dumpCoreEntry(
  f: FrozenThread,
  area: InjectionArea,
  facts: CpuFacts,
  status: Status,
  secbits: number,
  tc?: MessageInput<'task_core_entry'>,
): MessageInput<'core_entry'> {
  const threadCore = dumpThreadCore(f, status.name, area, tc !== undefined);
  threadCore.creds = dumpCreds(status, secbits);
  return { mtype: cpu.march, ...dumpThreadInfo(f, area, facts), thread_core: threadCore, ...(tc ? { tc } : {}) };
}

// ---- restore -------------------------------------------------------------------------

/**
 * A thread of the task at its TID, cloned by the stub with the TLS and clear_child_tid of its
 * core, every signal blocked, and the stub's injection page to run syscalls through.
 */
export function cloneThread(stub: Tracee, area: InjectionArea, tid: number, core: Message<'core_entry'>): Tracee {
  const th = cloneAt(stub, area, tid, THREAD_FLAGS, 0, { childTid: cpu.clearTid(core), tls: cpu.tls(core) });
  th.useInjectionPage(area.base);
  th.setSigmask(ALL_SIGNALS);
  return th;
}

/** Drop the rseq registration the stub inherited from its helper: its area is about to vanish. */
export function unregisterInheritedRseq(t: Tracee): void {
  const rs = getRseqConfig(t.tid);
  if (rs.ptr !== 0n) t.syscall('rseq', rs.ptr, rs.size, RSEQ_FLAG_UNREGISTER, rs.signature);
}

/**
 * Per-thread kernel state, once the memory it points into is back. `clearTidSet`: the
 * thread was cloned with CLONE_CHILD_CLEARTID at its clear_child_tid already. `comm`: its
 * name now, when known (once the leader's name is set, threads cloned after it have it too).
 */
export function restoreThreadCore(
  t: Tracee,
  area: InjectionArea,
  core: Message<'core_entry'>,
  tc: Message<'thread_core_entry'>,
  clearTidSet = false,
  comm?: string,
): void {
  if (!clearTidSet) t.syscall('set_tid_address', cpu.clearTid(core));
  t.syscall('set_robust_list', tc.futex_rla, tc.futex_rla_len);
  const sas = tc.sas;
  if (sas && !(sas.ss_flags & 2)) {
    area.reset();
    t.syscall('sigaltstack', area.put(stackT({ sp: sas.ss_sp, flags: sas.ss_flags, size: sas.ss_size })), 0);
  }
  restoreRseq(t, tc.rseq_entry);
  // Nice value and name only when they differ from what the thread has already (each
  // injected call costs two context switches).
  if (tc.sched_nice !== undefined && tc.sched_nice !== getPriority(0, t.tid)) t.syscallRaw('setpriority', 0, 0, tc.sched_nice);
  restoreComm(t, area, tc.comm, comm);
}

/** The thread's name, when it differs from `current` (read from /proc when not given). */
export function restoreComm(t: Tracee, area: InjectionArea, comm: string | undefined, current?: string): void {
  if (comm === undefined || comm === (current ?? currentComm(t.tid))) return;
  area.reset();
  t.syscall('prctl', PR.SET_NAME, area.putString(comm), 0, 0, 0);
}

function currentComm(tid: number): string {
  try {
    return readComm(tid);
  } catch {
    return '';
  }
}

/** Re-queue pending signals with their original siginfo (the task sends them to itself). */
export function requeueSignals(
  t: Tracee,
  area: InjectionArea,
  pid: number,
  q: Message<'signal_queue_entry'> | undefined,
  shared: boolean,
): void {
  for (const s of q?.signals ?? []) {
    const si = s.siginfo;
    if (si.length !== SIGINFO_SIZE) throw new Error(`bad siginfo size ${si.length}`);
    area.reset();
    const a = area.put(si);
    const signo = si.readInt32LE(0);
    if (shared) t.syscall('rt_sigqueueinfo', pid, signo, a);
    else t.syscall('rt_tgsigqueueinfo', pid, t.vtid, signo, a);
  }
}

// ---- release -------------------------------------------------------------------------

/** A thread's final CPU state and signal mask, after its last injected syscall. */
export function finishThread(th: Tracee, core: Message<'core_entry'>, tc: Message<'thread_core_entry'>, facts: CpuFacts): void {
  cpu.apply(th, core, facts);
  th.setSigmask(tc.blk_sigset ?? 0n);
  restoreRseqCs(th, tc.rseq_entry);
}

/**
 * The leader's final state. It unmaps the injection area by itself, from its own syscall
 * instruction, and stops at syscall exit, never running the trap after it; there its
 * registers go in. `keepArea`: a task sharing its mm still needs the area. A task dumped
 * stopped goes into its job-control stop before its own mask lets any pending signal through.
 */
export function finishLeader(
  leader: Tracee,
  area: InjectionArea,
  core: Message<'core_entry'>,
  task: Message<'task_core_entry'>,
  facts: CpuFacts,
  opts: { keepArea: boolean; stopSignal?: number },
): void {
  if (!opts.keepArea) {
    leader.useSyscallInsn(area.base);
    leader.lastSyscall(cpu.regs(core), 'munmap', area.base, area.size);
  }
  cpu.apply(leader, core, facts);
  if (opts.stopSignal) leader.enterGroupStop(leader.tid, opts.stopSignal);
  leader.setSigmask(task.blk_sigset);
  restoreRseqCs(leader, core.thread_core?.rseq_entry);
}

/**
 * Let every thread of the task go. A thread that is no longer in its ptrace stop when its
 * turn comes was taken down with its process by a thread let go before it (a crash right
 * after restore): its exit status says how.
 */
export function releaseThreads(pid: number, threads: Iterable<Tracee>): void {
  for (const th of threads) {
    try {
      th.detach();
    } catch (e) {
      if (!(e instanceof SysError && e.code === 'ESRCH')) throw e;
      const { status } = waitpid(th.tid, WALL);
      const how = W.signaled(status) ? `killed by signal ${W.termSig(status)}` : `exited with status ${W.exitStatus(status)}`;
      throw new CriuError(`task ${pid} died as soon as its first threads were let go: thread ${th.tid} ${how}`);
    }
  }
}
