// Freezing: PTRACE_SEIZE + PTRACE_INTERRUPT on every thread of every task of the tree,
// repeated until nothing new appears. A frozen task cannot fork or clone any more, so a
// tree walked parent-first after each parent is frozen is complete.
import fs from 'node:fs';
import { listThreads, listChildren, readStat, readStatus, readSyscall, procPath, type Stat } from '../proc/index.ts';
import { PTRACE, PTRACE_O, SysError, W, SIG, CLONE, ptrace, arch } from '../kernel/index.ts';
import { Tracee } from '../compel/index.ts';
import { CriuError, NotSupportedError } from '../errors.ts';
import { checkInterrupt } from '../interrupt.ts';
import { frozenCgroupOf, type CgroupFreezer } from './cgfreezer.ts';

export const SEIZE_OPTIONS = PTRACE_O.TRACESYSGOOD;

/**
 * A thread under seccomp has its filters suspended (PTRACE_O_SUSPEND_SECCOMP), so that the
 * dump's injected calls are neither filtered nor fatal; only once it is stopped: seized with
 * the option, it runs unfiltered from the seize to its stop, and a sandboxed program can make
 * the very calls its filter forbids. The option needs CAP_SYS_ADMIN and a tracer outside
 * seccomp. A thread cannot leave seccomp mode, so one seen without it when stopped needs none.
 */
function suspendSeccomp(pid: number, t: Tracee): Tracee {
  if (seccompMode(pid, t.tid)) ptrace(PTRACE.SETOPTIONS, t.tid, 0, SEIZE_OPTIONS | PTRACE_O.SUSPEND_SECCOMP);
  return t;
}

function seccompMode(pid: number, tid: number): number {
  try {
    return readStatus(pid, tid).seccomp;
  } catch {
    return 0; /* gone: the seize says so */
  }
}

/** A task of the dumped tree: frozen threads (leader first), or a zombie. */
export interface FrozenTask {
  pid: number;
  ppid: number;
  threads: Tracee[];
  zombie?: { exitCode: number; comm: string };
  /** Stopped by a job-control signal before we seized it (state T). */
  stopped?: boolean;
}

export function detachAll(threads: Tracee[]): void {
  for (const t of threads) {
    try {
      t.detach();
    } catch {
      /* gone */
    }
  }
}

/**
 * Freeze every thread of one process; undefined when it exited meanwhile. With `deferred`
 * the stops are not awaited (the caller thaws a frozen cgroup first, then waits).
 */
export function freezeProcess(pid: number, deadline: number, deferred = false): Tracee[] | undefined {
  const frozen = new Map<number, Tracee>();
  const gone = new Set<number>();
  const cg = deferred ? undefined : frozenCgroupOf(pid);
  if (cg)
    throw new NotSupportedError(
      `task ${pid}: cgroup: it is in the frozen cgroup ${cg}, where ptrace cannot stop it (thaw it, or dump with --freeze-cgroup ${cg})`,
    );
  try {
    for (;;) {
      const tids = listThreads(pid).filter((t) => !frozen.has(t) && !gone.has(t));
      if (!tids.length || (deferred && frozen.size)) break;
      if (Date.now() > deadline) {
        const v = tids.find((tid) => inVfork(pid, tid));
        if (v !== undefined)
          throw new NotSupportedError(
            `task ${pid}${v === pid ? '' : ` (thread ${v})`}: vfork: it waits for its vfork child to exec or exit (a vfork in flight)`,
          );
        throw new CriuError(`timed out freezing task ${pid}`);
      }
      for (const tid of tids) {
        // A vfork parent waits for its child to exec or exit, deaf to ptrace until then.
        if (inVfork(pid, tid)) {
          pause(10);
          continue;
        }
        try {
          frozen.set(tid, deferred ? Tracee.seizeDeferred(tid, SEIZE_OPTIONS) : suspendSeccomp(pid, Tracee.seize(tid, SEIZE_OPTIONS)));
        } catch (e) {
          // A thread that exited between listing and seizing, or is exiting now, is gone:
          // it will not run again, so it is left out instead of retried until the deadline.
          if ((e instanceof SysError && (e.code === 'ESRCH' || e.code === 'EPERM')) || (e as Error).name === 'InjectionError') {
            if (isExiting(pid, tid)) gone.add(tid);
            else if (e instanceof SysError && e.code === 'EPERM') throw ptraceRefused(pid, tid);
            continue;
          }
          throw e;
        }
      }
    }
  } catch (e) {
    detachAll([...frozen.values()]);
    throw e;
  }
  const list = [...frozen.values()];
  const leader = list.find((t) => t.tid === pid);
  if (!leader) {
    detachAll(list);
    return undefined;
  }
  return [leader, ...list.filter((t) => t !== leader).sort((a, b) => a.tid - b.tid)];
}

/**
 * Freeze the tree rooted at `root`, parents before children (pstree.img order). With a
 * cgroup freezer the whole tree is already frozen: every thread is seized and interrupted,
 * the cgroup is thawed, and only then are the stops awaited, so nothing runs in between.
 */
