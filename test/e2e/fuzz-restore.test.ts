// What a restore does before it creates any process (open the dump, plan, validate every
// field), fed 2000 mutated real dumps (scripts/fuzz-restore.ts for 10^5): every input is
// planned or refused with one line, none crashes, none takes seconds, memory stays bounded.
// FUZZ_RUNS and FUZZ_SEED for other runs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { e2e } from '../lib/proc.ts';
import { makeBases, runFuzz } from '../../scripts/fuzz-restore.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
/** Peak RSS of the test process, dumps included (the script's default bound). */
const MAX_RSS_MIB = 512;

e2e(
  `${RUNS} mutated dumps: planned or refused in one line, no crash, no hang`,
  async (c) => {
    const bases = await makeBases(c.dir);
    const crashDir = path.join(c.dir, 'crashes');
    const r = await runFuzz({ n: RUNS, seed: SEED, bases, crashDir, hangMs: 5000, work: path.join(c.dir, 'work') });
    c.t.diagnostic(
      `${r.planned} planned, ${r.refused} refused, slowest ${r.maxIterMs.toFixed(1)} ms, peak RSS ${r.peakRssMiB.toFixed(0)} MiB, ${(r.ms / 1000).toFixed(1)} s`,
    );
    assert.equal(r.crashes, 0, `crashes (inputs in ${crashDir}):\n${r.examples.join('\n')}`);
    assert.equal(r.hangs, 0, `hangs:\n${r.examples.join('\n')}`);
    assert.equal(r.planned + r.refused, RUNS);
    // The mutations reach past the readers: some inputs are refused, and the untouched
    // ones (a field edit that does not encode) still plan.
    assert.ok(r.refused > RUNS / 4 && r.planned > 0, `${r.planned} planned, ${r.refused} refused`);
    assert.ok(r.peakRssMiB < MAX_RSS_MIB, `peak RSS ${r.peakRssMiB} MiB`);
    fs.rmSync(path.join(c.dir, 'work'), { recursive: true, force: true });
  },
  { timeout: 300_000 },
);
