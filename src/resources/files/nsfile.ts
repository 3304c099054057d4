// An fd of a namespace file (/proc/PID/ns/net...: nsfs, CRIU's ns_file_entry). Namespaces are
// not restored yet: an fd of the namespace the task itself is in comes back as that of the
// namespace the restored task is in (criu-ts's), and one of another namespace is refused.
import fs from 'node:fs';
import { O } from '../../kernel/index.ts';
import { readLink } from '../../proc/index.ts';
import { NotSupportedError } from '../../errors.ts';
import { FD_TYPE, OPEN_FLAGS, fileKind } from './types.ts';

/** CLONE_NEW* of each namespace kind, as ns_cflag holds it. */
const CFLAG: Record<string, number> = {
  mnt: 0x00020000,
  cgroup: 0x02000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  net: 0x40000000,
  time: 0x00000080,
};
const LINK = /^(\w+):\[\d+\]$/;

export const nsFile = fileKind({
  type: FD_TYPE.NS,
  field: 'nsf',
  name: 'namespace file',
  claims: { flags: OPEN_FLAGS },
  matches: (p) => {
    const m = LINK.exec(p.link);
    return m !== null && m[1] in CFLAG;
  },
  dump(p, id, ctx) {
    const kind = LINK.exec(p.link)![1];
    let own: string | undefined;
    try {
      own = readLink(p.pid, `ns/${kind}`);
    } catch {
      own = undefined;
    }
    if (own !== p.link)
      throw new NotSupportedError(`task ${p.pid}: fd ${p.fd} (${p.link}) is a namespace other than its own ${kind} namespace`);
    return { id, ns_id: ctx.nsIdOf(p.pid, kind) ?? 0, ns_cflag: CFLAG[kind], flags: p.flags };
  },
  open(e, ctx) {
    const kind = Object.keys(CFLAG).find((k) => CFLAG[k] === e.ns_cflag);
    if (!kind) throw new NotSupportedError(`files.img: namespace file ${e.id} of an unknown kind (ns_cflag 0x${e.ns_cflag.toString(16)})`);
    return ctx.keep(fs.openSync(`/proc/self/ns/${kind}`, (e.flags & ~(O.CREAT | O.TRUNC)) | O.CLOEXEC));
  },
});
