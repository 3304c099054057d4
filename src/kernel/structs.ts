// Layouts of the kernel structs criu-ts hands to syscalls it injects into tracees: the bytes go
// into the tracee's memory, so each is built here as a Buffer, at its final address.
import { arch } from './arch/index.ts';

/** sizeof(struct clone_args) up to cgroup (CLONE_ARGS_SIZE_VER2). */
export const CLONE_ARGS_SIZE = 88;

export interface CloneArgs {
  flags: number;
  exitSignal: number;
  childTid?: bigint;
  tls?: bigint;
  setTid?: number;
}

/**
 * struct clone_args, followed by its set_tid array of one pid when `setTid` is given; `at` is
 * the address the buffer will have in the tracee (set_tid points right after the struct).
 */
export function cloneArgs(a: CloneArgs, at: bigint): Buffer {
  const b = Buffer.alloc(CLONE_ARGS_SIZE + (a.setTid === undefined ? 0 : 8));
  b.writeBigUInt64LE(BigInt(a.flags), 0);
  b.writeBigUInt64LE(a.childTid ?? 0n, 16);
  b.writeBigUInt64LE(BigInt(a.exitSignal), 32);
  b.writeBigUInt64LE(a.tls ?? 0n, 56);
  if (a.setTid !== undefined) {
    b.writeBigUInt64LE(at + BigInt(CLONE_ARGS_SIZE), 64);
    b.writeBigUInt64LE(1n, 72);
    b.writeInt32LE(a.setTid, CLONE_ARGS_SIZE);
  }
  return b;
}

/** struct epoll_event: packed (12 bytes) on x86_64, 16 bytes elsewhere. */
export function epollEvent(events: number, data: bigint): Buffer {
  const size = arch.name === 'x86_64' ? 12 : 16;
  const b = Buffer.alloc(size);
  b.writeUInt32LE(events, 0);
  b.writeBigUInt64LE(data, size - 8);
  return b;
}

export interface StackT {
  sp: bigint;
  flags: number;
  size: bigint;
}
export const STACK_T_SIZE = 24;

/** stack_t (sigaltstack). */
export function stackT(s: StackT): Buffer {
  const b = Buffer.alloc(STACK_T_SIZE);
  b.writeBigUInt64LE(s.sp, 0);
  b.writeUInt32LE(s.flags >>> 0, 8); // SS_AUTODISARM is bit 31
  b.writeBigUInt64LE(s.size, 16);
  return b;
}

export function parseStackT(b: Buffer): StackT {
  return { sp: b.readBigUInt64LE(0), flags: b.readInt32LE(8) >>> 0, size: b.readBigUInt64LE(16) };
}

/** struct prctl_mm_map's address fields, in its order. */
export const PRCTL_MM_MAP_FIELDS = [
  'mm_start_code',
  'mm_end_code',
  'mm_start_data',
  'mm_end_data',
  'mm_start_brk',
  'mm_brk',
  'mm_start_stack',
  'mm_arg_start',
  'mm_arg_end',
  'mm_env_start',
  'mm_env_end',
] as const;
export type PrctlMmMapField = (typeof PRCTL_MM_MAP_FIELDS)[number];

/** struct prctl_mm_map (PR_SET_MM_MAP): the bounds, the auxv's address and size, the exe fd. */
export function prctlMmMap(bounds: Record<PrctlMmMapField, bigint>, auxvAddr: bigint, auxvSize: number, exeFd: number): Buffer {
  const m = Buffer.alloc(104);
  PRCTL_MM_MAP_FIELDS.forEach((f, i) => {
    m.writeBigUInt64LE(bounds[f], i * 8);
  });
  m.writeBigUInt64LE(auxvAddr, 88);
  m.writeUInt32LE(auxvSize, 96);
  m.writeUInt32LE(exeFd >>> 0, 100);
  return m;
}

/** The auxv size field of a prctl_mm_map built by prctlMmMap. */
export function setPrctlMmMapAuxvSize(m: Buffer, size: number): void {
  m.writeUInt32LE(size, 96);
}
