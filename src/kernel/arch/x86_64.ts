import type { Arch, SyscallName } from './types.ts';

// user_regs_struct field offsets (arch/x86/include/asm/user_64.h).
export const X86 = {
  r15: 0,
  r14: 8,
  r13: 16,
  r12: 24,
  bp: 32,
  bx: 40,
  r11: 48,
  r10: 56,
  r9: 64,
  r8: 72,
  ax: 80,
  cx: 88,
  dx: 96,
  si: 104,
  di: 112,
  orig_ax: 120,
  ip: 128,
  cs: 136,
  flags: 144,
  sp: 152,
  ss: 160,
  fs_base: 168,
  gs_base: 176,
  ds: 184,
  es: 192,
  fs: 200,
  gs: 208,
} as const;
export type X86Reg = keyof typeof X86;
export const X86_REG_NAMES = Object.keys(X86) as X86Reg[];

const sys: Partial<Record<SyscallName, number>> = {
  read: 0,
  write: 1,
  close: 3,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  rt_sigtimedwait: 128,
  ioctl: 16,
  pread64: 17,
  pwrite64: 18,
  mremap: 25,
  madvise: 28,
  mlock: 149,
  io_setup: 206,
  io_submit: 209,
  dup: 32,
  nanosleep: 35,
  getitimer: 36,
  setitimer: 38,
  getpid: 39,
  socket: 41,
  connect: 42,
  sendto: 44,
  recvfrom: 45,
  sendmsg: 46,
  recvmsg: 47,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  socketpair: 53,
  setsockopt: 54,
  getsockopt: 55,
  accept4: 288,
  exit: 60,
  wait4: 61,
  kill: 62,
  fcntl: 72,
  flock: 73,
  ftruncate: 77,
  chdir: 80,
  fchdir: 81,
  fchmod: 91,
  fchown: 93,
  umask: 95,
  ptrace: 101,
  setpgid: 109,
  getppid: 110,
  setsid: 112,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  getpgid: 121,
  setfsuid: 122,
  setfsgid: 123,
  getsid: 124,
  capget: 125,
  capset: 126,
  rt_sigqueueinfo: 129,
  sigaltstack: 131,
  personality: 135,
  getpriority: 140,
  ioprio_get: 252,
  setpriority: 141,
  sched_getparam: 143,
  sched_setscheduler: 144,
  sched_getscheduler: 145,
  prctl: 157,
  arch_prctl: 158,
  chroot: 161,
  gettid: 186,
  sched_setaffinity: 203,
  sched_getaffinity: 204,
  set_thread_area: 205,
  get_thread_area: 211,
  set_tid_address: 218,
  restart_syscall: 219,
  timer_create: 222,
  timer_settime: 223,
  timer_gettime: 224,
  timer_getoverrun: 225,
  timer_delete: 226,
  clock_gettime: 228,
  clock_nanosleep: 230,
  exit_group: 231,
  epoll_ctl: 233,
  tgkill: 234,
  get_mempolicy: 239,
  waitid: 247,
  openat: 257,
  mknodat: 259,
  linkat: 265,
  readlinkat: 267,
  inotify_init1: 294,
  inotify_add_watch: 254,
  inotify_rm_watch: 255,
  open_by_handle_at: 304,
  fanotify_init: 300,
  fanotify_mark: 301,
  unlinkat: 263,
  unshare: 272,
  mount: 165,
  umount2: 166,
  pivot_root: 155,
  mkdirat: 258,
  open_tree: 428,
  move_mount: 429,
  set_robust_list: 273,
  get_robust_list: 274,
  splice: 275,
  tee: 276,
  vmsplice: 278,
  timerfd_create: 283,
  fallocate: 285,
  timerfd_settime: 286,
  timerfd_gettime: 287,
  signalfd4: 289,
  eventfd2: 290,
  epoll_create1: 291,
  dup3: 292,
  pipe2: 293,
  preadv: 295,
  pwritev: 296,
  rt_tgsigqueueinfo: 297,
  prlimit64: 302,
  setns: 308,
  shmget: 29,
  shmat: 30,
  shmctl: 31,
  shmdt: 67,
  semget: 64,
  semctl: 66,
  msgget: 68,
  msgsnd: 69,
  msgrcv: 70,
  msgctl: 71,
  getcpu: 309,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kcmp: 312,
  seccomp: 317,
  memfd_create: 319,
  userfaultfd: 323,
  membarrier: 324,
  rseq: 334,
  pidfd_send_signal: 424,
  pidfd_open: 434,
  clone3: 435,
  close_range: 436,
  openat2: 437,
  pidfd_getfd: 438,
  map_shadow_stack: 453,
  getpeername: 52,
  getxattr: 191,
  ppoll: 271,
};

const ERESTARTSYS = -512n,
  ERESTARTNOINTR = -513n,
  ERESTARTNOHAND = -514n,
  ERESTART_RESTARTBLOCK = -516n;

const u64 = (r: Buffer, off: number): bigint => r.readBigUInt64LE(off);
const s64 = (r: Buffer, off: number): bigint => r.readBigInt64LE(off);
const put = (r: Buffer, off: number, v: bigint): void => {
  r.writeBigUInt64LE(BigInt.asUintN(64, v), off);
};

const argRegs = [X86.di, X86.si, X86.dx, X86.r10, X86.r8, X86.r9];

export const x86_64: Arch = {
  name: 'x86_64',
  criuMarch: 1,
  pageSize: 4096,
  sys,
  gpRegsSize: 27 * 8,
  fpRegset: 0x202, // NT_X86_XSTATE
  fpRegsMaxSize: 64 * 1024,
  syscallTrap: Buffer.from([0x0f, 0x05, 0xcc]), // syscall; int3
  syscallInsnLen: 2,
  taskSize: 0x7ffffffff000n,
  auxvWords: 44,

  ip: (r) => u64(r, X86.ip),
  setIp: (r, ip) => put(r, X86.ip, ip),
  sp: (r) => u64(r, X86.sp),
  setSyscall(r, nr, args) {
    put(r, X86.ax, BigInt(nr));
    // orig_ax = -1 keeps the kernel's restart logic away from an injected call made
    // while the tracee sits in an interrupted syscall.
    put(r, X86.orig_ax, -1n);
    for (let i = 0; i < 6; i++) put(r, argRegs[i], args[i] ?? 0n);
  },
  syscallResult: (r) => s64(r, X86.ax),
  fixupRestart(r) {
    const orig = s64(r, X86.orig_ax);
    if (orig < 0n) return;
    const ret = s64(r, X86.ax);
    const restart = () => {
      put(r, X86.ax, orig);
      put(r, X86.ip, u64(r, X86.ip) - 2n);
    };
    if (ret === ERESTARTNOINTR || ret === ERESTARTSYS || ret === ERESTARTNOHAND) {
      // Without a pending signal the kernel would restart all three kinds.
      restart();
    } else if (ret === ERESTART_RESTARTBLOCK) {
      // The kernel-side restart block is lost; run the original syscall again (it
      // re-reads its arguments from the same registers), which for sleeps means a
      // full new interval, as CRIU does.
      restart();
    }
    put(r, X86.orig_ax, -1n);
  },
};
