// What a pre-dump buys: how long a 256 MiB process stays frozen in a dump that follows a
// pre-dump (an eighth of its memory written in between) next to a whole dump, criu-ts and
// CRIU 4.2 taking turns in the same run. CRIU's pre-dump needs soft-dirty bits, which this
// kernel lacks: its attempt is shown with its error. criu-ts tracks writes with userfaultfd
// write protection (src/resources/mm/track.ts).
//
//   node bench/predump.ts [runs=3]      CRIU_REF=/path/to/criu (default /var/cache/criu-zdtm/v4.2/criu/criu)
//
// Medians of `runs`. Frozen time: from freezing to the tree running again (stats-dump's
// freezing_time + frozen_time, which both tools write), and the pages each dump wrote.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir, killAndReap, sleep } from './common.ts';
import { readMessages } from '../src/images/index.ts';

const runs = Number(process.argv[2] ?? 3);
const MIB = 256;
const CRIU = process.env.CRIU_REF ?? '/var/cache/criu-zdtm/v4.2/criu/criu';
const TS = path.join(root, 'bin', 'criu-ts');
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const dirtier = workload('dirtier');

/** Run a tool with its log in the images dir; a failure's last error line from that log (or its exit status). */
function run(bin: string, args: string[]): { ok: boolean; err: string } {
  const dir = args[args.indexOf('-D') + 1];
  const r = spawnSync(bin, [...args, '-v1', '-o', 'bench.log'], { encoding: 'utf8' });
  if (r.status === 0) return { ok: true, err: '' };
  const logged = fs.existsSync(path.join(dir, 'bench.log')) ? fs.readFileSync(path.join(dir, 'bench.log'), 'utf8') : '';
  const line = logged.split('\n').findLast((l) => /Error/.test(l)) ?? (r.stderr ?? '').trim().split('\n')[0];
  return { ok: false, err: line.replace(/^\([\d.]+\)\s*/, '').trim() };
}

/** Frozen ms and pages written, from a dump's stats-dump. */
function stats(dir: string): { frozenMs: number; pages: number } {
  const d = readMessages(path.join(dir, 'stats-dump'), 'stats_entry')[0].dump!;
  return { frozenMs: (d.freezing_time + d.frozen_time) / 1000, pages: Number(d.pages_written) };
}

async function target(work: string): Promise<{ pid: number; log: string }> {
  const log = path.join(work, 'dirtier.log');
  const pid = startDetached([dirtier, String(MIB)], log);
  await waitFor(log, /^ready/m);
  return { pid, log };
}

async function dirty(t: { pid: number; log: string }, n: number): Promise<void> {
  process.kill(t.pid, 'SIGUSR1');
  await waitFor(t.log, new RegExp(`^dirtied=${n}$`, 'm'));
}

const tools = [{ name: 'criu-ts', bin: TS }];
if (fs.existsSync(CRIU)) tools.push({ name: 'CRIU 4.2', bin: CRIU });
const out = new Map<string, { whole: number[]; wholePages: number[]; inc: number[]; incPages: number[]; preErr?: string }>();
for (const t of tools) out.set(t.name, { whole: [], wholePages: [], inc: [], incPages: [] });

for (let k = 0; k < runs; k++)
  for (const tool of tools) {
    const r = out.get(tool.name)!;
    const work = tmpdir('predump');
    const t = await target(work);
    try {
      const whole = path.join(work, 'whole');
      fs.mkdirSync(whole);
      const w = run(tool.bin, ['dump', '-t', String(t.pid), '-D', whole, '-R', '--shell-job']);
      if (!w.ok) throw new Error(`${tool.name} dump: ${w.err}`);
      const ws = stats(whole);
      r.whole.push(ws.frozenMs);
      r.wholePages.push(ws.pages);
      const pre = path.join(work, 'pre'),
        inc = path.join(work, 'inc');
      fs.mkdirSync(pre);
      fs.mkdirSync(inc);
      const p = run(tool.bin, ['pre-dump', '-t', String(t.pid), '-D', pre, '--shell-job']);
      if (!p.ok) {
        r.preErr = p.err;
        continue;
      }
      await dirty(t, 1);
      const d = run(tool.bin, ['dump', '-t', String(t.pid), '-D', inc, '-R', '--shell-job', '--prev-images-dir', '../pre', '--track-mem']);
      if (!d.ok) throw new Error(`${tool.name} incremental dump: ${d.err}`);
      const is = stats(inc);
      r.inc.push(is.frozenMs);
      r.incPages.push(is.pages);
      // The tracking the last dump kept goes with the tree.
    } finally {
      killAndReap(t.pid);
      await sleep(200);
      for (const h of spawnSync('pgrep', ['-f', `tail --pid=${t.pid} `], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter(Boolean))
        killAndReap(Number(h));
      fs.rmSync(work, { recursive: true, force: true });
    }
  }

console.log(`dump of a ${MIB} MiB process, -R: frozen ms (pages written), median of ${runs}`);
for (const [name, r] of out) {
  const whole = `${median(r.whole).toFixed(1)} ms (${median(r.wholePages)} pages)`;
  const inc = r.inc.length ? `${median(r.inc).toFixed(1)} ms (${median(r.incPages)} pages)` : `no pre-dump: ${r.preErr ?? 'failed'}`;
  console.log(`  ${name.padEnd(9)} whole dump ${whole}; after a pre-dump, 1/8 of the memory written since: ${inc}`);
}
