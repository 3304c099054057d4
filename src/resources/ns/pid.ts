// PID namespace: no image of its own (CRIU writes pidns-N.img only for an external one). The
// tree's pids in the images are those of its own namespace (pstree.img, core-N.img...), and its
// root must be that namespace's init: a namespace lives only as long as its PID 1. The
// restore clones the root with CLONE_NEWPID and set_tid [1]; every other task is cloned
// inside at its own pid, and the kernel picks the pids it gets outside.
import { CLONE } from '../../kernel/index.ts';
import { readStatus } from '../../proc/index.ts';
import type { NsKind } from './types.ts';

/** A task's (or thread's) pid in its own PID namespace, the innermost of NSpid. */
export function nsPid(pid: number, tid?: number): number {
  return readStatus(pid, tid).nsPid.at(-1) ?? tid ?? pid;
}

export const pidNs: NsKind = {
  name: 'pid',
  cflag: CLONE.NEWPID,
  dumpRefusal: (root) => {
    const v = nsPid(root);
    if (v !== 1)
      return `task ${root} is pid ${v} of its PID namespace, not its init (pid 1); CRIU dumps a PID namespace only from its init`;
    return undefined;
  },
  restoreRefusal: ({ vpid }) =>
    vpid === 1 ? undefined : `the root task has pid ${vpid} in its PID namespace; only its init (pid 1) can make one`,
};
