// pstree_entry: a task's place in the tree (parent, process group, session) and its threads.
import { readStat, type Stat } from '../../proc/index.ts';
import type { MessageInput } from '../types.ts';

/**
 * `stat` is the frozen task's; a zombie has none of its own, and its group and session are
 * read again now (its own PID when it is gone meanwhile).
 */
export function dumpPstreeEntry(pid: number, ppid: number, tids: number[], stat: Stat | undefined): MessageInput<'pstree_entry'> {
  const ids = stat ? { pgid: stat.pgrp, sid: stat.session } : zombieIds(pid);
  return { pid, ppid, ...ids, threads: tids.length ? tids : [pid] };
}

function zombieIds(pid: number): { pgid: number; sid: number } {
  try {
    const s = readStat(pid);
    return { pgid: s.pgrp, sid: s.session };
  } catch {
    return { pgid: pid, sid: pid };
  }
}
