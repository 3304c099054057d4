// Memory change tracking for pre-dumps and incremental dumps, without soft-dirty bits: each
// task's private VMAs are registered with a userfaultfd in asynchronous write-protect mode
// and every page is write-protected (kernel/uffd.ts). A page written since keeps no
// protection, which /proc/PID/pagemap shows (PM_UFFD_WP, bit 57): a later dump saves only
// written pages and marks the others PE_PARENT, to be read from the previous dump's images.
//
// The userfaultfd is made by a call injected into the task, copied out (pidfd_getfd) and
// closed there: the task holds nothing. A holder process of criu-ts's, `tail --pid ROOT -f
// /dev/null`, keeps the copies (tracking ends when the last copy closes: the kernel drops the
// registrations) between criu-ts runs, and ends by itself when the tree's root exits. It is
// named in criu-ts-track.json of the dump that armed it, with a token in its environment; a
// dump uses its parent's pages only when that holder still runs with that token. A VMA the
// kernel moved (mremap) or that a fork copied loses its registration, so only pages of VMAs
// still registered with that userfaultfd are taken from the parent, and only where the parent
// has them.
// Where no page is mapped, the protection is a marker, which pagemap shows as a swapped entry
// (proc/pagemap.ts): nothing to save, nor to take from the parent.
import fs from 'node:fs';
import path from 'node:path';
import {
  O,
  SIG,
  kill,
  close,
  pidfdOpen,
  pidfdGetfd,
  posixSpawn,
  SysError,
  UFFD_USER_MODE_ONLY,
  uffdApiWpAsync,
  uffdRegisterWp,
  uffdWriteProtect,
} from '../../kernel/index.ts';
import { readStat, type Vma } from '../../proc/index.ts';
import { faultPoint } from '../../errors.ts';
import { RemoteSysError, type Tracee } from '../../compel/index.ts';
import { PagemapReader, PE_PRESENT, PE_PARENT, PAGE_SERVER_RUNS, createImage, readImageFile } from '../../images/index.ts';
import type { Logger } from '../types.ts';

export const TRACK_FILE = 'criu-ts-track.json';
const PAGE = 4096n;
const UFFD_WP_HI = 0x02000000; // PM_UFFD_WP, bit 57 of a pagemap entry
const SWAP_HI = 0x40000000; // PM_SWAP, bit 62
const TAIL = ['/usr/bin/tail', '/bin/tail'];

interface TrackRecord {
  token: string;
  holder: number;
  holderStart: string;
  /** Host pid of each tracked task → the fd of its userfaultfd in the holder. */
  tasks: Record<string, number>;
}

/** A task to arm: stopped, with an injection area, its VMAs as frozen. */
export interface TrackTask {
  pid: number;
  leader: Tracee;
  vmas: Vma[];
  /** Our injection area, which is not the task's memory. */
  area?: { base: bigint; size: number };
}

/** The tracking a previous dump armed (its images directory is `dir`), while it still holds. */
export class ParentTrack {
  readonly dir: string;
  private readonly rec: TrackRecord;
  private pidfd?: number;
  private readonly parentRuns = new Map<number, Array<[bigint, bigint]>>();

  private constructor(dir: string, rec: TrackRecord) {
    this.dir = dir;
    this.rec = rec;
  }

  /** The tracking armed by the dump in `dir`, or undefined (with the reason logged) if it is gone. */
  static open(dir: string, log: Logger): ParentTrack | undefined {
    let rec: TrackRecord;
    try {
      rec = JSON.parse(readImageFile(path.join(dir, TRACK_FILE)).toString('utf8')) as TrackRecord;
    } catch {
      log.info(`${dir}: no memory tracking armed there (${TRACK_FILE}): every page is saved`);
      return undefined;
    }
    if (!holderRuns(rec)) {
      log.warn(`${dir}: the memory tracking it armed has ended (holder ${rec.holder} gone): every page is saved`);
      return undefined;
    }
    return new ParentTrack(dir, rec);
  }

  /** Was this task's memory armed by that dump? */
  private tracks(pid: number): boolean {
    return this.rec.tasks[pid] !== undefined;
  }

