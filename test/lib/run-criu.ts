// Running the criu-ts command line under test, with its output through files.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SLOW } from './slow.ts';
import { REPO_ROOT } from './workloads.ts';
import { liveSpawns } from './reap.ts';
import { current, logTails, scratchDir } from './scratch.ts';

/** The CLI under test: $CRIU_TS_BIN, else <repo>/bin/criu-ts. */
export const CRIU_BIN = process.env.CRIU_TS_BIN ?? join(REPO_ROOT, 'bin', 'criu-ts');

export interface CriuResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
  args: string[];
}

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
  const dir = scratchDir();
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
  current.runs.push(res);
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
    child.on('error', (e) => {
      spawnError = `\n[harness] spawn failed: ${e.message}`;
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (child.pid) liveSpawns.delete(child.pid);
      const res: CriuResult = {
        code: code ?? -1,
        signal: sig,
        stdout: readAndRemove(f.out),
        stderr: readAndRemove(f.err) + spawnError,
        ms: Date.now() - t0,
        args,
      };
      current.runs.push(res);
      resolve(res);
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) liveSpawns.set(pid, { kill: () => child.kill('SIGKILL'), done });
  return { pid, done };
}

/** A readable account of a criu-ts run, for assertion messages. */
export function describeRun(r: CriuResult): string {
  return (
    `criu-ts ${r.args.join(' ')} -> exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''} in ${r.ms} ms\n` +
    `stderr: ${r.stderr.trim() || '(empty)'}\nstdout: ${r.stdout.trim().slice(0, 2000) || '(empty)'}`
  );
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
