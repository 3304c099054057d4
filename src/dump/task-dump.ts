// One task of a dump: its core, memory, files and the rest, once the tree is frozen and its
// injection area mapped (collectAndWrite in dump.ts calls it for each task).
import { closing, IMG } from '../images/index.ts';
import { readStatus, type Vma, type Stat, readLink } from '../proc/index.ts';
import { SIG } from '../kernel/index.ts';
import type { InjectionArea } from '../compel/index.ts';
import type { CpuFacts } from '../resources/cpu/index.ts';
import { NotSupportedError, faultPoint } from '../errors.ts';
import { checkInterrupt, hangPoint } from '../interrupt.ts';
import {
  dumpCoreEntry,
  readSecbits,
  dumpTaskCore,
  checkSharing,
  dumpPdeathSig,
  dumpAffinity,
  type SeccompDump,
  type FrozenThread,
} from '../resources/task/index.ts';
import { dumpMm, type ParentTrack } from '../resources/mm/index.ts';
import { dumpFs } from '../resources/fs.ts';
import { dumpFds, fdHolding, type FileIdentity, type DumpFileCtx } from '../resources/files/index.ts';
import { dumpFileLocks } from '../resources/files/locks.ts';
import type { FrozenTask } from './freeze.ts';
import type { ImageSet } from './imgset.ts';
import type { DumpFileTable } from './filetable.ts';
import type { NsIds, KobjIds } from './nsids.ts';
import { inNetOf } from '../resources/ns/index.ts';
import type { DumpShared } from './shared.ts';
import type { CgroupDump } from '../resources/cgroups.ts';
import type { DumpTask, ParentMm } from '../resources/types.ts';
import { step, debugOn, vmaLine, fdLine, ms } from '../log.ts';

import type { DumpRequest } from './dump.ts';
import { now } from '../lazy.ts';

/** Bytes of anonymous memory the VMAs hold (smaps), to size the page data ahead. */
export const anonBytes = (vmas: Vma[]): number => vmas.reduce((a, v) => a + (v.anonymous ?? 0) * 1024, 0);

/** A live task frozen for the dump, with what it looked like before we touched it. */
export interface LiveTask extends FrozenTask {
  snaps: FrozenThread[];
  /** What its children's memory dumps read of it (ParentMm). */
  asParent?: ParentMm;
  vmas: Vma[];
  stat: Stat;
  area?: InjectionArea;
  vdsoInsn: bigint;
}

export type Task = LiveTask | FrozenTask;

export const isLive = (t: Task): t is LiveTask => !t.zombie;

export interface Shared {
  seccomp: SeccompDump;
  locksSeen: Set<string>;
  live: Map<number, LiveTask>;
  files: DumpFileTable;
  identity: FileIdentity;
  fileCtx: DumpFileCtx;
  kobj: KobjIds;
  ns: NsIds;
  cpuFacts: CpuFacts;
  objects: DumpShared;
  cgroups: CgroupDump;
  /** A task's or thread's pid in the images: the one in its own PID namespace. */
  vpid: (pid: number) => number;
  /** The root, when the tree has a network namespace of its own: its sockets are looked at from there. */
  netRoot?: number;
  /** The parent dump's memory tracking (--prev-images-dir), while it holds. */
  prevTrack?: ParentTrack;
}

