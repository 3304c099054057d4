// Dump and restore of a 64 MiB workload with the Guarded Control Stack on, next to the same
// workload with GCS off, in the same run. Runs on arm64 with GCS: in the lab,
//   scripts/lab/run.sh node_modules/.bin/node bench/gcs.ts [runs] [MiB]
// GCS adds one small mapping per thread and a few ptrace calls, so the ratio should be ~1.
import fs from 'node:fs';
import path from 'node:path';
import { workload } from '../test/lib/workloads.ts';
import { criuTs, startDetached, waitFor, tmpdir, reap, killAndReap } from './common.ts';

if (process.arch !== 'arm64') {
  console.error('bench/gcs.ts: GCS is arm64 only (run it in scripts/lab)');
  process.exit(1);
}
const runs = Number(process.argv[2] ?? 5);
const mib = Number(process.argv[3] ?? 64);
const bin = workload('gcs', ['-mbranch-protection=standard']);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function once(gcs: boolean): Promise<{ dump: number; restore: number }> {
  const dir = tmpdir('gcs');
  const log = path.join(dir, 'gcs.log');
  const env = gcs ? 'GLIBC_TUNABLES=glibc.cpu.aarch64_gcs=1' : 'GLIBC_TUNABLES=';
  const pid = startDetached(['env', env, bin, '-m', String(mib), '-i', '50'], log);
  await waitFor(log, /^t=0 i=2 /m, 600_000);
  if (!new RegExp(`gcs=${gcs ? 1 : 0} `).test(fs.readFileSync(log, 'utf8')))
    throw new Error(`GCS is not ${gcs ? 'on' : 'off'} in the workload`);
  const dump = criuTs(['dump', '-t', String(pid), '-D', path.join(dir, 'img')]).ms;
  reap(pid);
  const restore = criuTs(['restore', '-D', path.join(dir, 'img'), '-d']).ms;
  killAndReap(pid);
  return { dump, restore };
}

const res = { on: [] as { dump: number; restore: number }[], off: [] as { dump: number; restore: number }[] };
for (let i = 0; i < runs; i++) {
  // Interleaved, so that a noisy moment hits both.
  res.off.push(await once(false));
  res.on.push(await once(true));
}
for (const k of ['off', 'on'] as const) {
  console.log(
    `${mib} MiB workload, GCS ${k}, median of ${runs}: dump ${median(res[k].map((r) => r.dump)).toFixed(0)} ms, restore ${median(res[k].map((r) => r.restore)).toFixed(0)} ms`,
  );
}
const ratio = (f: 'dump' | 'restore') => median(res.on.map((r) => r[f])) / median(res.off.map((r) => r[f]));
console.log(`GCS on / off: dump ${ratio('dump').toFixed(2)}x, restore ${ratio('restore').toFixed(2)}x`);
