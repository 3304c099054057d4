// Small ids for namespaces and for the kernel objects processes can share (mm, fd table,
// fs_struct, signal handlers), as CRIU numbers them in ids-N.img and the inventory.
import { kcmp, KCMP } from '../kernel/index.ts';
import { readLink } from '../proc/index.ts';

const KINDS: Array<[string, string]> = [
  ['pid', 'pid_ns_id'],
  ['net', 'net_ns_id'],
  ['ipc', 'ipc_ns_id'],
  ['uts', 'uts_ns_id'],
  ['mnt', 'mnt_ns_id'],
  ['user', 'user_ns_id'],
  ['cgroup', 'cgroup_ns_id'],
  ['time', 'time_ns_id'],
];

export class NsIds {
  private byIno = new Map<string, number>();
  private next = 1;

  /** The id given to the namespace `link` (as /proc/PID/ns/X reads), if a task was seen in it. */
  idOfLink(link: string): number | undefined {
    return this.byIno.get(link);
  }

  idsOf(pid: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, field] of KINDS) {
      let link: string;
      try {
        link = readLink(pid, `ns/${kind}`);
      } catch {
        continue;
      }
      let id = this.byIno.get(link);
      if (id === undefined) {
        id = this.next++;
        this.byIno.set(link, id);
      }
      out[field] = id;
    }
    return out;
  }
}

export interface KobjIdSet {
  vm_id: number;
  files_id: number;
  fs_id: number;
  sighand_id: number;
  /** For each object shared with an earlier task: that task's pid. */
  sharedWith: Map<string, number>;
}

/**
 * Ids that are equal exactly when kcmp says two processes share the object. kcmp also
 * orders objects, so each kind keeps its objects sorted and a new task is placed by binary
 * search: log2(n) calls per task instead of one per task seen (CRIU keeps a tree the same way).
 */
export class KobjIds {
  private readonly sorted = new Map<number, Array<{ pid: number; id: number }>>();
  private readonly byPid = new Map<number, KobjIdSet>();
  private next = 1;

  /** The ids given to a task already seen. */
  known(pid: number): KobjIdSet | undefined {
    return this.byPid.get(pid);
  }

  idsOf(pid: number): KobjIdSet {
    const ids: KobjIdSet = { vm_id: 0, files_id: 0, fs_id: 0, sighand_id: 0, sharedWith: new Map() };
    const kinds: Array<['vm_id' | 'files_id' | 'fs_id' | 'sighand_id', number, string]> = [
      ['vm_id', KCMP.VM, 'vm'],
      ['files_id', KCMP.FILES, 'files'],
      ['fs_id', KCMP.FS, 'fs'],
      ['sighand_id', KCMP.SIGHAND, 'sighand'],
    ];
    for (const [field, type, name] of kinds) {
      let list = this.sorted.get(type);
      if (!list) this.sorted.set(type, (list = []));
      // kcmp(a, b): 0 same object, 1 a's is lower, 2 a's is higher.
      let lo = 0,
        hi = list.length;
      let found: { pid: number; id: number } | undefined;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const c = kcmp(list[mid].pid, pid, type, 0, 0);
        if (c === 0) {
          found = list[mid];
          break;
        }
        if (c === 1) lo = mid + 1;
        else hi = mid;
      }
      if (found) {
        ids[field] = found.id;
        ids.sharedWith.set(name, found.pid);
      } else {
        ids[field] = this.next++;
        list.splice(lo, 0, { pid, id: ids[field] });
      }
    }
    this.byPid.set(pid, ids);
    return ids;
  }
}
