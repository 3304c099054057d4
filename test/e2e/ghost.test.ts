/**
 * Deleted files (CRIU's ghost files): open, mapped shared and private, sparse, an unlinked
 * FIFO with queued data, a deleted working directory. The task checks each from inside
 * after restore; no ghost is left with a name; --ghost-limit refuses a larger one.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, killAndReap, assertCleanError, assertRunningFree } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';
import { readMessages } from '../../src/images/index.ts';

async function startGhost(c: { dir: string }, flags: string[] = []): Promise<{ pid: number; log: string; files: string }> {
  const files = join(c.dir, 'files');
  mkdirSync(files);
  const t = await startChecking(c, 'ghost', ['-d', files, ...flags]);
  return { pid: t.pid, log: t.log, files };
}

e2e('deleted files, an unlinked FIFO and a deleted cwd come back and are deleted again', async (c) => {
  const g = await startGhost(c);
  const img = c.subdir('img');
  dumpAndReap(g.pid, img);
  const remaps = readMessages(join(img, 'remap-fpath.img'), 'remap_file_path_entry');
  assert.equal(
    new Set(remaps.map((r) => r.remap_id)).size,
    5,
    'one ghost per deleted inode (open+shared map, private map, sparse, fifo, cwd)',
  );
  restoreDetached(img, g.pid);
  assert.deepEqual(readdirSync(g.files), [], 'the ghosts made for the restore have no names left');
  const sparse = readMessages(join(img, 'ghost-file-3.img'), 'ghost_chunk_entry');
  assert.deepEqual(
    sparse.map((e) => e.off),
    [256n * 1024n],
    "the sparse file's hole is not saved, only its data",
  );
  assert.equal(await askCheck(g), 'CHECK ok');
  killAndReap(g.pid);
});

e2e('a deleted symlink held open (O_PATH|O_NOFOLLOW) comes back as a ghost symlink with its target', async (c) => {
  const g = await startGhost(c, ['-s']);
  const img = c.subdir('img');
  dumpAndReap(g.pid, img);
  const [ghost] = readMessages(join(img, 'ghost-file-1.img'), 'ghost_file_entry');
  assert.equal(ghost.mode & 0o170000, 0o120000, 'a symlink ghost');
  assert.equal(ghost.symlnk_target, 'a/target', "CRIU's symlnk_target");
  restoreDetached(img, g.pid);
  assert.deepEqual(readdirSync(g.files), [], 'the ghost symlink has no name left');
  assert.equal(await askCheck(g), 'CHECK ok');
  killAndReap(g.pid);
});

e2e('a deleted file larger than --ghost-limit refuses the dump and the task runs on', async (c) => {
  const g = await startGhost(c);
  const r = dump(g.pid, c.subdir('img'), ['--ghost-limit', '4K']);
  const msg = assertCleanError(r);
  assert.match(msg, /more than the ghost limit of 4096 \(--ghost-limit\)/);
  assertRunningFree(g.pid, 'the target after a refused dump');
  killAndReap(g.pid);
});

e2e('a deleted name of a file with another name: refused without --link-remap, the same inode with it', async (c) => {
  const g = await startGhost(c, ['-l']);
  const msg = assertCleanError(dump(g.pid, c.subdir('refused')));
  assert.match(
    msg,
    /files\/linked was deleted but the file has other names: --link-remap saves it by a temporary link; not supported yet$/,
  );
  assertRunningFree(g.pid, 'the target after a refused dump');
  assert.deepEqual(readdirSync(g.files), ['other'], 'a refused dump leaves no link behind');
  const img = c.subdir('img');
  dumpAndReap(g.pid, img, ['--link-remap']);
  const names = readdirSync(g.files).sort();
  assert.equal(names.length, 2);
  assert.match(names[0], /^link_remap\.\d+$/, 'the dump links the file as link_remap.N');
  restoreDetached(img, g.pid);
  assert.deepEqual(readdirSync(g.files), ['other'], 'the restore removes the link');
  assert.equal(await askCheck(g), 'CHECK ok');
  killAndReap(g.pid);
});
