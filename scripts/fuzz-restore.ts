// Fuzz what a restore does before it creates any process (open, plan, validate) with
// mutated real dumps: a foundation workload and a small tree, dumped once at the start.
//
//   node scripts/fuzz-restore.ts [N=100000] [--seed S] [--crashes DIR] [--hang-ms MS] [--max-rss-mib MIB]
//
// Prints how many inputs were planned, refused (one-line ImageError/CriuError), crashed
// (any other exception) or hung (one input over --hang-ms), and the peak RSS. Each crash or
// hang is saved under --crashes as the mutated dump directory with what.txt. Exit 1 on any
// crash, hang, or a peak RSS over the bound. As root (it dumps processes).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Rng, loadBase, materialize, mutate, restoreFront, type Base } from '../test/fixtures/fuzz-restore.ts';
import { workload } from '../test/lib/workloads.ts';
import { waitpid, WNOHANG, kill, setChildSubreaper } from '../src/kernel/index.ts';

const root = path.resolve(import.meta.dirname, '..');

export interface FuzzOptions {
  n: number;
  seed: number;
  bases: string[];
  crashDir: string;
  hangMs: number;
  work: string;
}
export interface FuzzResult {
  n: number;
  planned: number;
  refused: number;
  crashes: number;
  hangs: number;
  maxIterMs: number;
  peakRssMiB: number;
  ms: number;
  examples: string[];
}

