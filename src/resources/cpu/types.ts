// A thread's CPU state as each architecture keeps it: the registers, the FPU/vector state
// and the per-thread extras (TLS descriptors, pointer-authentication keys, shadow stacks).
// core.ts holds what is the same everywhere.
import type { Tracee, InjectionArea, HealState } from '../../compel/index.ts';
import type { XsaveOffsets } from '../../kernel/arch/x86_64-xsave.ts';
import type { Message, MessageInput } from '../types.ts';

/** Registers read the moment a thread is frozen, before any injected call can disturb them. */
export interface CpuSnapshot {
  regs: Buffer;
  fpregs: Buffer;
  /** Vector state that an injected syscall would discard (arm64 SVE), when live. */
  vector?: Buffer;
}

/** Facts about this machine's CPU, found once per run. */
export interface CpuFacts {
  /** x86: where each XSAVE component sits, by CPUID. */
  xsave?: XsaveOffsets;
}

type Core = Message<'core_entry'>;
/** The core_entry fields that hold a thread_info, one per architecture. */
export type CoreThreadInfo = Pick<MessageInput<'core_entry'>, 'thread_info' | 'ti_aarch64'>;

/**
 * Each architecture reads its own thread_info out of a core entry (`core.thread_info` on
 * x86_64, `core.ti_aarch64` on arm64), so that callers never handle another architecture's.
 */
export interface CpuBackend {
  /** core_entry.mtype. */
  readonly march: number;
  /** The core_entry field that holds this architecture's thread_info. */
  readonly infoField: keyof CoreThreadInfo;
  facts(area: InjectionArea): CpuFacts;
  snapshot(t: Tracee): CpuSnapshot;
  /** Put a snapshot back (the dump leaves the task running, or failed). */
  thaw(t: Tracee, s: CpuSnapshot): void;
  /** Put back what an injected syscall discards of a snapshot, if anything (arm64's SVE state). */
  thawVector?(t: Tracee, s: CpuSnapshot): void;
  /** What a heal frame (compel/heal.ts) needs beyond the snapshot's registers and FP state. */
  healExtras(t: Tracee, facts: CpuFacts): Partial<HealState>;
  /** The thread_info in its core_entry field; `clearTid` is the thread's clear_child_tid address. */
  dumpInfo(t: Tracee, s: CpuSnapshot, area: InjectionArea, facts: CpuFacts, clearTid: bigint): CoreThreadInfo;
  /** Refuse, with a CriuError naming `file`, a thread this machine cannot run (or without a thread_info). */
  check(core: Core, file: string): void;
  /** The TLS value a restored thread is cloned with (clone3's tls). */
  tls(core: Core): bigint;
  clearTid(core: Core): bigint;
  /** The general registers apply() puts in. */
  regs(core: Core): Buffer;
  /**
   * The thread's final CPU state, after its last injected syscall: from here it may only be
   * resumed.
   */
  apply(t: Tracee, core: Core, facts: CpuFacts): void;
}
