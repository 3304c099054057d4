// Self-healing injected calls. A thread that must stay resumable (a dump's) runs each injected
// syscall from code that ends in rt_sigreturn, with its stack pointer on a signal frame that
// holds its own registers, signal mask and FP/vector state. criu-ts stops it at the syscall's
// exit and puts its state back itself; if criu-ts dies first, the kernel lets the thread run
// on (ptrace detach), the sigreturn puts that same state back, and the thread goes on from
// where it was frozen.
import { arch, A64, X86, FPSIMD_SIZE } from '../kernel/index.ts';
import type { XsaveOffsets } from '../kernel/arch/x86_64-xsave.ts';

/** Bytes reserved at the end of an area for one frame (the largest XSAVE or SVE state fits). */
export const HEAL_BYTES = 16 * 1024;

/** What a frame must put back: the thread's state as it was frozen. */
export interface HealState {
  regs: Buffer;
  mask: bigint;
  /** x86_64: the XSAVE area (NT_X86_XSTATE); arm64: user_fpsimd_state (NT_PRFPREG). */
  fpregs: Buffer;
  /** x86_64: where each XSAVE component sits (CPUID leaf 0xD). */
  xsave?: XsaveOffsets;
  /** arm64: the live SVE state (NT_ARM_SVE: header and registers), if any. */
  vector?: Buffer;
  /** arm64: the Guarded Control Stack, when enabled: sigreturn pops a cap token from it. */
  gcs?: { gcspr: bigint; enabled: bigint };
  /** arm64: POR_EL0, where the CPU has permission overlays. */
  poe?: bigint;
}

export interface HealFrame {
  bytes: Buffer;
  /** The stack pointer the injected call runs with. */
  sp: bigint;
  /** arm64 GCS: the cap token sigreturn checks, to write on the shadow stack. */
  token?: { at: bigint; value: bigint };
}

/** The code that follows the syscall instruction: rt_sigreturn. */
export const healTail: Buffer =
  arch.name === 'x86_64'
    ? Buffer.from([0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]) // mov $15, %eax; syscall
    : Buffer.from([0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]); // mov x8, #139; svc #0

/** The frame for a thread, placed at `at` (aligned to 64), or undefined when it does not fit. */
export function healFrame(at: bigint, s: HealState): HealFrame | undefined {
  const f = arch.name === 'x86_64' ? x86Frame(at, s) : a64Frame(at, s);
  return f && f.bytes.length <= HEAL_BYTES ? f : undefined;
}

// A stack_t whose flags are no mode at all: sigreturn's sigaltstack step fails (and the
// kernel ignores that failure), so the thread keeps its alternate stack as it is.
const NO_ALTSTACK_MODE = 4;

// x86_64 rt_sigframe: pretcode, ucontext (flags, link, stack_t, sigcontext, sigmask), siginfo;
// sigreturn finds it 8 bytes below the stack pointer. The XSAVE area follows, 64-aligned.
const UC = 8,
  MCTX = UC + 40,
  XSAVE_AT = 448,
  FX_SW = 464,
  MAGIC1 = 0x46505853,
  MAGIC2 = 0x46505845,
  XSAVE_HEADER_END = 576;
const SIGCONTEXT_REGS = [
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'di',
  'si',
  'bp',
  'bx',
  'dx',
  'ax',
  'cx',
  'sp',
  'ip',
  'flags',
] as const;

function x86Frame(at: bigint, s: HealState): HealFrame | undefined {
  const r = Buffer.from(s.regs);
  // What the thread would do when let go: restart the syscall it was frozen in (sigreturn
  // itself disables the kernel's restart logic).
  arch.fixupRestart(r);
  // The components in use (XSTATE_BV) and the end of the last one: the kernel refuses an area
  // larger than the task's own XSAVE size, which ptrace's buffer (this CPU's largest) may be.
  const bv = s.fpregs.readBigUInt64LE(512);
  let size = XSAVE_HEADER_END;
  for (let bit = 2; bit < 64; bit++) {
    if (!(bv & (1n << BigInt(bit)))) continue;
    const c = s.xsave?.get(bit);
    if (!c) return undefined;
    size = Math.max(size, c.offset + c.size);
  }
  const b = Buffer.alloc(XSAVE_AT + size + 4);
  b.writeBigUInt64LE(1n | 2n | 4n, UC); // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
  b.writeInt32LE(NO_ALTSTACK_MODE, UC + 24);
  SIGCONTEXT_REGS.forEach((name, i) => {
    b.writeBigUInt64LE(r.readBigUInt64LE(X86[name]), MCTX + i * 8);
  });
  b.writeUInt16LE(Number(r.readBigUInt64LE(X86.cs)), MCTX + 144);
  b.writeUInt16LE(Number(r.readBigUInt64LE(X86.ss)), MCTX + 150);
  b.writeBigUInt64LE(at + BigInt(XSAVE_AT), MCTX + 184);
  b.writeBigUInt64LE(s.mask, UC + 296);
  s.fpregs.copy(b, XSAVE_AT, 0, size);
  // The FXSAVE header's software words (where ptrace leaves XCR0) say that an XSAVE area of
  // this size follows, holding these components; MAGIC2 closes it. Without them the kernel
  // would take the legacy FXSAVE part only.
  b.fill(0, XSAVE_AT + FX_SW, XSAVE_AT + 512);
  b.writeUInt32LE(MAGIC1, XSAVE_AT + FX_SW);
  b.writeUInt32LE(size + 4, XSAVE_AT + FX_SW + 4);
  b.writeBigUInt64LE(bv | 3n, XSAVE_AT + FX_SW + 8);
  b.writeUInt32LE(size, XSAVE_AT + FX_SW + 16);
  b.writeUInt32LE(MAGIC2, XSAVE_AT + size);
  return { bytes: b, sp: at + 8n };
}

