// Sessions and process groups. A dump refuses a session or group whose leader is alive
// outside the tree (but for a shell job's own); a restore puts every task back in its
// session and group, and where their leader is gone, a short-lived helper at the leader's
// PID starts them again.
import { readStat, type Stat } from '../../proc/index.ts';
import { waitpid, WALL, SIG, CLONE } from '../../kernel/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { cloneAt, ALL_SIGNALS } from './fork.ts';

/**
 * Sessions and groups must be led from inside the tree, or have a leader that is gone
 * (restore then recreates them with a short-lived helper at the leader's PID). A leader
 * alive outside the tree is refused, except the shell job's own session and group.
 * `tasks` is the tree, root first; zombies have no `stat`.
 */
export function checkSessions(tasks: Array<{ pid: number; stat?: Stat }>, shellJob: boolean): void {
  const pids = new Set(tasks.map((t) => t.pid));
  const root = tasks[0];
  if (!root.stat) throw new CriuError(`task ${root.pid} is a zombie`);
  const rootStat = root.stat;
  const leaderAlive = (id: number, field: 'session' | 'pgrp') => {
    try {
      return readStat(id)[field] === id;
    } catch {
      return false;
    }
  };
  for (const t of tasks) {
    if (!t.stat) continue;
    const { session, pgrp } = t.stat;
    const external = (id: number, rootId: number, field: 'session' | 'pgrp') =>
      !pids.has(id) && !(shellJob && id === rootId) && leaderAlive(id, field);
    if (external(session, rootStat.session, 'session')) {
      throw t === root
        ? new CriuError(
            `task ${t.pid} is in session ${session}, which is outside the dumped tree; dump a session leader or pass --shell-job`,
          )
        : new NotSupportedError(`task ${t.pid} is in session ${session}, whose leader is alive outside the dumped tree`);
    }
    if (external(pgrp, rootStat.pgrp, 'pgrp')) {
      throw new NotSupportedError(`task ${t.pid} is in process group ${pgrp}, whose leader is alive outside the dumped tree`);
    }
  }
}

// ---- restore -------------------------------------------------------------------------

/** A task as its session and group see it (pstree_entry's ids). */
export interface SessionMember {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** Its thread ids (the leader's too): pids a helper must not take. */
  threads?: number[];
}

/** A short-lived task at the PID of a dead session or group leader. */
interface LeaderHelper {
  pid: number;
  tracee: Tracee;
  area: InjectionArea;
  parent: Tracee | undefined;
}

/** Where a task is cloned from: its parent, or the helper of its session whose leader is gone. */
export interface Birthplace {
  area: InjectionArea;
  flags: number;
  exitSignal: number;
  /** Born of its own parent, with the parent's memory, fds and the rest. */
  ofParent: boolean;
}

/** Sessions and groups of one restore, and the helpers that stand in for their dead leaders. */
export class SessionRestore {
  private readonly helpers = new Map<string, LeaderHelper>();
  /** Session leaders whose setsid waits until their children of the session they were born in exist. */
  private readonly deferred = new Map<number, Tracee>();
  private readonly pids: Set<number>;
  private readonly members: Map<number, SessionMember>;
  private readonly root: SessionMember;
  private readonly shellJob: boolean;
  /** Every PID the restore made, to kill on failure: helpers join and leave it. */
  private readonly created: number[];
  /** The restore's first helper, whose injection area every task of the restore has too. */
  private readonly first: { tracee: Tracee; area: InjectionArea };
  /** The root is the init of a new PID namespace: the orphans of its tasks come to it. */
  private readonly rootReaps: boolean;
  /** Every pid and tid of the tree. */
  private readonly taken: Set<number>;

