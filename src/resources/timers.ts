// Interval timers (ITIMER_REAL/VIRTUAL/PROF) of task_timers_entry.
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { Message, MessageInput } from './types.ts';

const ITIMERVAL = 32;

export function dumpItimers(t: Tracee, area: InjectionArea): MessageInput<'task_timers_entry'> {
  area.reset();
  const a = area.alloc(ITIMERVAL);
  const one = (which: number): Message<'itimer_entry'> => {
    t.syscall('getitimer', which, a);
    const b = area.read(a, ITIMERVAL);
    return { isec: b.readBigUInt64LE(0), iusec: b.readBigUInt64LE(8), vsec: b.readBigUInt64LE(16), vusec: b.readBigUInt64LE(24) };
  };
  return { real: one(0), virt: one(1), prof: one(2), posix: [] };
}

export function restoreItimers(t: Tracee, area: InjectionArea, timers: Message<'task_timers_entry'> | undefined): void {
  if (!timers) return;
  area.reset();
  const a = area.alloc(ITIMERVAL);
  const b = Buffer.alloc(ITIMERVAL);
  (['real', 'virt', 'prof'] as const).forEach((k, which) => {
    const it = timers[k];
    const periodic = it.isec !== 0n || it.iusec !== 0n;
    // A periodic ITIMER_REAL that fired while the task was frozen shows no time left: the
    // kernel arms it again only when the task takes its SIGALRM, and the signal requeued at
    // restore is not the timer's. It starts again from a whole period, as CRIU does.
    const expired = it.vsec === 0n && it.vusec === 0n;
    if (expired && !periodic) return;
    b.writeBigUInt64LE(it.isec, 0);
    b.writeBigUInt64LE(it.iusec, 8);
    b.writeBigUInt64LE(expired ? it.isec : it.vsec, 16);
    b.writeBigUInt64LE(expired ? it.iusec : it.vusec, 24);
    t.writeMem(a, b);
    t.syscall('setitimer', which, a, 0);
  });
}