  /** A copy of the task's userfaultfd (the holder's), or undefined. */
  uffdOf(pid: number): number | undefined {
    const fd = this.rec.tasks[pid];
    if (fd === undefined) return undefined;
    try {
      this.pidfd ??= pidfdOpen(this.rec.holder);
      return pidfdGetfd(this.pidfd, fd);
    } catch {
      return undefined;
    }
  }

  /**
   * What an incremental dump of task `pid` (frozen, `vmas` as read now) may take from the
   * parent dump: that dump's pages, over the VMAs this tracking still holds. Nothing for a
   * task it did not arm.
   */
  parentOf(
    pid: number,
    vpid: number,
    vmas: Vma[],
    log: Logger,
  ): { parentPages: Array<[bigint, bigint]>; trackedVmas: Set<bigint> } | undefined {
    if (!this.tracks(pid)) return undefined;
    return { parentPages: this.pagesOf(vpid), trackedVmas: this.heldVmas(pid, vmas, log) };
  }

  /**
   * The starts of the VMAs still registered with this tracking's userfaultfd. 'uw' in smaps
   * says registered, not with which: registering again tells, a no-op for ours and EBUSY for
   * another userfaultfd's, whose write protection says nothing of what was written since
   * this parent (another tracking may protect written pages again).
   */
  private heldVmas(pid: number, vmas: Vma[], log: Logger): Set<bigint> {
    const held = new Set<bigint>();
    const fd = this.uffdOf(pid);
    if (fd === undefined) {
      log.warn(`task ${pid}: the userfaultfd of the tracking in ${this.dir} is gone: every page is saved`);
      return held;
    }
    const other: Vma[] = [];
    try {
      for (const v of vmas) {
        if (!v.vmFlags?.has('uw')) continue;
        try {
          uffdRegisterWp(fd, v.start, v.end - v.start);
          held.add(v.start);
        } catch (e) {
          if (!(e instanceof SysError)) throw e;
          other.push(v);
        }
      }
    } finally {
      close(fd);
    }
    if (other.length) log.warn(`task ${pid}: ${registeredElsewhere(other)}: their pages are saved whole`);
    return held;
  }

  /**
   * The parent dump's pages of task `vpid` (pagemap-VPID.img: present there or in its own
   * parent), as sorted [start, end) ranges.
   */
  private pagesOf(vpid: number): Array<[bigint, bigint]> {
    let runs = this.parentRuns.get(vpid);
    if (runs) return runs;
    runs = [];
    try {
      const sent = path.join(this.dir, PAGE_SERVER_RUNS);
      if (fs.existsSync(sent)) {
        // That dump's pages went to a page server: what it sent is recorded here.
        const all = JSON.parse(readImageFile(sent).toString('utf8')) as Record<string, Array<[string, string]>>;
        for (const [a, b] of all[`pagemap-${vpid}.img`] ?? []) runs.push([BigInt(`0x${a}`), BigInt(`0x${b}`)]);
      } else
        for (const r of new PagemapReader(this.dir, vpid))
          if (r.flags & (PE_PRESENT | PE_PARENT)) runs.push([r.vaddr, r.vaddr + BigInt(r.nrPages) * PAGE]);
    } catch {
      runs = [];
    }
    runs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.parentRuns.set(vpid, runs);
    return runs;
  }

  /** Stop this tracking: the holder's copies close, and the kernel drops the registrations. */
  end(): void {
    if (this.pidfd !== undefined) close(this.pidfd);
    this.pidfd = undefined;
    if (holderRuns(this.rec)) kill(this.rec.holder, SIG.KILL);
  }
}

function holderRuns(rec: TrackRecord): boolean {
  try {
    if (String(readStat(rec.holder).startTime) !== rec.holderStart) return false;
    return fs.readFileSync(`/proc/${rec.holder}/environ`, 'latin1').split('\0').includes(`CRIU_TS_TRACK=${rec.token}`);
  } catch {
    return false;
  }
}

