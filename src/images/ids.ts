// The uids and gids an image keeps. A tree in a user namespace of its own is saved as CRIU
// saves it: every id as the namespace sees it (CRIU's userns_uid/userns_gid), while the
// kernel shows criu-ts the host's. The walk below finds each one, however deeply nested, so
// that the dump and the restore translate them in one place.
import { messages } from './schema/index.ts';
import type { FieldDef, MessageDef } from './proto.ts';

export type IdKind = 'uid' | 'gid';
/**
 * A field of ids: one, a list of them, a mount's options string with `uid=N` and `gid=N`, or
 * sysctl entries whose strings are a range of gids (net.ipv4.ping_group_range, CRIU's only
 * ipv4_sysctl: "LOW\tHIGH"; its default "1 0", no gid at all, stays as it is).
 */
type IdField = IdKind | 'options' | 'gidRange';

/**
 * Every message field that CRIU keeps as the namespace's id, by message name. CRIU keeps
 * others as the kernel shows them to the dumper (fown_entry, sk_ucred_entry, cgroup_perms),
 * and so does criu-ts, which applies them from outside.
 */
const ID_FIELDS: Record<string, Record<string, IdField>> = {
  creds_entry: {
    uid: 'uid',
    euid: 'uid',
    suid: 'uid',
    fsuid: 'uid',
    gid: 'gid',
    egid: 'gid',
    sgid: 'gid',
    fsgid: 'gid',
    groups: 'gid',
  },
  task_core_entry: { loginuid: 'uid' },
  ghost_file_entry: { uid: 'uid', gid: 'gid' },
  memfd_inode_entry: { uid: 'uid', gid: 'gid' },
  tty_info_entry: { uid: 'uid', gid: 'gid' },
  ipc_desc_entry: { uid: 'uid', gid: 'gid', cuid: 'uid', cgid: 'gid' },
  file_perms_entry: { uid: 'uid', gid: 'gid' },
  mnt_entry: { options: 'options' },
  netns_entry: { ipv4_sysctl: 'gidRange' },
};

const defs = messages as unknown as Record<string, MessageDef>;

/** Whether a message (or one nested in it) holds ids, memoised by name. */
const holds = new Map<string, boolean>();
function holdsIds(name: string, seen = new Set<string>()): boolean {
  const known = holds.get(name);
  if (known !== undefined) return known;
  if (seen.has(name)) return false;
  seen.add(name);
  const def = defs[name];
  const r = !!ID_FIELDS[name] || (!!def && def.fields.some((f) => f.type === 'message' && !!f.ref && holdsIds(f.ref, seen)));
  holds.set(name, r);
  return r;
}

/**
 * `entry`, a `name` message, with `fn` applied to every id (nested messages too), copied
 * where it changes; `path` names the field for an error. `skip` lists messages left as they are.
 */
export function mapIds<T>(
  name: string,
  entry: T,
  fn: (kind: IdKind, id: number, path: string) => number,
  skip: ReadonlySet<string> = new Set(),
): T {
  if (!entry || typeof entry !== 'object' || skip.has(name) || !holdsIds(name)) return entry;
  const obj: Record<string, unknown> = { ...(entry as Record<string, unknown>) };
  const ids = ID_FIELDS[name] ?? {};
  for (const f of defs[name]?.fields ?? ([] as FieldDef[])) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    const kind = ids[f.name];
    if (kind === 'options') {
      if (typeof v === 'string')
        obj[f.name] = v.replace(
          /(^|,)(uid|gid)=(\d+)(?=,|$)/g,
          (_, pre: string, k: IdKind, n: string) => `${pre}${k}=${fn(k, Number(n), `${name}.${f.name} ${k}=`)}`,
        );
    } else if (kind === 'gidRange') {
      if (Array.isArray(v)) obj[f.name] = v.map((x: { sarg?: string }, i: number) => gidRange(x, fn, `${name}.${f.name}[${i}]`));
    } else if (kind) {
      if (Array.isArray(v)) obj[f.name] = v.map((x: number) => fn(kind, x, `${name}.${f.name}`));
      else if (typeof v === 'number') obj[f.name] = fn(kind, v, `${name}.${f.name}`);
    } else if (f.type === 'message' && f.ref) {
      const ref = f.ref;
      obj[f.name] = Array.isArray(v) ? v.map((m) => mapIds(ref, m, fn, skip)) : mapIds(ref, v, fn, skip);
    }
  }
  return obj as T;
}

function gidRange<T extends { sarg?: string }>(e: T, fn: (kind: IdKind, id: number, path: string) => number, path: string): T {
  const m = e.sarg === undefined ? null : /^(\d+)\s+(\d+)\s*$/.exec(e.sarg);
  if (!m || (m[1] === '1' && m[2] === '0')) return e;
  return { ...e, sarg: `${fn('gid', Number(m[1]), path)}\t${fn('gid', Number(m[2]), path)}` };
}
