// Dump orchestration: freeze the tree, collect every resource from outside, write the
// images, then kill or resume. If anything fails before the images are complete, every
// task is resumed exactly as it was and the partial images are removed.
import fs from 'node:fs';
import path from 'node:path';
import { IMG, type PagesCodecOptions, type MessageInput } from '../images/index.ts';
import { readStat, readStatus, readSmaps, readLink, readProcLocksAhead, type LocksRead } from '../proc/index.ts';
import { kill, waitpid, clockGettime, WALL, SIG, getpid, pidfdOpen, close } from '../kernel/index.ts';
import {
  InjectionArea,
  vdsoSyscallInsn,
  isInjectionArea,
  colocate,
  endColocation,
  unsafeWindow,
  INJECTION_SIGMASK,
  healFrame,
  RemoteSysError,
  Tracee,
} from '../compel/index.ts';
import { cpu } from '../resources/cpu/index.ts';
import { CriuError, NotSupportedError, faultPoint } from '../errors.ts';
import { checkInterrupt, hangPoint } from '../interrupt.ts';
import { freezeSnapshot, dumpZombieCore, dumpPstreeEntry, checkSessions, SeccompDump } from '../resources/task/index.ts';
import { dumpFd, FileIdentity, type DumpOutcome, type TcpMode } from '../resources/files/index.ts';
import { freezeTree, detachAll, explainDeath, refuseZombieLeader } from './freeze.ts';
import { ImageSet } from './imgset.ts';
import { PageServerClient, type PageServerAddress } from '../migrate/page-client.ts';
import { DumpFileTable } from './filetable.ts';
import { GhostDump } from '../resources/files/ghost.ts';
import { NsIds, KobjIds } from './nsids.ts';
import {
  dumpNamespaces,
  IdMaps,
  nsPid,
  checkMntns,
  checkFilesOnMounts,
  mountOf,
  inNetOf,
  savesNetns,
  type MountOptions,
  type NetOptions,
} from '../resources/ns/index.ts';
import { DumpShared } from './shared.ts';
import { CgroupFreezer } from './cgfreezer.ts';
import { CgroupDump } from '../resources/cgroups.ts';
import { checkClaims, checkInjectedClaims } from './claims.ts';
import { DumpJournal } from './journal.ts';
import { lockMethodCode, lockTreeNetns } from '../resources/net/netlock.ts';
import { prestartGuard } from '../resources/net/tcp.ts';
import type { Logger } from '../resources/types.ts';
import { step, debugOn, ms } from '../log.ts';
import { writeDumpStats } from './stats.ts';
import type { RunAction } from '../actions.ts';
import { startHelper, killHelper } from '../restore/stub.ts';

import { type LiveTask, type Task, isLive, type Shared, dumpTask, anonBytes } from './task-dump.ts';
import { linkParent, preDumpMemory } from './predump.ts';
import { armTracking, type ParentTrack } from '../resources/mm/index.ts';
import { now } from '../lazy.ts';
export interface DumpRequest {
  pid: number;
  dir: string;
  workDir: string;
  leaveRunning: boolean;
  shellJob: boolean;
  timeoutSec: number;
  log: Logger;
  /** Compress and/or encrypt the page data. */
  pages?: PagesCodecOptions;
  /** Freeze with this cgroup's freezer (--freeze-cgroup). */
  freezeCgroup?: string;
  /** Save the file locks the tree holds (--file-locks); without it they refuse the dump. */
  fileLocks?: boolean;
  /** Largest deleted file saved, in bytes of its blocks (--ghost-limit). */
  ghostLimit?: number;
  /** A deleted file with other names is saved by a link to it (--link-remap). */
  linkRemap?: boolean;
  /** --force-irmap with its --irmap-scan-path dirs ([]: CRIU's defaults). */
  irmap?: readonly string[];
  /** --ext-unix-sk: datagram sockets may be connected to a named socket outside the tree. */
  extUnixSk?: boolean;
  /** Action scripts: pre-dump, query-ext-files once frozen, post-dump once the images are written. */
  actions?: RunAction;
  /** --tcp-established, --tcp-close, --skip-in-flight */
  tcp?: TcpMode;
  /** --manage-cgroups (any mode but ignore): cgroup.img also holds the controllers' dirs and properties. */
  manageCgroups?: boolean;
  /** --cgroup-yard: where the cgroup hierarchies are mounted. */
  cgroupYard?: string;
  /** External mounts of the tree's mount namespace (--external mnt[MOUNTPOINT]:KEY). */
  mounts?: MountOptions;
  /** Its network namespace left empty (--empty-ns net) or external (--external net[INO]:KEY). */
  net?: NetOptions;
  /** pre-dump: the memory only; the tree runs on with its memory tracked. */
  pre?: boolean;
  /** --prev-images-dir: the parent dump (relative to `dir`), whose pages are not saved again. */
  prevImagesDir?: string;
  /** --page-server --address --port: page data goes there, every other image to `dir`. */
  pageServer?: PageServerAddress;
  /** --track-mem: a dump that leaves the tree running (-R) tracks its memory for the next one. */
  trackMem?: boolean;
}

