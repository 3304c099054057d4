import { arch } from '../../kernel/index.ts';
import type { CpuBackend } from './types.ts';
import { x86_64Cpu } from './x86_64.ts';
import { aarch64Cpu } from './aarch64.ts';

export type { CpuBackend, CpuSnapshot, CpuFacts, CoreThreadInfo } from './types.ts';

export const cpu: CpuBackend = arch.name === 'aarch64' ? aarch64Cpu : x86_64Cpu;
