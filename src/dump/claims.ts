// Nothing is lost silently. Before anything is written, every piece of state /proc shows for
// each task and thread of the tree is either claimed by a resource module (their
// declarations, src/resources/claims.ts) or is what a restored task gets anyway: criu-ts's own
// value, which the stubs inherit. Anything else refuses the dump with one line,
// `task PID: <resource>: <why>; not supported yet`.
import fs from 'node:fs';
import { readStatus, readStat, readTimers, listFds, readNumaPolicies, type Vma, type Stat, type LocksRead } from '../proc/index.ts';
import { getpid, ioprioGet, kcmp, KCMP } from '../kernel/index.ts';
import type { Tracee } from '../compel/index.ts';
import { NotSupportedError } from '../errors.ts';
import { probeFd, fdKind } from '../resources/files/index.ts';
import { parseLockLine, checkLockOwner, procLocksKey } from '../resources/files/locks.ts';
import {
  threadClaims,
  taskCoreClaims,
  credsClaims,
  schedClaims,
  taskPropsClaims,
  seccompClaims,
  checkNamespaces,
  threadNamespaceProblem,
} from '../resources/task/index.ts';
import { sigactClaims } from '../resources/sigact.ts';
import type { NetOptions } from '../resources/ns/index.ts';
import { fsClaims } from '../resources/fs.ts';
import { mmClaims, dontExpandOwned, isSocketVma } from '../resources/mm/index.ts';
import { posixTimerClaims } from '../resources/posix-timers.ts';
import type { Claim, Claims, ClaimSite, ResourceClaims } from '../resources/claims.ts';
import { NEUTRAL_STATUS, RESOURCE_NAMES, VMFLAG_NAMES, flagNames, PROC_FILES } from './claims-facts.ts';
import { checkProbes, type ProbedTask, type ProbePhase } from './claims-probes.ts';
import { cttyProblem } from '../resources/files/pty.ts';
import { ttyByPath } from '../resources/files/tty.ts';

const MODULES: ResourceClaims[] = [
  threadClaims,
  taskCoreClaims,
  credsClaims,
  sigactClaims,
  fsClaims,
  mmClaims,
  schedClaims,
  taskPropsClaims,
  posixTimerClaims,
  seccompClaims,
];

function merged(part: 'status' | 'stat' | 'files'): Map<string, Claim> {
  const m = new Map<string, Claim>();
  for (const c of MODULES) for (const [k, v] of Object.entries(c[part] ?? ({} as Claims))) m.set(k, v);
  return m;
}

export interface ClaimedTask {
  pid: number;
  threads: Tracee[];
  vmas: Vma[];
  stat: Stat;
}
export interface ClaimOptions {
  shellJob: boolean;
  freezeCgroup?: string;
  fileLocks?: boolean;
  /** /proc/locks, read since the tree was frozen. */
  procLocks: LocksRead;
  net?: NetOptions;
}

/** The one error of a refused dump. */
export class NotClaimedError extends NotSupportedError {
  constructor(at: ClaimSite, resource: string, why: string) {
    super(`task ${at.pid}${at.tid !== at.pid ? ` (thread ${at.tid})` : ''}: ${resource}: ${why}`);
    this.name = 'NotClaimedError';
  }
}

/** What a task restored by criu-ts has: criu-ts's own values. */
class Own {
  readonly status = readStatus(getpid()).raw;
  readonly ioprio = ioprioGet(0);
  private files = new Map<string, string | undefined>();
  file(name: string): string | undefined {
    if (!this.files.has(name)) this.files.set(name, readOptional(`/proc/self/${name}`));
    return this.files.get(name);
  }
}

// What PR_SET_IO_FLUSHER sets in the thread's flags: PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE.
const PF_IO_FLUSHER = 0x00080000 | 0x00100000;

const IOPRIO_CLASSES = ['none', 'realtime', 'best-effort', 'idle'];
const ioprioName = (v: number): string => `class ${IOPRIO_CLASSES[v >> 13] ?? v >> 13} level ${v & 0x1fff}`;

