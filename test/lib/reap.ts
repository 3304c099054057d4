// Which processes a test owns, and reaping them: this process is a child subreaper (PID 1
// here does not reap orphans), and waits on specific pids only, never waitpid(-1).
import { readdirSync } from 'node:fs';
import { setChildSubreaper, waitpid, kill, WNOHANG, WALL } from '../../src/kernel/index.ts';
import { SLOW } from './slow.ts';
import { SIGKILL, SIGSTOP, procStat, procState, procStatus, sleep, sleepSync } from './procfs.ts';

setChildSubreaper();

/** Every pid this test started or adopted and has not reaped yet. */
export const registry = new Set<number>();
/** libuv children (async criu-ts runs) that are still running. */
export const liveSpawns = new Map<number, { kill: () => void; done: Promise<unknown> }>();

/** Register a pid (e.g. a process restored with -d, now our child) to be reaped. */
export function adopt(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`adopt: bad pid ${pid}`);
  registry.add(pid);
}

export function tracked(): number[] {
  return [...registry];
}

export interface ExitInfo {
  status: number;
  code: number | null;
  signal: number | null;
}

export function decodeStatus(status: number): ExitInfo {
  const low = status & 0x7f;
  if (low === 0) return { status, code: (status >> 8) & 0xff, signal: null };
  return { status, code: null, signal: low };
}

function errnoCode(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

/** One WNOHANG look at `pid`: its exit info, null if it is gone unreaped, undefined if it runs on. */
function reapOnce(pid: number): ExitInfo | null | undefined {
  try {
    const r = waitpid(pid, WNOHANG | WALL);
    if (r.pid !== pid) return undefined;
    registry.delete(pid);
    return decodeStatus(r.status);
  } catch (e) {
    if (errnoCode(e) !== 'ECHILD') throw e;
    if (procStat(pid) !== null) return undefined;
    registry.delete(pid);
    return null;
  }
}

/**
 * Wait (polling, WNOHANG) for our child `pid` to end and reap it. Returns its
 * exit info, or null if it disappeared without us reaping it (someone else's
 * child). A process that is not our child yet (its parent is dying and it is
 * about to be re-parented to us) is waited for. Throws on timeout.
 */
export function reap(pid: number, timeoutMs = 10_000): ExitInfo | null {
  const end = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const r = reapOnce(pid);
    if (r !== undefined) return r;
    if (Date.now() > end)
      throw new Error(`PID ${pid} did not end within ${timeoutMs} ms (state ${procState(pid)}, ppid ${procStat(pid)?.ppid})`);
    sleepSync(5);
  }
}

/** pid -> children, from one pass over /proc. */
function childMap(): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = procStat(Number(name));
    if (!s) continue;
    const list = m.get(s.ppid);
    if (list) list.push(s.pid);
    else m.set(s.ppid, [s.pid]);
  }
  return m;
}

/** All descendants of `pid` (children, grandchildren, ...). */
export function descendants(pid: number, map: Map<number, number[]> = childMap()): number[] {
  const out: number[] = [];
  const todo = [...(map.get(pid) ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(map.get(p) ?? []));
  }
  return out;
}

/** Like reap() but does not block the event loop. */
export async function waitExit(pid: number, timeoutMs = 10_000): Promise<ExitInfo | null> {
  const end = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const r = reapOnce(pid);
    if (r !== undefined) return r;
    if (Date.now() > end) throw new Error(`PID ${pid} did not exit within ${timeoutMs} ms (state ${procState(pid)})`);
    await sleep(20);
  }
}

export function signal(pid: number, sig: number): void {
  kill(pid, sig);
}

function sigkill(pid: number): void {
  try {
    kill(pid, SIGKILL);
  } catch (e) {
    if (errnoCode(e) !== 'ESRCH') throw e;
  }
}

/**
 * SIGSTOP `pid` and its descendants until the set no longer grows, and return
 * the descendants. A running parent can fork between a listing of its children
 * and its SIGKILL (a shell loop starting its next `sleep`), and that child
 * would then be re-parented to us unknown; a stopped parent cannot fork.
 */
function stopTree(pid: number): number[] {
  const end = Date.now() + 2000 * SLOW;
  let known = new Set<number>([pid]);
  for (;;) {
    for (const p of known) {
      try {
        kill(p, SIGSTOP);
      } catch (e) {
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
    }
    while (
      Date.now() < end &&
      [...known].some((p) => {
        const s = procState(p);
        return s === 'R' || s === 'S' || s === 'D';
      })
    )
      sleepSync(1);
    const now = new Set<number>([pid, ...descendants(pid)]);
    if (now.size === known.size && [...now].every((p) => known.has(p))) break;
    known = now;
    if (Date.now() >= end) break;
  }
  known.delete(pid);
  return [...known];
}

/**
 * SIGKILL `pid` and all its descendants, then reap them all (the descendants
 * are re-parented to us). Returns pid's exit info, or null if it was not (or
 * no longer) our child.
 */
export function killAndReap(pid: number, timeoutMs = 10_000): ExitInfo | null {
  const desc = stopTree(pid);
  sigkill(pid);
  for (const d of desc) sigkill(d);
  const ex = reap(pid, timeoutMs);
  for (const d of desc) reap(d, timeoutMs);
  return ex;
}

/**
 * Kill and reap every registered pid and every other child of ours. Returns
 * the problems found: processes left stopped or traced, children we never
 * started or adopted (zombie or not), registered pids that are alive but not
 * our children.
 */
export async function sweep(): Promise<string[]> {
  const problems: string[] = [];
  for (const [pid, s] of liveSpawns) {
    problems.push(`criu-ts (PID ${pid}) was still running at the end of the test`);
    s.kill();
    await s.done;
  }
  for (let round = 0; round < 10; round++) {
    // Descendants of what the test started are the test's too (e.g. a bash
    // script's children): they are re-parented to us when their parent dies.
    const map = childMap();
    for (const pid of [...registry]) for (const d of descendants(pid, map)) registry.add(d);
    const kids = map.get(process.pid) ?? [];
    if (kids.length === 0) break;
    for (const pid of kids) {
      const st = procStatus(pid);
      if (!st) continue;
      const state = st.State ?? '?';
      const what = `PID ${pid} (${st.Name}, ${state})`;
      if (state[0] === 't' || state[0] === 'T') problems.push(`${what} was left stopped`);
      if (st.TracerPid && st.TracerPid !== '0') problems.push(`${what} was left traced by ${st.TracerPid}`);
      if (!registry.has(pid)) problems.push(`${what} is a child of the test that it did not start or adopt`);
      sigkill(pid);
      for (const d of descendants(pid, map)) {
        registry.add(d); // reported with their ancestor, reaped next round
        sigkill(d);
      }
    }
    for (const pid of kids) {
      try {
        reap(pid, 10_000);
      } catch (e) {
        problems.push(`could not reap PID ${pid}: ${(e as Error).message}`);
      }
    }
  }
  for (const pid of registry) {
    const s = procStat(pid);
    if (s && s.state !== 'Z') problems.push(`PID ${pid} (${s.comm}) is alive but its parent is ${s.ppid}, not the test`);
  }
  registry.clear();
  return problems;
}