/**
 * Split a run of pages to save into those written since the parent dump (saved) and those
 * not (PE_PARENT): still write-protected in `pm` (this VMA's pagemap from `start`) and saved
 * by the parent (`parent`, sorted ranges). Without `swapWpTrusted`, a swapped entry counts as
 * written: in a private file mapping, a page of the parent's dropped since (MADV_DONTNEED, a
 * truncation) leaves a write-protect marker that reads the file again, which pagemap shows as
 * a protected swapped page when PFNs are hidden (proc/pagemap.ts), or if the kernel ever
 * shows its markers otherwise. In an anonymous mapping a marker never stands where the
 * parent saved a page: a dropped anonymous page leaves none.
 */
export function splitByParent(
  run: { vaddr: bigint; nrPages: number },
  start: bigint,
  pm: Buffer,
  parent: ReadonlyArray<[bigint, bigint]>,
  swapWpTrusted = true,
): Array<{ vaddr: bigint; nrPages: number; inParent: boolean }> {
  const first = Number((run.vaddr - start) / PAGE),
    end = first + run.nrPages;
  const runEnd = run.vaddr + BigInt(run.nrPages) * PAGE;
  // The parent's ranges over this run, as page indexes from `start`: the per-page loop below
  // then compares numbers only (a run may hold a million pages).
  const spans: number[] = [];
  let lo = 0,
    hi = parent.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (parent[mid][1] <= run.vaddr) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo; k < parent.length && parent[k][0] < runEnd; k++) {
    const a = parent[k][0] > run.vaddr ? parent[k][0] : run.vaddr,
      b = parent[k][1] < runEnd ? parent[k][1] : runEnd;
    spans.push(Number((a - start) / PAGE), Number((b - start) / PAGE));
  }
  let s = 0;
  const inParent = (i: number): boolean => {
    const hi = pm.readUInt32LE(i * 8 + 4);
    if ((hi & UFFD_WP_HI) === 0 || (!swapWpTrusted && hi & SWAP_HI)) return false;
    while (s < spans.length && spans[s + 1] <= i) s += 2;
    return s < spans.length && spans[s] <= i;
  };
  const out: Array<{ vaddr: bigint; nrPages: number; inParent: boolean }> = [];
  for (let i = first; i < end; ) {
    const p = inParent(i);
    let j = i + 1;
    while (j < end && inParent(j) === p) j++;
    out.push({ vaddr: start + BigInt(i) * PAGE, nrPages: j - i, inParent: p });
    i = j;
  }
  return out;
}

const vmaRange = (v: Vma): string => `${v.start.toString(16)}-${v.end.toString(16)}`;

const SPECIAL = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]']);

/** VMAs whose pages a dump saves from the task itself: private ones, but the kernel's own. */
const trackable = (v: Vma, area?: { base: bigint }): boolean => !v.shared && !SPECIAL.has(v.path) && v.start !== area?.base;

/** A userfaultfd of the task's mm, made by an injected call: criu-ts's copy, the task's closed. */
function makeUffd(t: TrackTask): number {
  const flags = O.CLOEXEC | O.NONBLOCK;
  let remote: bigint;
  try {
    remote = t.leader.syscall('userfaultfd', flags);
  } catch (e) {
    // Without CAP_SYS_PTRACE and with vm.unprivileged_userfaultfd 0, only user-mode faults
    // may be handled: write protection resolved asynchronously never gets that far.
    if (!(e instanceof RemoteSysError) || e.code !== 'EPERM') throw e;
    remote = t.leader.syscall('userfaultfd', flags | UFFD_USER_MODE_ONLY);
  }
  const pidfd = pidfdOpen(t.pid);
  try {
    return pidfdGetfd(pidfd, Number(remote));
  } finally {
    close(pidfd);
    t.leader.syscall('close', remote);
  }
}

/**
 * Arm one task: register its trackable VMAs (again: a no-op for those this userfaultfd holds)
 * and write-protect all of their pages.
 */
