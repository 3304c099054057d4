// Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT on every thread, repeated until no
// thread appears that we have not stopped yet.
import { listThreads } from '../proc/index.ts';
import { PTRACE_O, SysError } from '../kernel/index.ts';
import { Tracee } from '../compel/index.ts';
import { CriuError } from '../errors.ts';

export const SEIZE_OPTIONS = PTRACE_O.TRACESYSGOOD;

export function freezeProcess(pid: number, deadline: number): Tracee[] {
  const frozen = new Map<number, Tracee>();
  try {
    for (;;) {
      const tids = listThreads(pid).filter((t) => !frozen.has(t));
      if (!tids.length) break;
      if (Date.now() > deadline) throw new CriuError(`timed out freezing task ${pid}`);
      for (const tid of tids) {
        try {
          frozen.set(tid, Tracee.seize(tid, SEIZE_OPTIONS));
        } catch (e) {
          // A thread that exited between listing and seizing is simply gone.
          if (e instanceof SysError && e.code === 'ESRCH') continue;
          throw e;
        }
      }
    }
  } catch (e) {
    for (const t of frozen.values()) { try { t.detach(); } catch { /* gone */ } }
    throw e;
  }
  const list = [...frozen.values()];
  const leader = list.find((t) => t.tid === pid);
  if (!leader) {
    for (const t of list) { try { t.detach(); } catch { /* gone */ } }
    throw new CriuError(`task ${pid} exited while it was being frozen`);
  }
  return [leader, ...list.filter((t) => t !== leader)];
}
