// AArch64: user_pt_regs, FP/SIMD (and SVE when live), TPIDR_EL0, the pointer-authentication
// keys and the Guarded Control Stack registers (thread_info_aarch64).
import { arch, NT, A64, FPSIMD_SIZE } from '../../kernel/index.ts';
import { readAuxv, AT_HWCAP, AT_HWCAP2 } from '../../proc/index.ts';
import { CriuError } from '../../errors.ts';
import type { Tracee, HealState } from '../../compel/index.ts';
import type { Message, MessageInput } from '../types.ts';
import type { CpuBackend } from './types.ts';

type Info = Message<'thread_info_aarch64'>;
type Core = Message<'core_entry'>;

const HWCAP_SVE = 1n << 22n,
  HWCAP_PACA = 1n << 30n,
  HWCAP_PACG = 1n << 31n,
  HWCAP_GCS = 1n << 32n;
const HWCAP2_SME = 1n << 23n,
  HWCAP2_FPMR = 1n << 48n,
  HWCAP2_POE = 1n << 63n;
let hwcapCache: Map<bigint, bigint> | undefined;
/** AT_HWCAP or AT_HWCAP2 of this machine, as the kernel gave them to criu-ts. */
function hwcap(type = AT_HWCAP): bigint {
  if (hwcapCache === undefined) {
    const words = readAuxv(process.pid);
    hwcapCache = new Map();
    for (let i = 0; i + 1 < words.length; i += 2) hwcapCache.set(words[i], words[i + 1]);
  }
  return hwcapCache.get(BigInt(type)) ?? 0n;
}
export const hostHas = {
  sve: () => (hwcap() & HWCAP_SVE) !== 0n,
  pac: () => (hwcap() & (HWCAP_PACA | HWCAP_PACG)) !== 0n,
  gcs: () => (hwcap() & HWCAP_GCS) !== 0n,
  sme: () => (hwcap(AT_HWCAP2) & HWCAP2_SME) !== 0n,
  fpmr: () => (hwcap(AT_HWCAP2) & HWCAP2_FPMR) !== 0n,
  poe: () => (hwcap(AT_HWCAP2) & HWCAP2_POE) !== 0n,
};

// struct user_sve_header: size, max_size (u32), vl, max_vl, flags (u16).
const SVE_HEADER = 16,
  SVE_PT_REGS_SVE = 1;
const GCS_SIZE = 24,
  PR_SHADOW_STACK_ENABLE = 1n;

/** The full SVE register file when the thread's live state is SVE (not just FP/SIMD). */
function liveSve(t: Tracee): Buffer | undefined {
  if (!hostHas.sve()) return undefined;
  const h = t.optionalRegset(NT.ARM_SVE, SVE_HEADER);
  if (!h || h.length < SVE_HEADER || !(h.readUInt16LE(12) & SVE_PT_REGS_SVE)) return undefined;
  return t.getRegset(NT.ARM_SVE, h.readUInt32LE(0));
}

const u64s = (b: Buffer, n: number, off = 0): bigint[] => Array.from({ length: n }, (_, i) => b.readBigUInt64LE(off + i * 8));

function regsToEntry(r: Buffer): MessageInput<'user_aarch64_regs_entry'> {
  return { regs: u64s(r, 31), sp: r.readBigUInt64LE(A64.sp), pc: r.readBigUInt64LE(A64.pc), pstate: r.readBigUInt64LE(A64.pstate) };
}
function entryToRegs(e: Message<'user_aarch64_regs_entry'>): Buffer {
  const r = Buffer.alloc(arch.gpRegsSize);
  e.regs.slice(0, 31).forEach((v, i) => {
    r.writeBigUInt64LE(v, i * 8);
  });
  r.writeBigUInt64LE(e.sp, A64.sp);
  r.writeBigUInt64LE(e.pc, A64.pc);
  r.writeBigUInt64LE(e.pstate, A64.pstate);
  return r;
}

