import type { Arch } from './types.ts';
import { x86_64 } from './x86_64.ts';
import { aarch64 } from './aarch64.ts';

export type { Arch, SyscallName } from './types.ts';

const byName: Record<string, Arch> = { x64: x86_64, arm64: aarch64 };

/** The backend for the machine criu-ts runs on. */
export const arch: Arch = (() => {
  const a = byName[process.arch];
  if (!a) throw new Error(`criu-ts does not support the ${process.arch} architecture yet`);
  return a;
})();

export function sysnr(name: import('./types.ts').SyscallName): number {
  const n = arch.sys[name];
  if (n === undefined) throw new Error(`syscall ${name} is not available on ${arch.name}`);
  return n;
}
