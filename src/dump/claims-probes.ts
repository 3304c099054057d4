// State that /proc does not show, read by an injected call in each thread (or task), which
// no resource module saves: it must be what a restored task has, or the dump is refused.
import fs from 'node:fs';
import { arch, schedGetScheduler, schedGetRuntime, syscallUserDispatchMode, ownKeyringId, NT } from '../kernel/index.ts';
import { readStatus, readSmaps, readNumaPolicies } from '../proc/index.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { ClaimSite } from '../resources/claims.ts';

interface Probe {
  resource: string;
  /** Per thread in the kernel (else per process: read in the leader only). */
  perThread: boolean;
  only?: 'x86_64' | 'aarch64';
  /**
   * When it is read: 'regs' from ptrace's regsets, in every thread before any injected call
   * (a syscall would change it); 'early' by a call in the leader before the injection area is
   * mapped, which it would make fail; by default in every thread once the area is there.
   */
  when?: ProbePhase;
  /** The value in the tracee; undefined when the kernel does not have the call. */
  read(t: Tracee, area: InjectionArea): number | undefined;
  /** What a restored thread has; `rt`: it runs a real-time policy, `strict`: it is in seccomp strict mode. */
  restored(th: { rt: boolean; strict: boolean }): number;
}

const PR_GET_TSC = 25,
  PR_GET_TIMERSLACK = 30,
  PR_MCE_KILL_GET = 34,
  PR_GET_MDWE = 66;
const ARCH_GET_CPUID = 0x1011,
  ARCH_GET_XCOMP_PERM = 0x1022;
const XFEATURE_XTILEDATA = 18;
const KEYCTL_GET_KEYRING_ID = 0,
  KEY_SPEC_THREAD_KEYRING = -1,
  KEY_SPEC_PROCESS_KEYRING = -2,
  KEY_SPEC_SESSION_KEYRING = -3,
  KEY_SPEC_USER_SESSION_KEYRING = -5,
  KEYCTL_READ = 11,
  ENOKEY = 126;

/**
 * Keys in the thread's session keyring when it is not criu-ts's, which restored tasks share,
 * nor the default one of its uid (which a restored thread of that uid finds again):
 * KEYCTL_READ without a buffer gives the size of the list of key ids.
 */
function sessionKeys(t: Tracee): number | undefined {
  const keyring = (spec: number) => t.syscallRaw('keyctl', KEYCTL_GET_KEYRING_ID, spec, 0, 0, 0);
  const id = keyring(KEY_SPEC_SESSION_KEYRING);
  if (id < 0n) return undefined;
  if (Number(id) === ownKeyringId(KEY_SPEC_SESSION_KEYRING) || id === keyring(KEY_SPEC_USER_SESSION_KEYRING)) return 0;
  const size = t.syscallRaw('keyctl', KEYCTL_READ, KEY_SPEC_SESSION_KEYRING, 0, 0, 0);
  return size < 0n ? undefined : Number(size) / 4;
}

/** 1 when the thread has that keyring, 0 when not; undefined without keyrings in the kernel. */
function hasKeyring(t: Tracee, spec: number): number | undefined {
  const r = t.syscallRaw('keyctl', KEYCTL_GET_KEYRING_ID, spec, 0 /* do not make one */, 0, 0);
  return r >= 0n ? 1 : r === BigInt(-ENOKEY) ? 0 : undefined;
}

/**
 * An arm64 probe of one thread's regset `note` (16 bytes of it at most), read before any
 * injected call: `value` gives 1 for state a restored thread would not have, 0 for none, and
 * undefined when the bytes say nothing; a machine without the regset gives undefined too.
 */
function regsProbe(resource: string, note: number, value: (b: Buffer) => number | undefined): Probe {
  return {
    resource,
    perThread: true,
    only: 'aarch64',
    when: 'regs',
    read: (t) => {
      const b = t.optionalRegset(note, 16);
      return b === undefined ? undefined : value(b);
    },
    restored: () => 0,
  };
}

/** An SME regset gives its header alone (16 bytes) while that state (ZA, streaming mode) is off. */
const smeStateOn = (b: Buffer): number | undefined => (b.length < 4 ? undefined : b.readUInt32LE(0) > 16 ? 1 : 0);

/** Whether the 64-bit word at `at` is set; undefined where the regset is too short to hold it. */
const wordSet =
  (at: number) =>
  (b: Buffer): number | undefined =>
    b.length < at + 8 ? undefined : b.readBigUInt64LE(at) === 0n ? 0 : 1;

