// End to end dump + restore of a tiny process, criu-ts start-up included, next to CRIU 4.2
// in the same run when its binary is there (CRIU_BIN, default /var/cache/criu-zdtm/v4.2/criu/criu), and
// to the floor any Node program pays here: two bare `node -e 0` start-ups, and to criu-ts run
// from its unbundled sources (bin/criu-ts). Median of runs.
//
//   node bench/tiny.ts [runs]
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, criuTs, startDetached, waitFor, tmpdir, reap, killAndReap, timeMs } from './common.ts';

const runs = Number(process.argv[2] ?? 7);
const counter = workload('counter');
const CRIU = process.env.CRIU_BIN ?? '/var/cache/criu-zdtm/v4.2/criu/criu';
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

type Runner = (args: string[]) => number;
const criuTsRun: Runner = (args) => criuTs(args).ms;
const criuRun: Runner = (args) => {
  let r: ReturnType<typeof spawnSync> | undefined;
  const ms = timeMs(() => {
    r = spawnSync(CRIU, [...args, '-v0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
  if (r!.status !== 0) throw new Error(`criu ${args.join(' ')} failed: ${String(r!.stderr).trim().split('\n').pop()}`);
  return ms;
};

async function measure(run: Runner): Promise<{ dump: number; restore: number }> {
  const dumps: number[] = [],
    restores: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = tmpdir('tiny');
    const log = path.join(dir, 'counter.log');
    const pid = startDetached([counter, '100'], log);
    await waitFor(log, /^i=2$/m);
    const img = path.join(dir, 'img');
    fs.mkdirSync(img);
    dumps.push(run(['dump', '-t', String(pid), '-D', img]));
    reap(pid);
    restores.push(run(['restore', '-D', img, '-d']));
    killAndReap(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { dump: median(dumps), restore: median(restores) };
}

const node = path.join(root, 'node_modules', '.bin', 'node');
const nodeStart = median(Array.from({ length: runs }, () => timeMs(() => spawnSync(node, ['-e', '0']))));
const startup = median(Array.from({ length: runs }, () => criuTs(['check', '--feature', 'kcmp']).ms));
const ours = await measure(criuTsRun);
// The same commands on the unbundled sources (bin/criu-ts: CRIU_TS_SOURCES=1), for what the bundle saves.
process.env.CRIU_TS_SOURCES = '1';
const sources = await measure(criuTsRun);
delete process.env.CRIU_TS_SOURCES;
const line = (name: string, m: { dump: number; restore: number }) =>
  `  ${name.padEnd(9)} dump ${m.dump.toFixed(0).padStart(4)} ms + restore ${m.restore.toFixed(0).padStart(4)} ms = ${(m.dump + m.restore).toFixed(0).padStart(4)} ms`;
console.log(`tiny process, median of ${runs} runs:`);
console.log(line('criu-ts', ours));
console.log(
  line('sources', sources) +
    `   criu-ts run from its unbundled sources (bundle/sources ${((ours.dump + ours.restore) / (sources.dump + sources.restore)).toFixed(2)})`,
);
if (fs.existsSync(CRIU)) {
  const theirs = await measure(criuRun);
  console.log(
    line('CRIU 4.2', theirs) + `   ratio ${((ours.dump + ours.restore) / (theirs.dump + theirs.restore)).toFixed(2)} (target <= 1.5)`,
  );
} else console.log(`  CRIU 4.2 not found at ${CRIU} (issue figure: 58 + 49 ms)`);
console.log(
  `  floor: bare node -e 0 ${nodeStart.toFixed(0)} ms per command (x2 = ${(2 * nodeStart).toFixed(0)} ms); criu-ts check --feature (start-up, no work) ${startup.toFixed(0)} ms`,
);
