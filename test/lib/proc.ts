/**
 * E2E harness: start targets the way criu-ts needs them, run the CLI, reap
 * everything, and fail a test that leaks a process.
 *
 * Rules it follows (see shared/reference/restore-from-outside.md):
 * - this process is a child subreaper (PID 1 here does not reap orphans);
 * - targets are started with a double fork (`bash -c 'setsid prog & echo $!'`),
 *   so the orphan is re-parented to us but is unknown to libuv: libuv reaps the
 *   children it spawned behind our back (and reports ptrace stops as exits),
 *   so only pids libuv never saw are ours to wait for;
 * - we wait on specific pids only, never waitpid(-1).
 *
 * Use `e2e(name, fn)` instead of `test()`: it gives the body a fresh temp dir,
 * and afterwards kills and reaps every process the test started or adopted,
 * plus any other child of ours (those are leaks: helpers criu-ts left behind,
 * restored processes nobody adopted), and fails the test if something was left
 * stopped or traced or was not ours.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { TestContext } from 'node:test';
import { setChildSubreaper, waitpid, kill, WNOHANG, WALL, W } from '../../src/kernel/index.ts';
import { readStat } from '../../src/proc/index.ts';
import { REPO_ROOT } from './workloads.ts';

export const SIGKILL = 9;
export const SIGTERM = 15;
export const SIGUSR1 = 10;
export const SIGUSR2 = 12;
const SIGSTOP = 19;

import { SLOW } from './slow.ts';
export { SLOW };

/** The CLI under test: $CRIU_TS_BIN, else <repo>/bin/criu-ts. */
export const CRIU_BIN = process.env.CRIU_TS_BIN ?? join(REPO_ROOT, 'bin', 'criu-ts');

setChildSubreaper();

// ---------------------------------------------------------------- small utils

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const sab = new Int32Array(new SharedArrayBuffer(4));
/** Blocking sleep (for the synchronous reaping loops). */
export function sleepSync(ms: number): void {
  Atomics.wait(sab, 0, 0, ms);
}

/** Poll `fn` until it returns something other than undefined/false/null. */
export async function waitFor<T>(fn: () => T | undefined | false | null, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------- /proc

export interface ProcStat { pid: number; comm: string; state: string; ppid: number; pgid: number; sid: number; starttime: number }

export function procStat(pid: number): ProcStat | null {
  let st;
  try { st = readStat(pid); } catch { return null; }
  return { pid, comm: st.comm, state: st.state, ppid: st.ppid, pgid: st.pgrp, sid: st.session, starttime: Number(st.startTime) };
}

/** /proc/PID/status as a key -> value map, or null if the process is gone. */
export function procStatus(pid: number): Record<string, string> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The single-letter state (R, S, D, T, t, Z, ...) or null if gone. */
export function procState(pid: number): string | null {
  return procStat(pid)?.state ?? null;
}

/** Exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== null && s !== 'Z' && s !== 'X';
}

export function cmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    return raw.split('\0').slice(0, -1);
  } catch {
    return null;
  }
}

/** How a zombie ended, from the wait status in /proc/PID/stat (field 52, exit_code). */
export function zombieStatus(pid: number): string {
  let ws: number;
  try { ws = readStat(pid).exitCode; } catch { return 'gone'; }
  return W.signaled(ws) ? `killed by signal ${W.termSig(ws)}${ws & 0x80 ? ' (core dumped)' : ''}` : `exited with ${W.exitStatus(ws)}`;
}

/** Throws unless the process runs freely: not stopped, not traced, not a zombie. */
export function assertRunningFree(pid: number, what = `PID ${pid}`): void {
  const st = procStatus(pid);
  if (!st) throw new Error(`${what} is gone`);
  const state = st.State?.[0];
  if (state === 'Z' || state === 'X') throw new Error(`${what} is a zombie (${st.State}): ${zombieStatus(pid)}`);
  if (state === 't' || state === 'T') throw new Error(`${what} is stopped (${st.State})`);
  if (st.TracerPid !== '0') throw new Error(`${what} is traced by ${st.TracerPid}`);
}

/** Pids whose parent is this process. */
export function ourChildren(): number[] {
  const me = process.pid;
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = procStat(Number(name));
    if (s && s.ppid === me) out.push(s.pid);
  }
  return out;
}

export interface FdInfo { fd: number; target: string; flags: number; pos: number }

/**
 * /proc/PID/fd as a sorted list. Anonymous objects' inode numbers (pipe:[123])
 * change on restore, so they are renamed in order of first appearance
 * (pipe:#1, pipe:#2, ...): two fds on one pipe keep the same label.
 */
