import { arch } from '../../kernel/index.ts';
import type { Msg } from '../types.ts';
import type { CpuBackend } from './types.ts';
import { x86_64Cpu } from './x86_64.ts';
import { aarch64Cpu } from './aarch64.ts';

export type { CpuBackend, CpuSnapshot, CpuFacts } from './types.ts';

export const cpu: CpuBackend = arch.name === 'aarch64' ? aarch64Cpu : x86_64Cpu;

/** The thread_info of a core entry, whichever architecture wrote it. */
export function threadInfo(core: Msg): Msg | undefined {
  return core[cpu.infoField] as Msg | undefined;
}
