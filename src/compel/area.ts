// The injection area: a small anonymous mapping in a tracee holding a `syscall; trap`
// sequence and scratch memory for syscall arguments (paths, structs, result buffers).
import { arch, MAP, PROT, processVmReadv } from '../kernel/index.ts';
import type { Tracee, HealSlot } from './tracee.ts';
import { HEAL_BYTES, healTail } from './heal.ts';

export const AREA_SIZE = 64 * 1024;
/** A syscall instruction followed by rt_sigreturn, for calls that heal themselves (heal.ts). */
const HEAL_CODE_AT = 64;
const SCRATCH_START = 128;
/** The area's last bytes, left out of scratch: Tracee.takeFd's recvmsg buffers. */
export const COURIER_BYTES = 128;
/**
 * Written into every area, after its code (cpuid.ts uses offset 16): a criu-ts that finds one
 * in a process it is not tracing knows that a criu-ts died there and can remove it.
 */
const MARKER = Buffer.from('criu-ts injection area\0');
const MARKER_AT = 32;

/** The header of an area: its `syscall; trap` code, the marker and the heal code. */
function header(): Buffer {
  const b = Buffer.alloc(HEAL_CODE_AT + arch.syscallInsnLen + healTail.length);
  arch.syscallTrap.copy(b, 0);
  MARKER.copy(b, MARKER_AT);
  arch.syscallTrap.copy(b, HEAL_CODE_AT, 0, arch.syscallInsnLen);
  healTail.copy(b, HEAL_CODE_AT + arch.syscallInsnLen);
  return b;
}

/** Whether the mapping at `start` of process `pid` is an injection area (read from outside, no ptrace). */
export function isInjectionArea(pid: number, start: bigint, size: bigint): boolean {
  if (size !== BigInt(AREA_SIZE)) return false;
  const b = Buffer.alloc(MARKER.length);
  try {
    if (processVmReadv(pid, b, [{ addr: start + BigInt(MARKER_AT), len: b.length }]) !== b.length) return false;
  } catch {
    return false;
  }
  return b.equals(MARKER);
}

export class InjectionArea {
  readonly tracee: Tracee;
  readonly base: bigint;
  readonly size: number;
  private next = SCRATCH_START;
  /** Where scratch ends: before the courier's bytes, and before the heal slot once there is one. */
  private limit: number;
  private slot: HealSlot | undefined;

  constructor(tracee: Tracee, base: bigint, size: number, slot?: HealSlot) {
    this.tracee = tracee;
    this.base = base;
    this.size = size;
    this.slot = slot;
    this.limit = size - COURIER_BYTES - (slot ? HEAL_BYTES : 0);
  }

  /** Where the area's heal code starts (heal.ts). */
  get healCode(): bigint {
    return this.base + BigInt(HEAL_CODE_AT);
  }

  /** The slot for heal frames of this area's threads, taken from the end of scratch. */
  healSlot(): HealSlot {
    if (!this.slot) {
      this.limit = this.size - COURIER_BYTES - HEAL_BYTES;
      this.slot = { at: this.base + BigInt(this.limit) };
    }
    return this.slot;
  }

  /**
   * Map an injection area in `t`, which must already be able to run syscalls through an
   * existing instruction (Tracee.useSyscallInsn). With `at`, the area goes exactly there.
   */
  static map(t: Tracee, at?: bigint, size = AREA_SIZE): InjectionArea {
    const flags = MAP.PRIVATE | MAP.ANONYMOUS | (at !== undefined ? MAP.FIXED_NOREPLACE : 0);
    const base = t.syscall('mmap', at ?? 0n, size, PROT.READ | PROT.WRITE | PROT.EXEC, flags, -1, 0);
    if (at !== undefined && base !== at)
      throw new Error(`task ${t.tid}: injection area landed at 0x${base.toString(16)}, not 0x${at.toString(16)}`);
    t.writeMem(base, header());
    const area = new InjectionArea(t, base, size);
    t.useInjectionPage(base);
    return area;
  }

  /** The same area as seen by another tracee sharing or having inherited the mapping. */
  forTracee(t: Tracee): InjectionArea {
    t.useInjectionPage(this.base);
    return new InjectionArea(t, this.base, this.size, this.slot);
  }

  reset(): void {
    this.next = SCRATCH_START;
  }

  alloc(len: number): bigint {
    const off = (this.next + 15) & ~15;
    if (off + len > this.limit) throw new Error(`injection area of task ${this.tracee.tid} is full (${len} bytes wanted)`);
    this.next = off + len;
    return this.base + BigInt(off);
  }

  /** Copy `data` into scratch memory and return its remote address. */
  put(data: Buffer): bigint {
    const a = this.alloc(data.length);
    this.tracee.writeMem(a, data);
    return a;
  }

  putString(s: string): bigint {
    return this.put(Buffer.from(s + '\0'));
  }

  read(addr: bigint, len: number): Buffer {
    return this.tracee.readMem(addr, len);
  }
}

/** Address of a `syscall` instruction inside a code buffer that starts at `start`, or undefined. */
export function findSyscallInsn(code: Buffer, start: bigint): bigint | undefined {
  const insn = arch.syscallTrap.subarray(0, arch.syscallInsnLen);
  for (let off = code.indexOf(insn); off >= 0; off = code.indexOf(insn, off + 1)) {
    if (arch.name === 'aarch64' && off % 4 !== 0) continue;
    return start + BigInt(off);
  }
  return undefined;
}

/**
 * A `syscall` instruction of a tracee, for its first injected calls (before it has an
 * injection area): in its [vdso], or, in a task that unmapped its vDSO, in any of its
 * executable mappings (the bytes need not start an instruction of that code: only they are
 * run). Throws with `who` in the message when there is none.
 */
export function vdsoSyscallInsn(t: Tracee, vmas: Array<{ start: bigint; end: bigint; path: string; prot: number }>, who: string): bigint {
  const vdso = vmas.find((v) => v.path === '[vdso]');
  const code = vmas.filter((v) => v !== vdso && (v.prot & 5) === 5 && v.path !== '[vsyscall]');
  for (const v of vdso ? [vdso, ...code] : code) {
    const insn = findSyscallInsn(t.readMem(v.start, Number(v.end - v.start)), v.start);
    if (insn !== undefined) return insn;
  }
  throw new Error(`no syscall instruction found in the [vdso] or any executable mapping of ${who}; cannot run syscalls in it`);
}
