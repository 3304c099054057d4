/**
 * Checkpoint/restore steps shared by the e2e tests, with their assertions.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  CRIU_BIN,
  adopt,
  assertOk,
  assertRunningFree,
  descendants,
  counterValues,
  assertConsecutive,
  imageFiles,
  parseKV,
  procStat,
  readLines,
  reap,
  runCriu,
  waitForLine,
  type CriuOptions,
  type CriuResult,
  type E2EContext,
  type Target,
  startTarget,
} from './proc.ts';
import { workload } from './workloads.ts';
import { PagemapReader, PE_PARENT, PE_PRESENT, readMessages } from '../../src/images/index.ts';

/** Pages of the task's pagemap in `dir`: saved there, and left to the parent dump. */
export function pageCounts(dir: string, pid: number): { present: number; parent: number } {
  let present = 0,
    parent = 0;
  for (const r of new PagemapReader(dir, pid)) {
    if (r.flags & PE_PRESENT) present += r.nrPages;
    if (r.flags & PE_PARENT) parent += r.nrPages;
  }
  return { present, parent };
}

/** `criu-ts dump -t PID -D DIR -v4 -o dump.log [extra]`. */
export function dump(pid: number, dir: string, extra: string[] = [], opts: CriuOptions = {}): CriuResult {
  return runCriu(['dump', '-t', String(pid), '-D', dir, '-v4', '-o', 'dump.log', ...extra], opts);
}

/** `criu-ts restore -D DIR -v4 -o restore.log [extra]` (add -d yourself). */
export function restore(dir: string, extra: string[] = [], opts: CriuOptions = {}): CriuResult {
  return runCriu(['restore', '-D', dir, '-v4', '-o', 'restore.log', ...extra], opts);
}

/**
 * Dump without -R: expects exit 0, images in `dir`, and the target killed by
 * criu-ts (SIGKILL), which we then reap so that its PID is free.
 */
export function dumpAndReap(pid: number, dir: string, extra: string[] = []): CriuResult {
  const tree = descendants(pid);
  for (const d of tree) adopt(d);
  const r = assertOk(dump(pid, dir, extra));
  const ex = reap(pid, 10_000);
  assert.ok(ex, `PID ${pid} was not our child after the dump`);
  assert.equal(ex.signal, 9, `after a dump without -R the target should have been killed with SIGKILL, got ${JSON.stringify(ex)}`);
  // The rest of the tree was killed too; its zombies are re-parented to us. The tree may
  // have changed since we looked (a shell forks all the time): pstree.img says what was dumped.
  const dumped = readMessages(join(dir, 'pstree.img'), 'pstree_entry')
    .map((e) => e.pid)
    .filter((p) => p !== pid);
  for (const d of new Set([...tree, ...dumped])) reap(d, 10_000);
  assert.ok(imageFiles(dir).length > 0, `no *.img files in ${dir}`);
  return r;
}

/**
 * `restore -d --pidfile`: expects exit 0, the pidfile to hold `pid`, and the
 * process to be running, untraced, as our child (we are the subreaper).
 * Adopts it.
 */
export function restoreDetached(dir: string, pid: number, extra: string[] = []): CriuResult {
  const pidfile = join(dir, `restored-${Date.now()}.pid`);
  const r = restore(dir, ['-d', '--pidfile', pidfile, ...extra]);
  // Adopt first so that the sweep reaps it whatever happens next.
  adopt(pid);
  assertOk(r);
  assert.ok(existsSync(pidfile), `--pidfile ${pidfile} was not written`);
  assert.equal(readFileSync(pidfile, 'utf8').trim(), String(pid), 'pidfile content');
  const st = procStat(pid);
  assert.ok(st, `restored PID ${pid} does not exist`);
  assert.equal(st.ppid, process.pid, `restored PID ${pid} should be our child (we are the subreaper); ppid ${st.ppid}`);
  assertRunningFree(pid, `restored PID ${pid}`);
  return r;
}

/**
 * `restore -d --pidfile DIR/root.pid [extra]` of a tree whose root criu-ts gives a pid of the
 * kernel's choice (a PID namespace's init): the root's host pid, adopted, and with `tree` its
 * descendants too.
 */
export function restoreRoot(dir: string, extra: string[] = [], tree = false): number {
  const pidfile = join(dir, 'root.pid');
  writeFileSync(pidfile, '');
  assertOk(restore(dir, ['-d', '--pidfile', pidfile, ...extra]));
  const host = Number(readFileSync(pidfile, 'utf8'));
  adopt(host);
  if (tree) for (const d of descendants(host)) adopt(d);
  return host;
}

// ---------------------------------------------------------------- foundation workload

export const DATA_HEADER = 'criu-ts foundation data file\n'.repeat(171); // 4959 bytes: not page aligned

export interface Foundation extends Target {
  data: string | null;
}

export interface FoundationOptions {
  /** Write the data file (-f). Default true. */
  dataFile?: boolean;
  intervalMs?: number;
  heapMiB?: number;
  /** -x M: exit at iteration M with -c code. */
  exitAt?: number;
  exitCode?: number;
  pipeAt?: number;
}

