// Constants from the kernel's UAPI headers (include/uapi/linux/ptrace.h, wait.h, mman.h, ...).

export const PTRACE = {
  TRACEME: 0,
  PEEKDATA: 2,
  POKEDATA: 5,
  CONT: 7,
  KILL: 8,
  SINGLESTEP: 9,
  GETREGS: 12,
  SETREGS: 13,
  ATTACH: 16,
  DETACH: 17,
  SYSCALL: 24,
  SETOPTIONS: 0x4200,
  GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202,
  SETSIGINFO: 0x4203,
  GETREGSET: 0x4204,
  SETREGSET: 0x4205,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
  LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209,
  GETSIGMASK: 0x420a,
  SETSIGMASK: 0x420b,
  SECCOMP_GET_FILTER: 0x420c,
  SECCOMP_GET_METADATA: 0x420d,
  GET_SYSCALL_INFO: 0x420e,
  GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

/** x86 only (arch/x86/include/uapi/asm/ptrace-abi.h): a GDT TLS slot, read without injecting. */
export const PTRACE_X86 = { GET_THREAD_AREA: 25, SET_THREAD_AREA: 26 } as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1,
  TRACEFORK: 2,
  TRACEVFORK: 4,
  TRACECLONE: 8,
  TRACEEXEC: 0x10,
  TRACEVFORKDONE: 0x20,
  TRACEEXIT: 0x40,
  TRACESECCOMP: 0x80,
  EXITKILL: 0x100000,
  SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, SECCOMP: 7, STOP: 128 } as const;
export const PTRACE_PEEKSIGINFO_SHARED = 1;

export const NT = {
  PRSTATUS: 1,
  PRFPREG: 2,
  X86_XSTATE: 0x202,
  X86_SHSTK: 0x204,
  ARM_TLS: 0x401,
  ARM_SYSTEM_CALL: 0x404,
  ARM_PACA_KEYS: 0x407,
  ARM_PACG_KEYS: 0x408,
  ARM_PAC_ENABLED_KEYS: 0x40a,
  ARM_GCS: 0x410,
  ARM_SVE: 0x405,
} as const;

export const WNOHANG = 1;
export const WUNTRACED = 2;
export const WEXITED = 4;
export const WNOWAIT = 0x01000000;
export const WALL = 0x40000000;

export const SIG = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
} as const;
export const SIGMAX = 64;

export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01,
  PRIVATE: 0x02,
  FIXED: 0x10,
  ANONYMOUS: 0x20,
  GROWSDOWN: 0x100,
  DENYWRITE: 0x800,
  EXECUTABLE: 0x1000,
  LOCKED: 0x2000,
  NORESERVE: 0x4000,
  POPULATE: 0x8000,
  HUGETLB: 0x40000,
  FIXED_NOREPLACE: 0x100000,
} as const;
export const MREMAP = { MAYMOVE: 1, FIXED: 2, DONTUNMAP: 4 } as const;

// arm64 moves four open flags (arch/arm64/include/uapi/asm/fcntl.h).
const ARM64_O = process.arch === 'arm64';
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  ACCMODE: 3,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
  DIRECTORY: ARM64_O ? 0o40000 : 0o200000,
  NOFOLLOW: ARM64_O ? 0o100000 : 0o400000,
  DIRECT: ARM64_O ? 0o200000 : 0o40000,
  LARGEFILE: ARM64_O ? 0o400000 : 0o100000,
} as const;
export const AT_FDCWD = -100;
export const F = {
  DUPFD: 0,
  GETFD: 1,
  SETFD: 2,
  GETFL: 3,
  SETFL: 4,
  SETOWN: 8,
  GETOWN: 9,
  SETSIG: 10,
  GETSIG: 11,
  SETOWN_EX: 15,
  GETOWN_EX: 16,
  GETOWNER_UIDS: 17,
  SETPIPE_SZ: 1031,
  GETPIPE_SZ: 1032,
  ADD_SEALS: 1033,
  GET_SEALS: 1034,
  DUPFD_CLOEXEC: 1030,
} as const;
export const FD_CLOEXEC = 1;
export const SPLICE_F_NONBLOCK = 2;

export const PR = {
  SET_PDEATHSIG: 1,
  GET_PDEATHSIG: 2,
  GET_DUMPABLE: 3,
  SET_DUMPABLE: 4,
  SET_NAME: 15,
  GET_NAME: 16,
  GET_SECCOMP: 21,
  SET_SECCOMP: 22,
  CAPBSET_READ: 23,
  CAPBSET_DROP: 24,
  GET_SECUREBITS: 27,
  SET_SECUREBITS: 28,
  SET_CHILD_SUBREAPER: 36,
  GET_CHILD_SUBREAPER: 37,
  SET_NO_NEW_PRIVS: 38,
  GET_NO_NEW_PRIVS: 39,
  GET_TID_ADDRESS: 40,
  SET_THP_DISABLE: 41,
  GET_THP_DISABLE: 42,
  SET_MM: 35,
  CAP_AMBIENT: 47,
  GET_SHADOW_STACK_STATUS: 74,
  SET_SHADOW_STACK_STATUS: 75,
  LOCK_SHADOW_STACK_STATUS: 76,
  TIMER_CREATE_RESTORE_IDS: 77,
} as const;
export const PR_SET_MM_MAP = 14;
export const PR_SET_MM_MAP_SIZE = 15;

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;
export const MNT_DETACH = 2;
/** open_tree(2) and move_mount(2) flags. */
export const OPEN_TREE_CLONE = 1;
export const MOVE_MOUNT = { F_EMPTY_PATH: 0x4, T_EMPTY_PATH: 0x40, SET_GROUP: 0x100 } as const;

export const KCMP = { FILE: 0, VM: 1, FILES: 2, FS: 3, SIGHAND: 4, IO: 5, SYSVSEM: 6, EPOLL_TFD: 7 } as const;

export const CLONE = {
  VM: 0x100,
  FS: 0x200,
  FILES: 0x400,
  SIGHAND: 0x800,
  PIDFD: 0x1000,
  PTRACE: 0x2000,
  VFORK: 0x4000,
  PARENT: 0x8000,
  THREAD: 0x10000,
  NEWNS: 0x20000,
  SYSVSEM: 0x40000,
  SETTLS: 0x80000,
  PARENT_SETTID: 0x100000,
  CHILD_CLEARTID: 0x200000,
  UNTRACED: 0x800000,
  CHILD_SETTID: 0x1000000,
} as const;

export const RSEQ_FLAG_UNREGISTER = 1;
export const RLIM_NLIMITS = 16;
export const RLIM_INFINITY = 0xffffffffffffffffn;
