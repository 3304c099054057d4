// x86_64: user_regs_struct, the XSAVE area and the three GDT TLS descriptors (thread_info_x86).
import { arch, X86, X86_REG_NAMES } from '../../kernel/index.ts';
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

function readTlsDescs(t: Tracee, area: InjectionArea): Msg[] {
  const out: Msg[] = [];
  for (const n of GDT_TLS) {
    area.reset();
    const b = Buffer.alloc(USER_DESC);
    b.writeUInt32LE(n, 0);
    const a = area.put(b);
    const r = t.syscallRaw('get_thread_area', a);
    const d = r === 0n ? area.read(a, USER_DESC) : b;
    const bits = d.readUInt32LE(12);
    out.push({
      entry_number: n, base_addr: d.readUInt32LE(4), limit: d.readUInt32LE(8),
      seg_32bit: !!(bits & 1), contents_h: !!(bits & 4), contents_l: !!(bits & 2),
      read_exec_only: r === 0n ? !!(bits & 8) : true, limit_in_pages: !!(bits & 16),
      seg_not_present: r === 0n ? !!(bits & 32) : true, usable: !!(bits & 64),
    });
  }
  return out;
}

const offsets = (f: CpuFacts): XsaveOffsets => f.xsave as XsaveOffsets;

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
    return { clear_tid_addr: clearTid, gpregs: regsToEntry(r), fpregs: xsaveToEntry(s.fpregs, offsets(facts)), tls: readTlsDescs(t, area) };
  },
  check() { /* every x86_64 dump runs here */ },
  tls: (info) => (info.gpregs as Msg).fs_base as bigint,
  clearTid: (info) => info.clear_tid_addr as bigint,
  apply(t, info, facts) {
    // Laid over the thread's own XSAVE buffer, so that its size and unknown components are this machine's.
    t.setFpRegs(entryToXsave(info.fpregs as Msg, t.getFpRegs(), offsets(facts)));
    const r = entryToRegs(info.gpregs as Msg);
    arch.fixupRestart(r);
    t.setRegs(r);
  },
};
