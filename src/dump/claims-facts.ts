// The facts the dump-time check (claims.ts) goes by: which /proc values are identity or
// statistics rather than state, and names for what the kernel shows. cgroups are saved by
// resources/cgroups.ts (cgroup.img), whatever the tasks' cgroups are.
import { O } from '../kernel/index.ts';

/** status lines that identify the task or count things, or that other checks cover. */
export const NEUTRAL_STATUS: ReadonlySet<string> = new Set([
  'Pid',
  'Tgid',
  'PPid',
  'TracerPid',
  'State',
  'Ngid',
  'FDSize',
  'NStgid',
  'NSpid',
  'NSpgid',
  'NSsid',
  'Kthread',
  'Threads',
  'SigQ',
  'voluntary_ctxt_switches',
  'nonvoluntary_ctxt_switches',
]);

export const RESOURCE_NAMES: Readonly<Record<string, string>> = {
  Seccomp: 'seccomp mode',
  Seccomp_filters: 'seccomp filters',
  CoreDumping: 'core dump in progress',
  Mems_allowed: 'NUMA nodes allowed (cpuset)',
  Mems_allowed_list: 'NUMA nodes allowed (cpuset)',
  Speculation_Store_Bypass: 'speculation control (PR_SET_SPECULATION_CTRL)',
  SpeculationIndirectBranch: 'speculation control (PR_SET_SPECULATION_CTRL)',
  VmLck: 'locked memory (mlock)',
  VmPin: 'pinned memory',
  untag_mask: 'address tagging',
  x86_Thread_features: 'x86 thread features (shadow stack)',
  x86_Thread_features_locked: 'x86 thread features (shadow stack)',
  coredump_filter: 'coredump_filter',
  loginuid: 'audit login uid',
  sessionid: 'audit session id',
  'attr/current': 'security label (LSM)',
  ksm_stat: 'KSM merging (PR_SET_MEMORY_MERGE)',
  autogroup: 'autogroup nice value (/proc/PID/autogroup)',
};

const same = (s: string | undefined): string => s ?? '';

/**
 * Files of /proc/PID compared with criu-ts's own unless a module claims them, the part of each
 * that counts, and (third) what a restored task has when that is not criu-ts's own.
 */
export const PROC_FILES: ReadonlyArray<[string, (s: string | undefined) => string, string?]> = [
  ['oom_score_adj', same],
  ['personality', same],
  ['coredump_filter', same], // timer slack: claims-probes.ts, per thread
  ['loginuid', same],
  ['sessionid', same],
  ['attr/current', same],
  // The nice value of its session's autogroup (made by setsid): a restored session's has 0. A
  // task outside the root CPU group shows none, and none differs from 0 in nothing.
  ['autogroup', (s) => / nice (-?\d+)/.exec(s ?? '')?.[1] ?? '0', '0'],
  ['ksm_stat', (s) => /^ksm_merge_any: *(\S+)/m.exec(s ?? '')?.[1] ?? ''],
];

export const VMFLAG_NAMES: Readonly<Record<string, string>> = {
  lo: 'locked in memory (mlock)',
  lf: 'locked on fault (mlock2)',
  ht: 'hugetlb memory',
  de: 'not expandable (VM_DONTEXPAND)',
  pf: 'a PFN mapping of a device',
  io: 'a device I/O mapping',
  mm: 'a mixed device mapping',
  dp: 'droppable (MAP_DROPPABLE)',
  um: 'registered with userfaultfd',
  uw: 'registered with userfaultfd',
  ui: 'registered with userfaultfd',
  sl: 'sealed (mseal)',
  mt: 'tagged memory (PROT_MTE)',
  ar: 'an architecture-specific mapping',
  gu: 'guarded (MADV_GUARD_INSTALL)',
};

const FLAG_NAMES: Array<[number, string]> = [
  [O.APPEND, 'O_APPEND'],
  [O.NONBLOCK, 'O_NONBLOCK'],
  [0o20000, 'O_ASYNC'],
  [O.DIRECT, 'O_DIRECT'],
  [0o1000000, 'O_NOATIME'],
  [0o4010000, 'O_SYNC'],
  [0o10000, 'O_DSYNC'],
  [O.PATH, 'O_PATH'],
  [O.DIRECTORY, 'O_DIRECTORY'],
  [O.NOFOLLOW, 'O_NOFOLLOW'],
  [O.LARGEFILE, 'O_LARGEFILE'],
  [0o200, 'O_EXCL (PIDFD_THREAD on a pidfd)'],
];

/** "O_APPEND|O_DIRECT" for the flag bits set, plus any unnamed ones in octal; '' for none. */
export function flagNames(bits: number): string {
  const out: string[] = [];
  let left = bits & ~O.LARGEFILE; // open() adds it on 64-bit, and every reopened file has it
  for (const [bit, name] of FLAG_NAMES)
    if ((left & bit) === bit && bit) {
      out.push(name);
      left &= ~bit;
    }
  if (left) out.push(`0${left.toString(8)}`);
  return out.join('|');
}