export function freezeTree(root: number, deadline: number, freezer?: CgroupFreezer): FrozenTask[] {
  const deferred = freezer !== undefined;
  const tasks: FrozenTask[] = [];
  const seen = new Set<number>();
  const visit = (pid: number, ppid: number): void => {
    if (seen.has(pid)) return;
    seen.add(pid);
    checkInterrupt();
    let stat;
    try {
      stat = readStat(pid);
    } catch {
      return;
    }
    if (stat.state === 'Z' || stat.state === 'X') {
      refuseZombieLeader(pid);
      tasks.push({ pid, ppid, threads: [], zombie: { exitCode: stat.exitCode, comm: stat.comm } });
      return;
    }
    const threads = freezeProcess(pid, deadline, deferred);
    if (!threads) {
      // Exited while we looked: now a zombie of its parent, or gone.
      try {
        const s = readStat(pid);
        if (s.state === 'Z') tasks.push({ pid, ppid, threads: [], zombie: { exitCode: s.exitCode, comm: s.comm } });
      } catch {
        /* reaped */
      }
      return;
    }
    tasks.push({ pid, ppid, threads, stopped: stat.state === 'T' });
    const children = new Set<number>();
    for (const t of threads) {
      try {
        for (const c of listChildren(pid, t.tid)) children.add(c);
      } catch {
        /* thread gone */
      }
    }
    for (const c of [...children].sort((a, b) => a - b)) visit(c, pid);
  };
  try {
    if (freezer) freezer.freeze(deadline);
    visit(root, 0);
    if (freezer) {
      const pids = new Set(tasks.map((t) => t.pid));
      const outside = freezer.pids().filter((p) => !pids.has(p));
      if (outside.length) throw new CriuError(`cgroup ${freezer.dir} holds processes outside the tree of ${root}: ${outside.join(', ')}`);
      freezer.thaw();
      for (const t of tasks)
        for (const th of t.threads) {
          th.waitStop();
          suspendSeccomp(t.pid, th);
        }
    }
  } catch (e) {
    for (const t of tasks) detachAll(t.threads);
    freezer?.thaw();
    throw e;
  }
  if (!tasks.length || tasks[0].zombie) {
    for (const t of tasks) detachAll(t.threads);
    throw new CriuError(`task ${root} exited while it was being frozen`);
  }
  return tasks;
}

/** A process whose main thread exited while others run shows as a zombie: it is not one. */
export function refuseZombieLeader(pid: number): void {
  let tids: number[];
  try {
    tids = listThreads(pid);
  } catch {
    return; // reaped
  }
  if (tids.some((t) => t !== pid))
    throw new NotSupportedError(`task ${pid}: threads: its main thread has exited while its other threads run (a zombie leader)`);
}

const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Blocked in vfork(), or clone() or clone3() with CLONE_VFORK. */
function inVfork(pid: number, tid: number): boolean {
  let call;
  try {
    call = readSyscall(pid, tid);
  } catch {
    return false; // gone: the seize says so
  }
  if (!call) return false;
  if (call.nr === arch.sys.vfork) return true;
  if (call.nr === arch.sys.clone) return (call.args[0] & BigInt(CLONE.VFORK)) !== 0n;
  if (call.nr !== arch.sys.clone3) return false;
  // struct clone_args begins with the flags.
  const b = Buffer.alloc(8);
  try {
    const fd = fs.openSync(procPath(pid, 'mem'), 'r');
    try {
      if (fs.readSync(fd, b, 0, 8, Number(call.args[0])) !== 8) return false;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  return (b.readBigUInt64LE(0) & BigInt(CLONE.VFORK)) !== 0n;
}

function isExiting(pid: number, tid: number): boolean {
  try {
    return /^[ZXx]$/.test(readStat(pid, tid).state);
  } catch {
    return true;
  }
}

/** EPERM from a thread that is not exiting will not change by retrying: say why at once. */
function ptraceRefused(pid: number, tid: number): CriuError {
  let why = 'ptrace_scope or a security module forbids it';
  try {
    const st = readStatus(pid, tid);
    const uid = process.getuid?.() ?? 0;
    if (st.tracerPid) why = `it is traced already by ${st.tracerPid}`;
    else if (uid !== 0 && st.uid.some((u) => u !== uid))
      why = `it runs as uid ${st.uid[1]} and criu-ts as uid ${uid}, without CAP_SYS_PTRACE`;
  } catch {
    /* gone: the generic reason */
  }
  return new CriuError(`cannot freeze task ${pid}: ptrace refused (EPERM) on thread ${tid}: ${why}`);
}

/**
 * A task of the tree that dies while it is dumped makes the next call on it fail with ESRCH
 * or end an injected call early: say which task died and how, not which call noticed.
 */
export function explainDeath<T>(tasks: FrozenTask[], collect: () => T): T {
  try {
    return collect();
  } catch (e) {
    if (e instanceof CriuError) throw e;
    for (const t of tasks) {
      if (t.zombie) continue;
      for (const th of t.threads) {
        const how = deathOf(t.pid, th.tid);
        if (how)
          throw new CriuError(
            `task ${t.pid}${th.tid === t.pid ? '' : ` (thread ${th.tid})`} died during the dump (${how}); the rest of the tree is left running`,
          );
      }
    }
    throw e;
  }
}

const PF_EXITING = 0x4;

/** How a thread died, waiting a little for a dying one (freeing its memory) to end; undefined if alive. */
function deathOf(pid: number, tid: number): string | undefined {
  const until = Date.now() + 500;
  for (let dying = false; ; ) {
    let s: Stat;
    try {
      s = readStat(pid, tid);
    } catch {
      return 'exited';
    }
    if (s.state === 'Z' || s.state === 'X') return exitOf(s.exitCode);
    if (!(s.flags & PF_EXITING)) return dying ? 'exiting' : undefined;
    dying = true;
    if (Date.now() > until) return 'exiting';
    pause(10);
  }
}

function exitOf(status: number): string {
  if (W.signaled(status)) return W.termSig(status) === SIG.KILL ? 'killed by SIGKILL' : `killed by signal ${W.termSig(status)}`;
  if (W.exited(status)) return `exited with status ${W.exitStatus(status)}`;
  return 'exited';
}
