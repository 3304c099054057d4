// Shadow-stack VMAs (arm64's Guarded Control Stack; x86's CET shadow stack works the same
// way). The kernel creates them only through map_shadow_stack, and ordinary stores to them
// fault, so no restore path can fill them directly. They are restored first as ordinary
// anonymous memory, by the same paths as any private VMA (plain, compressed or encrypted
// pages alike), then turned into shadow stacks here: the present pages are read back, the
// range is unmapped, map_shadow_stack creates the shadow stack at the very same address, and
// the pages go back through /proc/PID/mem, a ptrace-forced write that the kernel allows into
// shadow-stack memory. The registers that point into it (GCSPR_EL0) come with the thread's
// final CPU state, once nothing of the stub runs any more.
import { CriuError } from '../../errors.ts';
import { RemoteSysError } from '../../compel/index.ts';
import { VMA, PE } from './layout.ts';
import type { Message, PageSource, RestoreTask } from '../types.ts';

type VmaEntry = Message<'vma_entry'>;

const PAGE = 4096n;

export const isShadowStack = (v: VmaEntry): boolean => (v.status & VMA.AREA_SHSTK) !== 0;

export function convertShadowStacks(t: RestoreTask, vmas: VmaEntry[], runs: PageSource[]): void {
  const tr = t.leader;
  for (const v of vmas) {
    const start = v.start,
      end = v.end;
    const pieces: { addr: bigint; data: Buffer }[] = [];
    for (const r of runs) {
      if (!(r.flags & (PE.PRESENT | PE.COW_PARENT))) continue;
      const lo = r.vaddr > start ? r.vaddr : start;
      const rEnd = r.vaddr + BigInt(r.nrPages) * PAGE;
      const hi = rEnd < end ? rEnd : end;
      if (lo < hi) pieces.push({ addr: lo, data: tr.readMem(lo, Number(hi - lo)) });
    }
    tr.syscall('munmap', start, end - start);
    let got: bigint;
    try {
      got = tr.syscall('map_shadow_stack', start, end - start, 0);
    } catch (e) {
      if (e instanceof RemoteSysError) {
        throw new CriuError(
          `cannot recreate the shadow stack at 0x${start.toString(16)} (${e.code}); does this machine support shadow stacks?`,
        );
      }
      throw e;
    }
    if (got !== start) throw new CriuError(`map_shadow_stack gave 0x${got.toString(16)}, not 0x${start.toString(16)}`);
    for (const p of pieces) tr.writeMemForce(p.addr, p.data);
  }
}
