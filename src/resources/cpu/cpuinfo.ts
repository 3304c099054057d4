// cpuinfo.img (CRIU's `cpuinfo dump` / `cpuinfo check`, x86): the CPU's vendor, family, model,
// the capability words CRIU's compel fills from CPUID (capability_ver 2: 19 words, in the
// Linux kernel's word order), the user xfeatures and the XSAVE sizes. A check passes when this
// CPU has every FPU feature, xfeature and instruction-set bit the image's CPU had and the
// same XSAVE sizes (CRIU's default --cpu-cap fpu,ins).
import { cpuid, type CpuidRegs, type InjectionArea } from '../../compel/index.ts';
import type { Message, MessageInput } from '../types.ts';

const NCAPINTS = 19;
/** Words of the capability array (CRIU's CPUID_* indices). */
const W = {
  CPUID_1_EDX: 0,
  CPUID_8000_0001_EDX: 1,
  LNX_1: 3,
  CPUID_1_ECX: 4,
  CPUID_8000_0001_ECX: 6,
  CPUID_7_0_EBX: 9,
  CPUID_D_1_EAX: 10,
  CPUID_7_0_ECX: 11,
  CPUID_F_1_EDX: 12,
  CPUID_8000_0008_EBX: 13,
  CPUID_6_EAX: 14,
  CPUID_8000_000A_EDX: 15,
  CPUID_F_0_EDX: 16,
  CPUID_8000_0007_EBX: 17,
  CPUID_7_0_EDX: 18,
} as const;
const bit = (word: number, b: number): number => word * 32 + b;
const F = {
  FPU: bit(0, 0),
  FXSR: bit(0, 24),
  XMM: bit(0, 25),
  REP_GOOD: bit(3, 16),
  NOPL: bit(3, 20),
  CPUID: bit(3, 25),
  XSAVE: bit(4, 26),
  OSXSAVE: bit(4, 27),
  AVX: bit(4, 28),
  ERMS: bit(9, 9),
  MPX: bit(9, 14),
  AVX512F: bit(9, 16),
  INTEL_PT: bit(9, 25),
  XSAVES: bit(10, 3),
  PKU: bit(11, 3),
  HDC: bit(14, 13),
  CQM_LLC: bit(16, 1),
} as const;
/** The capability each XSAVE component needs (CRIU clears a component whose feature is off). */
const XSAVE_FEATURE = [F.FPU, F.XMM, F.AVX, F.MPX, F.MPX, F.AVX512F, F.AVX512F, F.AVX512F, F.INTEL_PT, F.PKU, F.HDC];
/** FP, SSE, YMM, BNDREGS, BNDCSR, OPMASK, ZMM_Hi256, Hi16_ZMM, PKRU. */
const XFEATURE_MASK_USER = 0x2ffn;
/**
 * CRIU 4.2 also clears what it means as the supervisor components with
 * ~(XFEATURE_MASK_PT | XFEATURE_HDC), an index where a mask was meant: bits 1 and 3 (SSE,
 * BNDCSR) go too. Kept, so that both write and compare the same mask.
 */
const CRIU_SUPERVISOR_CLEAR = 0x100n | 10n;
/** The instruction-set bits of each word that a check compares (CRIU's x86_ins_capability_mask). */
const INS_MASK = [0x7888911, 0xc8400800, 0, 0x110000, 0x7ed8220b, 0, 0x2109e0, 0, 0, 0xfc8f4b39, 0x7, 0x407f42, 0, 0x1, 0, 0, 0, 0, 0xc];
/** compel's vendor numbers; the image's enum (cpuinfo.proto) counts from UNKNOWN = 0. */
const VENDOR_INTEL = 0,
  VENDOR_AMD = 1;
const IMG_VENDOR_INTEL = 1,
  IMG_VENDOR_AMD = 2;

export interface X86CpuInfo {
  vendor: number;
  family: number;
  model: number;
  stepping: number;
  caps: number[];
  modelId: string;
  xfeaturesMask: bigint;
  xsaveSize: number;
  xsaveSizeMax: number;
}

