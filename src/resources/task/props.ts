// Small per-task state of task_core_entry and thread_core_entry: oom_score_adj,
// child_subreaper and the audit login uid (dumped with the task core, core.ts) and the
// parent-death signal.
import fs from 'node:fs';
import { PR, O } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { openAtInTask, openPulled } from '../../compel/open.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { ResourceClaims } from '../claims.ts';
import type { Logger, Message } from '../types.ts';

export const taskPropsClaims: ResourceClaims = {
  files: {
    oom_score_adj: true,
    oom_adj: true,
    loginuid: true,
    // The kernel hands out a new audit session id whenever a login uid is written, and no
    // call sets one: as in CRIU, a restored task has the session id its restore gave it.
    sessionid: true,
  },
};

const oomPath = (pid: number) => `/proc/${pid}/oom_score_adj`;

const oomScoreAdj = (pid: number): number => Number(fs.readFileSync(oomPath(pid), 'utf8'));

/** PR_GET_PDEATHSIG of one thread (the signal is per thread in the kernel). */
export function dumpPdeathSig(t: Tracee, area: InjectionArea): number {
  area.reset();
  const a = area.alloc(4);
  t.syscall('prctl', PR.GET_PDEATHSIG, a, 0, 0, 0);
  return area.read(a, 4).readInt32LE(0);
}

/**
 * oom_score_adj, child_subreaper and loginuid of a restored task. oom_score_adj is written by
 * criu-ts: lowering it below what the task inherited needs CAP_SYS_RESOURCE, and a restore
 * without it fails rather than leave the value behind.
 */
export function restoreTaskProps(t: Tracee, area: InjectionArea, pid: number, tc: Message<'task_core_entry'>): void {
  const adj = tc.oom_score_adj;
  if (adj !== undefined && adj !== oomScoreAdj(pid)) {
    try {
      fs.writeFileSync(oomPath(pid), String(adj));
    } catch (e) {
      throw new CriuError(`task ${pid}: cannot set oom_score_adj to ${adj}: ${(e as Error).message}`);
    }
  }
  if (tc.child_subreaper) t.syscall('prctl', PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (tc.loginuid !== undefined) restoreLoginuid(t, area, pid, tc.loginuid);
}

/**
 * The kernel lets only the task itself write its /proc/PID/loginuid, so the task writes it,
 * before its credentials are back (changing a set one needs CAP_AUDIT_CONTROL). It opens the
 * file relative to criu-ts's /proc/PID (pulled in): the task may be chrooted or pivoted
 * already, with no /proc of its own. In a user namespace of its own, the task reads it too:
 * it sees the image's ids, criu-ts the host's. Nothing is written when the value is already
 * the saved one (a task in a user namespace may only set an unset one).
 */
function restoreLoginuid(t: Tracee, area: InjectionArea, pid: number, loginuid: number): void {
  if (!fs.existsSync(`/proc/${pid}/loginuid`))
    throw new CriuError(`task ${pid}: its loginuid (${loginuid}) cannot be set: this kernel has no audit login uids`);
  const inside = fs.readlinkSync(`/proc/${pid}/ns/user`) !== fs.readlinkSync('/proc/self/ns/user');
  area.reset();
  try {
    const now = fs.readFileSync(`/proc/${pid}/loginuid`, 'utf8');
    if (!inside && Number(now.trim()) === loginuid) return;
    const dir = openPulled(t, `/proc/${pid}`, O.PATH | O.DIRECTORY);
    try {
      if (inside && Number(readInTask(t, area, dir, 'loginuid').trim()) === loginuid) return;
      const fd = openAtInTask(t, area, dir, 'loginuid', O.WRONLY | O.CLOEXEC);
      try {
        const text = String(loginuid);
        t.syscall('write', fd, area.put(Buffer.from(text)), text.length);
      } finally {
        t.syscall('close', fd);
      }
    } finally {
      t.syscall('close', dir);
    }
  } catch (e) {
    throw new CriuError(`task ${pid}: cannot set its loginuid to ${loginuid}: ${(e as Error).message}`);
  }
}

/**
 * A tree restored into a user namespace of its own inherits an unset loginuid from `t` (the
 * helper it is cloned from, in criu-ts's namespace, where it may unset its own): inside the
 * namespace a task may set an unset one, never change a set one (as CRIU unsets its own).
 */
export function unsetLoginuid(t: Tracee, area: InjectionArea): void {
  if (fs.existsSync(`/proc/${t.tid}/loginuid`)) restoreLoginuid(t, area, t.tid, NO_LOGINUID);
}

/** (u32)-1: no loginuid. */
const NO_LOGINUID = 0xffffffff;

/** The first bytes of a small file under the task's directory `dir`, as the task reads it. */
function readInTask(t: Tracee, area: InjectionArea, dir: bigint, name: string): string {
  const fd = openAtInTask(t, area, dir, name, O.RDONLY | O.CLOEXEC);
  try {
    const buf = area.alloc(32);
    return area.read(buf, Number(t.syscall('read', fd, buf, 32))).toString();
  } finally {
    t.syscall('close', fd);
  }
}

/**
 * The parent-death signal, after the credentials (a change of credentials clears it). The
 * root's parent at restore is criu-ts: with -d it gets the signal when criu-ts exits.
 */
export function restorePdeathSig(t: Tracee, sig: number | undefined, isRoot: boolean, log: Logger): void {
  if (!sig) return;
  if (isRoot) log.warn(`task ${t.tid} has a parent-death signal (${sig}): it gets it when criu-ts, its parent now, exits`);
  t.syscall('prctl', PR.SET_PDEATHSIG, sig, 0, 0, 0);
}
