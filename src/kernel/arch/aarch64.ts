import type { Arch, SyscallName } from './types.ts';

// struct user_pt_regs (arch/arm64/include/uapi/asm/ptrace.h): x0..x30, sp, pc, pstate.
export const A64 = { x0: 0, x8: 64, sp: 248, pc: 256, pstate: 264 } as const;
const xreg = (n: number): number => n * 8;
/** struct user_fpsimd_state: 32 × 128-bit vregs, fpsr, fpcr, 8 reserved bytes (NT_PRFPREG). */
export const FPSIMD_SIZE = 528;

// The generic syscall table (include/uapi/asm-generic/unistd.h), which arm64 uses as is.
// test/unit/arch-sysnr.test.ts checks every number against the C library's <sys/syscall.h>.
const sys: Partial<Record<SyscallName, number>> = {
  eventfd2: 19, epoll_create1: 20, epoll_ctl: 21, dup: 23, dup3: 24, fcntl: 25, ioctl: 29, flock: 32,
  inotify_init1: 26, inotify_add_watch: 27, inotify_rm_watch: 28, open_by_handle_at: 265, fanotify_init: 262, fanotify_mark: 263,
  mknodat: 33, linkat: 37, unlinkat: 35, openat: 56, close: 57, pipe2: 59, lseek: 62, read: 63, write: 64, pread64: 67, pwrite64: 68, preadv: 69,
  pwritev: 70, signalfd4: 74, vmsplice: 75, splice: 76, tee: 77, ftruncate: 46, fallocate: 47, chdir: 49,
  fchdir: 50, chroot: 51, fchmod: 52, fchown: 55, timerfd_create: 85, timerfd_settime: 86, timerfd_gettime: 87,
  capget: 90, capset: 91, personality: 92, exit: 93, exit_group: 94, waitid: 95, set_tid_address: 96,
  unshare: 97, set_robust_list: 99, get_robust_list: 100, nanosleep: 101, getitimer: 102, setitimer: 103,
  timer_create: 107, timer_gettime: 108, timer_getoverrun: 109, timer_settime: 110, timer_delete: 111,
  clock_gettime: 113, clock_nanosleep: 115, ptrace: 117, sched_setscheduler: 119, sched_getscheduler: 120,
  sched_getparam: 121, sched_setaffinity: 122, sched_getaffinity: 123, restart_syscall: 128, kill: 129,
  tgkill: 131, sigaltstack: 132, rt_sigaction: 134, rt_sigprocmask: 135, rt_sigtimedwait: 137,
  rt_sigqueueinfo: 138, setpriority: 140, getpriority: 141, setresuid: 147, setresgid: 149, setfsuid: 151,
  setfsgid: 152, setpgid: 154, getpgid: 155, getsid: 156, setsid: 157, setgroups: 159, umask: 166, prctl: 167,
  getcpu: 168, getpid: 172, getppid: 173, gettid: 178, socket: 198, socketpair: 199, bind: 200, listen: 201, connect: 203, getsockname: 204,
  sendto: 206, recvfrom: 207, setsockopt: 208, getsockopt: 209, shutdown: 210, sendmsg: 211, recvmsg: 212, accept4: 242, brk: 214,
  munmap: 215, mremap: 216, mmap: 222, mprotect: 226, madvise: 233, get_mempolicy: 236, rt_tgsigqueueinfo: 240, wait4: 260,
  prlimit64: 261, setns: 268, process_vm_readv: 270, process_vm_writev: 271, kcmp: 272, seccomp: 277,
  memfd_create: 279, userfaultfd: 282, membarrier: 283, rseq: 293, pidfd_send_signal: 424, pidfd_open: 434,
  clone3: 435, close_range: 436, openat2: 437, pidfd_getfd: 438, map_shadow_stack: 453,
  getxattr: 8, ppoll: 73, getpeername: 205,
};

const u64 = (r: Buffer, off: number): bigint => r.readBigUInt64LE(off);
const put = (r: Buffer, off: number, v: bigint): void => { r.writeBigUInt64LE(BigInt.asUintN(64, v), off); };

export const aarch64: Arch = {
  name: 'aarch64',
  criuMarch: 3,
  pageSize: 4096,
  sys,
  gpRegsSize: 34 * 8,
  fpRegset: 2, // NT_PRFPREG: struct user_fpsimd_state
  fpRegsMaxSize: FPSIMD_SIZE,
  syscallTrap: Buffer.from([0x01, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x20, 0xd4]), // svc #0; brk #0
  syscallInsnLen: 4,
  taskSize: 1n << 48n,
  auxvWords: 40,
  syscallNrRegset: 0x404, // NT_ARM_SYSTEM_CALL
  syscallStopReg: xreg(7),

  ip: (r) => u64(r, A64.pc),
  setIp: (r, ip) => put(r, A64.pc, ip),
  sp: (r) => u64(r, A64.sp),
  setSyscall(r, nr, args) {
    put(r, A64.x8, BigInt(nr));
    for (let i = 0; i < 6; i++) put(r, xreg(i), args[i] ?? 0n);
  },
  syscallResult: (r) => r.readBigInt64LE(A64.x0),
  // arm64's do_signal() rewinds an interrupted syscall before the thread can stop for
  // ptrace: pc is back on the svc, x0 holds orig_x0 again and x8 still holds the number.
  // What a tracer sees at an interrupt stop therefore restarts the call when resumed, and
  // for a restart-block call (nanosleep and friends) it re-runs the original syscall with
  // a full interval, as the x86_64 backend does. Nothing is left to fix up.
  fixupRestart() { /* see above */ },
};
