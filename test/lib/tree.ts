/**
 * Helpers for process trees and threads: snapshots of a whole tree's /proc
 * state, threads and their masks, pipe fill levels, syscall numbers.
 */
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { descendants } from './proc.ts';
import { readStat } from '../../src/proc/index.ts';
import { ioctl } from '../../src/kernel/index.ts';

/** The fields of /proc/PID/stat that a restore must reproduce. */
export interface TaskStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number;
  exitCode: number;
}

export function taskStat(pid: number): TaskStat | null {
  let st;
  try {
    st = readStat(pid);
  } catch {
    return null;
  }
  return {
    pid,
    comm: st.comm,
    state: st.state,
    ppid: st.ppid,
    pgid: st.pgrp,
    sid: st.session,
    threads: st.numThreads,
    exitCode: st.exitCode, // exit_code: the wait status of a zombie
  };
}

/**
 * `root` and all its descendants, sorted by PID. Throws if one vanished while we looked, unless
 * `transient` says the running tree has short-lived children (a shell loop's commands), which
 * are left out then.
 */
export function treeSnapshot(root: number, transient = false): TaskStat[] {
  const pids = [root, ...descendants(root)].sort((a, b) => a - b);
  return pids.flatMap((p) => {
    const s = taskStat(p);
    if (!s && !transient) throw new Error(`PID ${p} vanished while the tree was being read`);
    return s ? [s] : [];
  });
}

/**
 * What prctl(PR_SET_MM_MAP) sets and /proc shows: code, data, brk start, stack, arguments and
 * environment, the end of the heap VMA (the brk, page-aligned), the saved auxv and the exe link.
 * The whole auxv: an arm64 kernel's has entries past what CRIU's format holds (arch.auxvWords
 * words), which criu-ts keeps in an extension field.
 */
export function mmFields(pid: number): string {
  const st = readStat(pid);
  const heap = /^[0-9a-f]+-([0-9a-f]+) .*\[heap\]$/m.exec(readFileSync(`/proc/${pid}/maps`, 'latin1'))?.[1] ?? '-';
  const auxv = readFileSync(`/proc/${pid}/auxv`).toString('hex');
  return [
    st.startCode,
    st.endCode,
    st.startData,
    st.endData,
    st.startBrk,
    heap,
    st.startStack,
    st.argStart,
    st.argEnd,
    st.envStart,
    st.envEnd,
    readlinkSync(`/proc/${pid}/exe`),
    auxv,
  ].join(' ');
}

/** A one-line-per-task rendering, for readable diffs in assertion messages. */
export function renderTree(tasks: TaskStat[]): string[] {
  // R and S are both a task that runs on: which one /proc shows is a matter of the moment.
  return tasks.map(
    (t) =>
      `${t.pid} ${t.comm} ${t.state === 'R' ? 'S' : t.state} ppid=${t.ppid} pgid=${t.pgid} sid=${t.sid} thr=${t.threads}${t.state === 'Z' ? ` exit=${t.exitCode}` : ''}`,
  );
}

/** TIDs of a process, sorted. */
export function taskTids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

/** tid -> a field of /proc/PID/task/TID/status (e.g. SigBlk, SigPnd). */
/**
 * "start-end advice" for every VMA that carries madvise advice restore must re-apply (the
 * VmFlags tokens CRIU records in vma_entry.madv).
 */
export function vmaAdvice(pid: number): string[] {
  const out: string[] = [];
  let range = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'latin1').split('\n')) {
    const r = /^([0-9a-f]+-[0-9a-f]+) /.exec(line);
    if (r) {
      range = r[1];
      continue;
    }
    if (!line.startsWith('VmFlags:')) continue;
    const advice = line
      .slice(8)
      .trim()
      .split(/\s+/)
      .filter((f) => ['sr', 'rr', 'dc', 'dd', 'mg', 'hg', 'nh', 'wf'].includes(f));
    if (advice.length) out.push(`${range} ${advice.join(' ')}`);
  }
  return out;
}

export function threadStatus(pid: number, field: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const tid of taskTids(pid)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(text);
    out.set(tid, m ? m[1].trim() : '');
  }
  return out;
}

/** The syscall a thread is blocked in (first field of /proc/PID/task/TID/syscall), or -1 when running. */
export function syscallOf(pid: number, tid: number): number {
  const text = readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'latin1').trim();
  const n = Number(text.split(' ')[0]);
  return Number.isInteger(n) ? n : -1;
}

export const NR =
  process.arch === 'arm64'
    ? { read: 63, write: 64, futex: 98, pause: -1, rt_sigsuspend: 133, wait4: 260 }
    : { read: 0, write: 1, futex: 202, pause: 34, rt_sigsuspend: 130, wait4: 61 };

const FIONREAD = 0x541b;

/**
 * Bytes buffered in the pipe behind /proc/PID/fd/FD (FIONREAD on a second,
 * non-blocking reader of the same pipe, opened through /proc and closed at once).
 */
export function pipeFill(pid: number, fd: number): number {
  const f = openSync(`/proc/${pid}/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(4);
    ioctl(f, FIONREAD, buf);
    return buf.readInt32LE(0);
  } finally {
    closeSync(f);
  }
}

/** fd -> link target of every fd of a process ("pipe:[123]", "/dev/null", ...). */
export function fdTargets(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(Number(name), readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}
