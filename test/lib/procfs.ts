// Reading /proc about test processes, and small waiting helpers.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { W } from '../../src/kernel/index.ts';
import { readStat } from '../../src/proc/index.ts';
import { SLOW } from './slow.ts';

export const SIGKILL = 9;
export const SIGTERM = 15;
export const SIGUSR1 = 10;
export const SIGUSR2 = 12;
export const SIGSTOP = 19;

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

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  starttime: number;
}

export function procStat(pid: number): ProcStat | null {
  let st;
  try {
    st = readStat(pid);
  } catch {
    return null;
  }
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
  try {
    ws = readStat(pid).exitCode;
  } catch {
    return 'gone';
  }
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

export interface FdInfo {
  fd: number;
  target: string;
  flags: number;
  pos: number;
}

/**
 * /proc/PID/fd as a sorted list. Anonymous objects' inode numbers (pipe:[123])
 * change on restore, so they are renamed in order of first appearance
 * (pipe:#1, pipe:#2, ...): two fds on one pipe keep the same label.
 */
export function fdTable(pid: number): FdInfo[] {
  const fds = readdirSync(`/proc/${pid}/fd`)
    .map(Number)
    .sort((a, b) => a - b);
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

export interface MapEntry {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  path: string;
}

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
          diffs.push(
            `${label}: ${hex(e.start)}-${hex(e.end)} ${e.perms} ${e.path} at ${hex(at)}: ` +
              (o ? `${hex(o.start)}-${hex(o.end)} ${o.perms} ${o.path}` : 'unmapped'),
          );
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
