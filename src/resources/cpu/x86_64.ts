// x86_64: user_regs_struct, the XSAVE area and the three GDT TLS descriptors (thread_info_x86).
import { arch, X86, X86_REG_NAMES, PTRACE_X86, SysError } from '../../kernel/index.ts';
import { xsaveToEntry, entryToXsave, type XsaveOffsets } from '../../kernel/arch/x86_64-xsave.ts';
import { xsaveOffsets, type Tracee, type InjectionArea } from '../../compel/index.ts';
import type { Msg } from '../types.ts';
import type { CpuBackend, CpuFacts } from './types.ts';

function regsToEntry(r: Buffer): Msg {
  const e: Msg = {};
  for (const name of X86_REG_NAMES) e[name] = r.readBigUInt64LE(X86[name]);
  e.mode = 1; // NATIVE
  return e;
}

function entryToRegs(e: Msg): Buffer {
  const r = Buffer.alloc(arch.gpRegsSize);
  for (const name of X86_REG_NAMES) r.writeBigUInt64LE(BigInt.asUintN(64, e[name] as bigint), X86[name]);
  return r;
}

const USER_DESC = 16;
const GDT_TLS = [12, 13, 14];

/**
 * The three GDT TLS slots, by PTRACE_GET_THREAD_AREA (a plain ptrace request: no injected
 * call). A kernel without 32-bit emulation refuses it and has no such slots in use either:
 * they are then saved empty, as the kernel reports an unused one.
 */
function readTlsDescs(t: Tracee): Msg[] {
  const out: Msg[] = [];
  const d = Buffer.alloc(USER_DESC);
  for (const n of GDT_TLS) {
    d.fill(0);
    let ok = true;
    try { t.request(PTRACE_X86.GET_THREAD_AREA, n, d); } catch (e) {
      if (!(e instanceof SysError)) throw e;
      ok = false;
    }
    const bits = d.readUInt32LE(12);
    out.push({
      entry_number: n, base_addr: d.readUInt32LE(4), limit: d.readUInt32LE(8),
      seg_32bit: !!(bits & 1), contents_h: !!(bits & 4), contents_l: !!(bits & 2),
      read_exec_only: ok ? !!(bits & 8) : true, limit_in_pages: !!(bits & 16),
      seg_not_present: ok ? !!(bits & 32) : true, usable: !!(bits & 64),
    });
  }
  return out;
}

const offsets = (f: CpuFacts): XsaveOffsets => f.xsave as XsaveOffsets;

function finalRegs(info: Msg): Buffer {
  const r = entryToRegs(info.gpregs as Msg);
  arch.fixupRestart(r);
  return r;
}

export const x86_64Cpu: CpuBackend = {
  march: 1,
  infoField: 'thread_info',
  facts: (area) => ({ xsave: xsaveOffsets(area) }),
  snapshot: (t) => ({ regs: t.getRegs(), fpregs: t.getFpRegs() }),
  // Injected syscalls leave the FPU state alone on x86_64.
  thaw: (t, s) => t.setRegs(s.regs),
  dumpInfo(t, s, area, facts, clearTid) {
    const r = Buffer.from(s.regs);
    // Saved already adjusted for an interrupted syscall, as CRIU does: its restorer does
    // not adjust them again.
    arch.fixupRestart(r);
    return { clear_tid_addr: clearTid, gpregs: regsToEntry(r), fpregs: xsaveToEntry(s.fpregs, offsets(facts)), tls: readTlsDescs(t) };
  },
  check() { /* every x86_64 dump runs here */ },
  tls: (info) => (info.gpregs as Msg).fs_base as bigint,
  clearTid: (info) => info.clear_tid_addr as bigint,
  regs: finalRegs,
  apply(t, info, facts) {
    // Laid over the thread's own XSAVE buffer, so that its size and unknown components are this machine's.
    t.setFpRegs(entryToXsave(info.fpregs as Msg, t.getFpRegs(), offsets(facts)));
    t.setRegs(finalRegs(info));
  },
};