const has = (caps: number[], f: number): boolean => ((caps[f >> 5] >>> (f & 31)) & 1) === 1;
const set = (caps: number[], f: number, on: boolean): void => {
  caps[f >> 5] = on ? (caps[f >> 5] | (1 << (f & 31))) >>> 0 : (caps[f >> 5] & ~(1 << (f & 31))) >>> 0;
};

/** This CPU, read with CPUID in a tracee (as compel's compel_cpuid does in CRIU). */
export function readCpuInfo(area: InjectionArea): X86CpuInfo {
  const q = (leaf: number, sub = 0): CpuidRegs => cpuid(area, leaf, sub);
  const caps = new Array<number>(NCAPINTS).fill(0);
  const l0 = q(0);
  const vendorId = [l0.ebx, l0.edx, l0.ecx].map((r) => Buffer.from(new Uint32Array([r]).buffer).toString('latin1')).join('');
  const vendor = vendorId === 'GenuineIntel' ? VENDOR_INTEL : vendorId === 'AuthenticAMD' || vendorId === 'HygonGenuine' ? VENDOR_AMD : -1;
  if (vendor < 0) throw new Error(`unsupported CPU vendor ${vendorId}`);
  const level = l0.eax;
  let family = 4,
    model = 0,
    stepping = 0;
  if (level >= 1) {
    const r = q(1);
    family = (r.eax >>> 8) & 0xf;
    model = (r.eax >>> 4) & 0xf;
    stepping = r.eax & 0xf;
    if (family === 0xf) family += (r.eax >>> 20) & 0xff;
    if (family >= 6) model += ((r.eax >>> 16) & 0xf) << 4;
    caps[W.CPUID_1_EDX] = r.edx;
    caps[W.CPUID_1_ECX] = r.ecx;
  }
  if (level >= 6) caps[W.CPUID_6_EAX] = q(6).eax;
  if (level >= 7) {
    const r = q(7, 0);
    caps[W.CPUID_7_0_EBX] = r.ebx;
    caps[W.CPUID_7_0_ECX] = r.ecx;
    caps[W.CPUID_7_0_EDX] = r.edx;
  }
  if (level >= 0xd) caps[W.CPUID_D_1_EAX] = q(0xd, 1).eax;
  if (level >= 0xf) {
    caps[W.CPUID_F_0_EDX] = q(0xf, 0).edx;
    if (has(caps, F.CQM_LLC)) caps[W.CPUID_F_1_EDX] = q(0xf, 1).edx;
  }
  const ext = q(0x80000000).eax >>> 0;
  if ((ext & 0xffff0000) >>> 0 === 0x80000000 && ext >= 0x80000001) {
    const r = q(0x80000001);
    caps[W.CPUID_8000_0001_ECX] = r.ecx;
    caps[W.CPUID_8000_0001_EDX] = r.edx;
  }
  let modelId = '';
  if (ext >= 0x80000004) {
    const b = Buffer.alloc(48);
    [0x80000002, 0x80000003, 0x80000004].forEach((leaf, i) => {
      const r = q(leaf);
      for (const [j, v] of [r.eax, r.ebx, r.ecx, r.edx].entries()) b.writeUInt32LE(v >>> 0, i * 16 + j * 4);
    });
    modelId = b.toString('latin1').replace(/\0.*$/s, '').replace(/^ +/, '');
  }
  if (ext >= 0x80000007) caps[W.CPUID_8000_0007_EBX] = q(0x80000007).ebx;
  if (ext >= 0x8000000a) caps[W.CPUID_8000_000A_EDX] = q(0x8000000a).edx;
  if (ext >= 0x80000008) caps[W.CPUID_8000_0008_EBX] = q(0x80000008).ebx;
  // What the kernel's early set-up decides and CPUID does not say (x86_64: CPUID and NOPL always).
  set(caps, F.CPUID, true);
  set(caps, F.NOPL, true);
  if (level < 0xd) set(caps, F.XSAVE, false);
  if (vendor === VENDOR_INTEL) {
    if (family === 15) {
      set(caps, F.REP_GOOD, false);
      set(caps, F.ERMS, false);
    } else if (family === 6) set(caps, F.REP_GOOD, true);
  } else {
    set(caps, 31, false);
    if (family >= 0x10) set(caps, F.REP_GOOD, true);
    if (family === 0xf) {
      const l1 = q(1).eax;
      if ((l1 >= 0x0f48 && l1 < 0x0f50) || l1 >= 0x0f58) set(caps, F.REP_GOOD, true);
    }
  }
  let xfeaturesMask = 0n,
    xsaveSize = 0,
    xsaveSizeMax = 0;
  if (has(caps, F.XSAVE)) {
    const r = q(0xd, 0);
    xfeaturesMask = BigInt(r.eax >>> 0) | (BigInt(r.edx >>> 0) << 32n);
    XSAVE_FEATURE.forEach((f, i) => {
      if (!has(caps, f)) xfeaturesMask &= ~(1n << BigInt(i));
    });
    xfeaturesMask &= XFEATURE_MASK_USER & ~CRIU_SUPERVISOR_CLEAR;
    xsaveSize = r.ebx >>> 0;
    xsaveSizeMax = r.ecx >>> 0;
  }
  return { vendor, family, model, stepping, caps: caps.map((c) => c >>> 0), modelId, xfeaturesMask, xsaveSize, xsaveSizeMax };
}

