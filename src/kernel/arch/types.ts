/** Syscalls criu-ts calls itself or injects into tracees. */
export type SyscallName =
  | 'read'
  | 'write'
  | 'openat'
  | 'openat2'
  | 'unlinkat'
  | 'mknodat'
  | 'linkat'
  | 'readlinkat'
  | 'inotify_init1'
  | 'inotify_add_watch'
  | 'inotify_rm_watch'
  | 'open_by_handle_at'
  | 'fanotify_init'
  | 'fanotify_mark'
  | 'close'
  | 'lseek'
  | 'mmap'
  | 'mprotect'
  | 'munmap'
  | 'brk'
  | 'mremap'
  | 'madvise'
  | 'mlock'
  | 'io_setup'
  | 'io_submit'
  | 'rt_sigaction'
  | 'rt_sigprocmask'
  | 'rt_sigtimedwait'
  | 'rt_sigqueueinfo'
  | 'rt_tgsigqueueinfo'
  | 'sigaltstack'
  | 'pread64'
  | 'pwrite64'
  | 'preadv'
  | 'pwritev'
  | 'ioctl'
  | 'fcntl'
  | 'flock'
  | 'dup'
  | 'dup3'
  | 'pipe2'
  | 'getpid'
  | 'gettid'
  | 'getppid'
  | 'kill'
  | 'tgkill'
  | 'exit'
  | 'exit_group'
  | 'wait4'
  | 'waitid'
  | 'chdir'
  | 'fchdir'
  | 'chroot'
  | 'umask'
  | 'prctl'
  | 'prlimit64'
  | 'personality'
  | 'setsid'
  | 'setpgid'
  | 'getpgid'
  | 'getsid'
  | 'setresuid'
  | 'setresgid'
  | 'setgroups'
  | 'setfsuid'
  | 'setfsgid'
  | 'capget'
  | 'capset'
  | 'set_tid_address'
  | 'set_robust_list'
  | 'get_robust_list'
  | 'rseq'
  | 'getitimer'
  | 'setitimer'
  | 'timer_create'
  | 'timer_settime'
  | 'timer_gettime'
  | 'timer_getoverrun'
  | 'timer_delete'
  | 'clock_gettime'
  | 'nanosleep'
  | 'clock_nanosleep'
  | 'restart_syscall'
  | 'tee'
  | 'splice'
  | 'vmsplice'
  | 'process_vm_readv'
  | 'process_vm_writev'
  | 'kcmp'
  | 'seccomp'
  | 'memfd_create'
  | 'pidfd_open'
  | 'pidfd_getfd'
  | 'pidfd_send_signal'
  | 'clone3'
  | 'close_range'
  | 'ptrace'
  | 'setpriority'
  | 'getpriority'
  | 'ioprio_get'
  | 'sched_setscheduler'
  | 'sched_getscheduler'
  | 'sched_getattr'
  | 'keyctl'
  | 'clone'
  | 'vfork'
  | 'sched_getparam'
  | 'sched_setaffinity'
  | 'sched_getaffinity'
  | 'getcpu'
  | 'membarrier'
  | 'userfaultfd'
  | 'map_shadow_stack'
  | 'socket'
  | 'socketpair'
  | 'bind'
  | 'connect'
  | 'listen'
  | 'getsockopt'
  | 'setsockopt'
  | 'shutdown'
  | 'getsockname'
  | 'accept4'
  | 'sendto'
  | 'recvfrom'
  | 'sendmsg'
  | 'recvmsg'
  | 'setns'
  | 'shmget'
  | 'shmat'
  | 'shmctl'
  | 'shmdt'
  | 'semget'
  | 'semctl'
  | 'msgget'
  | 'msgsnd'
  | 'msgrcv'
  | 'msgctl'
  | 'unshare'
  | 'mount'
  | 'umount2'
  | 'pivot_root'
  | 'mkdirat'
  | 'open_tree'
  | 'move_mount'
  | 'fchmod'
  | 'fchown'
  | 'ftruncate'
  | 'fallocate'
  | 'eventfd2'
  | 'signalfd4'
  | 'epoll_create1'
  | 'epoll_ctl'
  | 'timerfd_create'
  | 'timerfd_settime'
  | 'timerfd_gettime'
  | 'get_thread_area'
  | 'set_thread_area'
  | 'arch_prctl'
  | 'modify_ldt'
  | 'get_mempolicy'
  | 'bind'
  | 'listen'
  | 'connect'
  | 'getsockname'
  | 'getpeername'
  | 'sendto'
  | 'recvfrom'
  | 'setsockopt'
  | 'getsockopt'
  | 'shutdown'
  | 'getxattr'
  | 'ppoll';

/** What an architecture backend provides: syscall numbers, register layouts and opcodes. */
export interface Arch {
  readonly name: 'x86_64' | 'aarch64';
  /** core_entry.march value in CRIU images. */
  readonly criuMarch: number;
  readonly pageSize: number;
  readonly sys: Readonly<Partial<Record<SyscallName, number>>>;
  /** Size of the NT_PRSTATUS regset (user_regs_struct / user_pt_regs). */
  readonly gpRegsSize: number;
  /** Regset note type for the extended FPU state (NT_X86_XSTATE / NT_PRFPREG). */
  readonly fpRegset: number;
  /** Upper bound for the FPU regset buffer. */
  readonly fpRegsMaxSize: number;
  /** Bytes that execute one syscall and then trap to the tracer. */
  readonly syscallTrap: Buffer;
  /** Byte length of the syscall instruction alone (for restart fix-ups). */
  readonly syscallInsnLen: number;
  /** Words of mm_saved_auxv in CRIU's images (its AT_VECTOR_SIZE): CRIU rejects more. */
  readonly auxvWords: number;
  /** Highest user address + 1. */
  readonly taskSize: bigint;
  /**
   * Regset holding the syscall number the kernel acts on (NT_ARM_SYSTEM_CALL), where the
   * general registers do not carry it: reset after an injected call stopped at syscall exit,
   * so that no restart logic can apply to the registers put back afterwards.
   */
  readonly syscallNrRegset?: number;
  /**
   * Byte offset in the general registers of the one that syscall stops borrow to say entry
   * or exit (arm64's x7): the kernel puts back the value it had when the stop began, so a
   * tracer's write to it there is lost.
   */
  readonly syscallStopReg?: number;

  ip(regs: Buffer): bigint;
  setIp(regs: Buffer, ip: bigint): void;
  sp(regs: Buffer): bigint;
  setSp(regs: Buffer, sp: bigint): void;
  /** Prepare regs to run syscall `nr` with `args` when resumed at ip. */
  setSyscall(regs: Buffer, nr: number, args: readonly bigint[]): void;
  /** Syscall return value (signed) after the call completed. */
  syscallResult(regs: Buffer): bigint;
  /**
   * Make a set of dumped regs safe to resume with: undo an interrupted syscall so that
   * it restarts or returns EINTR as the kernel would have done, and mark the regs as not
   * being inside a syscall any more.
   */
  fixupRestart(regs: Buffer): void;
}