export function fdTable(pid: number): FdInfo[] {
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  const labels = new Map<string, string>();
  const perKind = new Map<string, number>();
  const out: FdInfo[] = [];
  for (const fd of fds) {
    let target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    const m = /^([a-z_]+):\[(\d+)\]$/.exec(target);
    if (m) {
      let label = labels.get(target);
      if (!label) {
        const n = (perKind.get(m[1]) ?? 0) + 1;
        perKind.set(m[1], n);
        label = `${m[1]}:#${n}`;
        labels.set(target, label);
      }
      target = label;
    }
    const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
    const flags = parseInt(/flags:\s+([0-7]+)/.exec(info)?.[1] ?? '0', 8);
    const pos = Number(/pos:\s+(\d+)/.exec(info)?.[1] ?? '0');
    out.push({ fd, target, flags, pos });
  }
  return out;
}

export interface MapEntry { start: bigint; end: bigint; perms: string; offset: bigint; path: string }

export function procMaps(pid: number): MapEntry[] {
  const text = readFileSync(`/proc/${pid}/maps`, 'latin1');
  const out: MapEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3], offset: BigInt('0x' + m[4]), path: m[5] });
  }
  return out;
}

/**
 * Every byte mapped in `a` is mapped in `b` with the same perms and path, and
 * vice versa. Splits and merges of adjacent VMAs are allowed; [vsyscall] is
 * ignored. Returns a list of differences (empty = same layout).
 */
export function diffMaps(a: MapEntry[], b: MapEntry[]): string[] {
  const diffs: string[] = [];
  const hex = (v: bigint) => v.toString(16);
  const cover = (from: MapEntry[], to: MapEntry[], label: string) => {
    for (const e of from) {
      if (e.path === '[vsyscall]') continue;
      let at = e.start;
      while (at < e.end) {
        const o = to.find((x) => x.start <= at && at < x.end);
        if (!o || o.perms !== e.perms || o.path !== e.path) {
          diffs.push(`${label}: ${hex(e.start)}-${hex(e.end)} ${e.perms} ${e.path} at ${hex(at)}: ` +
            (o ? `${hex(o.start)}-${hex(o.end)} ${o.perms} ${o.path}` : 'unmapped'));
          break;
        }
        at = o.end;
      }
    }
  };
  cover(a, b, 'before');
  cover(b, a, 'after');
  return diffs;
}

// ---------------------------------------------------------------- logs

/** Complete lines of a file (a trailing partial line is left out); [] if missing. */
export function readLines(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop();
  return lines;
}

export function tail(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n - 1).join('\n');
  } catch (e) {
    return `(${(e as Error).message})`;
  }
}

/**
 * Wait until a complete line at index >= `from` matches `re` (a RegExp or a
 * predicate). Returns the line and its index.
 */
export async function waitForLine(file: string, re: RegExp | ((line: string) => boolean), timeoutMs = 10_000, from = 0): Promise<{ line: string; index: number }> {
  let seen = 0;
  const match = typeof re === 'function' ? re : (l: string) => re.test(l);
  try {
    return await waitFor(() => {
      const lines = readLines(file);
      seen = lines.length;
      for (let k = from; k < lines.length; k++) if (match(lines[k])) return { line: lines[k], index: k };
      return undefined;
    }, timeoutMs, `a line matching ${re} in ${file}`);
  } catch (e) {
    throw new Error(`${(e as Error).message} (${seen} lines; last ones:\n${tail(file, 8)})`);
  }
}

/** "i=3 sum=ok x" -> { i: '3', sum: 'ok' } */
export function parseKV(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of line.trim().split(/\s+/)) {
    const k = w.indexOf('=');
    if (k > 0) out[w.slice(0, k)] = w.slice(k + 1);
  }
  return out;
}

