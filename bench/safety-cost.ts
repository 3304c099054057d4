// The cost of the safety work (image opens beneath the directory, 0600 files, directory
// trust checks, sealed manifests, the restore's validation of every field, the dump's
// interrupt safety): dump and restore of one process with 256 MiB and of a tree of 100
// processes with this criu-ts next to the one before that work, run alternately in the
// same run; and the throughput of an encrypted dump and restore next to an unencrypted one.
//
//   node bench/safety-cost.ts [runs=3]      BEFORE=/path/to/old/bin/criu-ts (default ../before)
//
// Medians of `runs`; wall time of the whole command, as a user sees it.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir, killAndReap, sleep } from './common.ts';
import { waitpid, WALL } from '../src/kernel/index.ts';

const runs = Number(process.argv[2] ?? 3);
const BEFORE = process.env.BEFORE ?? path.resolve(root, '..', 'before', 'bin', 'criu-ts');
const NOW = path.join(root, 'bin', 'criu-ts');
const tools = [{ name: 'before', bin: BEFORE }, { name: 'now', bin: NOW }];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function run(bin: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return ms;
}

function treeOf(pid: number): number[] {
  const out = [pid];
  for (let k = 0; k < out.length; k++) {
    for (const t of fs.readdirSync(`/proc/${out[k]}/task`)) {
      try { out.push(...fs.readFileSync(`/proc/${out[k]}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number)); } catch { /* gone */ }
    }
  }
  return out;
}

interface Case { label: string; argv: string[]; ready: RegExp; mib?: number }
const CASES: Case[] = [
  { label: '256 MiB', argv: [workload('memhog'), '256'], ready: /^ready/m, mib: 256 },
  { label: 'tree of 100', argv: [workload('tree'), 'p(p(p*9)*9 p*9)'], ready: /^ready n=100$/m },
];

/** One dump (killing the target) and one restore -d; ms of each. */
async function once(bin: string, c: Case, extra: string[] = []): Promise<{ dump: number; restore: number }> {
  const dir = tmpdir('safety');
  const log = path.join(dir, 'target.log');
  const pid = startDetached(c.argv, log);
  try {
    await waitFor(log, c.ready);
    if (c.mib) await sleep(1000);
    const img = path.join(dir, 'img');
    const before = treeOf(pid);
    const dump = run(bin, ['dump', '-t', String(pid), '-D', img, ...extra]);
    for (const p of before) { try { waitpid(p, WALL); } catch { /* not ours */ } }
    const restore = run(bin, ['restore', '-D', img, '-d', ...extra]);
    return { dump, restore };
  } finally {
    for (const p of fs.existsSync(`/proc/${pid}`) ? treeOf(pid).reverse() : []) killAndReap(p);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (d: number[], r: number[]) => `${median(d).toFixed(0).padStart(6)} ${median(r).toFixed(0).padStart(8)}`;

console.log(`${os.loadavg().map((l) => l.toFixed(2)).join(' ')} load average at the start; ${os.cpus().length} CPUs (shared machine)`);
console.log(`before: ${BEFORE}\nnow:    ${NOW}\nmedian of ${runs}, ms (dump, restore -d), the two run alternately`);
console.log(`${'case'.padEnd(14)}${tools.map((t) => `${t.name.padStart(7)}: dump  restore`).join(' |')}   change`);
for (const c of CASES) {
  const t: Record<string, { d: number[]; r: number[] }> = { before: { d: [], r: [] }, now: { d: [], r: [] } };
  for (let k = 0; k < runs; k++) {
    for (const tool of k % 2 ? [...tools].reverse() : tools) {
      const x = await once(tool.bin, c);
      t[tool.name].d.push(x.dump);
      t[tool.name].r.push(x.restore);
    }
  }
  const pct = (a: number[], b: number[]) => `${(((median(b) - median(a)) / median(a)) * 100).toFixed(0)}%`;
  console.log(`${c.label.padEnd(14)}${tools.map((x) => `${''.padStart(7)}${fmt(t[x.name].d, t[x.name].r)}`).join(' |')}   dump ${pct(t.before.d, t.now.d)}, restore ${pct(t.before.r, t.now.r)}`);
}

// Encryption: AES-256-GCM of the page data and the sealed images, against a plain dump.
const keyDir = tmpdir('key');
const key = path.join(keyDir, 'key');
fs.writeFileSync(key, Buffer.alloc(32, 7), { mode: 0o600 });
const mem = CASES[0];
const enc: Record<string, { d: number[]; r: number[] }> = { plain: { d: [], r: [] }, encrypted: { d: [], r: [] } };
for (let k = 0; k < runs; k++) {
  for (const [name, extra] of (k % 2 ? [['encrypted', ['--encrypt', key]], ['plain', []]] : [['plain', []], ['encrypted', ['--encrypt', key]]]) as [string, string[]][]) {
    const x = await once(NOW, mem, extra);
    enc[name].d.push(x.dump);
    enc[name].r.push(x.restore);
  }
}
fs.rmSync(keyDir, { recursive: true, force: true });
const gibs = (ms: number) => ((mem.mib! / 1024) / (ms / 1000)).toFixed(2);
console.log(`\n${mem.label} with this criu-ts, median of ${runs}: ms and GiB/s of the whole command`);
for (const [name, v] of Object.entries(enc)) {
  console.log(`${name.padEnd(10)} dump ${median(v.d).toFixed(0).padStart(5)} ms ${gibs(median(v.d)).padStart(5)} GiB/s   restore ${median(v.r).toFixed(0).padStart(5)} ms ${gibs(median(v.r)).padStart(5)} GiB/s`);
}
console.log(`${os.loadavg().map((l) => l.toFixed(2)).join(' ')} load average at the end`);
