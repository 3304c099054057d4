// A thread's CPU state as each architecture keeps it: the registers, the FPU/vector state
// and the per-thread extras (TLS descriptors, pointer-authentication keys, shadow stacks).
// core.ts holds what is the same everywhere.
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { Msg } from '../types.ts';

/** Registers read the moment a thread is frozen, before any injected call can disturb them. */
export interface CpuSnapshot {
  regs: Buffer;
  fpregs: Buffer;
  /** Vector state that an injected syscall would discard (arm64 SVE), when live. */
  vector?: Buffer;
}

/** Facts about this machine's CPU, found once per run (x86: XSAVE layout by CPUID). */
export type CpuFacts = Record<string, unknown>;

export interface CpuBackend {
  /** core_entry.mtype. */
  readonly march: number;
  /** The core_entry field that holds this architecture's thread_info. */
  readonly infoField: 'thread_info' | 'ti_aarch64';
  facts(area: InjectionArea): CpuFacts;
  snapshot(t: Tracee): CpuSnapshot;
  /** Put a snapshot back (the dump leaves the task running, or failed). */
  thaw(t: Tracee, s: CpuSnapshot): void;
  /** The thread_info message; `clearTid` is the thread's clear_child_tid address. */
  dumpInfo(t: Tracee, s: CpuSnapshot, area: InjectionArea, facts: CpuFacts, clearTid: bigint): Msg;
  /** Refuse, with a CriuError naming `file`, a thread this machine cannot run. */
  check(info: Msg, file: string): void;
  /** The TLS value a restored thread is cloned with (clone3's tls). */
  tls(info: Msg): bigint;
  clearTid(info: Msg): bigint;
  /** The general registers apply() puts in. */
  regs(info: Msg): Buffer;
  /**
   * The thread's final CPU state, after its last injected syscall: from here it may only be
   * resumed.
   */
  apply(t: Tracee, info: Msg, facts: CpuFacts): void;
}
