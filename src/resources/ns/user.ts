// User namespace: its uid and gid maps (userns-N.img, CRIU's extents as /proc/PID/uid_map
// shows them to criu-ts: first id inside, first id outside, count). Every id the images keep
// is the namespace's (CRIU's userns_uid): the dump translates what the kernel shows criu-ts,
// the restore translates back what criu-ts applies from outside; the credentials stay the
// namespace's, as the tasks set them from inside. The restore clones the root with
// CLONE_NEWUSER together with the other kinds (so that they belong to the new namespace),
// and criu-ts writes the maps before anything else happens in it.
import fs from 'node:fs';
import path from 'node:path';
import { CLONE } from '../../kernel/index.ts';
import { parseMountinfo } from '../../proc/index.ts';
import { IMG, ImageError, mapIds, type IdKind, type Message } from '../../images/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { NsImagesIn, NsKind } from './types.ts';

type Extent = Message<'uid_gid_extent'>;
type UsernsEntry = Message<'userns_entry'>;

/** The kernel's limit on the lines of a map (UID_GID_MAP_MAX_EXTENTS). */
const MAX_EXTENTS = 340;
/** (u32)-1: no id (an unset loginuid); the same in every namespace. */
const NO_ID = 0xffffffff;

/** A map of /proc/PID/uid_map or gid_map, as criu-ts reads it. */
export function readIdMap(pid: number, file: 'uid_map' | 'gid_map'): Extent[] {
  const text = fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [first, lower_first, count] = l.trim().split(/\s+/).map(Number);
      return { first, lower_first, count };
    });
}

/** Why a map cannot be written to a new namespace (the kernel's rules), or nothing. */
export function badExtents(exts: Extent[]): string | undefined {
  if (exts.length === 0) return 'no extent';
  if (exts.length > MAX_EXTENTS) return `${exts.length} extents, more than the kernel's ${MAX_EXTENTS}`;
  for (const [i, e] of exts.entries()) {
    if (!(e.count > 0)) return `extent ${i}: count ${e.count}`;
    if (e.first + e.count > 2 ** 32 || e.lower_first + e.count > 2 ** 32)
      return `extent ${i}: ${e.first} ${e.lower_first} ${e.count} runs past 2^32`;
    for (const [j, o] of exts.entries()) {
      if (j <= i) continue;
      if (e.first < o.first + o.count && o.first < e.first + e.count) return `extents ${i} and ${j} overlap inside`;
      if (e.lower_first < o.lower_first + o.count && o.lower_first < e.lower_first + e.count)
        return `extents ${i} and ${j} overlap outside`;
    }
  }
  return undefined;
}

const through = (exts: Extent[], id: number, from: 'first' | 'lower_first', to: 'first' | 'lower_first'): number | undefined => {
  if (id === NO_ID) return id;
  const e = exts.find((x) => x[from] <= id && id < x[from] + x.count);
  return e && e[to] + (id - e[from]);
};

/** A tree's user namespace maps: ids inside it ↔ criu-ts's. */
export class IdMaps {
  readonly entry: UsernsEntry;
  constructor(entry: UsernsEntry) {
    this.entry = entry;
  }

  static of(pid: number): IdMaps {
    return new IdMaps({ uid_map: readIdMap(pid, 'uid_map'), gid_map: readIdMap(pid, 'gid_map') });
  }

  private exts(kind: IdKind): Extent[] {
    return kind === 'uid' ? this.entry.uid_map : this.entry.gid_map;
  }

  /** An image's message with its ids as the namespace sees them; an id it cannot see is refused. */
  toNs<T>(name: string, entry: T): T {
    return mapIds(name, entry, (kind, id, path) => {
      const v = through(this.exts(kind), id, 'lower_first', 'first');
      if (v === undefined)
        throw new NotSupportedError(`user namespace: ${path}: ${kind} ${id} is not mapped into the tree's user namespace`);
      return v;
    });
  }

  /** Back to criu-ts's ids, but for what the tasks apply from inside (INSIDE). */
  toHost<T>(name: string, entry: T, file: string): T {
    return mapIds(
      name,
      entry,
      (kind, id, path) => {
        const v = through(this.exts(kind), id, 'first', 'lower_first');
        if (v === undefined) throw new ImageError(file, `${path}: ${kind} ${id} is outside the user namespace's map`);
        return v;
      },
      INSIDE,
    );
  }
}

/** What the tasks apply from inside: their credentials and loginuid, and the mounts the root makes. */
const INSIDE = new Set(['creds_entry', 'task_core_entry', 'mnt_entry']);

