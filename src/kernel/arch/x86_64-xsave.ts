// Conversion between the kernel's XSAVE buffer (NT_X86_XSTATE, standard format) and CRIU's
// user_x86_fpregs_entry. Component offsets are the CPU's own (CPUID leaf 0xD), which differ
// between vendors, so callers pass them in.
import type { Message, MessageInput } from '../../images/index.ts';

/** Standard-format offset of each user xstate component, by feature bit. */
export type XsaveOffsets = Map<number, { offset: number; size: number }>;

export const XFEATURE = { YMM: 2, BNDREGS: 3, BNDCSR: 4, OPMASK: 5, ZMM_HI256: 6, HI16_ZMM: 7, PKRU: 9 } as const;
const XSAVE_HDR = 512;

// Components are read and written as typed arrays (little-endian host), not value by value:
// a thread's AVX-512 state is ~200 64-bit words, and a core image carries one per thread.
function aligned(b: Buffer, off: number, bytes: number, align: number): { buf: ArrayBufferLike; at: number } {
  const at = b.byteOffset + off;
  if (at % align === 0) return { buf: b.buffer, at };
  const copy = new Uint8Array(bytes);
  copy.set(b.subarray(off, off + bytes));
  return { buf: copy.buffer, at: 0 };
}
function u32s(b: Buffer, off: number, n: number): number[] {
  const { buf, at } = aligned(b, off, n * 4, 4);
  return Array.from(new Uint32Array(buf, at, n));
}
function u64s(b: Buffer, off: number, n: number): bigint[] {
  const { buf, at } = aligned(b, off, n * 8, 8);
  return Array.from(new BigUint64Array(buf, at, n));
}
/** How many words of `size` bytes from `vals` fit at x[off]. */
const fit = (x: Buffer, off: number, count: number, size: number): number =>
  Math.max(0, Math.min(count, Math.floor((x.length - off) / size)));
/** Write 32-bit `vals` at x[off], as many as fit before the end of x. */
function put32(x: Buffer, off: number, vals: readonly number[]): void {
  const n = fit(x, off, vals.length, 4);
  if (n === 0) return;
  const words = new Uint32Array(n);
  for (let i = 0; i < n; i++) words[i] = vals[i] >>> 0;
  x.set(new Uint8Array(words.buffer), off);
}
/** Write 64-bit `vals` at x[off], as many as fit before the end of x. */
function put64(x: Buffer, off: number, vals: readonly bigint[]): void {
  const n = fit(x, off, vals.length, 8);
  if (n === 0) return;
  const words = new BigUint64Array(n);
  words.set(vals.length === n ? vals : vals.slice(0, n));
  x.set(new Uint8Array(words.buffer), off);
}

type Fpregs = Message<'user_x86_fpregs_entry'>;

/** XSAVE buffer -> user_x86_fpregs_entry. */
export function xsaveToEntry(x: Buffer, offs: XsaveOffsets): MessageInput<'user_x86_fpregs_entry'> {
  const e: MessageInput<'user_x86_fpregs_entry'> = {
    cwd: x.readUInt16LE(0),
    swd: x.readUInt16LE(2),
    twd: x.readUInt8(4),
    fop: x.readUInt16LE(6),
    rip: x.readBigUInt64LE(8),
    rdp: x.readBigUInt64LE(16),
    mxcsr: x.readUInt32LE(24),
    mxcsr_mask: x.readUInt32LE(28),
    st_space: u32s(x, 32, 32),
    xmm_space: u32s(x, 160, 64),
  };
  if (x.length <= XSAVE_HDR) return e;
  const xs: MessageInput<'user_x86_xsave_entry'> = { xstate_bv: x.readBigUInt64LE(XSAVE_HDR) };
  const comp = (bit: number) => {
    const o = offs.get(bit);
    return o && o.offset + o.size <= x.length ? o : undefined;
  };
  let c;
  if ((c = comp(XFEATURE.YMM))) xs.ymmh_space = u32s(x, c.offset, 64);
  if ((c = comp(XFEATURE.BNDREGS))) xs.bndreg_state = u64s(x, c.offset, 8);
  if ((c = comp(XFEATURE.BNDCSR))) xs.bndcsr_state = u64s(x, c.offset, 8);
  if ((c = comp(XFEATURE.OPMASK))) xs.opmask_reg = u64s(x, c.offset, 8);
  if ((c = comp(XFEATURE.ZMM_HI256))) xs.zmm_upper = u64s(x, c.offset, 64);
  if ((c = comp(XFEATURE.HI16_ZMM))) xs.hi16_zmm = u64s(x, c.offset, 128);
  if ((c = comp(XFEATURE.PKRU))) xs.pkru = u32s(x, c.offset, 2);
  e.xsave = xs;
  return e;
}

/**
 * user_x86_fpregs_entry -> XSAVE buffer, laid over `base` (a buffer read from the restoring
 * thread, so that its size, sw_reserved bytes and unknown components are this machine's).
 */
export function entryToXsave(e: Fpregs, base: Buffer, offs: XsaveOffsets): Buffer {
  const x = Buffer.from(base);
  x.writeUInt16LE(e.cwd, 0);
  x.writeUInt16LE(e.swd, 2);
  x.writeUInt8(e.twd & 0xff, 4);
  x.writeUInt16LE(e.fop, 6);
  x.writeBigUInt64LE(e.rip, 8);
  x.writeBigUInt64LE(e.rdp, 16);
  x.writeUInt32LE(e.mxcsr, 24);
  x.writeUInt32LE(e.mxcsr_mask, 28);
  put32(x.subarray(0, 160), 32, e.st_space);
  put32(x.subarray(0, 416), 160, e.xmm_space);
  const xs = e.xsave;
  if (!xs || x.length <= XSAVE_HDR) return x;
  let bv = xs.xstate_bv;
  // A component is written where this CPU has it; where it has not, it is left in its init state.
  const component = <T>(bit: number, vals: T, put: (x: Buffer, off: number, v: T) => void) => {
    if (!((bv >> BigInt(bit)) & 1n)) return;
    const o = offs.get(bit);
    if (!o) {
      bv &= ~(1n << BigInt(bit));
      return;
    }
    put(x, o.offset, vals);
  };
  component(XFEATURE.YMM, xs.ymmh_space, put32);
  component(XFEATURE.BNDREGS, xs.bndreg_state, put64);
  component(XFEATURE.BNDCSR, xs.bndcsr_state, put64);
  component(XFEATURE.OPMASK, xs.opmask_reg, put64);
  component(XFEATURE.ZMM_HI256, xs.zmm_upper, put64);
  component(XFEATURE.HI16_ZMM, xs.hi16_zmm, put64);
  component(XFEATURE.PKRU, xs.pkru, put32);
  // Components the image does not carry go back to their init state.
  bv &= 0x2e7n;
  x.writeBigUInt64LE(bv, XSAVE_HDR);
  x.writeBigUInt64LE(0n, XSAVE_HDR + 8); // xcomp_bv: standard format
  return x;
}
