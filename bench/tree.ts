// Process trees and threads: dump and restore time of trees of 1, 10 and 100 small
// processes and of one process with 1, 8 and 64 threads, as ms per task, next to CRIU 4.2
// in the same run (when its binary is there). Then copy-on-write: fifty children forked
// from a parent that touched 16 MiB, each dirtying 1 MiB of its own: image size against
// the 66 MiB of unique memory, and the tree's total Pss before the dump and after restore.
//
//   node bench/tree.ts [runs] [cow]   (median of `runs`, default 3; `cow`: only the copy-on-write figure)
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir } from './common.ts';
import { kill, waitpid, WALL } from '../src/kernel/index.ts';

const cowOnly = process.argv.includes('cow');
const runs = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
const CRIU = process.env.CRIU_BIN ?? '/work/criu-ref/criu/criu';
const haveCriu = fs.existsSync(CRIU);
const CRIU_TS = path.join(root, 'bin', 'criu-ts');

interface Tool {
  name: string;
  bin: string;
  dumpArgs: string[];
  restoreArgs: string[];
}
const tools: Tool[] = [{ name: 'criu-ts', bin: CRIU_TS, dumpArgs: [], restoreArgs: [] }];
if (haveCriu) tools.push({ name: 'CRIU 4.2', bin: CRIU, dumpArgs: ['-v0'], restoreArgs: ['-v0'] });