/** The values of `key` on lines that start with `key=` (progress lines), in order. */
export function counterValues(lines: string[], key = 'i'): number[] {
  const out: number[] = [];
  const re = new RegExp(`^${key}=(\\d+)(\\s|$)`);
  for (const l of lines) {
    const m = re.exec(l);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** The last value of the progress counter in a log, or -1. */
export function lastCounter(file: string, key = 'i'): number {
  const v = counterValues(readLines(file), key);
  return v.length ? v[v.length - 1] : -1;
}

/** Throws unless values go first, first+1, first+2, ... (no gap, no repeat, no restart). */
export function assertConsecutive(values: number[], what: string, first?: number): void {
  if (values.length === 0) throw new Error(`${what}: no values`);
  if (first !== undefined && values[0] !== first) throw new Error(`${what}: starts at ${values[0]}, expected ${first}`);
  for (let k = 1; k < values.length; k++) {
    if (values[k] !== values[k - 1] + 1) {
      const around = values.slice(Math.max(0, k - 3), k + 3).join(', ');
      throw new Error(`${what}: ${values[k - 1]} is followed by ${values[k]} (… ${around} …)`);
    }
  }
}

// ---------------------------------------------------------------- registry & reaping

/** Every pid this test started or adopted and has not reaped yet. */
const registry = new Set<number>();
/** libuv children (async criu-ts runs) that are still running. */
const liveSpawns = new Map<number, { kill: () => void; done: Promise<unknown> }>();

/** Register a pid (e.g. a process restored with -d, now our child) to be reaped. */
export function adopt(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`adopt: bad pid ${pid}`);
  registry.add(pid);
}

export function tracked(): number[] {
  return [...registry];
}

export interface ExitInfo { status: number; code: number | null; signal: number | null }

export function decodeStatus(status: number): ExitInfo {
  const low = status & 0x7f;
  if (low === 0) return { status, code: (status >> 8) & 0xff, signal: null };
  return { status, code: null, signal: low };
}

function errnoCode(e: unknown): string | undefined {
  return (e as { code?: string }).code;
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
    try {
      const r = waitpid(pid, WNOHANG | WALL);
      if (r.pid === pid) {
        registry.delete(pid);
        return decodeStatus(r.status);
      }
    } catch (e) {
      if (errnoCode(e) !== 'ECHILD') throw e;
      if (procStat(pid) === null) {
        registry.delete(pid);
        return null;
      }
    }
    if (Date.now() > end) throw new Error(`PID ${pid} did not end within ${timeoutMs} ms (state ${procState(pid)}, ppid ${procStat(pid)?.ppid})`);
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
    try {
      const r = waitpid(pid, WNOHANG | WALL);
      if (r.pid === pid) {
        registry.delete(pid);
        return decodeStatus(r.status);
      }
    } catch (e) {
      if (errnoCode(e) !== 'ECHILD') throw e;
      if (procStat(pid) === null) {
        registry.delete(pid);
        return null;
      }
    }
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
    while (Date.now() < end && [...known].some((p) => { const s = procState(p); return s === 'R' || s === 'S' || s === 'D'; })) sleepSync(1);
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

// ---------------------------------------------------------------- targets

export interface StartOptions {
  cwd?: string;
  /** Added to (not replacing) this process's environment. */
  env?: Record<string, string>;
  /** stdout+stderr, opened O_WRONLY|O_APPEND (the test's dir or a new temp dir by default). */
  logFile?: string;
  /** stdin (default /dev/null). */
  stdin?: string;
  /** Run under setsid (its own session and group, no controlling tty). Default true. */
  setsid?: boolean;
  /** How long to wait for the exec to finish. */
  timeoutMs?: number;
}

export interface Target { pid: number; log: string; argv: string[] }

let logSeq = 0;
let fallback: string | null = null;

/** A scratch dir for output made outside an e2e() body (e.g. in a before hook); removed at exit. */
function fallbackDir(): string {
  if (!fallback) {
    const dir = mkdtempSync(join(tmpdir(), 'criu-ts-scratch-'));
    fallback = dir;
    process.on('exit', () => {
      if (!process.env.CRIU_TS_KEEP) rmSync(dir, { recursive: true, force: true });
    });
  }
  return fallback;
}

/**
 * Start argv as an orphan re-parented to this process (double fork), not a
 * libuv child. Returns once /proc/PID/cmdline shows argv (the exec is done).
 */
export function startTarget(argv: string[], opts: StartOptions = {}): Target {
  if (argv.length === 0) throw new Error('startTarget: empty argv');
  const log = opts.logFile ?? join(currentDir ?? fallbackDir(), `target-${++logSeq}.log`);
  const useSetsid = opts.setsid ?? true;
  // The background job closes every fd above 2 it inherited (from whoever ran
  // the test), then execs the program with stdin/stdout/stderr redirected.
  const script = 'log=$1; in=$2; shift 2; { for p in /proc/self/fd/*; do n=${p##*/}; ' +
    'if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done; ' +
    `${useSetsid ? 'exec setsid "$@"' : 'exec "$@"'} <"$in" >>"$log" 2>&1; } & echo $!`;
  const r = spawnSync('bash', ['-c', script, 'bash', log, opts.stdin ?? '/dev/null', ...argv], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 10_000 * SLOW,
  });
  const pid = Number(r.stdout.trim());
  if (r.status !== 0 || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(`startTarget(${argv.join(' ')}) failed: status ${r.status}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
  }
  registry.add(pid);
  currentTargets.push({ pid, log, argv });
  // The background job first runs `setsid`, which then execs the program.
  const want = argv.join('\0');
  const end = Date.now() + (opts.timeoutMs ?? 5000) * SLOW;
  for (;;) {
    const cl = cmdline(pid);
    if (cl && cl.join('\0') === want) break;
    const st = procState(pid);
    if (st === null || st === 'Z') throw new Error(`startTarget: ${argv[0]} (PID ${pid}) exited at once; log:\n${tail(log, 10)}`);
    if (Date.now() > end) throw new Error(`startTarget: PID ${pid} did not exec ${argv[0]} (cmdline ${JSON.stringify(cl)})`);
    sleepSync(2);
  }
  const s = procStat(pid);
  if (s && s.ppid !== process.pid) throw new Error(`startTarget: PID ${pid}'s parent is ${s.ppid}, not us (${process.pid}): are we a subreaper?`);
  if (useSetsid && s && s.sid !== pid) throw new Error(`startTarget: PID ${pid} is not a session leader (sid ${s.sid})`);
  return { pid, log, argv };
}

// ---------------------------------------------------------------- criu-ts

export interface CriuResult { code: number; signal: string | null; stdout: string; stderr: string; ms: number; args: string[] }

export interface CriuOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /**
   * Run criu-ts through `bash -c 'exec criu-ts ...'` with every "@SELF@" in
   * args replaced by the PID criu-ts will have (for "dump yourself").
   */
  selfPid?: boolean;
}

let outSeq = 0;

function command(args: string[], opts: CriuOptions): { file: string; argv: string[] } {
  if (!opts.selfPid) return { file: CRIU_BIN, argv: args };
  return { file: 'bash', argv: ['-c', 'exec "$0" "${@//@SELF@/$$}"', CRIU_BIN, ...args] };
}

function outFiles(): { out: string; err: string } {
  const dir = currentDir ?? fallbackDir();
  const n = ++outSeq;
  return { out: join(dir, `criu-${n}.stdout`), err: join(dir, `criu-${n}.stderr`) };
}

function readAndRemove(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  } finally {
    rmSync(f, { force: true });
  }
}

/**
 * Run `bin/criu-ts ARGS` and wait for it. stdout/stderr go through files, not
 * pipes, so a restored process that wrongly inherited them cannot hang us.
 */
export function runCriu(args: string[], opts: CriuOptions = {}): CriuResult {
  const f = outFiles();
  const outFd = openSync(f.out, 'w');
  const errFd = openSync(f.err, 'w');
  const t0 = Date.now();
  let r;
  try {
    const cmd = command(args, opts);
    r = spawnSync(cmd.file, cmd.argv, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', outFd, errFd],
      timeout: (opts.timeoutMs ?? 60_000) * SLOW,
      killSignal: 'SIGKILL',
    });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  const res: CriuResult = {
    code: r.status ?? -1,
    signal: r.signal,
    stdout: readAndRemove(f.out),
    stderr: readAndRemove(f.err),
    ms: Date.now() - t0,
    args,
  };
  if (r.error) res.stderr += `\n[harness] spawn failed: ${r.error.message}`;
  criuRuns.push(res);
  return res;
}

/** Start criu-ts without waiting. `done` resolves when it exits. */
export function runCriuAsync(args: string[], opts: CriuOptions = {}): { pid: number; done: Promise<CriuResult> } {
  const f = outFiles();
  const outFd = openSync(f.out, 'w');
  const errFd = openSync(f.err, 'w');
  const t0 = Date.now();
  const cmd = command(args, opts);
  const child = spawn(cmd.file, cmd.argv, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', outFd, errFd],
  });
  closeSync(outFd);
  closeSync(errFd);
  const timeoutMs = (opts.timeoutMs ?? 60_000) * SLOW;
  const done = new Promise<CriuResult>((resolve) => {
    let spawnError = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { spawnError = `\n[harness] spawn failed: ${e.message}`; });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (child.pid) liveSpawns.delete(child.pid);
      const res: CriuResult = { code: code ?? -1, signal: sig, stdout: readAndRemove(f.out), stderr: readAndRemove(f.err) + spawnError, ms: Date.now() - t0, args };
      criuRuns.push(res);
      resolve(res);
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) liveSpawns.set(pid, { kill: () => child.kill('SIGKILL'), done });
  return { pid, done };
}

