// userfaultfd in write-protect mode with asynchronous resolution (UFFD_FEATURE_WP_ASYNC,
// Linux 6.7): a write to a protected page clears its protection by itself, without a fault
// handler, and /proc/PID/pagemap shows which pages are still protected (PM_UFFD_WP, bit 57).
// The ioctls act on the mm the userfaultfd was made in, whoever makes them: criu-ts works on
// its copy of a userfaultfd made by an injected call in the target.
import { ioctl, close } from './syscalls.ts';
import { syscall } from './ffi.ts';
import { sysnr } from './arch/index.ts';

/** userfaultfd(2) flags. */
export const UFFD_USER_MODE_ONLY = 1;

const UFFD_API = 0xaan;
const UFFDIO_API = 0xc018aa3f,
  UFFDIO_REGISTER = 0xc020aa00,
  UFFDIO_WRITEPROTECT = 0xc018aa06;
const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n,
  UFFD_FEATURE_WP_ASYNC = 1n << 15n;
const UFFDIO_REGISTER_MODE_WP = 2n,
  UFFDIO_WRITEPROTECT_MODE_WP = 1n;

/** Enable the API with asynchronous write protection, unpopulated pages included. */
export function uffdApiWpAsync(fd: number): void {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(UFFD_API, 0);
  b.writeBigUInt64LE(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 8);
  ioctl(fd, UFFDIO_API, b);
}

/** A uffdio_range followed by a u64 mode (and room for the kernel's answer, `size` bytes in all). */
function rangeIoctl(fd: number, req: number, size: number, start: bigint, len: bigint, mode: bigint): void {
  const b = Buffer.alloc(size);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(mode, 16);
  ioctl(fd, req, b);
}

/** Register [start, start+len) for write protection. */
export const uffdRegisterWp = (fd: number, start: bigint, len: bigint): void =>
  rangeIoctl(fd, UFFDIO_REGISTER, 32, start, len, UFFDIO_REGISTER_MODE_WP);

/** Write-protect every page of a registered range: a write from now on shows in pagemap. */
export const uffdWriteProtect = (fd: number, start: bigint, len: bigint): void =>
  rangeIoctl(fd, UFFDIO_WRITEPROTECT, 24, start, len, UFFDIO_WRITEPROTECT_MODE_WP);

/** Does this kernel track writes this way? A userfaultfd of criu-ts's own, with the API asked. */
export function memTrackWorks(): boolean {
  let fd: number;
  try {
    fd = syscall('userfaultfd', sysnr('userfaultfd'), 0o2000000 /* O_CLOEXEC */ | UFFD_USER_MODE_ONLY);
  } catch {
    return false;
  }
  try {
    uffdApiWpAsync(fd);
    return true;
  } catch {
    return false;
  } finally {
    close(fd);
  }
}