  constructor(
    tasks: SessionMember[],
    shellJob: boolean,
    created: number[],
    first: { tracee: Tracee; area: InjectionArea },
    rootReaps = false,
  ) {
    this.rootReaps = rootReaps;
    this.taken = new Set(tasks.flatMap((t) => [t.pid, ...(t.threads ?? [])]));
    this.pids = new Set(tasks.map((t) => t.pid));
    this.members = new Map(tasks.map((t) => [t.pid, t]));
    this.root = tasks[0];
    this.shellJob = shellJob;
    this.created = created;
    this.first = first;
  }

  /** A shell job's outside session and group are criu-ts's own. */
  private shellOwned(id: number, field: 'sid' | 'pgid'): boolean {
    return this.shellJob && id === this.root[field];
  }

  /**
   * A task whose session leader is gone is born from a helper at the leader's PID that
   * starts the session again with setsid, as a sibling of the helper (CLONE_PARENT), that
   * is, still a child of its own parent. Any other task is cloned by its parent with
   * `sharing` (the CLONE_* flags of what it shares with it).
   */
  birthplace(
    t: SessionMember,
    parentArea: InjectionArea,
    sharing: number,
    areaOf?: (pid: number) => InjectionArea | undefined,
  ): Birthplace {
    const leaderGone = t.sid !== t.pid && !this.pids.has(t.sid) && !this.shellOwned(t.sid, 'sid');
    // The parent's first child of its own session: the parent starts that session now.
    const waiting = this.deferred.get(t.ppid);
    if (waiting && t.sid === t.ppid) this.startSession(t.ppid, waiting);
    // A task whose session leader lives in the tree as its sibling, while its parent is in
    // another session (an orphan its PID namespace's init took in): the leader makes it a
    // sibling of its own (CLONE_PARENT), in the leader's session.
    const leader = this.members.get(t.sid);
    const parent = this.members.get(t.ppid);
    const leaderArea =
      leader && parent && t.sid !== t.pid && parent.sid !== t.sid && leader.ppid === t.ppid ? areaOf?.(leader.pid) : undefined;
    if (leaderArea) return { area: leaderArea, flags: CLONE.PARENT, exitSignal: 0, ofParent: false };
    // An orphan the PID namespace's init took in, in the session of a leader that lives in the
    // tree elsewhere: born of a helper the leader clones, it comes to the init when the helper
    // exits (before any child subreaper of the tree is one again), as CRIU does.
    const orphanArea =
      this.rootReaps && leader && parent && t.sid !== t.pid && parent.sid !== t.sid && t.ppid === this.root.pid
        ? areaOf?.(leader.pid)
        : undefined;
    if (orphanArea) return { area: this.orphanHelper(t.sid, orphanArea).area, flags: 0, exitSignal: SIG.CHLD, ofParent: false };
    if (!leaderGone) return { area: parentArea, flags: sharing, exitSignal: SIG.CHLD, ofParent: true };
    // With CLONE_PARENT the kernel gives the child the helper's exit signal.
    return { area: this.sessionHelper(t.sid, parentArea).area, flags: CLONE.PARENT, exitSignal: 0, ofParent: false };
  }

  private sessionHelper(sid: number, creator: InjectionArea): LeaderHelper {
    let h = this.helpers.get(`s${sid}`);
    if (!h) {
      const t = cloneAt(creator.tracee, creator, sid, 0, SIG.CHLD);
      this.created.push(t.tid);
      t.setSigmask(ALL_SIGNALS);
      const area = this.first.area.forTracee(t);
      t.syscall('setsid');
      h = { pid: sid, tracee: t, area, parent: creator.tracee === this.first.tracee ? undefined : creator.tracee };
      this.helpers.set(`s${sid}`, h);
    }
    return h;
  }

  /** A helper at a pid no task of the tree has, child of the session leader (`leaderArea`'s task). */
  private orphanHelper(sid: number, leaderArea: InjectionArea): LeaderHelper {
    let h = this.helpers.get(`o${sid}`);
    if (!h) {
      const pid = Math.max(...this.taken) + 1;
      this.taken.add(pid);
      const t = cloneAt(leaderArea.tracee, leaderArea, pid, 0, SIG.CHLD);
      this.created.push(t.tid);
      t.setSigmask(ALL_SIGNALS);
      h = { pid, tracee: t, area: leaderArea.forTracee(t), parent: leaderArea.tracee };
      this.helpers.set(`o${sid}`, h);
    }
    return h;
  }

