// End to end dump + restore of a tiny process, criu-ts start-up included (CRIU 4.2 on this
// machine: 58 + 49 ms). Median of several runs.
import path from 'node:path';
import { workload } from '../test/lib/workloads.ts';
import { criuTs, startDetached, waitFor, tmpdir, reap, killAndReap } from './common.ts';

const runs = Number(process.argv[2] ?? 7);
const counter = workload('counter');
const dumps: number[] = [], restores: number[] = [];
for (let i = 0; i < runs; i++) {
  const dir = tmpdir('tiny');
  const log = path.join(dir, 'counter.log');
  const pid = startDetached([counter, '100'], log);
  await waitFor(log, /^i=2$/m);
  dumps.push(criuTs(['dump', '-t', String(pid), '-D', path.join(dir, 'img')]).ms);
  reap(pid);
  restores.push(criuTs(['restore', '-D', path.join(dir, 'img'), '-d']).ms);
  killAndReap(pid);
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const nodeStart = criuTs(['check', '--feature', 'kcmp']).ms;
console.log(`tiny process, median of ${runs}: dump ${median(dumps).toFixed(0)} ms + restore ${median(restores).toFixed(0)} ms = ${(median(dumps) + median(restores)).toFixed(0)} ms`);
console.log(`  (CRIU 4.2 reference: 58 + 49 = 107 ms; target <= 160 ms; bare criu-ts start-up with check --feature: ${nodeStart.toFixed(0)} ms)`);
