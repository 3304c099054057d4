// Small ids for namespaces, as CRIU numbers them in ids-N.img and the inventory's root_ids.
import fs from 'node:fs';

const KINDS: Array<[string, string]> = [
  ['pid', 'pid_ns_id'], ['net', 'net_ns_id'], ['ipc', 'ipc_ns_id'], ['uts', 'uts_ns_id'],
  ['mnt', 'mnt_ns_id'], ['user', 'user_ns_id'], ['cgroup', 'cgroup_ns_id'], ['time', 'time_ns_id'],
];

export class NsIds {
  private byIno = new Map<string, number>();
  private next = 1;

  idsOf(pid: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, field] of KINDS) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${pid}/ns/${kind}`); } catch { continue; }
      let id = this.byIno.get(link);
      if (id === undefined) { id = this.next++; this.byIno.set(link, id); }
      out[field] = id;
    }
    return out;
  }
}