type EndHook = (how: DumpOutcome) => void;

/** The fd kinds' end-of-dump work, last registered first (a socket's repair off before its copy closes). */
function runEndHooks(hooks: EndHook[], how: DumpOutcome, log: Logger): void {
  for (const h of hooks.splice(0).reverse()) {
    try {
      h(how);
    } catch (e) {
      log.error(`at the end of the dump: ${(e as Error).message}`);
    }
  }
}

export interface DumpResult {
  tasks: number;
  pagesWritten: number;
  pagesScanned: number;
  frozenMs: number;
  freezingMs: number;
  /** Pages of shared memory (MAP_SHARED anonymous, memfd), in pages-*.img as well. */
  shpagesWritten: number;
  memdumpMs: number;
  /** Pages not saved again: in the parent dump, not written since. */
  pagesSkippedParent?: number;
  pagesPlainBytes?: number;
  pagesStoredBytes?: number;
}

const PF_KTHREAD = 0x00200000;

function validateTarget(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new CriuError(`invalid pid ${pid}`);
  if (pid === getpid()) throw new CriuError('criu-ts cannot dump itself');
  let stat;
  try {
    stat = readStat(pid);
  } catch {
    throw new CriuError(`no process with pid ${pid}`);
  }
  if (stat.flags & PF_KTHREAD) throw new CriuError(`pid ${pid} is a kernel thread and cannot be dumped`);
  if (stat.state === 'Z') {
    refuseZombieLeader(pid);
    throw new CriuError(`pid ${pid} is a zombie`);
  }
  // Freezing one of criu-ts's own ancestors would freeze criu-ts's parent chain.
  for (let p = readStat(getpid()).ppid, n = 0; p > 1 && n < 64; n++) {
    if (p === pid) throw new CriuError(`pid ${pid} is an ancestor of criu-ts and cannot be dumped`);
    try {
      p = readStat(p).ppid;
    } catch {
      break;
    }
  }
}

/**
 * Test hook: CRIU_TS_HANG=call-loaded or call-done holds the dump inside its
 * CRIU_TS_HANG_CALL-th (default first) injected call that heals itself (compel/heal.ts), of the
 * thread CRIU_TS_HANG_TID if set.
 */
function hangInsideCalls(): void {
  const at = process.env.CRIU_TS_HANG;
  if (at !== 'call-loaded' && at !== 'call-done') return;
  let n = 0;
  const nth = Number(process.env.CRIU_TS_HANG_CALL ?? 1);
  const only = process.env.CRIU_TS_HANG_TID ? Number(process.env.CRIU_TS_HANG_TID) : undefined;
  Tracee.inCall = (tid, phase) => {
    if (`call-${phase}` !== at || (only !== undefined && tid !== only) || ++n !== nth) return;
    process.stderr.write(`inside injected call ${n}, of thread ${tid}\n`);
    hangPoint(at);
  };
}

/**
 * Map an injection area in the leader via a syscall instruction of its vDSO. From here on,
 * every thread holds its own registers and signal mask between injected calls, so that
 * criu-ts can die at any moment outside one without taking the task with it, and once the
 * area is there its calls heal themselves (compel/heal.ts): criu-ts can die inside one too.
 */
