// The cost of the safety work (image opens beneath the directory, 0600 files, directory
// trust checks, sealed manifests, the restore's validation of every field, the dump's
// interrupt safety): dump and restore of one process with 256 MiB and of a tree of 100
// processes with this criu-ts next to the one before that work, run alternately in the
// same run; and the throughput of an encrypted dump and restore next to an unencrypted one.
//
//   node bench/safety-cost.ts [runs=3]      BEFORE=/path/to/old/bin/criu-ts (default ../before)
//
// Medians of `runs` of the whole command as a user runs it: wall time, and CPU time (user +
// system of criu-ts and what it waits for), which a loaded shared machine disturbs less.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir, killAndReap, sleep } from './common.ts';
import { waitpid, WALL } from '../src/kernel/index.ts';

const runs = Number(process.argv[2] ?? 3);
const BEFORE = process.env.BEFORE ?? path.resolve(root, '..', 'before', 'bin', 'criu-ts');
const NOW = path.join(root, 'bin', 'criu-ts');
const tools = [
  { name: 'before', bin: BEFORE },
  { name: 'now', bin: NOW },
];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

interface Cost {
  ms: number;
  cpu: number;
}

/** Wall and CPU ms of one criu-ts command (python's wait4 gives the child's rusage). */
function run(bin: string, args: string[]): Cost {
  const py =
    'import resource,subprocess,sys,time\nt=time.monotonic()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\n' +
    'u=resource.getrusage(resource.RUSAGE_CHILDREN)\nprint((time.monotonic()-t)*1000,(u.ru_utime+u.ru_stime)*1000)\nsys.stderr.write(r.stderr.decode())\nsys.exit(r.returncode)';
  const r = spawnSync('python3', ['-c', py, bin, ...args], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const [ms, cpu] = r.stdout.trim().split(/\s+/).map(Number);
  return { ms, cpu };
}

function treeOf(pid: number): number[] {
  const out = [pid];
  for (let k = 0; k < out.length; k++) {
    for (const t of fs.readdirSync(`/proc/${out[k]}/task`)) {
      try {
        out.push(...fs.readFileSync(`/proc/${out[k]}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

interface Case {
  label: string;
  argv: string[];
  ready: RegExp;
  mib?: number;
}
const CASES: Case[] = [
  { label: '256 MiB', argv: [workload('memhog'), '256'], ready: /^ready/m, mib: 256 },
  { label: 'tree of 100', argv: [workload('tree'), 'p(p(p*9)*9 p*9)'], ready: /^ready n=100$/m },
];

/** One dump (killing the target) and one restore -d; ms of each. */
async function once(bin: string, c: Case, extra: string[] = []): Promise<{ dump: Cost; restore: Cost }> {
  const dir = tmpdir('safety');
  const log = path.join(dir, 'target.log');
  const pid = startDetached(c.argv, log);
  try {
    await waitFor(log, c.ready);
    if (c.mib) await sleep(1000);
    const img = path.join(dir, 'img');
    const before = treeOf(pid);
    const dump = run(bin, ['dump', '-t', String(pid), '-D', img, ...extra]);
    for (const p of before) {
      try {
        waitpid(p, WALL);
      } catch {
        /* not ours */
      }
    }
    const restore = run(bin, ['restore', '-D', img, '-d', ...extra]);
    return { dump, restore };
  } finally {
    for (const p of fs.existsSync(`/proc/${pid}`) ? treeOf(pid).reverse() : []) killAndReap(p);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const col = (a: Cost[]) =>
  `${median(a.map((x) => x.ms))
    .toFixed(0)
    .padStart(5)} (${median(a.map((x) => x.cpu))
    .toFixed(0)
    .padStart(4)})`;
const spread = (a: Cost[]) => `${Math.min(...a.map((x) => x.ms)).toFixed(0)}-${Math.max(...a.map((x) => x.ms)).toFixed(0)}`;
const pct = (a: number, b: number) => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(0)}%`;

console.log(
  `${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} load average at the start; ${os.cpus().length} CPUs (shared machine)`,
);
console.log(
  `before: ${BEFORE}\nnow:    ${NOW}\nmedian of ${runs}, run alternately: wall ms (CPU ms) of dump and of restore -d; the change of the CPU time; the range of wall times`,
);
console.log(
  `${'case'.padEnd(12)}${tools.map((t) => `${t.name.padStart(8)} dump        restore    `).join('|')}| CPU change         | wall ranges`,
);
for (const c of CASES) {
  const t: Record<string, { d: Cost[]; r: Cost[] }> = { before: { d: [], r: [] }, now: { d: [], r: [] } };
  for (let k = 0; k < runs; k++) {
    for (const tool of k % 2 ? [...tools].reverse() : tools) {
      const x = await once(tool.bin, c);
      t[tool.name].d.push(x.dump);
      t[tool.name].r.push(x.restore);
    }
  }
  const cpu = (a: Cost[]) => median(a.map((x) => x.cpu));
  console.log(
    `${c.label.padEnd(12)}${tools.map((x) => `${''.padStart(6)}${col(t[x.name].d)} ${col(t[x.name].r)} `).join('|')}| dump ${pct(cpu(t.before.d), cpu(t.now.d))}, restore ${pct(cpu(t.before.r), cpu(t.now.r))} | ` +
      tools.map((x) => `${x.name} ${spread(t[x.name].d)}/${spread(t[x.name].r)}`).join(', '),
  );
}

// Encryption: AES-256-GCM of the page data and the sealed images, against a plain dump.
const keyDir = tmpdir('key');
const key = path.join(keyDir, 'key');
fs.writeFileSync(key, Buffer.alloc(32, 7), { mode: 0o600 });
const mem = CASES[0];
const enc: Record<string, { d: Cost[]; r: Cost[] }> = { plain: { d: [], r: [] }, encrypted: { d: [], r: [] } };
for (let k = 0; k < runs; k++) {
  for (const [name, extra] of (k % 2
    ? [
        ['encrypted', ['--encrypt', key]],
        ['plain', []],
      ]
    : [
        ['plain', []],
        ['encrypted', ['--encrypt', key]],
      ]) as [string, string[]][]) {
    const x = await once(NOW, mem, extra);
    enc[name].d.push(x.dump);
    enc[name].r.push(x.restore);
  }
}
fs.rmSync(keyDir, { recursive: true, force: true });
const gibs = (ms: number) => (mem.mib! / 1024 / (ms / 1000)).toFixed(2);
console.log(`\n${mem.label} with this criu-ts, median of ${runs}: wall ms (CPU ms) of the whole command, GiB/s of the wall time`);
for (const [name, v] of Object.entries(enc)) {
  const w = (a: Cost[]) => median(a.map((x) => x.ms));
  console.log(
    `${name.padEnd(10)} dump ${col(v.d)} ${gibs(w(v.d)).padStart(5)} GiB/s   restore ${col(v.r)} ${gibs(w(v.r)).padStart(5)} GiB/s`,
  );
}
// The cipher alone, in this process: what encryption costs per byte, apart from criu-ts.
const buf = Buffer.alloc(256 << 20, 0x5a);
const times: number[] = [];
for (let k = 0; k < runs; k++) {
  const t0 = performance.now();
  const c = crypto.createCipheriv('aes-256-gcm', Buffer.alloc(32, 7), Buffer.alloc(12, k));
  for (let off = 0; off < buf.length; off += 1 << 20) c.update(buf.subarray(off, off + (1 << 20)));
  c.final();
  times.push(performance.now() - t0);
}
console.log(`AES-256-GCM alone (node:crypto, 1 MiB chunks): ${(256 / 1024 / (median(times) / 1000)).toFixed(2)} GiB/s`);
console.log(
  `${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} load average at the end`,
);
