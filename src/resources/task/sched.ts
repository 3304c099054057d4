// Scheduling policy and real-time priority of a thread (thread_core_entry's sched_policy and
// sched_prio; the nice value goes with the rest of the thread core, core.ts).
import { schedGetaffinity, schedSetaffinity } from '../../kernel/index.ts';
import { tracerAffinity, type Tracee, type InjectionArea } from '../../compel/index.ts';
import type { ResourceClaims } from '../claims.ts';
import type { Logger, Message } from '../types.ts';

const SCHED_FIFO = 1,
  SCHED_RR = 2,
  SCHED_DEADLINE = 6;
const SCHED_RESET_ON_FORK = 0x40000000;

export const schedClaims: ResourceClaims = {
  stat: {
    // SCHED_DEADLINE's runtime, deadline and period have no place in the image.
    policy: (v) => (Number(v) === SCHED_DEADLINE ? 'scheduling policy SCHED_DEADLINE' : undefined),
    rtPriority: true,
    nice: true,
  },
  // While frozen, pinned to criu-ts's CPU; saved as it was before (dumpAffinity).
  status: { Cpus_allowed: true, Cpus_allowed_list: true },
};

/**
 * thread_core_entry.cpu_affinity (criu-ts's field 100): the thread's own CPU affinity, when
 * it is not criu-ts's, which a restored thread inherits.
 */
export function dumpAffinity(t: Tracee): Buffer | undefined {
  const mask = t.homeAffinity ?? schedGetaffinity(t.tid);
  const inherited = tracerAffinity() ?? schedGetaffinity(0);
  return mask.equals(inherited) ? undefined : Buffer.from(mask);
}

/** Once the thread is let go (until then it is pinned to criu-ts's CPU). */
export function restoreAffinity(tid: number, mask: Buffer | undefined, log: Logger): void {
  if (!mask) return;
  const r = schedSetaffinity(tid, mask);
  if (r < 0) log.warn(`thread ${tid}: cannot set its CPU affinity back (${-r}): this machine's CPUs or cpuset differ`);
}

/**
 * sched_setscheduler from inside the thread, when the dumped policy (with its
 * SCHED_RESET_ON_FORK bit) or priority is not what it has now. The nice value is kept.
 */
export function restoreSched(t: Tracee, area: InjectionArea, tc: Message<'thread_core_entry'>): void {
  const policy = tc.sched_policy;
  if (policy === undefined) return;
  const prio = tc.sched_prio ?? 0;
  const now = Number(t.syscall('sched_getscheduler', 0));
  area.reset();
  const p = area.alloc(4);
  if (now === policy) {
    const base = policy & ~SCHED_RESET_ON_FORK;
    if (base !== SCHED_FIFO && base !== SCHED_RR) return; // the others have priority 0
    t.syscall('sched_getparam', 0, p);
    if (area.read(p, 4).readInt32LE(0) === prio) return;
  }
  const b = Buffer.alloc(4);
  b.writeInt32LE(prio, 0);
  t.writeMem(p, b);
  t.syscall('sched_setscheduler', 0, policy, p);
}