/** An int the call writes at its first pointer argument. */
function intOut(_t: Tracee, area: InjectionArea, call: (a: bigint) => bigint): number | undefined {
  area.reset();
  const a = area.alloc(8);
  if (call(a) < 0n) return undefined;
  return area.read(a, 4).readInt32LE(0);
}

const ret = (r: bigint): number | undefined => (r < 0n ? undefined : Number(r));
// Stubs are spawned by criu-ts's main thread and inherit its slack.
const selfSlack = (): number => Number(fs.readFileSync('/proc/self/timerslack_ns', 'utf8'));

const PROBES: Probe[] = [
  {
    resource: 'timer slack (PR_SET_TIMERSLACK)',
    perThread: true,
    // The kernel gives real-time threads no slack.
    read: (t) => ret(t.syscallRaw('prctl', PR_GET_TIMERSLACK, 0, 0, 0, 0)),
    restored: ({ rt }) => (rt ? 0 : selfSlack()),
  },
  {
    resource: 'NUMA memory policy (set_mempolicy)',
    perThread: true,
    read: (t, area) => intOut(t, area, (a) => t.syscallRaw('get_mempolicy', a, 0, 0, 0, 0)),
    restored: () => 0 /* MPOL_DEFAULT */,
  },
  {
    // numa_maps shows the task's policy for memory without one of its own: with the task's
    // the default, memory that all shows another policy has it of its own (mbind), which the
    // check of each VMA against the most common one (claims.ts) does not see.
    resource: 'NUMA memory policy of every mapping (mbind)',
    perThread: false,
    read: (t, area) => {
      if (intOut(t, area, (a) => t.syscallRaw('get_mempolicy', a, 0, 0, 0, 0)) !== 0) return undefined; // the probe above
      const { common } = readNumaPolicies(t.tid);
      return common === undefined || common === 'default' ? 0 : 1;
    },
    restored: () => 0,
  },
  {
    resource: 'machine-check policy (PR_MCE_KILL)',
    perThread: true,
    read: (t) => ret(t.syscallRaw('prctl', PR_MCE_KILL_GET, 0, 0, 0, 0)),
    restored: () => 2 /* PR_MCE_KILL_DEFAULT */,
  },
  {
    resource: 'memory-deny-write-execute (PR_SET_MDWE)',
    perThread: false,
    when: 'early',
    read: (t) => ret(t.syscallRaw('prctl', PR_GET_MDWE, 0, 0, 0, 0)),
    restored: () => 0,
  },
  {
    resource: 'time stamp counter access (PR_SET_TSC)',
    perThread: true,
    only: 'x86_64',
    // Seccomp strict mode turns the TSC off (PR_TSC_SIGSEGV), and its restore does again.
    read: (t, area) => intOut(t, area, (a) => t.syscallRaw('prctl', PR_GET_TSC, a, 0, 0, 0)),
    restored: ({ strict }) => (strict ? 2 : 1 /* PR_TSC_ENABLE */),
  },
  {
    resource: 'CPUID faulting (ARCH_SET_CPUID)',
    perThread: true,
    only: 'x86_64',
    read: (t) => ret(t.syscallRaw('arch_prctl', ARCH_GET_CPUID, 0)),
    restored: () => 1,
  },
  {
    // The time slice of a fair thread (sched_setattr's sched_runtime, Linux 6.12): forks
    // inherit it, so a restored thread has criu-ts's; a real-time thread shows none.
    resource: 'time slice (sched_setattr sched_runtime)',
    perThread: true,
    read: (t) => Number(schedGetRuntime(t.tid)),
    restored: ({ rt }) => (rt ? 0 : Number(schedGetRuntime(0))),
  },
  {
    // No image keeps it; the selector and the allowed range are the task's memory.
    resource: 'syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH)',
    perThread: true,
    read: (t) => {
      const m = syscallUserDispatchMode(t.tid);
      return m === undefined ? undefined : Number(m);
    },
    restored: () => 0 /* PR_SYS_DISPATCH_OFF */,
  },
  {
    resource: 'thread keyring (KEY_SPEC_THREAD_KEYRING)',
    perThread: true,
    read: (t) => hasKeyring(t, KEY_SPEC_THREAD_KEYRING),
    restored: () => 0,
  },
  {
    // An empty one (runc gives each container its own) loses nothing.
    resource: 'keys in a session keyring of its own (KEY_SPEC_SESSION_KEYRING)',
    perThread: true,
    read: sessionKeys,
    restored: () => 0,
  },
  {
    resource: 'process keyring (KEY_SPEC_PROCESS_KEYRING)',
    perThread: false,
    read: (t) => hasKeyring(t, KEY_SPEC_PROCESS_KEYRING),
    restored: () => 0,
  },
  // arm64 SME: neither CRIU's images nor criu-ts's keep the ZA array, streaming mode or
  // TPIDR2_EL0 (its lazy-save pointer): a restored thread has them off and zero. Read before
  // any injected call: a syscall leaves streaming mode.
  regsProbe('SME ZA storage (PSTATE.ZA)', NT.ARM_ZA, smeStateOn),
  regsProbe('SME streaming mode (PSTATE.SM)', NT.ARM_SSVE, smeStateOn),
  // NT_ARM_TLS holds TPIDR2_EL0 after TPIDR_EL0 where the CPU has SME.
  regsProbe('SME thread register TPIDR2_EL0', NT.ARM_TLS, wordSet(8)),
  // The tagged address ABI (top byte of syscall pointers ignored, MTE's check mode): pointers
  // the task passes to syscalls would fail after restore.
  regsProbe('tagged address ABI (PR_SET_TAGGED_ADDR_CTRL)', NT.ARM_TAGGED_ADDR_CTRL, wordSet(0)),
  // FP8's mode register.
  regsProbe('floating-point mode register FPMR', NT.ARM_FPMR, wordSet(0)),
  {
    // A restored task has the default XSAVE permissions; its AMX registers would fault.
    resource: 'AMX tile data permission (ARCH_REQ_XCOMP_PERM)',
    perThread: false,
    only: 'x86_64',
    read: (t, area) => {
      area.reset();
      const a = area.alloc(8);
      if (t.syscallRaw('arch_prctl', ARCH_GET_XCOMP_PERM, a) < 0n) return undefined;
      return Number((area.read(a, 8).readBigUInt64LE(0) >> BigInt(XFEATURE_XTILEDATA)) & 1n);
    },
    restored: () => 0,
  },
  {
    // No image keeps it (CRIU's neither); modify_ldt(0) reads the entries: none, 0 bytes.
    resource: 'LDT entries (modify_ldt)',
    perThread: false,
    only: 'x86_64',
    read: (t, area) => {
      area.reset();
      const r = t.syscallRaw('modify_ldt', 0, area.alloc(8), 8);
      return r < 0n ? undefined : r > 0n ? 1 : 0;
    },
    restored: () => 0,
  },
  {
    // mm->def_flags is shown nowhere, but the injection area, mapped after it was set, has it.
    resource: 'locking of future mappings (mlockall MCL_FUTURE)',
    perThread: false,
    read: (t, area) => {
      const v = readSmaps(t.tid).find((m) => m.start <= area.base && area.base < m.end);
      return v?.vmFlags?.has('lo') ? 1 : 0;
    },
    restored: () => 0,
  },
];

