// Creating a task at its old PID: a helper process (any program) is made to clone3 with
// set_tid, and the child, auto-attached through PTRACE_O_TRACEFORK, is the stub whose body
// the restore replaces. The helper is then killed, so the stub's parent becomes criu-ts.
import fs from 'node:fs';
import { parseMaps } from '../proc/index.ts';
import { posixSpawn, kill, waitpid, WALL, SIG, PTRACE_O, SysError, O } from '../kernel/index.ts';
import { Tracee, InjectionArea, vdsoSyscallInsn, AREA_SIZE, RemoteSysError, INJECTION_SIGMASK } from '../compel/index.ts';
import { cpu, type CpuFacts } from '../resources/cpu/index.ts';
import { findHole, vmaRanges, mapsRanges } from '../resources/mm-restore.ts';
import { CriuError } from '../errors.ts';
import type { Message } from '../resources/types.ts';

export const TRACE_OPTIONS = PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.EXITKILL;

export interface Helper { tracee: Tracee; area: InjectionArea; cpuFacts: CpuFacts }

const HELPER_BINARIES = ['/bin/sleep', '/usr/bin/sleep'];

/** Start and seize the helper, with an injection area at an address free in every target layout. */
export function startHelper(targetVmas: Message<'vma_entry'>[]): Helper {
  const bin = HELPER_BINARIES.find((b) => fs.existsSync(b));
  if (!bin) throw new CriuError('no helper program (sleep) found');
  const pid = posixSpawn(bin, ['sleep', '3600'], [], [0, 1, 2].map((fd) => ({ fd, path: '/dev/null', flags: O.RDWR })));
  let t: Tracee | undefined;
  try {
    t = Tracee.seize(pid, TRACE_OPTIONS);
    const maps = parseMaps(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
    t.useSyscallInsn(vdsoSyscallInsn(t, maps.find((v) => v.path === '[vdso]'), 'the restore helper'));
    t.setSigmask(INJECTION_SIGMASK);
    const at = findHole([...vmaRanges(targetVmas), ...mapsRanges(maps)], BigInt(AREA_SIZE));
    const area = InjectionArea.map(t, at);
    return { tracee: t, area, cpuFacts: cpu.facts(area) };
  } catch (e) {
    killHelper(pid);
    throw e;
  }
}

export function killHelper(pid: number): void {
  try { kill(pid, SIG.KILL); } catch { /* gone */ }
  try { waitpid(pid, WALL); } catch { /* reaped */ }
}

const CLONE_ARGS = 88;

export interface CloneExtra { childTid?: bigint; tls?: bigint }

/** clone3 with set_tid = [pid] inside `parent`; returns the new, stopped, traced child. */
export function cloneAt(parent: Tracee, area: InjectionArea, pid: number, flags: number, exitSignal: number, extra: CloneExtra = {}): Tracee {
  // clone_args and, right after it, the set_tid array: one write into the tracee.
  area.reset();
  const b = Buffer.alloc(CLONE_ARGS + 8);
  const at = area.alloc(b.length);
  b.writeBigUInt64LE(BigInt(flags), 0);
  b.writeBigUInt64LE(extra.childTid ?? 0n, 16);
  b.writeBigUInt64LE(BigInt(exitSignal), 32);
  b.writeBigUInt64LE(extra.tls ?? 0n, 56);
  b.writeBigUInt64LE(at + BigInt(CLONE_ARGS), 64);
  b.writeBigUInt64LE(1n, 72);
  b.writeInt32LE(pid, CLONE_ARGS);
  area.tracee.writeMem(at, b);
  let child: bigint;
  try {
    child = parent.syscall('clone3', at, CLONE_ARGS);
  } catch (e) {
    if (e instanceof RemoteSysError && e.code === 'EEXIST') throw new CriuError(`pid ${pid} is already in use by another process`);
    throw e;
  }
  if (Number(child) !== pid) throw new CriuError(`clone3 gave pid ${child}, not ${pid}`);
  const stub = Tracee.adopt(pid);
  stub.waitStop();
  return stub;
}

export function pidInUse(pid: number): boolean {
  try { kill(pid, 0); return true; } catch (e) { return !(e instanceof SysError && e.code === 'ESRCH'); }
}
