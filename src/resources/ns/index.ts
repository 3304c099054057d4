// Namespaces, one module per kind. A tree may live in namespaces of its own, which its root
// entered (CRIU's root_ns_mask: the kinds whose ids differ from the dumping criu-ts's own in
// inventory.img's root_ids); every other task must share the root's. The restore clones the
// root with those CLONE_NEW* flags and fills each namespace before the root has children.
//   pid.ts   PID namespace: the root is its init, the images keep the pids inside
//   uts.ts   host and domain name (utsns-N.img)
//   ipc.ts   IPC sysctls (ipcns-var-N.img)
//   net.ts   links (netdev.ts), addresses, routes (netdev-, netns-, ifaddr-, route-N.img)
//   mnt.ts   the mount tree and tmpfs contents (mountpoints-N.img, tmpfs-dev-N.tar.gz.img)
//   time.ts  the clocks' offsets (timens-N.img)
//   cgroup.ts where its root cgroups are (cgns_prefix in cgroup.img)
//   user.ts  uid and gid maps (userns-N.img); the images' ids are the namespace's
import fs from 'node:fs';
import { NotSupportedError } from '../../errors.ts';
import { readLink } from '../../proc/index.ts';
import type { Logger, Message } from '../types.ts';
import type { InjectionArea, Tracee } from '../../compel/index.ts';
import type { MadeMounts, MountOptions } from './mnt-tree.ts';
import { readOnlyAfterFiles, releaseMounts } from './mnt-restore.ts';
import type { NsKind, NsName, NsDumpCtx, NsImagesIn, NsRestoreCtx, NetOptions } from './types.ts';
import { IMG } from '../../images/index.ts';
import { pidNs } from './pid.ts';
import { utsNs } from './uts.ts';
import { ipcNs } from './ipc.ts';
import { netNs } from './net.ts';
import { mntNs } from './mnt.ts';
import { timeNs } from './time.ts';
import { cgroupNs } from './cgroup.ts';
import { userNs } from './user.ts';
import { inNet } from './nstool.ts';

export type { NsKind, NsName, NsDumpCtx, NsRestoreCtx, NsImagesIn, NsImagesOut, NetOptions } from './types.ts';
export { nsPid } from './pid.ts';
export { IdMaps, translateFromUserns } from './user.ts';
export { inNetOf, savesNetns } from './net.ts';
export { joinNetPath } from './types.ts';
export { checkMntns, checkFilesOnMounts, commonMountPaths, mountNamespaces, type MountOptions } from './mnt.ts';
export { mountOf } from './mnt-dump.ts';

/** Every kind, in the order their contents are restored (CRIU's: user, then uts, ipc, net, then mnt). */
export const NS_KINDS: NsKind[] = [
  // First: the other kinds' contents are filled once its maps are written.
  userNs,
  pidNs,
  utsNs,
  ipcNs,
  netNs,
  mntNs,
  cgroupNs,
  timeNs,
];

const FOR_CHILDREN: Array<[string, NsName]> = [
  ['pid_for_children', 'pid'],
  ['time_for_children', 'time'],
];

function link(pid: number, name: string): string | undefined {
  try {
    return readLink(pid, `ns/${name}`);
  } catch {
    return undefined;
  }
}

/**
 * Refuse, before anything is written, a tree whose tasks are not all in their root's
 * namespaces, that creates children in other ones, or whose root is in a namespace of its
 * own that criu-ts cannot save. `pids[0]` is the root.
 */
export function checkNamespaces(pids: number[], opts: { net?: NetOptions } = {}): void {
  const root = pids[0];
  for (const k of NS_KINDS) {
    const own = fs.readlinkSync(`/proc/self/ns/${k.name}`);
    const rootNs = link(root, k.name);
    if (rootNs === undefined) continue;
    const seen = new Set([rootNs]);
    for (const pid of pids.slice(1)) {
      const l = link(pid, k.name);
      // Namespaces below the root's own, of a kind that nests.
      if (l !== undefined && l !== rootNs && !(k.nested && rootNs !== own))
        throw new NotSupportedError(`task ${pid}: namespaces: it is in another ${k.name} namespace than the root task ${root} (${l})`);
      if (l === undefined || seen.has(l)) continue;
      seen.add(l);
      const why = k.nestedDumpRefusal?.(pid);
      if (why) throw new NotSupportedError(`task ${pid}: namespaces: ${k.name}: ${why}`);
    }
    if (rootNs === own) continue;
    const why = k.dumpRefusal(root, opts);
    if (why) throw new NotSupportedError(`task ${root}: namespaces: ${k.name}: ${why}`);
  }
  for (const pid of pids)
    for (const [forChildren, name] of FOR_CHILDREN) {
      const l = link(pid, forChildren);
      if (l !== undefined && l !== link(pid, name))
        throw new NotSupportedError(`task ${pid}: namespaces: it creates its children in another ${name} namespace`);
    }
}