export interface ProbedTask {
  pid: number;
  threads: Tracee[];
  area?: InjectionArea;
}

type Refuse = (at: ClaimSite, resource: string, why: string) => never;

export type ProbePhase = 'regs' | 'early' | 'area';

/**
 * Run the probes of `phase` (see Probe.when): 'area' in every thread of a task whose injection
 * area is mapped (threads other than the leader are switched to the injection page, as the
 * dump does anyway), 'early' in the leader through its vDSO, 'regs' in every thread without
 * an injected call. `refuse` throws.
 */
export function checkProbes(t: ProbedTask, refuse: Refuse, phase: ProbePhase = 'area'): void {
  const probes = PROBES.filter((p) => (!p.only || p.only === arch.name) && (p.when ?? 'area') === phase);
  if (!probes.length) return;
  const area = t.area;
  for (const th of phase === 'early' ? t.threads.slice(0, 1) : t.threads) {
    const leader = th.tid === t.pid;
    if (phase === 'area') {
      if (!area) throw new Error(`task ${t.pid}: no injection area to probe its threads`);
      if (!leader) th.useInjectionPage(area.base);
    }
    // What a restored thread of this one has, read once a probe finds a value to compare.
    let at: { rt: boolean; strict: boolean } | undefined;
    const restoredAs = () => {
      if (at) return at;
      const policy = schedGetScheduler(th.tid) & ~0x40000000; // without SCHED_RESET_ON_FORK
      return (at = { rt: policy === 1 || policy === 2, strict: readStatus(t.pid, th.tid).seccomp === 1 });
    };
    for (const p of probes) {
      if (!p.perThread && !leader) continue;
      const v = p.read(th, area!);
      if (v === undefined) continue;
      const want = p.restored(restoredAs());
      if (v !== want) refuse({ pid: t.pid, tid: th.tid }, p.resource, `it is ${v}, where a restored task has ${want}`);
    }
  }
}
