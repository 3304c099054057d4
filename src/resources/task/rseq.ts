// rseq: a thread frozen inside a restartable sequence's critical section. The kernel would
// move it to the sequence's abort handler when it next takes a signal or is preempted, and
// clears the `rseq_cs` pointer of its struct rseq when it returns to user space outside one:
// every injected call does. So the critical section is read at freeze, before any injection,
// and the thread is saved at the abort handler, as the kernel would have sent it there; a
// sequence that asked not to be restarted on signals (RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL)
// stays where it was, and its rseq_cs pointer is written back right before the release.
import { arch, getRseqConfig } from '../../kernel/index.ts';
import type { Tracee } from '../../compel/index.ts';
import type { Message, MessageInput } from '../types.ts';

const NO_RESTART_ON_SIGNAL = 2;
/** struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, u32 flags. */
const RSEQ_CS_OFF = 8,
  RSEQ_FLAGS_OFF = 16;

/** The thread's rseq registration, its IP moved to the abort handler in `regs` if it was inside a critical section. */
export function freezeRseq(t: Tracee, regs: Buffer): MessageInput<'rseq_entry'> | undefined {
  const rs = getRseqConfig(t.tid);
  if (rs.ptr === 0n) return undefined;
  const e: MessageInput<'rseq_entry'> = { rseq_abi_pointer: rs.ptr, rseq_abi_size: rs.size, signature: rs.signature };
  const abi = t.readMem(rs.ptr, 24);
  const csPtr = abi.readBigUInt64LE(RSEQ_CS_OFF);
  if (csPtr === 0n) return e;
  // struct rseq_cs: u32 version, u32 flags, u64 start_ip, u64 post_commit_offset, u64 abort_ip.
  const cs = t.readMem(csPtr, 32);
  const flags = cs.readUInt32LE(4) | abi.readUInt32LE(RSEQ_FLAGS_OFF);
  const start = cs.readBigUInt64LE(8),
    len = cs.readBigUInt64LE(16),
    abort = cs.readBigUInt64LE(24);
  const ip = arch.ip(regs);
  if (ip >= start && ip < start + len) {
    if (flags & NO_RESTART_ON_SIGNAL) e.rseq_cs_pointer = csPtr;
    else arch.setIp(regs, abort);
  }
  return e;
}

/**
 * Register rseq again (the memory it points into is back). CRIU writes an entry for every
 * thread, all zero for one without rseq: that one stays without.
 */
export function restoreRseq(t: Tracee, rs: Message<'rseq_entry'> | undefined): void {
  if (rs && rs.rseq_abi_pointer !== 0n) t.syscall('rseq', rs.rseq_abi_pointer, rs.rseq_abi_size, 0, rs.signature);
}

/** The rseq_cs pointer of a thread saved inside a critical section, after its last injected call. */
export function restoreRseqCs(t: Tracee, rs: Message<'rseq_entry'> | undefined): void {
  if (!rs?.rseq_cs_pointer) return;
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(rs.rseq_cs_pointer);
  t.writeMem(rs.rseq_abi_pointer + BigInt(RSEQ_CS_OFF), b);
}