/**
 * Namespaces are saved per task: a thread that left its process's (unshare or setns in that
 * thread alone) would come back in them. Why, or undefined.
 */
export function threadNamespaceProblem(pid: number, tid: number): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(`/proc/${pid}/task/${tid}/ns`);
  } catch {
    return undefined; // gone: the dump sees it
  }
  for (const name of names) {
    const mine = link(pid, name);
    let its: string | undefined;
    try {
      its = fs.readlinkSync(`/proc/${pid}/task/${tid}/ns/${name}`);
    } catch {
      continue;
    }
    if (mine !== undefined && its !== mine) return `the thread is in ${its}, its process in ${mine}`;
  }
  return undefined;
}

type Ids = Partial<Record<`${NsName}_ns_id`, number>>;

const idOf = (ids: Ids, k: NsKind): number | undefined => ids[`${k.name}_ns_id`];

/** The kinds the root has namespaces of its own of: its ids differ from the dumper's. */
function ownKinds(rootIds: Ids, dumperIds: Ids): NsKind[] {
  return NS_KINDS.filter((k) => {
    const a = idOf(rootIds, k),
      b = idOf(dumperIds, k);
    return a !== undefined && b !== undefined && a !== b;
  });
}

/** Save the contents of the root's own namespaces. */
export function dumpNamespaces(
  root: number,
  rootIds: Ids,
  dumperIds: Ids,
  ctx: Omit<NsDumpCtx, 'pid' | 'id' | 'tasks'> & { tasks: Array<{ pid: number; ids: Ids }> },
): void {
  for (const k of ownKinds(rootIds, dumperIds))
    k.dump?.({ ...ctx, pid: root, id: idOf(rootIds, k)!, tasks: ctx.tasks.map((t) => ({ pid: t.pid, id: idOf(t.ids, k)! })) });
}

/** The namespaces a restore creates for its root, checked (or refused, naming the kind) before any process exists. */
export interface NsPlan {
  kinds: NsKind[];
  /** The CLONE_NEW* flags the root is cloned with. */
  flags: number;
  rootIds: Ids;
  mounts?: MountOptions;
  net?: NetOptions;
  /** The root lives in a network namespace of its own (made, empty or joined). */
  ownNet: boolean;
  /** Of the nested kinds: a task (host pid) in each namespace made so far, by kind and id. */
  holders: Map<NsName, Map<number, number>>;
  /** The mounts made so far, kept until every task exists (releaseNamespaces). */
  made: MadeMounts;
  /** Of the nested kinds: every id a task of the tree has. */
  nestedIds: Map<NsName, Set<number>>;
  /** Of the nested kinds: the namespaces made ahead of their tasks (makeAhead), by kind and id. */
  ahead: Map<NsName, Map<number, { file: string; release(): void }>>;
  /** What the namespaces left until every task has its files (NsRestoreCtx.later). */
  later: Array<() => void>;
}

export function planNamespaces(
  root: Message<'task_kobj_ids_entry'>,
  inventory: Message<'inventory_entry'>,
  vpid: number,
  imgs: NsImagesIn,
  log: Logger,
  mounts?: MountOptions,
  net?: NetOptions,
  allIds: Ids[] = [],
): NsPlan {
  const rootIds = root as Ids;
  const kinds = ownKinds(rootIds, (inventory.root_ids ?? {}) as Ids);
  const nestedIds = new Map<NsName, Set<number>>();
  for (const k of kinds) {
    const rootId = idOf(rootIds, k)!;
    const ids = new Set([rootId, ...(k.nested ? allIds.map((i) => idOf(i, k)).filter((i) => i !== undefined) : [])]);
    if (k.nested) nestedIds.set(k.name, ids);
    for (const id of ids) {
      const why = k.restoreRefusal({ vpid, id, imgs, mounts, net, log, nested: id !== rootId });
      if (why) throw new NotSupportedError(`namespaces: ${k.name}: ${why}`);
    }
  }
  // Other --inherit-fd keys name files (pipes...): the files layer takes them.
  const flags = kinds.reduce((a, k) => a | (k.cloneFlag ? k.cloneFlag({ id: idOf(rootIds, k)!, imgs, net }) : k.cflag), 0);
  return {
    kinds,
    flags,
    rootIds,
    mounts,
    net,
    ownNet: kinds.some((k) => k.name === 'net'),
    holders: new Map(),
    made: new Map(),
    nestedIds,
    ahead: new Map(),
    later: [],
  };
}

