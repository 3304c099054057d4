// Namespaces: criu-ts restores tasks into its own (but for a mount namespace the whole tree
// shares), so a dump of a tree that reaches into others is refused (CRIU's ns ids in task_kobj_ids_entry are those of criu-ts's).
import fs from 'node:fs';
import { NotSupportedError } from '../../errors.ts';
import { readLink } from '../../proc/index.ts';

const NAMESPACES = ['pid', 'pid_for_children', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time', 'time_for_children'];

export function checkNamespaces(pids: number[]): void {
  const own = new Map(NAMESPACES.map((n) => [n, fs.readlinkSync(`/proc/self/ns/${n}`)]));
  // A mount namespace of the tree's own is saved (resources/ns/mnt.ts): one for every task.
  own.set('mnt', readLink(pids[0], 'ns/mnt'));
  for (const pid of pids) {
    for (const n of NAMESPACES) {
      let link: string;
      try {
        link = readLink(pid, `ns/${n}`);
      } catch {
        continue;
      }
      if (link !== own.get(n)) {
        const what =
          n === 'pid_for_children'
            ? 'it creates its children in another PID namespace'
            : n === 'time_for_children'
              ? 'it creates its children in another time namespace'
              : n === 'mnt'
                ? `it is in another mount namespace (${link}) than the root task; nested mount namespaces are not supported yet`
                : `it is in another ${n} namespace (${link})`;
        throw new NotSupportedError(`task ${pid}: namespaces: ${what}`);
      }
    }
  }
}