function readOptional(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Refuse what no resource module saves. */
export function checkClaims(tasks: ClaimedTask[], opts: ClaimOptions): void {
  const own = new Own();
  const claims = { status: merged('status'), stat: merged('stat'), files: merged('files') };
  const treeIds = new Set(tasks.flatMap((t) => t.threads.map((th) => th.tid)));
  const shownLocks = new Set<string>();
  checkNamespaces(
    tasks.map((t) => t.pid),
    { net: opts.net },
  );
  for (const t of tasks) {
    const site = { pid: t.pid, tid: t.pid };
    const refuse = (resource: string, why: string, tid = t.pid): never => {
      throw new NotClaimedError({ pid: t.pid, tid }, resource, why);
    };
    checkTimers(t, refuse);
    checkFds(t.pid, opts, treeIds, shownLocks, refuse);
    checkVmas(t.vmas, refuse);
    checkVmaPolicies(t.pid, refuse);
    checkProcFiles(t.pid, claims.files, own, site, refuse);
    if (t.stat.ttyNr !== 0 && !opts.shellJob) {
      const why = cttyProblem(
        t.stat.ttyNr,
        t.stat.session,
        tasks.map((x) => x.pid),
        ttyByPath(t.stat.ttyNr),
      );
      if (why) refuse('controlling terminal', why);
    } else if (!opts.shellJob && t.stat.session !== t.pid) {
      // The session leader takes its terminal back before it has children, which inherit it.
      const leader = tasks.find((x) => x.pid === t.stat.session);
      if (leader && leader.stat.ttyNr !== 0)
        refuse('controlling terminal', `it has none while its session leader ${leader.pid} has one, which it would inherit`);
    }
    if (t.stat.exitSignal !== 17) refuse('exit signal', `its parent is sent signal ${t.stat.exitSignal} when it exits, not SIGCHLD`);
    const personality = t.threads.length > 1 ? readOptional(`/proc/${t.pid}/personality`) : undefined;
    for (const th of t.threads) {
      const at = { pid: t.pid, tid: th.tid };
      checkStatus(readStatus(t.pid, th.tid).raw, claims.status, own, at, refuse);
      const st = th.tid === t.pid ? t.stat : readStat(t.pid, th.tid);
      for (const k of ['policy', 'rtPriority', 'nice'] as const)
        checkValue(`scheduling (${k})`, String(st[k]), claims.stat.get(k), undefined, at, refuse);
      if (th.tid !== t.pid) checkThreadOwn(t.pid, th.tid, personality, refuse);
      if (st.flags & PF_IO_FLUSHER) refuse('I/O flusher (PR_SET_IO_FLUSHER)', 'no image keeps it', th.tid);
      // No image field keeps it (CRIU's neither): a restored thread has criu-ts's.
      const io = ioprioGet(th.tid);
      if (io !== own.ioprio)
        refuse('I/O priority (ioprio_set)', `it is ${ioprioName(io)}, where a restored task has ${ioprioName(own.ioprio)}`, th.tid);
    }
  }
  // Locks on files that no fd shows (an fd shows its own, checkFds): /proc/locks, read since
  // the tree was frozen.
  checkLocks(opts.procLocks.text(), treeIds, shownLocks, mappedFiles(tasks));
}

/**
 * What the images keep per task, which a thread can have of its own: its personality, and what
 * unshare() in that thread alone separates (fs_struct, fd table, namespaces).
 */
function checkThreadOwn(pid: number, tid: number, leader: string | undefined, refuse: Refuse): void {
  const pers = readOptional(`/proc/${pid}/task/${tid}/personality`);
  if (pers !== undefined && pers !== leader) refuse('personality', `the thread's is ${pers}, its process's ${leader}`, tid);
  const own = (type: number): boolean => {
    try {
      return kcmp(pid, tid, type, 0, 0) !== 0;
    } catch {
      return false; // gone: the dump sees it
    }
  };
  if (own(KCMP.FS)) refuse('working directory, root and umask', 'the thread has its own (unshare CLONE_FS)', tid);
  if (own(KCMP.FILES)) refuse('fd table', 'the thread has its own (unshare CLONE_FILES)', tid);
  const ns = threadNamespaceProblem(pid, tid);
  if (ns) refuse('namespaces', ns, tid);
}

/** "major:minor:inode" of every file the tree maps, as /proc/locks writes them. */
function mappedFiles(tasks: ClaimedTask[]): Set<string> {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return new Set(
    tasks.flatMap((t) => t.vmas.filter((v) => v.inode !== 0).map((v) => `${hex(v.dev.major)}:${hex(v.dev.minor)}:${v.inode}`)),
  );
}

const refuseProbe = (at: ClaimSite, resource: string, why: string): never => {
  throw new NotClaimedError(at, resource, why);
};

/**
 * What /proc does not show (claims-probes.ts): read from the threads' regsets before any
 * injected call ('regs'), by an injected call in the leader before its injection area is
 * mapped ('early'), or in every thread once the areas are (the default).
 */
export function checkInjectedClaims(tasks: ProbedTask[], phase: ProbePhase = 'area'): void {
  for (const t of tasks) checkProbes(t, refuseProbe, phase);
}

type Refuse = (resource: string, why: string, tid?: number) => never;

/** A value claimed by a module (and within its check), or equal to criu-ts's own (`ownValue`). */
function checkValue(
  resource: string,
  value: string,
  claim: Claim | undefined,
  ownValue: string | undefined,
  at: ClaimSite,
  refuse: Refuse,
): void {
  if (claim === true) return;
  if (claim) {
    const why = claim(value, at);
    if (why) refuse(resource, why, at.tid);
    return;
  }
  if (value !== ownValue)
    refuse(resource, `it is ${JSON.stringify(value)}, where a restored task has ${JSON.stringify(ownValue ?? '(nothing)')}`, at.tid);
}

function checkStatus(status: Map<string, string>, claims: Map<string, Claim>, own: Own, at: ClaimSite, refuse: Refuse): void {
  for (const [k, v] of status) {
    if (NEUTRAL_STATUS.has(k)) continue;
    checkValue(RESOURCE_NAMES[k] ?? `status ${k}`, v, claims.get(k), own.status.get(k), at, refuse);
  }
}

function checkProcFiles(pid: number, claims: Map<string, Claim>, own: Own, at: ClaimSite, refuse: Refuse): void {
  for (const [name, filter, restored] of PROC_FILES) {
    if (claims.get(name) === true) continue;
    const mine = readOptional(`/proc/${pid}/${name}`);
    checkValue(RESOURCE_NAMES[name] ?? `/proc/PID/${name}`, filter(mine), claims.get(name), restored ?? filter(own.file(name)), at, refuse);
  }
}

/**
 * Every fd of a kind some module saves, with flags and fdinfo lines that kind brings back, and
 * locks only with --file-locks and of a kind resources/files/locks.ts takes again (`shown` collects them).
 */
function checkFds(pid: number, opts: ClaimOptions, treeIds: Set<number>, shown: Set<string>, refuse: Refuse): void {
  for (const fd of listFds(pid)) {
    let p;
    try {
      p = probeFd(pid, fd);
    } catch {
      continue;
    } // closed meanwhile by another task sharing the table: the dump sees it
    const what = `fd ${fd} (${p.link})`;
    const kind = fdKind(p);
    if (!kind) continue; // refused by the fd table's dump with what it is
    if (kind.name === 'terminal' && !opts.shellJob) continue; // likewise, with the way out (--shell-job)
    const extra = p.flags & ~((kind.claims.flags | 3) /* O_ACCMODE */);
    const lost = flagNames(extra);
    if (lost) refuse(what, `a ${kind.name} with ${lost}, which would not come back`);
    const why = kind.claims.check?.(p, treeIds);
    if (why) refuse(what, why);
    for (const line of p.info.locks) {
      if (!opts.fileLocks) refuse(what, `it holds a file lock (${line.replace(/\s+/g, ' ')}), saved only with --file-locks`);
      const l = parseLockLine(line);
      if (typeof l === 'string') refuse(what, l);
      const outside = checkLockOwner(l, treeIds);
      if (outside) refuse(what, outside);
      shown.add(l.key);
    }
    for (const key of p.info.fields.keys()) {
      if (key === 'pos' || key === 'flags' || key === 'mnt_id' || key === 'ino' || kind.claims.fields?.includes(key)) continue;
      refuse(what, `fdinfo shows "${key}: ${p.info.fields.get(key)}", which a ${kind.name} does not save`);
    }
  }
}

function checkTimers(t: ClaimedTask, refuse: Refuse): void {
  const tids = new Set(t.threads.map((th) => th.tid));
  for (const tm of readTimers(t.pid)) {
    const what = `POSIX timer ${tm.id} (signal ${tm.signo}, clock ${tm.clockId})`;
    const checks = MODULES.flatMap((c) => c.posixTimers ?? []);
    if (!checks.length) refuse(what, 'it would not fire after restore');
    for (const check of checks) {
      const why = check(tm, { pid: t.pid, tid: t.pid }, tids);
      if (why) refuse(what, why);
    }
  }
}

const SPECIAL_VMAS = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]', '[vectors]', '[uprobes]']);