// struct user_fpsimd_state: 32 × 128-bit vregs, fpsr, fpcr.
function fpsimdToEntry(f: Buffer): MessageInput<'user_aarch64_fpsimd_context_entry'> {
  return { vregs: u64s(f, 64), fpsr: f.readUInt32LE(512), fpcr: f.readUInt32LE(516) };
}
function entryToFpsimd(e: Message<'user_aarch64_fpsimd_context_entry'>): Buffer {
  const f = Buffer.alloc(FPSIMD_SIZE);
  e.vregs.slice(0, 64).forEach((v, i) => {
    f.writeBigUInt64LE(v, i * 8);
  });
  f.writeUInt32LE(e.fpsr, 512);
  f.writeUInt32LE(e.fpcr, 516);
  return f;
}

/** NT_ARM_PACA_KEYS: the four 128-bit address keys, low half first. */
const ADDRESS_KEY_WORDS = [
  'apiakey_lo',
  'apiakey_hi',
  'apibkey_lo',
  'apibkey_hi',
  'apdakey_lo',
  'apdakey_hi',
  'apdbkey_lo',
  'apdbkey_hi',
] as const;

function dumpPacKeys(t: Tracee): MessageInput<'pac_keys'> | undefined {
  if (!hostHas.pac()) return undefined;
  const out: MessageInput<'pac_keys'> = {};
  const a = t.optionalRegset(NT.ARM_PACA_KEYS, 64);
  if (a?.length === 64) {
    const en = t.optionalRegset(NT.ARM_PAC_ENABLED_KEYS, 8);
    const w = (i: number) => a.readBigUInt64LE(i * 8);
    out.pac_address_keys = {
      apiakey_lo: w(0),
      apiakey_hi: w(1),
      apibkey_lo: w(2),
      apibkey_hi: w(3),
      apdakey_lo: w(4),
      apdakey_hi: w(5),
      apdbkey_lo: w(6),
      apdbkey_hi: w(7),
      pac_enabled_key: en?.length === 8 ? en.readBigUInt64LE(0) : 0xfn,
    };
  }
  const g = t.optionalRegset(NT.ARM_PACG_KEYS, 16);
  if (g?.length === 16) out.pac_generic_keys = { apgakey_lo: g.readBigUInt64LE(0), apgakey_hi: g.readBigUInt64LE(8) };
  return Object.keys(out).length ? out : undefined;
}

/**
 * The keys must be the dumped ones: Debian's arm64 code signs its return addresses, and a
 * thread resumed with fresh keys faults on its first return.
 */
function restorePacKeys(t: Tracee, keys: Message<'pac_keys'> | undefined): void {
  const a = keys?.pac_address_keys;
  if (a) {
    const b = Buffer.alloc(64);
    ADDRESS_KEY_WORDS.forEach((k, i) => {
      b.writeBigUInt64LE(a[k], i * 8);
    });
    t.setRegset(NT.ARM_PACA_KEYS, b);
    const en = Buffer.alloc(8);
    en.writeBigUInt64LE(a.pac_enabled_key);
    t.setRegset(NT.ARM_PAC_ENABLED_KEYS, en);
  }
  const g = keys?.pac_generic_keys;
  if (g) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(g.apgakey_lo, 0);
    b.writeBigUInt64LE(g.apgakey_hi, 8);
    t.setRegset(NT.ARM_PACG_KEYS, b);
  }
}

/** NT_ARM_GCS as CRIU's user_aarch64_gcs_entry, plus the locked bits (a criu-ts extension field). */
function dumpGcs(t: Tracee): MessageInput<'user_aarch64_gcs_entry'> | undefined {
  if (!hostHas.gcs()) return undefined;
  const b = t.optionalRegset(NT.ARM_GCS, GCS_SIZE);
  if (!b || b.length < GCS_SIZE) return undefined;
  const enabled = b.readBigUInt64LE(0),
    locked = b.readBigUInt64LE(8),
    gcspr = b.readBigUInt64LE(16);
  if (!enabled && !locked && !gcspr) return undefined;
  return { gcspr_el0: gcspr, features_enabled: enabled, features_locked: locked };
}

/**
 * Set straight from outside: the kernel lets a tracer enable GCS and point GCSPR_EL0 anywhere,
 * ignoring locks, and allocates nothing. The GCS VMA and its contents are back already
 * (shstk.ts), and nothing runs in the thread before it resumes with these registers.
 */