function prepareInjection(t: LiveTask, log: Logger): void {
  const leader = t.threads[0];
  const insn = vdsoSyscallInsn(leader, t.vmas, `task ${t.pid}`);
  t.vdsoInsn = insn;
  for (const s of t.snaps) s.tracee.keepOwnState(s.cpu.regs, s.sigmask, s.cpu.vector ? () => cpu.thawVector?.(s.tracee, s.cpu) : undefined);
  leader.useSyscallInsn(insn);
  checkInjectedClaims([t], 'regs');
  try {
    t.area = InjectionArea.map(leader);
  } catch (e) {
    // memory-deny-write-execute refuses the area: the probe names it (one injected call
    // that cannot heal itself fewer in every other dump).
    if (e instanceof RemoteSysError && e.code === 'EACCES') checkInjectedClaims([t], 'early');
    throw e;
  }
  const facts = cpu.facts(t.area);
  const slot = t.area.healSlot();
  for (const s of t.snaps) {
    const th = s.tracee;
    const frame = healFrame(slot.at, {
      regs: s.cpu.regs,
      mask: s.sigmask,
      fpregs: s.cpu.fpregs,
      vector: s.cpu.vector,
      ...cpu.healExtras(th, facts),
    });
    if (!frame || !th.healWith(t.area.healCode, slot, frame))
      log.debug(`thread ${th.tid}: no heal frame fits its state; its injected calls cannot heal themselves`);
  }
  // An area that a criu-ts killed in the middle of a dump left there (its journal lost) is
  // not the task's memory: it goes, and is not dumped.
  const stale = t.vmas.filter((v) => v.prot === 7 && !v.path && isInjectionArea(t.pid, v.start, v.end - v.start));
  for (const v of stale) leader.syscall('munmap', v.start, v.end - v.start);
  if (stale.length) t.vmas = t.vmas.filter((v) => !stale.includes(v));
}

/** Put every thread back exactly as frozen: unmap our area, restore regs and masks, detach. */
function thaw(t: LiveTask, log: Logger): void {
  const leader = t.threads[0];
  try {
    if (t.area) {
      leader.useSyscallInsn(t.vdsoInsn);
      leader.lastSyscall(t.snaps[0].cpu.regs, 'munmap', t.area.base, t.area.size);
    }
  } catch (e) {
    log.error(`cannot remove the injection area of ${t.pid}: ${(e as Error).message}`);
  }
  for (const s of t.snaps) {
    try {
      s.tracee.dropOwnState();
      cpu.thaw(s.tracee, s.cpu);
      // Injected syscalls resumed a task that was stopped; stop it again before any of its
      // signals can be handled.
      if (t.stopped && s.tracee === leader) {
        leader.setSigmask(INJECTION_SIGMASK);
        leader.enterGroupStop(t.pid, leader.stopSignal() ?? SIG.STOP);
      }
      s.tracee.setSigmask(s.sigmask);
    } catch (e) {
      log.error(`cannot restore the state of thread ${s.tracee.tid}: ${(e as Error).message}`);
    }
  }
  detachAll(t.threads);
}

function killTree(tasks: Task[]): void {
  for (const t of tasks) for (const th of t.threads) th.release();
  for (const t of tasks)
    if (isLive(t)) {
      try {
        kill(t.pid, SIG.KILL);
      } catch {
        /* gone */
      }
    }
  // Collect the tracer's exit notifications; the real parents reap the processes. Children
  // first: a PID namespace's init is reported only once the rest of its namespace is gone.
  for (const t of [...tasks].reverse())
    for (const th of [...t.threads].reverse()) {
      try {
        waitpid(th.tid, WALL);
      } catch {
        /* gone */
      }
    }
}