export function dumpTask(
  req: DumpRequest,
  t: LiveTask,
  imgs: ImageSet,
  sh: Shared,
  writtenFdTables: Set<number>,
): { pagesWritten: number; pagesScanned: number; pagesSkippedParent: number; memdumpMs: number } {
  const { pid } = t;
  const { log } = req;
  const area = t.area!;
  const leader = t.threads[0];
  const status = readStatus(pid);
  const parent = sh.live.get(t.ppid);
  const task: DumpTask = {
    pid,
    leader,
    threads: t.threads,
    area,
    stat: t.stat,
    status,
    vmas: t.vmas,
    files: sh.files,
    log,
    shared: sh.objects,
    // PE_COW_PARENT is criu-ts's own flag: CRIU's page server protocol has no room for it.
    ...(parent && !req.pageServer ? { parent: (parent.asParent ??= { pid: parent.pid, vmas: parent.vmas, pagemaps: new Map() }) } : {}),
    ...sh.prevTrack?.parentOf(pid, sh.vpid(pid), t.vmas, log),
    socketFile: (ino) => {
      const fd = fdHolding(pid, `socket:[${ino}]`);
      if (fd === undefined)
        throw new NotSupportedError(`task ${pid} maps socket ${ino}, which none of its fds holds (CRIU refuses it too)`);
      return sh.fileCtx.fileId(pid, fd);
    },
  };
  const ids = sh.kobj.idsOf(pid);
  checkSharing(pid, t.ppid, ids, sh.kobj.known(t.ppid));

  // Memory first: it is the bulk, and the mm fields need injected calls in the leader.
  step(log, `task ${pid}: memory, ${task.vmas.length} VMAs, to mm-${pid}.img and pagemap-${pid}.img`);
  faultPoint('memory');
  if (debugOn(log))
    for (const v of task.vmas) log.debug(vmaLine(v.start, v.end, v.prot, v.shared, v.path + (v.deleted ? ' (deleted)' : '')));
  const tMem = now();
  const vpid = sh.vpid(pid);
  const pm = imgs.pagemap(vpid, anonBytes(task.vmas));
  const exe = readLink(pid, 'exe');
  const { mm, stats } = closing(pm, () => dumpMm(task, pm, exe));
  imgs.one(IMG.MM, vpid, mm);
  const memdumpMs = now() - tMem;
  log.debug(
    `task ${pid}: ${stats.pagesScanned} pages scanned, ${stats.pagesWritten} written, ${stats.pagesInherited} shared copy-on-write with the parent (saved with it), ${stats.pagesSkippedParent} in the parent dump, in ${ms(tMem)}`,
  );

  faultPoint('files');
  checkInterrupt();
  hangPoint('files');
  if (!writtenFdTables.has(ids.files_id)) {
    writtenFdTables.add(ids.files_id);
    step(log, `task ${pid}: files to fdinfo-${ids.files_id}.img and files.img`);
    const fdinfo = inNetOf(sh.netRoot, () => dumpFds(pid, sh.files, sh.identity, sh.fileCtx));
    if (debugOn(log))
      for (const e of fdinfo)
        log.debug(
          fdLine(
            e,
            sh.files.entries.find((f) => f.id === e.id),
          ),
        );
    for (const e of fdinfo) imgs.add(IMG.FDINFO, ids.files_id, e);
    if (fdinfo.length) imgs.closeImage(IMG.FDINFO, ids.files_id);
    else imgs.empty(IMG.FDINFO, ids.files_id);
    if (req.fileLocks) {
      const locks = dumpFileLocks(pid, new Map(fdinfo.map((e) => [e.fd, e.id])), sh.locksSeen);
      if (locks.length) step(log, `task ${pid}: ${locks.length} file lock(s) to filelocks.img`);
      for (const e of locks) imgs.add(IMG.FILE_LOCKS, { ...e, pid: vpid });
    }
  } else log.debug(`task ${pid}: its fd table is shared (fdinfo-${ids.files_id}.img)`);
  step(log, `task ${pid}: cwd, root and umask to fs-${pid}.img`);
  imgs.one(IMG.FS, vpid, dumpFs(pid, status.umask, sh.files));
  step(
    log,
    `task ${pid}: signal actions, timers, rlimits, pending signals; registers and credentials of ${t.snaps.length} thread(s) to core-*.img`,
  );

  const secbits = readSecbits(leader);
  const tc = dumpTaskCore(task, t.snaps[0].sigmask, t.stopped ? (leader.stopSignal() ?? SIG.STOP) : undefined);
  const seccomp = sh.seccomp.collect(
    pid,
    t.snaps.map((s) => s.tracee.tid),
  );
  for (const snap of t.snaps) {
    const th = snap.tracee;
    const isLeader = th === leader;
    if (!isLeader) th.useInjectionPage(area.base);
    const thStatus = isLeader ? status : readStatus(pid, th.tid);
    const core = dumpCoreEntry(snap, area, sh.cpuFacts, thStatus, secbits, isLeader ? tc : undefined);
    const affinity = dumpAffinity(th);
    core.thread_core = {
      ...core.thread_core!,
      ...seccomp.get(th.tid),
      pdeath_sig: dumpPdeathSig(th, area),
      cg_set: sh.cgroups.threadSet(pid, th.tid),
      ...(affinity ? { cpu_affinity: affinity } : {}),
    };
    imgs.one(IMG.CORE, sh.vpid(th.tid), core);
  }
  imgs.one(IMG.IDS, vpid, {
    vm_id: ids.vm_id,
    files_id: ids.files_id,
    fs_id: ids.fs_id,
    sighand_id: ids.sighand_id,
    ...sh.ns.idsOf(pid),
  });
  log.debug(`task ${pid}: ids-${pid}.img: vm ${ids.vm_id}, files ${ids.files_id}, fs ${ids.fs_id}, sighand ${ids.sighand_id}`);
  return { ...stats, memdumpMs };
}
