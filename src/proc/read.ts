// Thin readers: read a /proc file synchronously and hand it to the pure parser.
// Errors from fs (ENOENT when the task is gone, EACCES, ...) propagate unchanged.

import * as fs from 'node:fs';
import { parseAuxv } from './auxv.ts';
import { parseFdinfo, type Fdinfo } from './fdinfo.ts';
import { parseLimits, type Rlimit } from './limits.ts';
import { parseMaps, parseSmaps, type Vma } from './maps.ts';
import { parseMountinfo, type MountInfo } from './mountinfo.ts';
import { PM_ENTRY_BYTES, pagemapOffset } from './pagemap.ts';
import { parseStat, type Stat } from './stat.ts';
import { parseStatus, type Status } from './status.ts';
import { parseTimers, type PosixTimerInfo } from './timers.ts';

/** Root of procfs; tests may point it elsewhere. */
let procRoot = '/proc';
export function setProcRoot(root: string): void {
  procRoot = root;
}
export function getProcRoot(): string {
  return procRoot;
}

export function procPath(pid: number | 'self', ...rest: string[]): string {
  return [procRoot, String(pid), ...rest].join('/');
}

function taskPath(pid: number, tid: number | undefined, name: string): string {
  return tid === undefined ? procPath(pid, name) : procPath(pid, 'task', String(tid), name);
}

export function readProcText(path: string): string {
  return fs.readFileSync(path, 'latin1');
}

/**
 * Read a /proc text file as UTF-8 where the content is text meant for humans (paths, names).
 * Paths in maps are raw bytes; 'utf8' decoding keeps valid UTF-8 names intact.
 */
function readUtf8(path: string): string {
  return fs.readFileSync(path, 'utf8');
}

export function readMaps(pid: number): Vma[] {
  return parseMaps(readUtf8(procPath(pid, 'maps')));
}
export function readSmaps(pid: number): Vma[] {
  return parseSmaps(readUtf8(procPath(pid, 'smaps')));
}
export function readStatus(pid: number, tid?: number): Status {
  return parseStatus(readUtf8(taskPath(pid, tid, 'status')));
}
export function readStat(pid: number, tid?: number): Stat {
  return parseStat(readUtf8(taskPath(pid, tid, 'stat')));
}
/**
 * /proc/PID/task/TID/syscall: the call a blocked thread is in and its arguments; undefined
 * when it runs or is not in a call.
 */
export function readSyscall(pid: number, tid: number): { nr: number; args: bigint[] } | undefined {
  const f = readUtf8(taskPath(pid, tid, 'syscall'))
    .trim()
    .split(' ');
  if (f.length < 7 || Number(f[0]) < 0) return undefined;
  return { nr: Number(f[0]), args: f.slice(1, 7).map((a) => BigInt(a)) };
}
/**
 * /proc/PID/numa_maps: each VMA's start and the NUMA policy it shows (its own, else the task's),
 * and the one most of them show, taken to be the task's; empty when the kernel has no NUMA.
 */
export function readNumaPolicies(pid: number): { vmas: Array<[string, string]>; common?: string } {
  let text = '';
  try {
    text = readUtf8(procPath(pid, 'numa_maps'));
  } catch {
    /* no NUMA, or the task is gone */
  }
  const vmas = text
    .split('\n')
    .map((l) => l.split(' ', 2) as [string, string])
    .filter(([, policy]) => policy);
  const count = new Map<string, number>();
  for (const [, policy] of vmas) count.set(policy, (count.get(policy) ?? 0) + 1);
  return { vmas, common: [...count].sort((a, b) => b[1] - a[1])[0]?.[0] };
}
export function readFdinfo(pid: number, fd: number): Fdinfo {
  return parseFdinfo(readUtf8(procPath(pid, 'fdinfo', String(fd))));
}
export function readAuxv(pid: number): bigint[] {
  return parseAuxv(fs.readFileSync(procPath(pid, 'auxv')));
}
export function readLimits(pid: number): Rlimit[] {
  return parseLimits(readUtf8(procPath(pid, 'limits')));
}
export function readMountinfo(pid: number): MountInfo[] {
  return parseMountinfo(readUtf8(procPath(pid, 'mountinfo')));
}
export function readTimers(pid: number): PosixTimerInfo[] {
  return parseTimers(readUtf8(procPath(pid, 'timers')));
}

/** A /proc/PID file that holds one number (oom_score_adj, loginuid; personality in hex). */
export function readProcNumber(pid: number, name: string, radix = 10): number {
  return parseInt(readUtf8(procPath(pid, name)), radix);
}

/** /proc/PID/comm without the trailing newline. */
export function readComm(pid: number, tid?: number): string {
  return readUtf8(taskPath(pid, tid, 'comm')).replace(/\n$/, '');
}

function numericEntries(dir: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync(dir)) if (/^\d+$/.test(name)) out.push(Number(name));
  return out.sort((a, b) => a - b);
}

/** Thread ids of a process, ascending. */
export function listThreads(pid: number): number[] {
  return numericEntries(procPath(pid, 'task'));
}

/** Open fd numbers of a process, ascending. */
export function listFds(pid: number): number[] {
  return numericEntries(procPath(pid, 'fd'));
}

/** readlink of /proc/PID/<name>, e.g. "exe", "cwd", "root", "fd/3", "ns/mnt", "map_files/7f00-7f01". */
export function readLink(pid: number, name: string): string {
  return fs.readlinkSync(procPath(pid, name));
}

/** Parse the space-separated list of /proc/PID/task/TID/children. */
export function parseChildren(text: string): number[] {
  const out: number[] = [];
  for (const t of text.split(/\s+/)) if (t !== '') out.push(Number(t));
  return out;
}

/** Children of thread TID of PID (needs CONFIG_PROC_CHILDREN). */
export function listChildren(pid: number, tid: number): number[] {
  return parseChildren(readProcText(procPath(pid, 'task', String(tid), 'children')));
}

/** Open /proc/PID/pagemap read-only; the caller closes the fd. */
export function openPagemap(pid: number): number {
  return fs.openSync(procPath(pid, 'pagemap'), 'r');
}

/**
 * Read the pagemap entries for `nrPages` pages from `start` into `target` (allocated when omitted) and return
 * the filled part. The kernel may return fewer entries past the end of the address space.
 */
export function readPagemapFd(fd: number, start: bigint, nrPages: number, target?: Buffer, pageSize = 4096): Buffer {
  const len = nrPages * PM_ENTRY_BYTES;
  const buf = target ?? Buffer.allocUnsafe(len);
  if (buf.length < len) throw new RangeError(`pagemap buffer of ${buf.length} bytes < ${len}`);
  let pos = pagemapOffset(start, pageSize);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, buf, done, len - done, pos);
    if (n <= 0) break;
    done += n;
    pos += BigInt(n);
  }
  return buf.subarray(0, done);
}

/** One-shot: pagemap entries of [start, end) of PID. Chunk large ranges yourself with openPagemap/readPagemapFd. */
export function readPagemap(pid: number, start: bigint, end: bigint, pageSize = 4096): Buffer {
  const fd = openPagemap(pid);
  try {
    return readPagemapFd(fd, start, Number((end - start) / BigInt(pageSize)), undefined, pageSize);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The first fd of the tasks `pids` for which `is` holds (tasks gone and fds closed meanwhile,
 * or that `is` cannot read, are skipped).
 */
export function findFd(pids: readonly number[], is: (pid: number, fd: string) => boolean): { pid: number; fd: number } | undefined {
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (is(pid, fd)) return { pid, fd: Number(fd) };
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}