/** A random (version 4) UUID from /dev/urandom: node:crypto costs more to load than this dump takes. */
function randomUuid(): string {
  const b = Buffer.alloc(16);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    fs.readSync(fd, b, 0, 16, null);
  } finally {
    fs.closeSync(fd);
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Anonymous bytes smaps counts in these VMAs: about the page data their dump writes. */

export function dump(req: DumpRequest): DumpResult {
  // A pre-dump runs no action scripts, as CRIU's (runc takes a notification for the end of a dump).
  if (req.pre) req = { ...req, actions: undefined };
  // Every injected syscall is a stop and a resume, cheaper with tracer and tracee on one CPU
  // (36 against 44-50 us here; colocate.ts).
  colocate();
  try {
    return dumpColocated(req);
  } finally {
    endColocation();
  }
}

function dumpColocated(req: DumpRequest): DumpResult {
  const { pid, log } = req;
  validateTarget(pid);
  req.actions?.('pre-dump');
  // Before anything is frozen or written: a page server that is not there fails the dump at once.
  const pageServer = req.pageServer ? new PageServerClient(req.pageServer) : undefined;
  const createdDir = !fs.existsSync(req.dir);
  fs.mkdirSync(req.dir, { recursive: true, mode: 0o700 });
  const t0 = now();
  const imgs = new ImageSet(req.dir, { pages: req.pages, pageServer });
  const journal = new DumpJournal(req.dir, createdDir, req.freezeCgroup);
  const runId = randomUuid();
  const prevTrack = req.prevImagesDir ? linkParent(req.dir, req.prevImagesDir, log) : undefined;
  let untrack: (() => void) | undefined;
  let tasks: Task[] = [];
  let result: DumpResult;
  const endHooks: EndHook[] = [];
  let procLocks: LocksRead | undefined;
  unsafeWindow.calls = 0;
  unsafeWindow.ms = 0;
  hangInsideCalls();
  try {
    if (req.tcp?.established && !req.pre) prestartGuard((fn) => endHooks.push(fn));
    const freezer = req.freezeCgroup ? new CgroupFreezer(req.freezeCgroup) : undefined;
    step(log, `freezing the tree of ${pid}${freezer ? ` with the freezer of ${req.freezeCgroup}` : ''} (timeout ${req.timeoutSec} s)`);
    tasks = freezeTree(pid, Date.now() + req.timeoutSec * 1000, freezer);
    procLocks = readProcLocksAhead();
    logTree(log, tasks, t0);
    for (const t of tasks) {
      if (!isLive(t)) continue;
      t.snaps = t.threads.map(freezeSnapshot);
      t.stat = readStat(t.pid);
    }
    journal.tasks(tasks.filter(isLive).map((t) => ({ pid: t.pid, startTime: t.stat.startTime })));
    faultPoint('freeze');
    req.actions?.('query-ext-files');
    checkInterrupt();
    // The VMAs as the tasks have them, before our injection areas join them.
    step(log, 'reading the VMAs of every task');
    for (const t of tasks) if (isLive(t)) t.vmas = readSmaps(t.pid);
    step(log, 'checking that every piece of state the kernel shows is saved');
    // Whatever no resource module saves refuses the dump here, before anything is written
    // or injected (a pending SIGTRAP would be taken by the first injected call).
    checkClaims(tasks.filter(isLive), {
      shellJob: req.shellJob,
      freezeCgroup: req.freezeCgroup,
      fileLocks: req.fileLocks,
      net: req.net,
      procLocks,
    });
    // A pre-dump saves memory only: what else the tree holds is the final dump's to check.
    if (!req.pre)
      checkSessions(
        tasks.map((t) => ({ pid: t.pid, stat: isLive(t) ? t.stat : undefined })),
        req.shellJob,
      );
    if (!req.pre && ownMntns(pid))
      checkMntns(
        tasks.filter(isLive).map((t) => t.pid),
        req.mounts ?? { external: new Map() },
      );
    else if (!req.pre) checkFilesOnMounts(tasks.filter(isLive).map((t) => t.pid));
    for (const t of tasks) {
      if (!isLive(t)) continue;
      step(log, `task ${t.pid}: mapping criu-ts's injection area`);
      prepareInjection(t, log);
    }
    checkInjectedClaims(tasks.filter(isLive));
    const tFrozen = now();
    const live = tasks.filter(isLive);
    imgs.expect(live.reduce((s, t) => s + anonBytes(t.vmas), 0));
    const vpids = nsPids(tasks);
    result = explainDeath(tasks, () =>
      req.pre
        ? {
            tasks: tasks.length,
            ...preDumpMemory(live, imgs, (p) => vpids.get(p) ?? p, prevTrack, log),
            shpagesWritten: 0,
            frozenMs: 0,
            freezingMs: 0,
          }
        : collectAndWrite(req, tasks, imgs, endHooks, { runId, journal, prevTrack }),
    );
    // While still frozen: what the tree writes from here on is what the next dump saves.
    if (req.pre || (req.leaveRunning && req.trackMem)) {
      step(log, 'arming memory tracking');
      untrack = armTracking(
        live.map((t) => ({ pid: t.pid, leader: t.threads[0], vmas: t.vmas, area: t.area })),
        pid,
        req.dir,
        prevTrack,
        log,
      );
    }
    faultPoint('write-images');
    hangPoint('write-images');
    // The last safe point: past it, the dump completes.
    checkInterrupt(true);
    step(log, `writing the images to ${req.dir}`);
    imgs.finish();
    journal.imagesDone();
    logImages(log, req.dir);
    const enc = imgs.pagesEncoding();
    if (enc) {
      result.pagesPlainBytes = enc.plain;
      result.pagesStoredBytes = enc.stored;
    }
    result.freezingMs = tFrozen - t0;
    // A failing post-dump script fails the dump: the tree runs on.
    if (req.actions) {
      step(log, 'post-dump action');
      req.actions('post-dump');
    }
  } catch (e) {
    procLocks?.drop();
    untrack?.();
    imgs.discard();
    runEndHooks(endHooks, 'failed', log);
    for (const t of tasks)
      if (isLive(t) && t.snaps) thaw(t, log);
      else detachAll(t.threads);
    journal.close();
    logUnsafeWindow(log);
    throw e;
  }
  step(log, req.pre || req.leaveRunning ? 'resuming the tree' : 'killing the tree');
  // A dump that does not track on ends the tracking its parent armed.
  if (!(req.pre || (req.leaveRunning && req.trackMem))) prevTrack?.end();
  if (req.pre || req.leaveRunning) {
    runEndHooks(endHooks, 'resumed', log);
    for (const t of tasks) if (isLive(t)) thaw(t, log);
  } else {
    killTree(tasks);
    runEndHooks(endHooks, 'killed', log);
  }
  journal.close();
  logUnsafeWindow(log);
  result.frozenMs = now() - t0;
  try {
    writeDumpStats(req.workDir, result);
  } catch (e) {
    log.warn(`cannot write stats-dump: ${(e as Error).message}`);
  }
  return result;
}

/** The tree has a mount namespace of its own (checkNamespaces: then all its tasks share it). */
function ownMntns(pid: number): boolean {
  return readLink(pid, 'ns/mnt') !== fs.readlinkSync('/proc/self/ns/mnt');
}

/** The time the tasks could not have survived criu-ts's death (inside injected calls). */
function logUnsafeWindow(log: Logger): void {
  log.debug(`unsafe window: ${unsafeWindow.ms.toFixed(3)} ms inside ${unsafeWindow.calls} injected calls`);
}

function collectAndWrite(
  req: DumpRequest,
  tasks: Task[],
  imgs: ImageSet,
  endHooks: EndHook[],
  run: { runId: string; journal: DumpJournal; prevTrack?: ParentTrack },
): DumpResult {
  const live = tasks.filter(isLive);
  let lockMethod = req.tcp?.networkLock;
  const files = new DumpFileTable();
  const ghosts = new GhostDump(
    {
      remap: (e) => imgs.add(IMG.REMAP_FPATH, e),
      ghost: (id, e, chunks) => imgs.ghostFile(id, e, chunks),
      linked: (link, at, flags, mntId) => {
        imgs.madeOutside(at);
        return files.regPath(link, flags, mntId !== undefined && ownMntns(req.pid) ? { mnt_id: mntId } : {});
      },
      mountOf: (source) =>
        mountOf(
          source,
          live.map((t) => t.pid),
        ),
    },
    { limit: req.ghostLimit, linkRemap: req.linkRemap },
  );
  files.ghosts = ghosts;
  const objects = new DumpShared(imgs, files);
  const vpids = nsPids(tasks);
  const shared: Shared = {
    vpid: (p) => vpids.get(p) ?? p,
    ...(ownNet(tasks[0].pid) ? { netRoot: tasks[0].pid } : {}),
    seccomp: new SeccompDump(),
    locksSeen: new Set(),
    live: new Map(live.map((t) => [t.pid, t])),
    files,
    identity: new FileIdentity(),
    kobj: new KobjIds(),
    ns: new NsIds(),
    cpuFacts: cpu.facts(live[0].area!),
    objects,
    cgroups: new CgroupDump(),
    ...(run.prevTrack ? { prevTrack: run.prevTrack } : {}),
    fileCtx: {
      log: req.log,
      shellJob: req.shellJob,
      extUnixSk: !!req.extUnixSk,
      irmap: req.irmap,
      mntIds: ownMntns(req.pid),
      kinds: new Map(),
      addFile: (make) => {
        const id = files.newId();
        files.add(make(id));
        return id;
      },
      regPath: (p, fl, ex) => files.regPath(p, fl, ex),
      tcp: req.tcp ?? { established: false, close: false, skipInFlight: false },
      atEnd: (fn) => {
        endHooks.push(fn);
      },
      runId: run.runId,
      recordLock: (spec) => {
        lockMethod = spec.method;
        run.journal.lock(spec);
      },
      recordRepair: (socks) => run.journal.repair(socks),
      regDeleted: (n, src, fl, ex) => files.regDeleted(n, src, fl, ex),
      ghosts,
      memfdInode: (link) => objects.memfdInode(link),
      fileId: (pid, fd) => {
        const pidfd = pidfdOpen(pid);
        try {
          return inNetOf(shared.netRoot, () => dumpFd(pid, fd, files, shared.identity, shared.fileCtx, pidfd)).id;
        } finally {
          close(pidfd);
        }
      },
      treePids: live.map((t) => t.pid),
      netNsId: (pid) => shared.ns.idsOf(pid).net_ns_id!,
      netNsIdOfIno: (ino) => shared.ns.idOfLink(`net:[${ino}]`),
      nsIdOf: (pid, kind) => shared.ns.idsOf(pid)[`${kind}_ns_id`],
      inTree: (id) => live.some((t) => t.stat.pgrp === id || t.threads.some((th) => th.tid === id)),
      addEntry: (kind, ...a) => imgs.add(kind, ...a),
    },
  };
  // A network namespace the tree owns is locked whole before any of it is saved (CRIU's order).
  if (shared.netRoot !== undefined && savesNetns(shared.netRoot, req.net)) {
    shared.fileCtx.netnsSaved = true;
    shared.fileCtx.netnsLock = lockTreeNetns(shared.netRoot, shared.fileCtx);
  }
  // A tree in a user namespace of its own keeps its ids as the namespace sees them (CRIU's).
  if (readLink(tasks[0].pid, 'ns/user') !== fs.readlinkSync('/proc/self/ns/user')) {
    const maps = IdMaps.of(tasks[0].pid);
    imgs.ids = (name, entry) => maps.toNs(name, entry);
  }
  const stats = { pagesWritten: 0, pagesScanned: 0, pagesSkippedParent: 0, memdumpMs: 0 };
  const writtenFdTables = new Set<number>();
  for (const t of tasks) {
    checkInterrupt();
    if (isLive(t)) {
      const s = dumpTask(req, t, imgs, shared, writtenFdTables);
      stats.pagesWritten += s.pagesWritten;
      stats.pagesSkippedParent += s.pagesSkippedParent;
      stats.pagesScanned += s.pagesScanned;
      stats.memdumpMs += s.memdumpMs;
    } else if (t.zombie) {
      step(req.log, `task ${t.pid}: zombie (exit status 0x${t.zombie.exitCode.toString(16)}) to core-${t.pid}.img`);
      imgs.one(IMG.CORE, shared.vpid(t.pid), dumpZombieCore(t.zombie));
    }
    const entry = dumpPstreeEntry(
      t.pid,
      t.ppid,
      t.threads.map((th) => th.tid),
      isLive(t) ? t.stat : undefined,
    );
    imgs.add(IMG.PSTREE, vpids.size ? inPidNs(entry, t.pid, shared.vpid) : entry);
  }
  imgs.closeImage(IMG.PSTREE);
  for (const e of files.entries) imgs.add(IMG.FILES, e);
  imgs.closeImage(IMG.FILES);
  imgs.closeImage(IMG.MEMFD_INODE);
  imgs.one(IMG.SECCOMP, shared.seccomp.entry());
  const cgroups = shared.cgroups.image(req.manageCgroups ?? true, req.log, req.cgroupYard);
  if (cgroups) {
    step(req.log, `cgroups: ${cgroups.sets.length} set(s) other than criu-ts's to cgroup.img`);
    imgs.one(IMG.CGROUP, cgroups);
  }
  if (req.fileLocks) {
    if (shared.locksSeen.size) imgs.closeImage(IMG.FILE_LOCKS);
    else imgs.empty(IMG.FILE_LOCKS);
  }
  const dumperIds = shared.ns.idsOf(getpid());
  let helper: ReturnType<typeof startHelper> | undefined;
  try {
    dumpNamespaces(pid0(tasks), shared.ns.idsOf(pid0(tasks)), dumperIds, {
      log: req.log,
      imgs: {
        add: (kind, ...a) => imgs.add(kind, ...a),
        one: (kind, ...a) => imgs.one(kind, ...a),
        raw: (kind, data, ...args) => imgs.raw(kind, data, ...args),
      },
      mounts: req.mounts,
      net: req.net,
      helper: () => (helper ??= startHelper([])),
      spareHelper: () => {
        const h = startHelper([]);
        return { tracee: h.tracee, area: h.area, end: () => killHelper(h) };
      },
      tasks: live.map((t) => ({ pid: t.pid, ids: shared.ns.idsOf(t.pid) })),
    });
  } finally {
    if (helper) killHelper(helper);
  }
  const mono = clockGettime(1),
    boot = clockGettime(7);
  imgs.one(IMG.TIMENS, 0, {
    monotonic: { tv_sec: mono.sec, tv_nsec: mono.nsec },
    boottime: { tv_sec: boot.sec, tv_nsec: boot.nsec },
  });
  imgs.one(IMG.INVENTORY, {
    img_version: 2,
    fdinfo_per_id: true,
    root_ids: { vm_id: 0, files_id: 0, fs_id: 0, sighand_id: 0, ...dumperIds },
    ns_per_id: true,
    root_cg_set: shared.cgroups.ownSet,
    lsmtype: 0,
    ...(req.tcp?.close ? { tcp_close: true } : {}),
    network_lock_method: lockMethodCode(lockMethod ?? 'nftables'),
    plugins_entry: {},
    dump_criu_run_id: run.runId,
  });
  return { tasks: tasks.length, ...stats, shpagesWritten: objects.pages, frozenMs: 0, freezingMs: 0 };
}

const pid0 = (tasks: Task[]): number => tasks[0].pid;
const ownNet = (pid: number): boolean => readLink(pid, 'ns/net') !== fs.readlinkSync('/proc/self/ns/net');

/**
 * Each task's and thread's pid in its own PID namespace (the innermost of NSpid), when the
 * tree is in one of its own; empty otherwise (the pids are criu-ts's).
 */
function nsPids(tasks: Task[]): Map<number, number> {
  const m = new Map<number, number>();
  const root = tasks[0].pid;
  if (nsPid(root) === root) return m;
  for (const t of tasks) {
    m.set(t.pid, nsPid(t.pid));
    for (const th of t.threads) if (th.tid !== t.pid) m.set(th.tid, nsPid(t.pid, th.tid));
  }
  return m;
}

/** A pstree entry with the pids of the tree's own PID namespace; the root's parent is outside it. */
function inPidNs(e: MessageInput<'pstree_entry'>, pid: number, v: (p: number) => number): MessageInput<'pstree_entry'> {
  const st = readStatus(pid);
  const sid = st.nsSid.at(-1) ?? 0,
    pgid = st.nsPgid.at(-1) ?? 0;
  if (sid === 0 || pgid === 0)
    throw new NotSupportedError(
      `task ${pid}: its session or process group is outside its PID namespace (start the namespace's init with setsid)`,
    );
  return { ...e, pid: v(e.pid), ppid: e.ppid ? v(e.ppid) : 0, pgid, sid, threads: (e.threads ?? []).map(v) };
}

/** The frozen tree, task by task (level 3), with its threads (level 4). */
function logTree(log: Logger, tasks: Task[], t0: number): void {
  log.info(`frozen ${tasks.length} task(s) in ${ms(t0)}`);
  for (const t of tasks) {
    const state = t.zombie ? ', a zombie' : t.stopped ? ', stopped' : '';
    log.info(`task ${t.pid}: parent ${t.ppid}, ${t.threads.length} thread(s)${state}`);
    if (t.threads.length > 1) log.debug(`task ${t.pid}: threads ${t.threads.map((th) => th.tid).join(' ')}`);
  }
}

/** Every image of the dump with its size (level 4). */
function logImages(log: Logger, dir: string): void {
  if (!debugOn(log)) return;
  for (const name of fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.img'))
    .sort()) {
    try {
      log.debug(`  image ${name}: ${fs.statSync(path.join(dir, name)).size} bytes`);
    } catch {
      /* not ours */
    }
  }
}