export function cpuinfoEntry(c: X86CpuInfo): MessageInput<'cpuinfo_entry'> {
  return {
    x86_entry: [
      {
        vendor_id: c.vendor === VENDOR_INTEL ? IMG_VENDOR_INTEL : IMG_VENDOR_AMD,
        cpu_family: c.family,
        model: c.model,
        stepping: c.stepping,
        capability_ver: 2,
        capability: c.caps,
        ...(c.modelId ? { model_id: c.modelId } : {}),
        xfeatures_mask: c.xfeaturesMask,
        xsave_size: c.xsaveSize,
        xsave_size_max: c.xsaveSizeMax,
      },
    ],
  } as MessageInput<'cpuinfo_entry'>;
}

/** Why this CPU cannot run what ran on the image's, in one line; undefined when it can. */
export function checkCpuInfo(img: Message<'cpuinfo_entry'>, here: X86CpuInfo): string | undefined {
  const x = img.x86_entry ?? [];
  if (x.length !== 1) return `cpuinfo.img holds ${x.length} x86 entries, not 1`;
  const e = x[0];
  if ((e.vendor_id as number) !== IMG_VENDOR_INTEL && (e.vendor_id as number) !== IMG_VENDOR_AMD)
    return `cpuinfo.img: unknown CPU vendor ${e.vendor_id}`;
  const want = e.capability_ver === 1 ? 12 : e.capability_ver === 2 ? NCAPINTS : -1;
  if (want < 0) return `cpuinfo.img: unknown capability version ${e.capability_ver}`;
  if (e.capability.length !== want) return `cpuinfo.img carries ${e.capability.length} capability words, ${want} expected`;
  // Words a version-1 image lacks are this CPU's (CRIU does the same).
  const caps = here.caps.map((c, i) => (i < e.capability.length ? e.capability[i] >>> 0 : c));
  const missingFpu = (['FPU', 'FXSR', 'OSXSAVE', 'XSAVES'] as const).filter((n) => has(caps, F[n]) && !has(here.caps, F[n]));
  if (missingFpu.length) return `this CPU lacks FPU features of the dump's: ${missingFpu.join(', ').toLowerCase()}`;
  const xf = BigInt(e.xfeatures_mask ?? 0n) & ~here.xfeaturesMask;
  if (xf) return `this CPU lacks XSAVE features of the dump's (mask 0x${xf.toString(16)})`;
  if ((e.xsave_size ?? 0) !== here.xsaveSize) return `XSAVE size differs: ${e.xsave_size ?? 0} in the image, ${here.xsaveSize} here`;
  if ((e.xsave_size_max ?? 0) !== here.xsaveSizeMax)
    return `XSAVE max size differs: ${e.xsave_size_max ?? 0} in the image, ${here.xsaveSizeMax} here`;
  for (let w = 0; w < NCAPINTS; w++) {
    const lack = (caps[w] & INS_MASK[w] & ~here.caps[w]) >>> 0;
    if (lack) {
      const bits = [...Array(32).keys()].filter((b) => (lack >>> b) & 1).map((b) => w * 32 + b);
      return `this CPU lacks instruction-set features of the dump's: capability bit(s) ${bits.join(', ')} (word ${w})`;
    }
  }
  return undefined;
}