/** A readable account of a criu-ts run, for assertion messages. */
export function describeRun(r: CriuResult): string {
  return `criu-ts ${r.args.join(' ')} -> exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''} in ${r.ms} ms\n` +
    `stderr: ${r.stderr.trim() || '(empty)'}\nstdout: ${r.stdout.trim().slice(0, 2000) || '(empty)'}`;
}

/** Throws (with stderr and the tail of any criu-ts log under the test dir) unless exit 0. */
export function assertOk(r: CriuResult): CriuResult {
  if (r.code !== 0) throw new Error(describeRun(r) + logTails());
  return r;
}

/** Throws unless criu-ts failed cleanly: exit 1 and exactly one non-empty line on stderr. Returns that line. */
export function assertCleanError(r: CriuResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  if (r.code !== 1 || lines.length !== 1) {
    throw new Error(`expected exit 1 with one line on stderr\n${describeRun(r)}`);
  }
  return lines[0];
}

// ---------------------------------------------------------------- per-test context

let currentDir: string | null = null;
let currentTargets: Target[] = [];
let criuRuns: CriuResult[] = [];
let afterInstalled = false;

function logTails(): string {
  if (!currentDir) return '';
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory() && depth < 3) walk(p, depth + 1);
      // criu-ts's -o logs live in the images dirs (subdirs); targets' logs at the top
      else if (st.isFile() && depth > 0 && n.endsWith('.log')) out.push(`\n--- ${p} (tail)\n${tail(p, 40)}`);
    }
  };
  try {
    walk(currentDir, 0);
  } catch {
    /* best effort */
  }
  return out.join('');
}