export function startFoundation(c: E2EContext, o: FoundationOptions = {}): Foundation {
  const argv = [workload('foundation'), '-i', String(o.intervalMs ?? 100)];
  let data: string | null = null;
  if (o.dataFile ?? true) {
    data = join(c.dir, 'foundation.data');
    writeFileSync(data, DATA_HEADER);
    argv.push('-f', data);
  }
  if (o.heapMiB !== undefined) argv.push('-m', String(o.heapMiB));
  if (o.exitAt !== undefined) argv.push('-x', String(o.exitAt), '-c', String(o.exitCode ?? 7));
  if (o.pipeAt !== undefined) argv.push('-p', String(o.pipeAt));
  const t = startTarget(argv, { logFile: join(c.dir, 'foundation.log') });
  return { ...t, data };
}

const MUST_BE_OK = ['tls', 'errno', 'sum', 'sa', 'mask', 'mono', 'vdso', 'cpu', 'rseq'] as const;

/**
 * Checks every progress line of the foundation log: all checks ok, the
 * counter consecutive from 1, the pipe never BAD. Returns the parsed lines.
 */
export function checkFoundationLog(log: string): Record<string, string>[] {
  const lines = readLines(log);
  const progress = lines.filter((l) => l.startsWith('i='));
  assertConsecutive(counterValues(progress), `counter in ${log}`, 1);
  const starts = lines.filter((l) => l.startsWith('start ')).length;
  assert.equal(starts, 1, `the workload started ${starts} times (it must continue, not start over)`);
  const parsed = progress.map(parseKV);
  for (const [k, p] of parsed.entries()) {
    for (const key of MUST_BE_OK) {
      assert.equal(p[key], 'ok', `line ${k + 1} "${progress[k]}": ${key} is not ok`);
    }
    assert.ok(p.fpos === 'ok' || p.fpos === 'none', `"${progress[k]}": fpos`);
    assert.ok(p.pipe === 'full' || p.pipe === 'ok', `"${progress[k]}": pipe`);
  }
  return parsed;
}

/** The data file is the header followed by "line 1\n" ... "line N\n": no hole, no overwrite. Returns N. */
export function checkDataFile(path: string): number {
  const text = readFileSync(path, 'latin1');
  assert.ok(text.startsWith(DATA_HEADER), 'the data file header was overwritten');
  const body = text.slice(DATA_HEADER.length);
  assert.ok(!body.includes('\0'), 'the data file has a hole (NUL bytes)');
  assert.ok(body === '' || body.endsWith('\n'), 'the data file ends with a partial line');
  const lines = body.split('\n').slice(0, -1);
  const nums = lines.map((l) => {
    const m = /^line (\d+)$/.exec(l);
    assert.ok(m, `unexpected data file line ${JSON.stringify(l)}`);
    return Number(m[1]);
  });
  assertConsecutive(nums, `data file ${path}`, 1);
  return nums.length;
}

/** The counter of a progress line ("i=N ..."), or -1. */
export function counterOf(line: string, key = 'i'): number {
  const m = new RegExp(`^${key}=(\\d+)(\\s|$)`).exec(line);
  return m ? Number(m[1]) : -1;
}

/** The counter of the first progress line at line index >= `from`, or -1. */
export function firstProgressFrom(log: string, from: number): number {
  const lines = readLines(log);
  for (let k = from; k < lines.length; k++) if (counterOf(lines[k]) >= 0) return counterOf(lines[k]);
  return -1;
}

/** Wait for a progress line with i > `after` (at index >= `from`); returns its parsed fields. */
export async function waitForCounter(log: string, after: number, timeoutMs = 10_000, from = 0): Promise<Record<string, string>> {
  const { line } = await waitForLine(log, (l) => counterOf(l) > after, timeoutMs, from);
  return parseKV(line);
}

/** The nftables table of the lock a dump took, from its log. */
export function lockTable(log: string): string {
  const t = /network locked with nftables \(table inet (CRIU-[\w-]+)\)/.exec(readFileSync(log, 'utf8'))?.[1];
  assert.ok(t, `${log} names its lock table`);
  return t;
}
export const tableExists = (t: string): boolean => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(`inet ${t}\n`);

/**
 * Start a dump that holds at write-images (connections frozen, lock taken) until it is killed
 * or the file CRIU_TS_HANG_UNTIL (in `env`) exists; resolves once it says it hangs, and fails
 * with what it said if it ends first.
 */
export async function heldDump(
  pid: number,
  dir: string,
  extra: string[],
  env: Record<string, string>,
): Promise<{ ended: Promise<number | string | null>; kill: () => void }> {
  const criu = spawn(CRIU_BIN, ['dump', '-t', String(pid), '-D', dir, '-v4', '-o', 'dump.log', ...extra], {
    env: { ...process.env, CRIU_TS_HANG: 'write-images', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ended = new Promise<number | string | null>((resolve) => criu.on('exit', (code, s) => resolve(s ?? code)));
  let said = '';
  await new Promise<void>((resolve, reject) => {
    criu.stderr.on('data', (d: Buffer) => {
      said += d.toString();
      if (said.includes('hanging')) resolve();
    });
    criu.on('exit', (code, sig) => reject(new Error(`criu-ts dump ended (${sig ?? code}) before hanging: ${said}`)));
  });
  return { ended, kill: () => criu.kill('SIGKILL') };
}