async function waitFor(file: string, re: RegExp, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fs.existsSync(file) && re.test(fs.readFileSync(file, 'utf8'))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${re} in ${file}`);
}

function treeOf(pid: number): number[] {
  const out = [pid];
  for (let k = 0; k < out.length; k++) {
    try {
      out.push(...fs.readFileSync(`/proc/${out[k]}/task/${out[k]}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Dumps a foundation workload, a small tree and a tree in namespaces of its own into `dir`; returns the image dirs. */
export async function makeBases(dir: string): Promise<string[]> {
  const out: string[] = [];
  const cases: [string, string[], RegExp][] = [
    ['foundation', [workload('foundation'), '-i', '50', '-m', '2', '-f', path.join(dir, 'data')], /^i=3 /m],
    ['tree', [workload('tree'), 'p(p p(p p) s(p))'], /ready/],
    // PID, UTS, IPC and network namespaces of their own, and unix sockets of every shape: the
    // namespace images, netdev/ifaddr/route, and socket queues. unshare's child is dumped.
    [
      'ns',
      [
        'unshare',
        '-p',
        '-f',
        '-u',
        '-i',
        '-n',
        'setsid',
        'sh',
        '-c',
        `hostname fuzz; ip link set lo up; exec "$0" "$1"`,
        workload('unixsk'),
        dir,
      ],
      /^READY/m,
    ],
  ];
  fs.writeFileSync(path.join(dir, 'data'), 'fuzz data\n');
  for (const [name, argv, ready] of cases) {
    const log = path.join(dir, `${name}.log`);
    const pid = Number(
      execFileSync('bash', ['-c', 'setsid "$@" </dev/null >"$LOG" 2>&1 & echo $!', 'bash', ...argv], {
        env: { ...process.env, LOG: log },
      }).toString(),
    );
    let tree = [pid];
    try {
      await waitFor(log, ready);
      tree = treeOf(pid);
      // unshare stays outside the namespaces it made: the tree is its child's.
      const target = name === 'ns' ? tree[1] : pid;
      const img = path.join(dir, name);
      fs.mkdirSync(img);
      const r = spawnSync(path.join(root, 'bin', 'criu-ts'), ['dump', '-t', String(target), '-D', img], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`dump of ${name} failed: ${r.stderr}`);
      out.push(img);
    } finally {
      // The dump killed the tree; its members are ours to reap (we or the test are subreapers).
      for (const p of tree) {
        try {
          kill(p, 9);
        } catch {
          /* killed by the dump */
        }
        for (let i = 0; i < 100; i++) {
          try {
            if (waitpid(p, WNOHANG).pid) break;
          } catch {
            break;
          }
          spawnSync('sleep', ['0.01']);
        }
      }
    }
  }
  return out;
}

/** Runs the inputs in a worker; the main thread watches for an input that takes too long. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const t0 = performance.now();
  // The input being run and the counts so far, shared so that a worker stopped for a hang loses nothing.
  const progress = new Int32Array(new SharedArrayBuffer(4 * 5));
  const total: FuzzResult = { n: o.n, planned: 0, refused: 0, crashes: 0, hangs: 0, maxIterMs: 0, peakRssMiB: 0, ms: 0, examples: [] };
  let from = 0;
  while (from < o.n) {
    Atomics.store(progress, 0, from);
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { ...o, from, progress } });
    const done = new Promise<string[] | undefined>((resolve, reject) => {
      w.once('message', (m: string[]) => resolve(m));
      w.once('error', reject);
      w.once('exit', () => resolve(undefined));
    });
    let last = -1,
      since = Date.now(),
      hung = -1;
    const timer = setInterval(() => {
      const i = Atomics.load(progress, 0);
      if (i !== last) {
        last = i;
        since = Date.now();
        return;
      }
      if (Date.now() - since > o.hangMs) {
        hung = i;
        void w.terminate();
      }
    }, 100);
    const examples = await done;
    clearInterval(timer);
    total.examples.push(...(examples ?? []));
    if (hung < 0) break;
    total.hangs++;
    const dir = path.join(o.crashDir, `hang-${hung}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.cpSync(path.join(o.work, `in-${hung % 2}`), dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'what.txt'), `input ${hung} (seed ${o.seed}) took more than ${o.hangMs} ms\n`);
    total.examples.push(`hang at input ${hung}: ${dir}`);
    from = hung + 1;
  }
  [, total.planned, total.refused, total.crashes] = progress;
  total.maxIterMs = progress[4] / 1000;
  total.peakRssMiB = process.resourceUsage().maxRSS / 1024;
  total.ms = performance.now() - t0;
  return total;
}

function work(): void {
  const o = workerData as FuzzOptions & { from: number; progress: Int32Array };
  const bases: Base[] = o.bases.map(loadBase);
  const p = o.progress;
  const examples: string[] = [];
  fs.mkdirSync(o.work, { recursive: true });
  const scratch = fs.mkdtempSync(path.join(o.work, 'scratch-'));
  for (let i = o.from; i < o.n; i++) {
    Atomics.store(p, 0, i);
    // Each input from its own seed: an input can be made again from (seed, i) alone.
    const rng = new Rng(o.seed * 1_000_003 + i);
    const k = rng.int(bases.length);
    const base = bases[k],
      other = bases[(k + 1) % bases.length];
    const m = mutate(rng, base, other, scratch);
    const dir = path.join(o.work, `in-${i % 2}`);
    materialize(base, m, dir);
    const t = performance.now();
    const r = restoreFront(dir);
    p[4] = Math.max(p[4], Math.round((performance.now() - t) * 1000));
    if (r.kind === 'planned') Atomics.add(p, 1, 1);
    else if (r.kind === 'refused') Atomics.add(p, 2, 1);
    else {
      Atomics.add(p, 3, 1);
      const keep = path.join(o.crashDir, `crash-${i}`);
      fs.rmSync(keep, { recursive: true, force: true });
      fs.cpSync(dir, keep, { recursive: true });
      fs.writeFileSync(
        path.join(keep, 'what.txt'),
        `input ${i} (seed ${o.seed}) of ${path.basename(base.dir)}\n${m.what.join('\n')}\n\n${r.error}\n`,
      );
      if (examples.length < 10) examples.push(`input ${i}: ${m.what.join('; ')}: ${r.error.split('\n').slice(0, 2).join(' ')}`);
    }
  }
  fs.rmSync(scratch, { recursive: true, force: true });
  parentPort!.postMessage(examples);
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function main(): Promise<void> {
  const n = Number(process.argv.slice(2).find((a, i, l) => /^\d+$/.test(a) && !l[i - 1]?.startsWith('--')) ?? 100_000);
  const seed = arg('--seed', 20261207);
  const maxRss = arg('--max-rss-mib', 512);
  const ci = process.argv.indexOf('--crashes');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-fuzz-restore-'));
  const crashDir = ci > 0 ? path.resolve(process.argv[ci + 1]) : path.join(tmp, 'crashes');
  setChildSubreaper();
  const bases = await makeBases(tmp);
  const r = await runFuzz({ n, seed, bases, crashDir, hangMs: arg('--hang-ms', 5000), work: path.join(tmp, 'work') });
  console.log(
    `${r.n} inputs (seed ${seed}) in ${(r.ms / 1000).toFixed(1)} s: ${r.planned} planned, ${r.refused} refused with one line, ` +
      `${r.crashes} crashes, ${r.hangs} hangs; slowest input ${r.maxIterMs.toFixed(1)} ms; peak RSS ${r.peakRssMiB.toFixed(0)} MiB (bound ${maxRss} MiB)`,
  );
  for (const e of r.examples) console.log(`  ${e}`);
  if (r.crashes || r.hangs) console.log(`inputs kept in ${crashDir}`);
  fs.rmSync(path.join(tmp, 'work'), { recursive: true, force: true });
  if (!r.crashes && !r.hangs) fs.rmSync(tmp, { recursive: true, force: true });
  process.exitCode = r.crashes || r.hangs || r.peakRssMiB > maxRss ? 1 : 0;
}

if (!isMainThread) work();
else if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
