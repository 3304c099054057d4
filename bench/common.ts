// Shared bits of the benchmark scripts: start targets as our orphans (we are a subreaper),
// run criu-ts, time things.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setChildSubreaper, waitpid, kill, WNOHANG } from '../src/kernel/index.ts';

export const root = path.resolve(import.meta.dirname, '..');
const criu = path.join(root, 'bin', 'criu-ts');
setChildSubreaper();

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const tmpdir = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `criu-ts-bench-${name}-`));

export function startDetached(argv: string[], log: string): number {
  return Number(
    execFileSync('bash', ['-c', 'setsid "$@" </dev/null >"$LOG" 2>&1 & echo $!', 'bash', ...argv], {
      env: { ...process.env, LOG: log },
    }).toString(),
  );
}

export async function waitFor(file: string, re: RegExp, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fs.existsSync(file) && re.test(fs.readFileSync(file, 'utf8'))) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${re} in ${file}`);
}

/** Run criu-ts; returns wall ms and the peak RSS of the criu-ts process (KiB, from wait4). */
export function criuTs(args: string[]): { ms: number; maxRssKiB: number } {
  const py =
    'import resource,subprocess,sys,time\nt=time.monotonic()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\nd=time.monotonic()-t\n' +
    'print(d*1000, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)';
  const r = spawnSync('python3', ['-c', py, criu, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`criu-ts ${args.join(' ')} failed: ${r.stderr}`);
  const [ms, rss] = r.stdout.trim().split(/\s+/).map(Number);
  return { ms, maxRssKiB: rss };
}

export function reap(pid: number): void {
  try {
    waitpid(pid, WNOHANG);
  } catch {
    /* not ours */
  }
}
export function killAndReap(pid: number): void {
  try {
    kill(pid, 9);
  } catch {
    /* gone */
  }
  for (let i = 0; i < 100; i++) {
    try {
      if (waitpid(pid, WNOHANG).pid) return;
    } catch {
      return;
    }
    spawnSync('sleep', ['0.01']);
  }
}

export function timeMs(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}