function checkVmas(vmas: Vma[], refuse: Refuse): void {
  const claimed = new Set(mmClaims.vmFlags);
  for (const v of vmas) {
    if (SPECIAL_VMAS.has(v.path)) continue;
    const where = `memory at 0x${v.start.toString(16)}-0x${v.end.toString(16)}${v.path ? ` (${v.path})` : ''}`;
    if (/^\[anon(_shmem)?:/.test(v.path)) refuse(where, 'its name (PR_SET_VMA_ANON_NAME) would be lost');
    // No image keeps a memory protection key (CRIU's neither): the memory would come back open.
    if (v.protectionKey) refuse(where, `it has memory protection key ${v.protectionKey} (pkey_mprotect), which no image keeps`);
    for (const f of v.vmFlags ?? []) {
      // A packet ring is a mixed map of the socket's pages, mapped again from the restored socket.
      if (f === 'mm' && isSocketVma(v)) continue;
      if (!claimed.has(f) && !(f === 'de' && dontExpandOwned(v))) refuse(where, `it is ${VMFLAG_NAMES[f] ?? `marked '${f}' in VmFlags`}`);
    }
  }
}

/**
 * A VMA's own NUMA policy (mbind, or a shared memory object's), which no image keeps. numa_maps
 * shows the task's policy for the other VMAs, taken to be the most common one (the task's own,
 * unless the default, is refused by its probe, as is memory that all has one policy of its own).
 */
function checkVmaPolicies(pid: number, refuse: Refuse): void {
  const { vmas, common } = readNumaPolicies(pid);
  for (const [start, policy] of vmas)
    if (policy !== common)
      refuse(`memory at 0x${start}`, `its NUMA memory policy (mbind) is "${policy}", not the task's ("${common}"), and would be lost`);
}

/** flock, POSIX and OFD locks and leases held by the tree that no fd of it shows (`shown`). */
function checkLocks(text: string, ids: Set<number>, shown: Set<string>, mapped: Set<string>): void {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF". A waiter ("1: -> POSIX ...") holds
    // nothing: its blocked call starts again after restore.
    if (f[1] === '->' || shown.has(procLocksKey(line))) continue;
    // A flock, an OFD lock or a lease belongs to an open file description, which every fd on
    // it shows; with no fd, only a mapping of the file can keep it. Its pid is whoever took it,
    // who may be gone, the number since reused by a task of the tree (a POSIX lock goes with
    // its process).
    if (f[1] !== 'POSIX' && !mapped.has(f[5])) continue;
    const pid = Number(f[4]);
    if (ids.has(pid))
      throw new NotClaimedError({ pid, tid: pid }, `file lock (${f.slice(1, 4).join(' ')} on ${f[5]})`, 'locks are not saved');
  }
}