function arm(t: TrackTask, uffd: number, fresh: boolean, log: Logger): number {
  if (fresh) uffdApiWpAsync(uffd);
  let n = 0;
  const busy: Vma[] = [];
  for (const v of t.vmas) {
    if (!trackable(v, t.area)) continue;
    const len = v.end - v.start;
    try {
      uffdRegisterWp(uffd, v.start, len);
      uffdWriteProtect(uffd, v.start, len);
      n++;
    } catch (e) {
      // A mapping the kernel will not protect (hugetlb without shmem support, PFN maps), or
      // one another userfaultfd holds (EBUSY): its pages are saved whole every time.
      if (!(e instanceof SysError)) throw e;
      if (e.code === 'EBUSY') busy.push(v);
      else log.debug(`task ${t.pid}: VMA ${vmaRange(v)} not tracked: ${e.message}`);
    }
  }
  if (busy.length) log.warn(`task ${t.pid}: ${registeredElsewhere(busy)}: not tracked`);
  return n;
}

/** The VMAs another userfaultfd holds (another memory tracking's, or the task's own), for the log. */
const registeredElsewhere = (vmas: Vma[]): string =>
  `${vmas.length} VMA(s) registered by another userfaultfd (${vmas.map(vmaRange).join(', ')})`;

/**
 * Arm tracking of every task (frozen, injectable) and leave it held by a new holder named in
 * `dir`/criu-ts-track.json; a previous holder (`prev`) hands its userfaultfds over and ends.
 */
export function armTracking(tasks: TrackTask[], root: number, dir: string, prev: ParentTrack | undefined, log: Logger): () => void {
  const tail = TAIL.find((p) => fs.existsSync(p));
  if (!tail) throw new Error('memory tracking needs tail (coreutils) to hold its userfaultfds');
  const uffds: Array<{ pid: number; fd: number }> = [];
  let again = false;
  let holder: number | undefined;
  try {
    for (const t of tasks) {
      const had = prev?.uffdOf(t.pid);
      const fd = had ?? makeUffd(t);
      uffds.push({ pid: t.pid, fd });
      again ||= had !== undefined;
      const n = arm(t, fd, had === undefined, log);
      log.info(`task ${t.pid}: memory tracking armed on ${n} VMA(s)${had === undefined ? '' : ' (again)'}`);
    }
    faultPoint('arm-tracking');
    const token = fs.readFileSync('/proc/sys/kernel/random/uuid', 'latin1').trim();
    holder = posixSpawn(
      tail,
      ['tail', `--pid=${root}`, '-f', '/dev/null'],
      [`CRIU_TS_TRACK=${token}`],
      [
        { fd: 0, path: '/dev/null', flags: O.RDONLY },
        { fd: 1, path: '/dev/null', flags: O.RDWR },
        { fd: 2, path: '/dev/null', flags: O.RDWR },
        ...uffds.map((u, i) => ({ fd: 3 + i, dupFrom: u.fd })),
      ],
      true,
    );
    const rec: TrackRecord = {
      token,
      holder,
      holderStart: String(readStat(holder).startTime),
      tasks: Object.fromEntries(uffds.map((u, i) => [String(u.pid), 3 + i])),
    };
    const fd = createImage(path.join(dir, TRACK_FILE));
    try {
      fs.writeSync(fd, `${JSON.stringify(rec)}\n`);
    } finally {
      fs.closeSync(fd);
    }
    log.info(`memory tracking held by process ${holder} (${TRACK_FILE})`);
    prev?.end();
    // A dump that fails after this undoes it: no tracking outlives a dump that did not happen.
    const held = holder;
    return () => {
      kill(held, SIG.KILL);
      fs.rmSync(path.join(dir, TRACK_FILE), { force: true });
    };
  } catch (e) {
    if (holder !== undefined) kill(holder, SIG.KILL);
    fs.rmSync(path.join(dir, TRACK_FILE), { force: true });
    // The parent's userfaultfds protected pages written since the parent dump again: its
    // tracking no longer tells them, and ends (a dump from it then saves every page).
    if (again && prev) {
      log.warn(`${prev.dir}: its memory tracking is ended, the pages written since it are protected again`);
      prev.end();
    }
    throw e;
  } finally {
    for (const u of uffds) close(u.fd);
  }
}
