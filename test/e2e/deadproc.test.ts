/**
 * A working directory that is /proc/PID of a process dead since (CRIU's procfs remap): it
 * comes back as such a directory, and nothing is left at that pid once the tree runs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { e2e, killAndReap, readLines } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';
import { pidInUse } from '../../src/resources/task/index.ts';
import { readMessages } from '../../src/images/index.ts';

e2e('a cwd in /proc/PID of a dead process comes back unhashed, and nothing stays at that pid', async (c) => {
  const t = await startChecking(c, 'deadproc', []);
  const dead = Number(/^dead pid=(\d+)$/.exec(readLines(t.log)[0])?.[1]);
  assert.equal(await askCheck(t), 'CHECK ok', 'the check holds before the dump');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const remaps = readMessages(join(img, 'remap-fpath.img'), 'remap_file_path_entry');
  assert.deepEqual(
    remaps.map((r) => [r.remap_type, r.remap_id]),
    [[2, dead]],
    'a procfs remap names the dead pid',
  );
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.equal(pidInUse(dead), false, `nothing is left at pid ${dead}`);
  killAndReap(t.pid);
});
