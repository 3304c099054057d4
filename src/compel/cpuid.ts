// CPUID run inside a tracee: the XSAVE component offsets of this CPU (leaf 0xD), needed to
// read and write the standard-format XSAVE buffers that ptrace exchanges. They are kept for
// the boot in the run directory: eight injected calls fewer in every later dump.
import fs from 'node:fs';
import path from 'node:path';
import { arch, X86 } from '../kernel/index.ts';
import { RUN_DIR } from '../rundir.ts';
import type { XsaveOffsets } from '../kernel/arch/x86_64-xsave.ts';
import type { InjectionArea } from './area.ts';

const CPUID_TRAP = Buffer.from([0x0f, 0xa2, 0xcc]); // cpuid; int3
let cached: XsaveOffsets | undefined;

/** The offsets found on this boot, or undefined. */
function load(file: string): XsaveOffsets | undefined {
  try {
    return new Map(JSON.parse(fs.readFileSync(file, 'utf8')) as [number, { offset: number; size: number }][]);
  } catch {
    return undefined;
  }
}

function save(file: string, offs: XsaveOffsets): void {
  try {
    fs.mkdirSync(RUN_DIR, { recursive: true });
    fs.writeFileSync(`${file}.${process.pid}`, JSON.stringify([...offs]));
    fs.renameSync(`${file}.${process.pid}`, file);
  } catch {
    /* found again next time */
  }
}

export interface CpuidRegs {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** CPUID(leaf, subleaf) run by the area's tracee (x86_64 only); its registers are put back. */
export function cpuid(area: InjectionArea, leaf: number, subleaf = 0): CpuidRegs {
  const t = area.tracee;
  const at = area.base + 16n;
  t.writeMem(at, CPUID_TRAP);
  const saved = t.getRegs();
  try {
    const r = Buffer.from(saved);
    r.writeBigUInt64LE(at, X86.ip);
    r.writeBigUInt64LE(BigInt(leaf >>> 0), X86.ax);
    r.writeBigUInt64LE(BigInt(subleaf >>> 0), X86.cx);
    r.writeBigInt64LE(-1n, X86.orig_ax);
    const out = t.runUntilTrap(r);
    const lo = (off: number): number => Number(out.readBigUInt64LE(off) & 0xffffffffn);
    return { eax: lo(X86.ax), ebx: lo(X86.bx), ecx: lo(X86.cx), edx: lo(X86.dx) };
  } finally {
    t.setRegs(saved);
  }
}

export function xsaveOffsets(area: InjectionArea): XsaveOffsets {
  if (cached) return cached;
  if (arch.name !== 'x86_64') return (cached = new Map());
  const file = path.join(RUN_DIR, `xsave-${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}.json`);
  cached = load(file);
  if (cached) return cached;
  const t = area.tracee;
  const at = area.base + 16n;
  t.writeMem(at, CPUID_TRAP);
  const saved = t.getRegs();
  const offs: XsaveOffsets = new Map();
  try {
    for (let bit = 2; bit <= 9; bit++) {
      const r = Buffer.from(saved);
      r.writeBigUInt64LE(at, X86.ip);
      r.writeBigUInt64LE(0xdn, X86.ax);
      r.writeBigUInt64LE(BigInt(bit), X86.cx);
      r.writeBigInt64LE(-1n, X86.orig_ax);
      const out = t.runUntilTrap(r);
      const size = Number(out.readBigUInt64LE(X86.ax) & 0xffffffffn);
      const offset = Number(out.readBigUInt64LE(X86.bx) & 0xffffffffn);
      if (size > 0 && offset > 0) offs.set(bit, { offset, size });
    }
  } finally {
    t.setRegs(saved);
  }
  save(file, offs);
  return (cached = offs);
}
