// task_core_entry: what belongs to the whole task rather than to one of its threads. Its
// state (alive, stopped, a zombie's exit), personality, the leader's blocked signals, comm,
// interval and POSIX timers, limits, signal actions, process-wide pending signals, loginuid,
// oom_score_adj and whether it is a child subreaper.
import { peekSiginfo, PR } from '../../kernel/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { cpu } from '../cpu/index.ts';
import { dumpItimers, restoreItimers } from '../timers.ts';
import { dumpPosixTimers } from '../posix-timers.ts';
import { dumpRlimits, restoreRlimits } from '../rlimits.ts';
import { dumpSigactions } from '../sigact.ts';
import { siginfoEntries, queued } from './thread.ts';
import type { DumpTask, Logger, Message, MessageInput } from '../types.ts';
import type { ResourceClaims } from '../claims.ts';
import { readProcNumber } from '../../proc/index.ts';

/** Process-wide pending signals, the personality (and oom_score_adj and subreaper: props.ts). */
export const taskCoreClaims: ResourceClaims = { status: { ShdPnd: queued(true) }, files: { personality: true } };

/** task_core_entry.task_state, as CRIU numbers them. */
export const TASK_STATE = { ALIVE: 1, DEAD: 2, STOPPED: 3 } as const;

type TaskCore = Message<'task_core_entry'>;

function readSubreaper(t: Tracee, area: InjectionArea): boolean {
  area.reset();
  const a = area.alloc(4);
  t.syscall('prctl', PR.GET_CHILD_SUBREAPER, a, 0, 0, 0);
  return area.read(a, 4).readInt32LE(0) !== 0;
}

const MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;
/** Barriers a task issues only once registered for them; each REGISTER command is its barrier's bit << 1. */
const MEMBARRIER_PRIVATE_CMDS = [1 << 3, 1 << 5, 1 << 7];

/**
 * The membarrier() commands the task's mm registered for (MEMBARRIER_CMD_REGISTER_* bits).
 * Kernels before 6.3 cannot say: a private expedited barrier succeeds only when registered.
 */
function dumpMembarrier(t: Tracee): number {
  const r = t.syscallRaw('membarrier', MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
  if (r >= 0n) return Number(r);
  let mask = 0;
  for (const cmd of MEMBARRIER_PRIVATE_CMDS) if (t.syscallRaw('membarrier', cmd, 0, 0) === 0n) mask |= cmd << 1;
  return mask;
}

const membarrierMask = (m: number) => (m ? { membarrier_registration_mask: m } : {});

/** Register the task's mm again for the membarrier() commands it was registered for. */
export function restoreMembarrier(t: Tracee, tc: TaskCore): void {
  const mask = tc.membarrier_registration_mask ?? 0;
  for (let bit = 0; bit < 32; bit++) if ((mask >>> bit) & 1) t.syscall('membarrier', 1 << bit, 0, 0);
}

/**
 * The task core of a live task: `sigmask` is the leader's as frozen, `stopSignal` the signal
 * of its job-control stop, if it was in one.
 */
export function dumpTaskCore(t: DumpTask, sigmask: bigint, stopSignal: number | undefined): MessageInput<'task_core_entry'> {
  const { pid, leader, area } = t;
  return {
    task_state: stopSignal ? TASK_STATE.STOPPED : TASK_STATE.ALIVE,
    exit_code: 0,
    ...(stopSignal ? { stop_signo: stopSignal } : {}),
    personality: readProcNumber(pid, 'personality', 16),
    flags: t.stat.flags,
    blk_sigset: sigmask,
    comm: t.stat.comm,
    timers: { ...dumpItimers(leader, area), posix: dumpPosixTimers(leader, area, pid) },
    rlimits: dumpRlimits(pid),
    signals_s: siginfoEntries(peekSiginfo(pid, true)),
    loginuid: readProcNumber(pid, 'loginuid'),
    oom_score_adj: readProcNumber(pid, 'oom_score_adj'),
    sigactions: dumpSigactions(leader, area, t.status.sigCgt | t.status.sigIgn),
    child_subreaper: readSubreaper(leader, area),
    ...membarrierMask(dumpMembarrier(leader)),
  };
}

/** A zombie's whole core entry: its exit status and name are all that is left of it. */
export function dumpZombieCore(zombie: { exitCode: number; comm: string }): MessageInput<'core_entry'> {
  return {
    mtype: cpu.march,
    tc: { task_state: TASK_STATE.DEAD, exit_code: zombie.exitCode, personality: 0, flags: 0, blk_sigset: 0n, comm: zombie.comm },
  };
}

// ---- restore -------------------------------------------------------------------------

/** The personality, which fork copies: set only where it differs from the parent's (`inherited`). */
export function restorePersonality(t: Tracee, tc: TaskCore, inherited?: TaskCore): void {
  if (!inherited || tc.personality !== inherited.personality) t.syscallRaw('personality', tc.personality);
}

/** Interval timers and resource limits, once the task's memory and fds are back. */
export function restoreTimersAndLimits(t: Tracee, area: InjectionArea, tc: TaskCore, log: Logger): void {
  restoreItimers(t, area, tc.timers);
  if (tc.rlimits) restoreRlimits(t, area, tc.rlimits, log);
}

/** A dumped zombie: its stub exits the way the task did, and stays unreaped for its parent. */
export function becomeZombie(stub: Tracee, area: InjectionArea, pid: number, zombie: { exitCode: number; comm: string }): void {
  const code = zombie.exitCode;
  const sig = code & 0x7f;
  area.reset();
  stub.syscall('prctl', PR.SET_NAME, area.putString(zombie.comm), 0, 0, 0);
  stub.setSigmask(0n);
  if (sig) stub.prepareResume('kill', pid, sig);
  else stub.prepareResume('exit_group', (code >> 8) & 0xff);
  stub.detach();
}
