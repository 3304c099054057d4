/**
 * Tracer colocation: while criu-ts holds a tree its tracing thread is pinned to one CPU
 * (src/compel/colocate.ts), and the worker threads it starts must not inherit that pin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { availableParallelism } from 'node:os';
import { colocate, endColocation } from '../../src/compel/index.ts';
import { newWorker } from '../../src/lazy.ts';

const allowed = (status: string) => status.match(/^Cpus_allowed_list:\s*(\S+)$/m)![1];
const mine = () => allowed(readFileSync('/proc/thread-self/status', 'utf8'));

const WORKER = `import { parentPort } from 'node:worker_threads';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
parentPort.postMessage(readFileSync('/proc/thread-self/status', 'utf8'));`;

test('the tracer is pinned to one CPU while colocated, its workers are not, and it gets its affinity back', async () => {
  const home = mine();
  colocate();
  try {
    const pinned = mine();
    assert.match(pinned, /^\d+$/, `one CPU while colocated (was ${home})`);
    if (availableParallelism() > 1) assert.notEqual(pinned, home);
    // As in the bundled CLI: the worker is a .mjs module beside its (non-.ts) caller.
    const dir = mkdtempSync(join(tmpdir(), 'criu-ts-colocate-'));
    writeFileSync(join(dir, 'probe.mjs'), WORKER);
    const w = newWorker(pathToFileURL(join(dir, 'caller.mjs')).href, 'probe', {});
    const status = await new Promise<string>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    rmSync(dir, { recursive: true });
    assert.equal(allowed(status), home, 'a worker started while colocated has the affinity the tracer had');
    assert.equal(mine(), pinned, 'still pinned after starting it');
  } finally {
    endColocation();
  }
  assert.equal(mine(), home, "the tracer's own affinity is back");
});
