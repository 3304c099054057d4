// The PFN of the kernel's shared zero page, so that dumps can skip pages that were only
// ever read. Root can see PFNs in /proc/self/pagemap.
import fs from 'node:fs';
import { syscall } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { processVmReadv, getpid } from './syscalls.ts';
import { MAP, PROT } from './constants.ts';

let cached: number | undefined;

export function zeroPagePfn(): number {
  if (cached !== undefined) return cached;
  const addr = BigInt(syscall('mmap', sysnr('mmap'), 0, 4096, PROT.READ, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0));
  try {
    // A read fault on private anonymous memory maps the zero page.
    processVmReadv(getpid(), Buffer.alloc(1), [{ addr, len: 1 }]);
    const fd = fs.openSync('/proc/self/pagemap', 'r');
    try {
      const b = Buffer.alloc(8);
      fs.readSync(fd, b, 0, 8, Number(addr / 4096n) * 8);
      const e = b.readBigUInt64LE(0);
      cached = (e >> 63n) & 1n ? Number(e & ((1n << 55n) - 1n)) : -1;
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    syscall('munmap', sysnr('munmap'), addr, 4096);
  }
  return cached;
}