function run(bin: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - t;
  if (r.status !== 0)
    throw new Error(`${path.basename(bin)} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return ms;
}

/** pid -> its children, from /proc. */
function children(): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const n of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    let s: string;
    try {
      s = fs.readFileSync(`/proc/${n}/stat`, 'latin1');
    } catch {
      continue;
    }
    const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
    const l = m.get(ppid);
    if (l) l.push(Number(n));
    else m.set(ppid, [Number(n)]);
  }
  return m;
}

function treeOf(pid: number): number[] {
  const m = children();
  const out = [pid];
  for (let k = 0; k < out.length; k++) out.push(...(m.get(out[k]) ?? []));
  return out;
}

/** Wait (blocking) for each pid that is our child; others are ignored. */
function reapAll(pids: number[]): void {
  for (const p of pids) {
    try {
      waitpid(p, WALL);
    } catch {
      /* not ours or gone */
    }
  }
}

function killTree(pid: number): void {
  const pids = treeOf(pid);
  for (const p of pids) {
    try {
      kill(p, 9);
    } catch {
      /* gone */
    }
  }
  reapAll(pids);
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

interface Case {
  label: string;
  tasks: number;
  argv: string[];
  ready: RegExp;
}

/** Dump (killing) and restore -d one case with one tool; returns ms for each. */
async function once(tool: Tool, c: Case): Promise<{ dump: number; restore: number }> {
  const dir = tmpdir('tree');
  const log = path.join(dir, 'target.log');
  const pid = startDetached(c.argv, log);
  await waitFor(log, c.ready);
  const img = path.join(dir, 'img');
  fs.mkdirSync(img);
  const before = treeOf(pid);
  const dump = run(tool.bin, ['dump', '-t', String(pid), '-D', img, '-o', 'dump.log', ...tool.dumpArgs]);
  reapAll(before);
  const restore = run(tool.bin, ['restore', '-D', img, '-d', '-o', 'restore.log', ...tool.restoreArgs]);
  killTree(pid);
  fs.rmSync(dir, { recursive: true, force: true });
  return { dump, restore };
}

const treeSpec = (n: number) => (n === 1 ? 'p' : n === 10 ? 'p(p*9)' : n === 100 ? 'p(p(p*9)*9 p*9)' : '');
const cases: Case[] = [
  ...[1, 10, 100].map((n) => ({
    label: `tree of ${n}`,
    tasks: n,
    argv: [workload('tree'), treeSpec(n)],
    ready: new RegExp(`^ready n=${n}$`, 'm'),
  })),
  ...[1, 8, 64].map((n) => ({
    label: `${n} thread${n > 1 ? 's' : ''}`,
    tasks: n,
    argv: [workload('threads'), '-n', String(n), '-i', '100'],
    ready: new RegExp(`^ready threads=${n}$`, 'm'),
  })),
];

if (!cowOnly) await timings();

async function timings(): Promise<void> {
  console.log(`dump and restore, median of ${runs} run(s), ms in all and ms per task (dump + restore)`);
  console.log(`${'case'.padEnd(14)}${tools.map((t) => `${t.name.padStart(10)} dump   restore   per task`).join('  | ')}`);
  for (const c of cases) {
    const cols: string[] = [];
    for (const tool of tools) {
      const d: number[] = [],
        r: number[] = [];
      try {
        for (let k = 0; k < runs; k++) {
          const x = await once(tool, c);
          d.push(x.dump);
          r.push(x.restore);
        }
        const md = median(d),
          mr = median(r);
        cols.push(
          `${md.toFixed(0).padStart(9)} ${mr.toFixed(0).padStart(9)}   ${(md / c.tasks).toFixed(1).padStart(6)} + ${(mr / c.tasks).toFixed(1).padStart(6)}`,
        );
      } catch (e) {
        cols.push(`  failed: ${(e as Error).message.slice(0, 120)}`);
      }
    }
    console.log(`${c.label.padEnd(14)}${cols.join('  | ')}`);
  }
  if (!haveCriu) console.log('CRIU not available');
}

// ---------------------------------------------------------------- copy-on-write

function pssKiB(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
    if (m) sum += Number(m[1]);
  }
  return sum;
}

function dirBytes(dir: string, re: RegExp): number {
  return fs
    .readdirSync(dir)
    .filter((n) => re.test(n))
    .reduce((s, n) => s + fs.statSync(path.join(dir, n)).size, 0);
}

const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);
console.log('\ncopy-on-write: 50 children of a parent that touched 16 MiB, each dirtying 1 MiB of its own (66 MiB unique)');
for (const tool of tools) {
  const dir = tmpdir('cow');
  const log = path.join(dir, 'cow.log');
  const pid = startDetached([workload('cowtree'), '-n', '50', '-s', '16', '-c', '1'], log);
  try {
    await waitFor(log, /^ready n=51$/m);
    const pids = treeOf(pid);
    const pssBefore = pssKiB(pids);
    const img = path.join(dir, 'img');
    fs.mkdirSync(img);
    const dumpMs = run(tool.bin, ['dump', '-t', String(pid), '-D', img, '-o', 'dump.log', ...tool.dumpArgs]);
    reapAll(pids);
    const restoreMs = run(tool.bin, ['restore', '-D', img, '-d', '-o', 'restore.log', ...tool.restoreArgs]);
    const after = treeOf(pid);
    const pssAfter = pssKiB(after);
    process.kill(pid, 'SIGUSR1');
    await waitFor(log, /^verify (ok|BAD)$/m, 30_000);
    const verify = /^verify (ok|BAD)$/m.exec(fs.readFileSync(log, 'utf8'))![1];
    const pages = dirBytes(img, /^pages-\d+\.img$/);
    const all = dirBytes(img, /\.img$/);
    console.log(
      `  ${tool.name.padEnd(9)} images ${mib(all)} MiB (pages ${mib(pages)} MiB) for 66 MiB unique; ` +
        `Pss ${mib(pssBefore * 1024)} MiB before dump, ${mib(pssAfter * 1024)} MiB after restore (${after.length} tasks, memory ${verify}); ` +
        `dump ${dumpMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms`,
    );
  } catch (e) {
    console.log(`  ${tool.name.padEnd(9)} failed: ${(e as Error).message.slice(0, 200)}`);
  } finally {
    killTree(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
if (!haveCriu) console.log('  CRIU not available');
