// What a resource module saves and restores, declared next to its code for the dump-time
// check (src/dump/claims.ts). Whatever /proc shows that no module claims must be what a
// restored task gets anyway (criu-ts's own value), or the dump is refused.
import type { PosixTimerInfo } from '../proc/index.ts';

/** Where a value was read: the task and the thread. */
export interface ClaimSite {
  pid: number;
  tid: number;
}

/** Why this value cannot be saved; undefined when it can. */
export type Check = (value: string, at: ClaimSite) => string | undefined;

/** A /proc value a module saves whatever it is (true), or as far as its check allows. */
export type Claim = true | Check;

export type Claims = Readonly<Record<string, Claim>>;

export interface ResourceClaims {
  /** Lines of /proc/PID/task/TID/status, by key. */
  status?: Claims;
  /** Fields of /proc/PID/task/TID/stat, by the name src/proc/stat.ts gives them. */
  stat?: Claims;
  /** Files of /proc/PID (oom_score_adj, personality, ...), by name. */
  files?: Claims;
  /** VmFlags tokens of a VMA the module saves and restores. */
  vmFlags?: readonly string[];
  /** POSIX timers of /proc/PID/timers, as far as the check allows; `tids` are the task's threads. */
  posixTimers?: (timer: PosixTimerInfo, at: ClaimSite, tids: ReadonlySet<number>) => string | undefined;
}
