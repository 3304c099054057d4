// x86_64: user_regs_struct, the XSAVE area and the three GDT TLS descriptors (thread_info_x86).
import { arch, X86, X86_REG_NAMES, PTRACE_X86, SysError, type X86Reg } from '../../kernel/index.ts';
import { xsaveToEntry, entryToXsave, type XsaveOffsets } from '../../kernel/arch/x86_64-xsave.ts';
import { xsaveOffsets, type Tracee } from '../../compel/index.ts';
import { CriuError } from '../../errors.ts';
import type { Message, MessageInput } from '../types.ts';
import type { CpuBackend, CpuFacts } from './types.ts';

type Info = Message<'thread_info_x86'>;
type Core = Message<'core_entry'>;

function regsToEntry(r: Buffer): MessageInput<'user_x86_regs_entry'> {
  // Every name of X86_REG_NAMES is filled in: the record is whole.
  const regs = Object.fromEntries(X86_REG_NAMES.map((name) => [name, r.readBigUInt64LE(X86[name])])) as Record<X86Reg, bigint>;
  return { ...regs, mode: 1 /* NATIVE */ };
}

function entryToRegs(e: Message<'user_x86_regs_entry'>): Buffer {
  const r = Buffer.alloc(arch.gpRegsSize);
  for (const name of X86_REG_NAMES) r.writeBigUInt64LE(BigInt.asUintN(64, e[name]), X86[name]);
  return r;
}

const USER_DESC = 16;
const GDT_TLS = [12, 13, 14];

/**
 * The three GDT TLS slots, by PTRACE_GET_THREAD_AREA (a plain ptrace request: no injected
 * call). A kernel without 32-bit emulation refuses it and has no such slots in use either:
 * they are then saved empty, as the kernel reports an unused one.
 */
function readTlsDescs(t: Tracee): MessageInput<'user_desc_t'>[] {
  const out: MessageInput<'user_desc_t'>[] = [];
  const d = Buffer.alloc(USER_DESC);
  for (const n of GDT_TLS) {
    d.fill(0);
    let ok = true;
    try {
      t.request(PTRACE_X86.GET_THREAD_AREA, n, d);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      ok = false;
    }
    const bits = d.readUInt32LE(12);
    out.push({
      entry_number: n,
      base_addr: d.readUInt32LE(4),
      limit: d.readUInt32LE(8),
      seg_32bit: !!(bits & 1),
      contents_h: !!(bits & 4),
      contents_l: !!(bits & 2),
      read_exec_only: ok ? !!(bits & 8) : true,
      limit_in_pages: !!(bits & 16),
      seg_not_present: ok ? !!(bits & 32) : true,
      usable: !!(bits & 64),
    });
  }
  return out;
}

function offsets(f: CpuFacts): XsaveOffsets {
  if (!f.xsave) throw new Error('the XSAVE layout of this CPU is not known');
  return f.xsave;
}

function info(core: Core): Info {
  if (!core.thread_info) throw new Error('core entry without thread_info');
  return core.thread_info;
}

function finalRegs(core: Core): Buffer {
  const r = entryToRegs(info(core).gpregs);
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
  healExtras: (_t, facts) => ({ xsave: facts.xsave }),
  dumpInfo(t, s, _area, facts, clearTid) {
    const r = Buffer.from(s.regs);
    // Saved already adjusted for an interrupted syscall, as CRIU does: its restorer does
    // not adjust them again.
    arch.fixupRestart(r);
    return {
      thread_info: {
        clear_tid_addr: clearTid,
        gpregs: regsToEntry(r),
        fpregs: xsaveToEntry(s.fpregs, offsets(facts)),
        tls: readTlsDescs(t),
      },
    };
  },
  check(core, file) {
    // Every x86_64 dump runs here.
    if (!core.thread_info) throw new CriuError(`${file}: no thread_info`);
  },
  tls: (core) => info(core).gpregs.fs_base,
  clearTid: (core) => info(core).clear_tid_addr,
  regs: finalRegs,
  apply(t, core, facts) {
    // Laid over the thread's own XSAVE buffer, so that its size and unknown components are this machine's.
    t.setFpRegs(entryToXsave(info(core).fpregs, t.getFpRegs(), offsets(facts)));
    t.setRegs(finalRegs(core));
  },
};
