// Task-level state, dump and restore side by side:
//   pstree.ts      pstree_entry: parent, group, session, threads
//   sessions.ts    sessions and groups: refused when led from outside; helpers for dead leaders
//   fork.ts        a task or thread created at its PID, with the clone flags of what it shares
//   core.ts        task_core_entry: state, personality, timers, limits, zombies' exit
//   thread.ts      thread_core_entry: robust list, sigaltstack, rseq, scheduling, signals
//   creds.ts       creds_entry, per thread
//   props.ts       oom_score_adj, child subreaper, parent-death signal
//   sched.ts       scheduling policy and priority, CPU affinity (per thread)
//   seccomp.ts     seccomp mode and filters (per thread), seccomp.img
export { dumpPstreeEntry } from './pstree.ts';
export { checkSessions, SessionRestore, type SessionMember, type Birthplace } from './sessions.ts';
export { checkNamespaces, threadNamespaceProblem } from '../ns/index.ts';
export { cloneAt, pidInUse, sharingFlags, checkSharing, ALL_SIGNALS, type CloneExtra } from './fork.ts';
export {
  TASK_STATE,
  taskCoreClaims,
  dumpTaskCore,
  dumpZombieCore,
  restorePersonality,
  restoreMembarrier,
  restoreTimersAndLimits,
  becomeZombie,
} from './core.ts';
export {
  freezeSnapshot,
  dumpThreadInfo,
  dumpThreadCore,
  dumpCoreEntry,
  siginfoEntries,
  cloneThread,
  unregisterInheritedRseq,
  restoreThreadCore,
  requeueSignals,
  restoreComm,
  finishThread,
  finishLeader,
  releaseThreads,
  threadClaims,
  type FrozenThread,
} from './thread.ts';
export { dumpCreds, readSecbits, restoreCreds, restoreThreadCreds, credsClaims } from './creds.ts';
export { taskPropsClaims, dumpPdeathSig, restoreTaskProps, restorePdeathSig, unsetLoginuid } from './props.ts';
export { seccompClaims, SeccompDump, seccompChain, restoreSeccomp } from './seccomp.ts';
export { schedClaims, dumpAffinity, restoreAffinity, restoreSched } from './sched.ts';
