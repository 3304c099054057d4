// What a restore carries from stage to stage: its request, its images, the tasks made so far.
import type { InjectionArea, Tracee } from '../compel/index.ts';
import type { CpuFacts } from '../resources/cpu/index.ts';
import type { ShmemObjects } from '../resources/mm/index.ts';
import type { SessionRestore } from '../resources/task/index.ts';
import type { CgroupRestore } from '../resources/cgroups.ts';
import type { GhostRestore } from '../resources/files/ghost.ts';
import type { RestoreFileCtx, FileEntry } from '../resources/files/index.ts';
import type { NsPlan } from '../resources/ns/index.ts';
import type { DumpImages } from './images.ts';
import type { LivePlan, TaskPlan } from './plan.ts';
import type { Helper } from './stub.ts';

import type { RestoreRequest } from './restore.ts';

/** A task being rebuilt: its stub and its threads, all stopped and traced. */
export interface Live<P extends TaskPlan = TaskPlan> {
  plan: P;
  leader: Tracee;
  threads: Map<number, Tracee>;
  area: InjectionArea;
}

export const isLive = (l: Live): l is Live<LivePlan> => !l.plan.zombie;
export const liveMm = (tasks: TaskPlan[]) => tasks.flatMap((t) => (t.zombie ? [] : [t.mm]));

export interface Ctx {
  req: RestoreRequest;
  imgs: DumpImages;
  /** Every task in pstree order, zombies too. */
  tasks: TaskPlan[];
  live: Map<number, Live>;
  /** Every PID this restore made, killed if it fails. */
  created: number[];
  /** Where criu-ts finds the tree's files once its mount namespace exists: /proc/ROOT/root. */
  nsRoot?: boolean;
  /** Which mount namespace (its id) each mount id of the images is in. */
  mntOf: Map<number, number>;
  /** The process the root is cloned from, until FORKING is over. */
  helper?: Helper;
  sessions: SessionRestore;
  /** Tasks that share their parent's mm (CLONE_VM): no memory of their own to restore. */
  sharedVm: Set<number>;
  /** The injection area as seen by a tracee of this restore. */
  scratchOf(t: Tracee): InjectionArea;
  /** fd tables and fs_structs already restored (shared ones are restored once). */
  doneTables: Set<string>;
  /** Open files whose after-install step (epoll targets) is done. */
  installedOnce: Set<number>;
  shmem: ShmemObjects;
  shmemSize: Map<bigint, bigint>;
  files: Map<number, FileEntry>;
  cpuFacts: CpuFacts;
  fileCtx: RestoreFileCtx;
  /** Deleted files made again for the restore, unlinked once every task holds them. */
  ghosts: GhostRestore;
  /** Processes standing at the pids of dead processes whose /proc/PID the tasks open (standIns). */
  standIns: number[];
  /** Those in the tree's new PID namespace: children of its init, which reaps them. */
  nsStandIns: Array<{ tracee: Tracee; pid: number }>;
  locals: Map<number, number>;
  opened: number[];
  /** The fd kinds' work once every fd is open (RestoreFileCtx.beforeRelease). */
  releaseHooks: Array<() => void>;
  /** Remove the dump's network lock (before TCP repair goes off: its window probe must reach the peer). */
  /** Remove the dump's network lock; `done`: the tree is back (a lock of its whole namespace goes too). */
  unlockNetwork: (done?: boolean) => void;
  /** How long FORKING took (stats-restore). */
  forkMs: number;
  cgroups: CgroupRestore;
  /** The namespaces the root is born in, and their contents. */
  ns: NsPlan;
  /** The root's pid in criu-ts's PID namespace, once created. */
  rootHost: number;
  treeIds?: Set<number>;
}