  /**
   * The new stub of `t` leads its session again when it led it. A shell job joins the
   * session (and terminal) of criu-ts itself, as in CRIU; any other root must lead its own.
   */
  enter(t: SessionMember, stub: Tracee, born: Birthplace): void {
    if (t.sid === t.pid && !this.shellOwned(t.sid, 'sid')) {
      // Children it forked before its setsid stay in the session it was born in (or that their
      // own older children were born in): they come first, and its setsid waits for them.
      const olderChildren = [...this.members.values()].some((c) => c.ppid === t.pid && c.sid !== t.pid);
      if (olderChildren) this.deferred.set(t.pid, stub);
      else stub.syscall('setsid');
    } else if (t.ppid === 0 && !this.shellJob && born.ofParent) {
      throw new CriuError(`task ${t.pid} was in session ${t.sid}, outside the dump; restore it with --shell-job`);
    }
  }

  private startSession(pid: number, stub: Tracee): void {
    this.deferred.delete(pid);
    stub.syscall('setsid');
  }

  /** Sessions whose leaders had only children of their older session start once every task exists. */
  startDeferred(): void {
    for (const [pid, stub] of this.deferred) this.startSession(pid, stub);
  }

  /**
   * Process groups, once every group leader exists. A group whose leader is gone is started
   * again by a helper at its PID, cloned from a member (so, in the member's session); the
   * group lives on after the helper exits.
   */
  setGroups(tasks: SessionMember[], live: (pid: number) => { leader: Tracee; area: InjectionArea }): void {
    for (const t of tasks) {
      const pgid = t.pgid;
      if (this.shellOwned(pgid, 'pgid')) continue;
      const l = live(t.pid);
      if (Number(l.leader.syscall('getpgid', 0)) === pgid) continue;
      if (!this.pids.has(pgid) && !this.helpers.has(`g${pgid}`) && !this.helpers.has(`s${pgid}`)) {
        const h = cloneAt(l.leader, l.area, pgid, 0, 0);
        this.created.push(h.tid);
        h.useInjectionPage(l.area.base);
        h.setSigmask(ALL_SIGNALS);
        h.syscall('setpgid', 0, 0);
        this.helpers.set(`g${pgid}`, { pid: pgid, tracee: h, area: l.area.forTracee(h), parent: l.leader });
        l.leader.useInjectionPage(l.area.base);
      }
      l.leader.syscall('setpgid', 0, pgid);
    }
  }

  /**
   * The helpers exit and are reaped by their parents, which keep no trace of them.
   * `scratchOf`: the injection area as a given tracee sees it.
   */
  dropHelpers(scratchOf: (t: Tracee) => InjectionArea): void {
    const zero = Buffer.alloc(16);
    for (const h of this.helpers.values()) {
      h.tracee.prepareResume('exit_group', 0);
      h.tracee.detach();
      if (!h.parent) {
        waitpid(h.tracee.tid, WALL); // re-parented to criu-ts when the first helper died
      } else {
        const p = h.parent;
        p.syscall('wait4', h.pid, 0, WALL, 0);
        // A session helper was made with SIGCHLD: take that signal back from the parent.
        const a = scratchOf(p);
        a.reset();
        const set = Buffer.alloc(8);
        set.writeBigUInt64LE(1n << BigInt(SIG.CHLD - 1), 0);
        p.syscallRaw('rt_sigtimedwait', a.put(set), 0, a.put(zero), 8);
      }
      const i = this.created.indexOf(h.tracee.tid);
      if (i >= 0) this.created.splice(i, 1);
    }
    this.helpers.clear();
  }
}
