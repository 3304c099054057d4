// The stages of a restore, in the order they run, and why each comes where it does (CRIU
// names its own CR_STATE_*). Each stage is done for every task before the next begins,
// except FORKING, which goes task by task in pstree order.
export const RESTORE_STAGES = [
  {
    stage: 'FORKING',
    why:
      'Every task is cloned at its PID by its parent (the root by a helper, a task whose session leader is gone by a helper at that PID), ' +
      'parents first, so that parentage and sessions come out as dumped. What a child inherits at fork (fd table, root/cwd/umask, signal ' +
      'actions, personality, memory) is restored in the parent before it has children: the child then changes only where it differs, ' +
      'and keeps the pages it still shares copy-on-write.',
  },
  {
    stage: 'GROUPS',
    why:
      'Process groups once every task exists, since a member may be created before its group leader. The helpers that stand in for ' +
      'dead session and group leaders exit only then: the sessions and groups they started live on without them.',
  },
  {
    stage: 'RESTORE',
    why:
      "The rest of each task: what needs the whole tree's fds in place (pipe data, epoll targets, O_ASYNC), timers, limits, then its " +
      "threads, once the memory they run on is back, its pending signals, each thread's core and scheduling, oom_score_adj and " +
      "subreaper; then the owners of open files, which may be any task or thread of the tree. The root network namespace's own " +
      'netfilter rules come once every socket exists: until then the network lock stands alone there, so that no rule of the ' +
      "tree's drops the peer's segments that soccr sends again to the restored connections.",
  },
  {
    stage: 'SECCOMP',
    why:
      'Seccomp mode and filters after everything but the credentials. The tasks are traced with PTRACE_O_SUSPEND_SECCOMP, so that ' +
      'no injected call of the restore is filtered, not even those that restore the credentials (setresuid...) or release the tasks; ' +
      'the filters apply once the tasks are let go. Before the credentials: a filter is installed only with no_new_privs or ' +
      'CAP_SYS_ADMIN, which a task that installed its filters as root and then changed its uid has no more. TSYNC needs every ' +
      'thread in place.',
  },
  {
    stage: 'RESTORE_CREDS',
    why:
      'Credentials last: they may take away the rights criu-ts needs to change the task. The parent-death signal after them, ' +
      'since a change of credentials clears it.',
  },
  {
    stage: 'SEAL',
    why:
      "TCP connections leave repair mode together once both ends of those inside the tree exist (one alone would answer its peer's " +
      "segments with a reset); criu-ts's own fds of the restore are closed and memfds sealed once every mapping exists (a seal may forbid new ones); " +
      'the page data checksum is awaited, so that nothing runs before its pages are known to be intact.',
  },
  {
    stage: 'LEASES',
    why: "File leases once criu-ts's own fds are closed: a write lease is granted only on a file open nowhere else.",
  },
  {
    stage: 'ZOMBIES',
    why: 'Zombies exit the way they did before any task of the tree runs, so that their parents find them as dumped.',
  },
  {
    stage: 'PREPARE_RELEASE',
    why:
      'Final registers and signal masks, in reverse pstree order: tasks that share an mm share the injection area too, and the last ' +
      'of them (the first in pstree order) removes it.',
  },
  {
    stage: 'COMPLETE',
    why:
      'Every thread is let go, one task right after another, so that no task runs while another is still being changed; then a ' +
      "thread with a CPU affinity of its own gets it (until let go it is pinned to criu-ts's CPU).",
  },
] as const;

export type RestoreStage = (typeof RESTORE_STAGES)[number]['stage'];