// arm64 rt_sigframe: siginfo, then ucontext (flags, link, stack_t, sigmask, padding to 128
// bytes, sigcontext at 176: fault_address, x0-x30, sp, pc, pstate, then 4096 bytes of records).
const A_UC = 128,
  A_MCTX = A_UC + 176,
  A_RES = A_MCTX + 288,
  A_RES_SIZE = 4096,
  FPSIMD_MAGIC = 0x46508001,
  SVE_MAGIC = 0x53564501,
  EXTRA_MAGIC = 0x45585401,
  GCS_MAGIC = 0x47435300,
  POE_MAGIC = 0x504f4530,
  SVE_HEADER = 16;

const round16 = (n: number): number => (n + 15) & ~15;

function a64Frame(at: bigint, s: HealState): HealFrame {
  const records: Buffer[] = [];
  const fp = Buffer.alloc(FPSIMD_SIZE);
  fp.writeUInt32LE(FPSIMD_MAGIC, 0);
  fp.writeUInt32LE(FPSIMD_SIZE, 4);
  fp.writeUInt32LE(s.fpregs.readUInt32LE(512), 8); // fpsr
  fp.writeUInt32LE(s.fpregs.readUInt32LE(516), 12); // fpcr
  s.fpregs.copy(fp, 16, 0, 512);
  records.push(fp);
  let token: HealFrame['token'];
  if (s.gcs) {
    // sigreturn reads a cap token at GCSPR_EL0 (set from this record) and pops it: the token
    // goes in the free slot below the thread's GCSPR, so that the pop leaves GCSPR as it was.
    const slot = s.gcs.gcspr - 8n;
    const g = Buffer.alloc(32);
    g.writeUInt32LE(GCS_MAGIC, 0);
    g.writeUInt32LE(32, 4);
    g.writeBigUInt64LE(slot, 8);
    g.writeBigUInt64LE(s.gcs.enabled, 16);
    records.push(g);
    token = { at: slot, value: slot & ~0xfffn };
  }
  if (s.poe !== undefined) {
    const p = Buffer.alloc(16);
    p.writeUInt32LE(POE_MAGIC, 0);
    p.writeUInt32LE(16, 4);
    p.writeBigUInt64LE(s.poe, 8);
    records.push(p);
  }
  const tail: Buffer[] = [];
  if (s.vector) {
    // The NT_ARM_SVE payload (after its 16-byte header) has the signal frame's register layout.
    const vl = s.vector.readUInt16LE(8);
    const vq = vl / 16;
    const regsSize = vq * (32 * 16 + 17 * 2);
    const sve = Buffer.alloc(round16(SVE_HEADER + regsSize));
    sve.writeUInt32LE(SVE_MAGIC, 0);
    sve.writeUInt32LE(sve.length, 4);
    sve.writeUInt16LE(vl, 8);
    s.vector.copy(sve, SVE_HEADER, SVE_HEADER, SVE_HEADER + regsSize);
    const used = records.reduce((n, x) => n + x.length, 0);
    if (used + sve.length + 16 <= A_RES_SIZE) records.push(sve);
    else tail.push(sve);
  }
  const b = Buffer.alloc(A_RES + A_RES_SIZE + (tail.length ? tail[0].length + 16 : 0));
  b.writeInt32LE(NO_ALTSTACK_MODE, A_UC + 24);
  b.writeBigUInt64LE(s.mask, A_UC + 40);
  s.regs.copy(b, A_MCTX + 8, 0, 31 * 8);
  b.writeBigUInt64LE(s.regs.readBigUInt64LE(A64.sp), A_MCTX + 256);
  b.writeBigUInt64LE(s.regs.readBigUInt64LE(A64.pc), A_MCTX + 264);
  b.writeBigUInt64LE(s.regs.readBigUInt64LE(A64.pstate), A_MCTX + 272);
  let off = A_RES;
  for (const x of records) {
    x.copy(b, off);
    off += x.length;
  }
  if (tail.length) {
    // An SVE state too large for the frame's records goes after them, named by an
    // extra_context record that sits right before the terminator preceding the data.
    const extraAt = off;
    const dataAt = extraAt + 32 + 16;
    b.writeUInt32LE(EXTRA_MAGIC, extraAt);
    b.writeUInt32LE(32, extraAt + 4);
    b.writeBigUInt64LE(at + BigInt(dataAt), extraAt + 8);
    b.writeUInt32LE(tail[0].length + 16, extraAt + 16);
    tail[0].copy(b, dataAt);
  }
  return { bytes: b, sp: at, token };
}
