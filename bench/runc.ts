// runc (Debian's 1.1.5) checkpoint and restore -d of the busybox container of the runc test
// (two counting loops, a tmpfs and a host bind), with criu-ts and CRIU 4.2 as runc's criu in
// turn; wall times of the runc commands, medians. Then, once each: the peak RSS of the criu
// process of the restore (wait4's ru_maxrss, through a wrapper) and the peak memory the
// container's memory cgroup saw during it (runc puts its criu there before RESTORE).
// Issue 13's target: at most CRIU's time.
//
//   node bench/runc.ts [runs]        (CRIU_BIN, default /var/cache/criu-zdtm/v4.2/criu/criu)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root, tmpdir, killAndReap } from './common.ts';
import { makeBundle, runcQuiet, state, deleteAll, counts, RUNC } from '../test/lib/runc.ts';

const runs = Math.max(3, Number(process.argv[2] ?? 5));
const CRIU = process.env.CRIU_BIN ?? '/var/cache/criu-zdtm/v4.2/criu/criu';
const CRIU_TS = path.join(root, 'bin', 'criu-ts');
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
if (!RUNC) throw new Error('runc is not installed (scripts/setup.sh)');

const dir = tmpdir('runc');
const b = makeBundle(path.join(dir, 'bundle'), {});
fs.rmSync(b.hookOut, { force: true });
// No prestart hook: it would be timed too.
const cfgPath = path.join(b.dir, 'config.json');
const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
delete cfg.hooks;
fs.writeFileSync(cfgPath, JSON.stringify(cfg));

/** runc --criu WRAPPER: the real criu's peak RSS (KiB) appended to a file per request. */
const wrapper = path.join(dir, 'maxrss.py');
fs.writeFileSync(
  wrapper,
  '#!/usr/bin/python3\nimport os,sys,resource,subprocess\n' +
    "r=subprocess.run([os.environ['REAL_CRIU']]+sys.argv[1:],close_fds=False)\n" +
    "open(os.environ['MAXRSS_LOG'],'a').write('%d\\n'%resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n" +
    'sys.exit(r.returncode)\n',
  { mode: 0o755 },
);

let seq = 0;
function must(r: { status: number | null; stderr: string }, what: string): void {
  if (r.status !== 0) throw new Error(`${what}: ${r.stderr.trim().split('\n').pop()}`);
}

async function running(id: string): Promise<number> {
  must(runcQuiet(b, ['run', '-d', id]), `runc run ${id}`);
  const pid = state(b, id)!.pid;
  const end = Date.now() + 10_000;
  while (counts(`/proc/${pid}/root/run/count`).length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return pid;
}

function memcgPeak(pid: number): number | undefined {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => /^\d+:(memory)?:/.test(l) && (l.split(':')[1] === 'memory' || l.split(':')[1] === ''));
  if (!line) return undefined;
  const p = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  for (const f of [`/sys/fs/cgroup/memory${p}/memory.max_usage_in_bytes`, `/sys/fs/cgroup${p}/memory.peak`]) {
    if (fs.existsSync(f)) return Number(fs.readFileSync(f, 'utf8'));
  }
  return undefined;
}

/** One checkpoint + restore -d of a fresh container; criu given to runc as `criu`. */
async function one(name: string, criu: string, env: Record<string, string> = {}) {
  const id = `criu-ts-bench-${process.pid}-${++seq}`;
  const first = await running(id);
  const img = fs.mkdtempSync(path.join(dir, 'img-'));
  const work = fs.mkdtempSync(path.join(dir, 'work-'));
  const cp = runcQuiet(b, ['checkpoint', '--image-path', img, '--work-path', work, id], criu, env);
  must(cp, `${name} checkpoint`);
  killAndReap(first);
  const rs = runcQuiet(b, ['restore', '-d', '--image-path', img, '--work-path', work, id], criu, env);
  must(rs, `${name} restore`);
  const pid = state(b, id)!.pid;
  const peak = memcgPeak(pid);
  must(runcQuiet(b, ['delete', '-f', id]), 'runc delete');
  killAndReap(pid);
  fs.rmSync(img, { recursive: true });
  fs.rmSync(work, { recursive: true });
  return { checkpoint: cp.ms, restore: rs.ms, peak };
}

const haveCriu = fs.existsSync(CRIU);
const tools = [...(haveCriu ? [{ name: 'CRIU 4.2', bin: CRIU }] : []), { name: 'criu-ts', bin: CRIU_TS }];
const loadBefore = os.loadavg()[0];
const acc = new Map(tools.map((t) => [t.name, { checkpoint: [] as number[], restore: [] as number[] }]));
const mem = new Map<string, { rss: number[]; peak?: number }>();
try {
  for (const t of tools) await one(t.name, t.bin); // warm-up: the bundle, the page cache
  for (let i = 0; i < runs; i++)
    for (const t of tools) {
      const r = await one(t.name, t.bin);
      acc.get(t.name)!.checkpoint.push(r.checkpoint);
      acc.get(t.name)!.restore.push(r.restore);
    }
  for (const t of tools) {
    const log = path.join(dir, `rss-${t.name.replace(/\W/g, '')}`);
    const r = await one(t.name, wrapper, { REAL_CRIU: t.bin, MAXRSS_LOG: log });
    // Lines: checkpoint's version probe and dump, then restore's probe and restore.
    mem.set(t.name, { rss: fs.readFileSync(log, 'utf8').trim().split('\n').map(Number), peak: r.peak });
  }
} finally {
  deleteAll(b);
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(
  `runc busybox container, checkpoint and restore -d, median of ${runs} runs each, tools alternating; 1-min load average ${loadBefore.toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after`,
);
for (const t of tools) {
  const m = acc.get(t.name)!;
  const r = mem.get(t.name)!;
  console.log(
    `  ${t.name.padEnd(9)} checkpoint ${median(m.checkpoint).toFixed(0).padStart(4)} ms  restore ${median(m.restore).toFixed(0).padStart(4)} ms` +
      `  peak RSS dump ${(Math.max(...r.rss.slice(0, 2)) / 1024).toFixed(1)} MiB, restore ${(Math.max(...r.rss.slice(2)) / 1024).toFixed(1)} MiB` +
      `  container memcg peak during restore ${r.peak === undefined ? '?' : `${(r.peak / 2 ** 20).toFixed(1)} MiB`}`,
  );
}
if (haveCriu) {
  const ratio = (k: 'checkpoint' | 'restore') => median(acc.get('criu-ts')![k]) / median(acc.get('CRIU 4.2')![k]);
  console.log(`  criu-ts / CRIU 4.2: checkpoint ${ratio('checkpoint').toFixed(2)}, restore ${ratio('restore').toFixed(2)} (target <= 1.0)`);
} else console.log(`  CRIU 4.2 not found at ${CRIU}: no comparison`);