export interface E2EContext {
  /** A fresh directory for this test (removed when it passes, kept when it fails). */
  dir: string;
  t: TestContext;
  /** A new empty subdirectory of dir. */
  subdir(name: string): string;
}

export interface E2EOptions { timeout?: number; skip?: boolean | string; todo?: boolean | string }

/**
 * A node:test test with process hygiene. Whatever happens in `fn`, every
 * process started or adopted is killed and reaped afterwards, and a leak fails
 * the test. On failure the targets' logs and criu-ts's logs are shown and the
 * directory is kept (set CRIU_TS_KEEP=1 to keep it always).
 */
export function e2e(name: string, fn: (c: E2EContext) => Promise<void> | void, opts: E2EOptions = {}): void {
  if (!afterInstalled) {
    afterInstalled = true;
    after(async () => {
      const problems = await sweep();
      if (problems.length) throw new Error(`processes leaked by the test file:\n  ${problems.join('\n  ')}`);
    });
  }
  test(name, { timeout: (opts.timeout ?? 120_000) * SLOW, skip: opts.skip, todo: opts.todo }, async (t) => {
    const safe = name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40);
    const dir = mkdtempSync(join(tmpdir(), `criu-ts-e2e-${safe}-`));
    currentDir = dir;
    currentTargets = [];
    criuRuns = [];
    let failure: unknown = null;
    try {
      await fn({
        dir,
        t,
        subdir: (n: string) => mkdtempSync(join(dir, `${n}-`)),
      });
    } catch (e) {
      failure = e;
    }
    let problems: string[];
    try {
      problems = await sweep();
    } catch (e) {
      problems = [`sweep failed: ${(e as Error).message}`];
    }
    // A failing todo test is expected: show why, but do not pile up its dirs.
    const keep = !!process.env.CRIU_TS_KEEP || ((failure !== null || problems.length > 0) && !opts.todo);
    if (failure || problems.length) {
      const diag: string[] = [keep ? `test dir kept: ${dir}` : `test dir: ${dir} (removed)`];
      for (const tg of currentTargets) diag.push(`--- target PID ${tg.pid} ${tg.argv.join(' ')} log (tail):\n${tail(tg.log, 15)}`);
      for (const r of criuRuns) diag.push(`--- ${describeRun(r)}`);
      const lt = logTails();
      if (lt) diag.push(lt);
      t.diagnostic(diag.join('\n'));
    }
    if (!keep) rmSync(dir, { recursive: true, force: true });
    currentDir = null;
    if (failure) {
      if (problems.length && failure instanceof Error) failure.message += `\n(also leaked: ${problems.join('; ')})`;
      throw failure;
    }
    if (problems.length) throw new Error(`process hygiene:\n  ${problems.join('\n  ')}`);
  });
}

// ---------------------------------------------------------------- misc

/** A pid that no process has right now (from the top of the pid range). */
export function unusedPid(): number {
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  for (let p = max - 1; p > max - 1000; p--) if (!existsSync(`/proc/${p}`)) return p;
  throw new Error('no unused pid found');
}

/** *.img files in a directory ([] if the directory does not exist). */
export function imageFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.img')).sort();
}
