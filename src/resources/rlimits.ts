// Resource limits (task_rlimits_entry). Read from /proc/PID/limits: prlimit64 on another
// user's process needs CAP_SYS_RESOURCE, which root lacks on these machines.
import { readLimits } from '../proc/index.ts';
import { RLIM_NLIMITS } from '../kernel/index.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { Logger, Message, MessageInput } from './types.ts';

export function dumpRlimits(pid: number): MessageInput<'task_rlimits_entry'> {
  const lim = readLimits(pid);
  if (lim.length < RLIM_NLIMITS) throw new Error(`/proc/${pid}/limits lists ${lim.length} limits, expected ${RLIM_NLIMITS}`);
  return { rlimits: lim.slice(0, RLIM_NLIMITS).map((l) => ({ cur: l.soft, max: l.hard })) };
}

/** The task sets its own limits; raising a hard limit above ours is refused without CAP_SYS_RESOURCE. */
export function restoreRlimits(t: Tracee, area: InjectionArea, e: Message<'task_rlimits_entry'>, log: Logger): void {
  const list = e.rlimits;
  // Limits the stub already has (inherited from criu-ts) need no injected call.
  const current = readLimits(t.tid);
  area.reset();
  const a = area.alloc(16);
  const b = Buffer.alloc(16);
  list.forEach((l, res) => {
    if (current[res] && current[res].soft === l.cur && current[res].hard === l.max) return;
    b.writeBigUInt64LE(l.cur, 0);
    b.writeBigUInt64LE(l.max, 8);
    t.writeMem(a, b);
    const r = t.syscallRaw('prlimit64', 0, res, a, 0);
    if (r < 0n) log.warn(`task ${t.tid}: cannot restore rlimit ${res} (${l.cur}/${l.max}): errno ${-r}`);
  });
}