const mapLines = (exts: Extent[]): string => exts.map((e) => `${e.first} ${e.lower_first} ${e.count}\n`).join('');

function checkImage(imgs: NsImagesIn, id: number): UsernsEntry {
  const e = imgs.one(IMG.USERNS, id);
  for (const [what, exts] of [
    ['uid_map', e.uid_map],
    ['gid_map', e.gid_map],
  ] as const) {
    const why = badExtents(exts);
    if (why) throw new ImageError(`userns-${id}.img`, `${what}: ${why}`);
  }
  return e;
}

/**
 * The root's new user namespace gets its maps (written once each, from outside, as the
 * kernel allows). The root keeps criu-ts's ids meanwhile, with every capability in its
 * namespace: it mounts, and reaches host paths, as criu-ts's user; the tasks' own
 * credentials come last.
 */
function setUp(pid: number, e: UsernsEntry): void {
  for (const [file, exts] of [
    ['uid_map', e.uid_map],
    ['gid_map', e.gid_map],
  ] as const) {
    try {
      fs.writeFileSync(`/proc/${pid}/${file}`, mapLines(exts));
    } catch (err) {
      throw new CriuError(`user namespace: cannot write /proc/${pid}/${file}: ${(err as Error).message}`);
    }
  }
}

export const userNs: NsKind = {
  name: 'user',
  cflag: CLONE.NEWUSER,
  dumpRefusal: (root) => {
    const m = IdMaps.of(root);
    const why = badExtents(m.entry.uid_map) ?? badExtents(m.entry.gid_map);
    if (why) return `its maps cannot be made again: ${why}`;
    // CRIU's images have no place for it: the namespace would come back allowing setgroups().
    if (fs.readFileSync(`/proc/${root}/setgroups`, 'utf8').trim() === 'deny')
      return 'its /proc/PID/setgroups is "deny", which CRIU\'s images cannot keep';
    const sysfs = freshSysfs(root);
    if (sysfs)
      return `the sysfs at ${sysfs} would have to be mounted anew inside it, which the kernel refuses while the host's /sys is covered`;
    return undefined;
  },
  dump: ({ pid, id, imgs, log }) => {
    const m = IdMaps.of(pid);
    log.info(`user namespace ${id}: ${m.entry.uid_map.length} uid and ${m.entry.gid_map.length} gid extent(s) to userns-${id}.img`);
    imgs.one(IMG.USERNS, id, m.entry);
  },
  restoreRefusal: ({ id, imgs }) => {
    checkImage(imgs, id);
    return undefined;
  },
  restore: ({ pid, id, imgs, log }) => {
    const e = checkImage(imgs, id);
    setUp(pid, e);
    log.info(`user namespace ${id}: uid_map and gid_map written to task ${pid}`);
  },
};

/**
 * A sysfs of the root's mount namespace whose superblock criu-ts's namespace does not mount (a
 * container's own, of its network namespace): the restore would mount it anew from inside the
 * new user namespace, which the kernel allows only beside a fully visible sysfs.
 */
function freshSysfs(root: number): string | undefined {
  const devs = (pid: number | 'self') =>
    parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).filter((m) => m.fstype === 'sysfs');
  const host = new Set(devs('self').map((m) => `${m.major}:${m.minor}`));
  return devs(root).find((m) => !host.has(`${m.major}:${m.minor}`))?.mountPoint;
}

/**
 * Before a restore reads anything else: when the root was in a user namespace of its own,
 * the images' ids are the namespace's, and `imgs.ids` turns those criu-ts applies from
 * outside back into its own. A bad map is refused here, naming its image.
 */
export function translateFromUserns(imgs: NsImagesIn & { dir: string; ids?: <T>(m: string, e: T, file: string) => T }): void {
  const root = imgs.all(IMG.PSTREE)[0]?.entry;
  if (!root) return;
  const own = imgs.one(IMG.INVENTORY).root_ids?.user_ns_id;
  // A root whose ids image is missing (or whose pid is absurd) is the plan's to refuse, naming it.
  if (!fs.existsSync(path.join(imgs.dir, `ids-${root.pid}.img`))) return;
  const id = imgs.one(IMG.IDS, root.pid).user_ns_id;
  if (id === undefined || own === undefined || id === own) return;
  const m = new IdMaps(checkImage(imgs, id));
  imgs.ids = (name, e, file) => m.toHost(name, e, file);
}
