// Field tables of CRIU's core, creds, sa, rlimit, timer, siginfo, rseq, seccomp (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const coreMessages = {
  task_core_entry: {
    name: 'task_core_entry',
    fields: [
      { no: 1, name: 'task_state', label: 'req', type: 'uint32', opts: { dict: 'gen' } },
      { no: 2, name: 'exit_code', label: 'req', type: 'uint32' },
      { no: 3, name: 'personality', label: 'req', type: 'uint32' },
      { no: 4, name: 'flags', label: 'req', type: 'uint32' },
      { no: 5, name: 'blk_sigset', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 6, name: 'comm', label: 'req', type: 'string' },
      { no: 7, name: 'timers', label: 'opt', type: 'message', ref: 'task_timers_entry' },
      { no: 8, name: 'rlimits', label: 'opt', type: 'message', ref: 'task_rlimits_entry' },
      { no: 9, name: 'cg_set', label: 'opt', type: 'uint32' },
      { no: 10, name: 'signals_s', label: 'opt', type: 'message', ref: 'signal_queue_entry' },
      { no: 11, name: 'old_seccomp_mode', label: 'opt', type: 'enum', ref: 'seccomp_mode' },
      { no: 12, name: 'old_seccomp_filter', label: 'opt', type: 'uint32' },
      { no: 13, name: 'loginuid', label: 'opt', type: 'uint32' },
      { no: 14, name: 'oom_score_adj', label: 'opt', type: 'int32' },
      { no: 15, name: 'sigactions', label: 'rep', type: 'message', ref: 'sa_entry' },
      { no: 18, name: 'child_subreaper', label: 'opt', type: 'bool' },
      { no: 20, name: 'blk_sigset_extended', label: 'opt', type: 'uint64', opts: { hex: true } },
      { no: 21, name: 'stop_signo', label: 'opt', type: 'uint32' },
      { no: 22, name: 'membarrier_registration_mask', label: 'opt', type: 'uint32', opts: { hex: true } },
    ],
  },
  task_kobj_ids_entry: {
    name: 'task_kobj_ids_entry',
    fields: [
      { no: 1, name: 'vm_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'files_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'fs_id', label: 'req', type: 'uint32' },
      { no: 4, name: 'sighand_id', label: 'req', type: 'uint32' },
      { no: 5, name: 'pid_ns_id', label: 'opt', type: 'uint32' },
      { no: 6, name: 'net_ns_id', label: 'opt', type: 'uint32' },
      { no: 7, name: 'ipc_ns_id', label: 'opt', type: 'uint32' },
      { no: 8, name: 'uts_ns_id', label: 'opt', type: 'uint32' },
      { no: 9, name: 'mnt_ns_id', label: 'opt', type: 'uint32' },
      { no: 10, name: 'user_ns_id', label: 'opt', type: 'uint32' },
      { no: 11, name: 'cgroup_ns_id', label: 'opt', type: 'uint32' },
      { no: 12, name: 'time_ns_id', label: 'opt', type: 'uint32' },
    ],
  },
  thread_sas_entry: {
    name: 'thread_sas_entry',
    fields: [
      { no: 1, name: 'ss_sp', label: 'req', type: 'uint64' },
      { no: 2, name: 'ss_size', label: 'req', type: 'uint64' },
      { no: 3, name: 'ss_flags', label: 'req', type: 'uint32' },
    ],
  },
  thread_core_entry: {
    name: 'thread_core_entry',
    fields: [
      { no: 1, name: 'futex_rla', label: 'req', type: 'uint64' },
      { no: 2, name: 'futex_rla_len', label: 'req', type: 'uint32' },
      { no: 3, name: 'sched_nice', label: 'opt', type: 'sint32' },
      { no: 4, name: 'sched_policy', label: 'opt', type: 'uint32' },
      { no: 5, name: 'sched_prio', label: 'opt', type: 'uint32' },
      { no: 6, name: 'blk_sigset', label: 'opt', type: 'uint64' },
      { no: 7, name: 'sas', label: 'opt', type: 'message', ref: 'thread_sas_entry' },
      { no: 8, name: 'pdeath_sig', label: 'opt', type: 'uint32' },
      { no: 9, name: 'signals_p', label: 'opt', type: 'message', ref: 'signal_queue_entry' },
      { no: 10, name: 'creds', label: 'opt', type: 'message', ref: 'creds_entry' },
      { no: 11, name: 'seccomp_mode', label: 'opt', type: 'enum', ref: 'seccomp_mode' },
      { no: 12, name: 'seccomp_filter', label: 'opt', type: 'uint32' },
      { no: 13, name: 'comm', label: 'opt', type: 'string' },
      { no: 14, name: 'blk_sigset_extended', label: 'opt', type: 'uint64' },
      { no: 15, name: 'rseq_entry', label: 'opt', type: 'message', ref: 'rseq_entry' },
      { no: 16, name: 'cg_set', label: 'opt', type: 'uint32' },
      // criu-ts: the thread's CPU affinity mask, when it is not what a restored thread inherits
      { no: 100, name: 'cpu_affinity', label: 'opt', type: 'bytes' },
    ],
  },
  task_rlimits_entry: {
    name: 'task_rlimits_entry',
    fields: [
      { no: 1, name: 'rlimits', label: 'rep', type: 'message', ref: 'rlimit_entry' },
    ],
  },
  core_entry: {
    name: 'core_entry',
    fields: [
      { no: 1, name: 'mtype', label: 'req', type: 'enum', ref: 'march' },
      { no: 2, name: 'thread_info', label: 'opt', type: 'message', ref: 'thread_info_x86' },
      { no: 6, name: 'ti_arm', label: 'opt', type: 'message', ref: 'thread_info_arm' },
      { no: 8, name: 'ti_aarch64', label: 'opt', type: 'message', ref: 'thread_info_aarch64' },
      { no: 9, name: 'ti_ppc64', label: 'opt', type: 'message', ref: 'thread_info_ppc64' },
      { no: 10, name: 'ti_s390', label: 'opt', type: 'message', ref: 'thread_info_s390' },
      { no: 11, name: 'ti_mips', label: 'opt', type: 'message', ref: 'thread_info_mips' },
      { no: 12, name: 'ti_loongarch64', label: 'opt', type: 'message', ref: 'thread_info_loongarch64' },
      { no: 13, name: 'ti_riscv64', label: 'opt', type: 'message', ref: 'thread_info_riscv64' },
      { no: 3, name: 'tc', label: 'opt', type: 'message', ref: 'task_core_entry' },
      { no: 4, name: 'ids', label: 'opt', type: 'message', ref: 'task_kobj_ids_entry' },
      { no: 5, name: 'thread_core', label: 'opt', type: 'message', ref: 'thread_core_entry' },
    ],
  },
  creds_entry: {
    name: 'creds_entry',
    fields: [
      { no: 1, name: 'uid', label: 'req', type: 'uint32' },
      { no: 2, name: 'gid', label: 'req', type: 'uint32' },
      { no: 3, name: 'euid', label: 'req', type: 'uint32' },
      { no: 4, name: 'egid', label: 'req', type: 'uint32' },
      { no: 5, name: 'suid', label: 'req', type: 'uint32' },
      { no: 6, name: 'sgid', label: 'req', type: 'uint32' },
      { no: 7, name: 'fsuid', label: 'req', type: 'uint32' },
      { no: 8, name: 'fsgid', label: 'req', type: 'uint32' },
      { no: 9, name: 'cap_inh', label: 'rep', type: 'uint32' },
      { no: 10, name: 'cap_prm', label: 'rep', type: 'uint32' },
      { no: 11, name: 'cap_eff', label: 'rep', type: 'uint32' },
      { no: 12, name: 'cap_bnd', label: 'rep', type: 'uint32' },
      { no: 13, name: 'secbits', label: 'req', type: 'uint32' },
      { no: 14, name: 'groups', label: 'rep', type: 'uint32' },
      { no: 15, name: 'lsm_profile', label: 'opt', type: 'string' },
      { no: 16, name: 'lsm_sockcreate', label: 'opt', type: 'string' },
      { no: 17, name: 'apparmor_data', label: 'opt', type: 'bytes' },
      { no: 18, name: 'no_new_privs', label: 'opt', type: 'uint32' },
      { no: 19, name: 'cap_amb', label: 'rep', type: 'uint32' },
    ],
  },
  sa_entry: {
    name: 'sa_entry',
    fields: [
      { no: 1, name: 'sigaction', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'flags', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 3, name: 'restorer', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 4, name: 'mask', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 5, name: 'compat_sigaction', label: 'opt', type: 'bool' },
      { no: 6, name: 'mask_extended', label: 'opt', type: 'uint64', opts: { hex: true } },
    ],
  },
  rlimit_entry: {
    name: 'rlimit_entry',
    fields: [
      { no: 1, name: 'cur', label: 'req', type: 'uint64' },
      { no: 2, name: 'max', label: 'req', type: 'uint64' },
    ],
  },
  itimer_entry: {
    name: 'itimer_entry',
    fields: [
      { no: 1, name: 'isec', label: 'req', type: 'uint64' },
      { no: 2, name: 'iusec', label: 'req', type: 'uint64' },
      { no: 3, name: 'vsec', label: 'req', type: 'uint64' },
      { no: 4, name: 'vusec', label: 'req', type: 'uint64' },
    ],
  },
  posix_timer_entry: {
    name: 'posix_timer_entry',
    fields: [
      { no: 1, name: 'it_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'clock_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'si_signo', label: 'req', type: 'uint32' },
      { no: 4, name: 'it_sigev_notify', label: 'req', type: 'uint32' },
      { no: 5, name: 'sival_ptr', label: 'req', type: 'uint64' },
      { no: 6, name: 'overrun', label: 'req', type: 'uint32' },
      { no: 7, name: 'isec', label: 'req', type: 'uint64' },
      { no: 8, name: 'insec', label: 'req', type: 'uint64' },
      { no: 9, name: 'vsec', label: 'req', type: 'uint64' },
      { no: 10, name: 'vnsec', label: 'req', type: 'uint64' },
      { no: 11, name: 'notify_thread_id', label: 'opt', type: 'int32' },
    ],
  },
  task_timers_entry: {
    name: 'task_timers_entry',
    fields: [
      { no: 1, name: 'real', label: 'req', type: 'message', ref: 'itimer_entry' },
      { no: 2, name: 'virt', label: 'req', type: 'message', ref: 'itimer_entry' },
      { no: 3, name: 'prof', label: 'req', type: 'message', ref: 'itimer_entry' },
      { no: 4, name: 'posix', label: 'rep', type: 'message', ref: 'posix_timer_entry' },
    ],
  },
  siginfo_entry: {
    name: 'siginfo_entry',
    fields: [
      { no: 1, name: 'siginfo', label: 'req', type: 'bytes' },
    ],
  },
  signal_queue_entry: {
    name: 'signal_queue_entry',
    fields: [
      { no: 1, name: 'signals', label: 'rep', type: 'message', ref: 'siginfo_entry' },
    ],
  },
  rseq_entry: {
    name: 'rseq_entry',
    fields: [
      { no: 1, name: 'rseq_abi_pointer', label: 'req', type: 'uint64' },
      { no: 2, name: 'rseq_abi_size', label: 'req', type: 'uint32' },
      { no: 3, name: 'signature', label: 'req', type: 'uint32' },
      { no: 4, name: 'rseq_cs_pointer', label: 'opt', type: 'uint64' },
    ],
  },
  seccomp_filter: {
    name: 'seccomp_filter',
    fields: [
      { no: 1, name: 'filter', label: 'req', type: 'bytes' },
      { no: 2, name: 'prev', label: 'opt', type: 'uint32' },
      { no: 3, name: 'flags', label: 'opt', type: 'uint32' },
    ],
  },
  seccomp_entry: {
    name: 'seccomp_entry',
    fields: [
      { no: 1, name: 'seccomp_filters', label: 'rep', type: 'message', ref: 'seccomp_filter' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const coreEnums = {
  seccomp_mode: { name: 'seccomp_mode', values: { disabled: 0, strict: 1, filter: 2 } },
  march: { name: 'march', values: { UNKNOWN: 0, X86_64: 1, ARM: 2, AARCH64: 3, PPC64: 4, S390: 5, MIPS: 6, LOONGARCH64: 7, RISCV64: 8 } },
} as const satisfies Record<string, EnumDef>;
