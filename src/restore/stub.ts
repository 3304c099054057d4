// The restore's helper: a process (any program) that clones the root stub at its PID (see
// resources/task/fork.ts) and is then killed, so that the stub's parent becomes criu-ts. Its
// injection area, at an address free in every target's layout, is every stub's too.
import { readMaps } from '../proc/index.ts';
import { spawnTethered, endTethered, PTRACE_O, type Tethered } from '../kernel/index.ts';
import { Tracee, InjectionArea, vdsoSyscallInsn, AREA_SIZE, INJECTION_SIGMASK } from '../compel/index.ts';
import { cpu, type CpuFacts } from '../resources/cpu/index.ts';
import { findHole, vmaRanges, mapsRanges } from '../resources/mm/index.ts';
import type { Message } from '../resources/types.ts';

export const TRACE_OPTIONS = PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.EXITKILL;

export interface Helper {
  child: Tethered;
  tracee: Tracee;
  area: InjectionArea;
  cpuFacts: CpuFacts;
}

/**
 * Start and seize the helper, with an injection area at an address free in every target layout.
 * With `seccomp`, every task it begets is traced with its seccomp filters suspended
 * (PTRACE_O_SUSPEND_SECCOMP, inherited through TRACEFORK/TRACECLONE): the filters restored
 * before the release then do not apply to the restore's own calls, until the detach.
 */
export function startHelper(targetVmas: Message<'vma_entry'>[], seccomp = false): Helper {
  // Tethered: criu-ts killed before the seize below takes effect leaves nothing behind.
  const child = spawnTethered();
  const pid = child.pid;
  let t: Tracee | undefined;
  try {
    t = Tracee.seize(pid, TRACE_OPTIONS | (seccomp ? PTRACE_O.SUSPEND_SECCOMP : 0));
    const maps = readMaps(pid);
    t.useSyscallInsn(vdsoSyscallInsn(t, maps, 'the restore helper'));
    t.setSigmask(INJECTION_SIGMASK);
    const at = findHole([...vmaRanges(targetVmas), ...mapsRanges(maps)], BigInt(AREA_SIZE));
    const area = InjectionArea.map(t, at);
    return { child, tracee: t, area, cpuFacts: cpu.facts(area) };
  } catch (e) {
    endTethered(child);
    throw e;
  }
}

export function killHelper(h: Helper): void {
  endTethered(h.child);
}