function restoreGcs(t: Tracee, gcs: Message<'user_aarch64_gcs_entry'> | undefined): void {
  if (!hostHas.gcs()) return;
  const b = Buffer.alloc(GCS_SIZE);
  if (gcs) {
    b.writeBigUInt64LE(gcs.features_enabled, 0);
    b.writeBigUInt64LE(gcs.features_locked ?? 0n, 8);
    b.writeBigUInt64LE(gcs.gcspr_el0, 16);
  }
  // Without an entry the thread gets GCS off, whatever the stub had.
  t.setRegset(NT.ARM_GCS, b);
}

function info(core: Core): Info {
  if (!core.ti_aarch64) throw new Error('core entry without ti_aarch64');
  return core.ti_aarch64;
}

export const aarch64Cpu: CpuBackend = {
  march: 3,
  infoField: 'ti_aarch64',
  facts: () => ({}),
  snapshot: (t) => ({ regs: t.getRegs(), fpregs: t.getFpRegs(), vector: liveSve(t) }),
  thaw(t, s) {
    if (s.vector) aarch64Cpu.thawVector!(t, s);
    else t.setFpRegs(s.fpregs);
    t.setRegs(s.regs);
  },
  // An injected syscall discards the SVE state beyond FP/SIMD: the vector state goes back too.
  thawVector: (t, s) => {
    if (s.vector) t.setRegset(NT.ARM_SVE, s.vector);
  },
  healExtras(t) {
    const extras: Partial<HealState> = {};
    const g = dumpGcs(t);
    if (g && BigInt(g.features_enabled) & PR_SHADOW_STACK_ENABLE)
      extras.gcs = { gcspr: BigInt(g.gcspr_el0), enabled: BigInt(g.features_enabled) };
    // Where the CPU has permission overlays, sigreturn takes POR_EL0 from the frame.
    const p = hostHas.poe() ? t.optionalRegset(NT.ARM_POE, 8) : undefined;
    if (p && p.length === 8) extras.poe = p.readBigUInt64LE(0);
    return extras;
  },
  dumpInfo(t, s, _area, _facts, clearTid) {
    const info: MessageInput<'thread_info_aarch64'> = {
      clear_tid_addr: clearTid,
      tls: t.getRegset(NT.ARM_TLS, 16).readBigUInt64LE(0),
      gpregs: regsToEntry(s.regs),
      fpsimd: fpsimdToEntry(s.fpregs),
    };
    const pac = dumpPacKeys(t);
    if (pac) info.pac_keys = pac;
    const gcs = dumpGcs(t);
    if (gcs) info.gcs = gcs;
    if (s.vector) info.sve = s.vector;
    return { ti_aarch64: info };
  },
  check(core, file) {
    if (!core.ti_aarch64) throw new CriuError(`${file}: no ti_aarch64`);
    const gcs = core.ti_aarch64.gcs;
    if (gcs && gcs.features_enabled & PR_SHADOW_STACK_ENABLE && !hostHas.gcs()) {
      throw new CriuError(`${file}: the thread runs with the Guarded Control Stack (GCS), which this machine does not have`);
    }
  },
  tls: (core) => info(core).tls,
  clearTid: (core) => info(core).clear_tid_addr,
  regs: (core) => entryToRegs(info(core).gpregs),
  apply(t, core) {
    const ti = info(core);
    const tls = Buffer.alloc(8);
    tls.writeBigUInt64LE(ti.tls);
    t.setRegset(NT.ARM_TLS, tls);
    // Without pointer authentication the PAC instructions Debian's code uses are NOPs (they
    // sit in the HINT space), so the keys are not needed and there is nowhere to put them.
    if (hostHas.pac()) restorePacKeys(t, ti.pac_keys);
    if (ti.sve && hostHas.sve()) t.setRegset(NT.ARM_SVE, ti.sve);
    else t.setFpRegs(entryToFpsimd(ti.fpsimd));
    t.setRegs(entryToRegs(ti.gpregs));
    restoreGcs(t, ti.gcs);
  },
};