/**
 * Make, in the helper the root is cloned from, the namespaces it enters at fork. A tree without
 * a time namespace of its own gets one too, from criu-ts's clocks at the dump (timens-0.img),
 * as CRIU does: its CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from where they were, also on
 * another machine, instead of jumping by the time between dump and restore (or back).
 */
export function prepareNamespaces(plan: NsPlan, helper: Tracee, imgs: NsImagesIn, log: Logger): void {
  for (const k of plan.kinds) k.beforeRoot?.({ helper, id: idOf(plan.rootIds, k)!, imgs, log });
  if (!plan.kinds.includes(timeNs) && fs.existsSync('/proc/self/ns/time') && imgs.all(IMG.TIMENS, 0).length)
    timeNs.beforeRoot?.({ helper, id: 0, imgs, log });
}

/** Fill the root's new namespaces (the root stopped in them, without children yet). */
export function restoreNamespaces(plan: NsPlan, ctx: Omit<NsRestoreCtx, 'id' | 'mounts' | 'net' | 'made'>): void {
  for (const k of plan.kinds) {
    const id = idOf(plan.rootIds, k)!;
    // Every namespace of a kind made ahead exists before any is filled: a link may join two.
    const ahead = new Map<number, { file: string; release(): void }>();
    if (k.makeAhead) {
      plan.ahead.set(k.name, ahead);
      for (const other of plan.nestedIds.get(k.name) ?? [])
        if (other !== id) ahead.set(other, k.makeAhead({ id: other, log: ctx.log, stub: ctx.stub }));
    }
    const nsFiles = new Map([[id, `/proc/${ctx.pid}/ns/${k.name}`], ...[...ahead].map(([i, a]) => [i, a.file] as const)]);
    const filled = new Set<number>();
    k.restore?.({ ...ctx, id, mounts: plan.mounts, net: plan.net, made: plan.made, nsFiles, filled, later: (fn) => plan.later.push(fn) });
    filled.add(id);
    if (k.nested) plan.holders.set(k.name, new Map([[id, ctx.pid]]));
    for (const [other, a] of ahead) {
      k.fillAhead?.({ id: other, file: a.file, imgs: ctx.imgs, log: ctx.log, net: plan.net, nsFiles, filled });
      filled.add(other);
    }
  }
}

/** Run `fn` in the network namespace `id` if it was made ahead of its tasks, else where criu-ts is. */
export function inAheadNet<T>(plan: NsPlan, id: number | undefined, fn: () => T): T {
  const file = aheadFile(plan, 'net', id);
  return file === undefined ? fn() : inNet(file, fn);
}

/** The file of a namespace made ahead of its tasks (undefined for the root's and the others). */
export const aheadFile = (plan: NsPlan, name: NsName, id: number | undefined): string | undefined =>
  id === undefined ? undefined : plan.ahead.get(name)?.get(id)?.file;

/**
 * A task just cloned, in the namespaces of whoever cloned it: for each nested kind, it joins
 * its namespace or makes it (enter does nothing when it is there already).
 */
export function enterNamespaces(plan: NsPlan, ctx: { stub: Tracee; area: InjectionArea; ids: Ids; imgs: NsImagesIn; log: Logger }): void {
  for (const k of plan.kinds) {
    if (!k.nested || !k.enter) continue;
    const id = idOf(ctx.ids, k);
    if (id === undefined) continue;
    const held = plan.holders.get(k.name) ?? new Map<number, number>();
    plan.holders.set(k.name, held);
    k.enter({
      stub: ctx.stub,
      area: ctx.area,
      id,
      holder: held.get(id),
      file: aheadFile(plan, k.name, id),
      imgs: ctx.imgs,
      log: ctx.log,
      mounts: plan.mounts,
      made: plan.made,
    });
    if (!held.has(id)) held.set(id, ctx.stub.tid);
  }
}

/**
 * Once every task has its files: what the namespaces left for then (the root's network
 * namespace's own netfilter rules), and the read-only mounts kept writable for the ghost
 * files on them become read-only (by a task of each one's namespace: `stubOf` its host tid).
 */
export function namespacesAfterFiles(
  plan: NsPlan,
  mntOf: Map<number, number>,
  stubOf: (tid: number) => { stub: Tracee; area: InjectionArea } | undefined,
): void {
  for (const fn of plan.later.splice(0)) fn();
  readOnlyAfterFiles(plan.made, (m) => {
    const ns = mntOf.get(m.mnt_id);
    const holder = ns === undefined ? undefined : plan.holders.get('mnt')?.get(ns);
    return holder === undefined ? undefined : stubOf(holder);
  });
}

/** Let go of what the restore of the namespaces kept for later ones, once every task exists (or the restore failed). */
export function releaseNamespaces(plan: NsPlan): void {
  releaseMounts(plan.made);
  for (const m of plan.ahead.values()) for (const a of m.values()) a.release();
  plan.ahead.clear();
}
