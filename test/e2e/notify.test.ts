/**
 * fanotify groups with an inode and a mount mark get their events after restore.
 * inotify instances and their watches: `tail -f` keeps following its file, and a workload
 * whose watch numbers have a gap gets its events under the same numbers after restore, also
 * when its files are on a tmpfs made anew (found again by path: no handle survives that). A
 * watch whose file is gone refuses the dump.
 */
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, waitForLine, readLines, waitFor, assertCleanError, assertRunningFree } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';
import { readMessages } from '../../src/images/index.ts';

e2e('tail -f keeps following its file after restore', async (c) => {
  const file = join(c.dir, 'followed.txt');
  writeFileSync(file, 'before\n');
  const t = startTarget(['/usr/bin/tail', '-f', file], { logFile: join(c.dir, 'tail.log') });
  await waitForLine(t.log, /^before$/);
  await waitFor(() => readLines(`/proc/${t.pid}/fdinfo/4`).some((l) => l.startsWith('inotify wd:')), 5000, 'tail to watch its file');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const files = readMessages(join(img, 'files.img'), 'file_entry');
  assert.ok(
    files.some((f) => (f.ify?.wd.length ?? 0) > 0),
    'an inotify file with a watch was saved',
  );
  restoreDetached(img, t.pid);
  appendFileSync(file, 'after\n');
  await waitForLine(t.log, /^after$/, 5000);
  killAndReap(t.pid);
});

e2e('inotify watches come back with their numbers, masks and non-blocking mode', async (c) => {
  const dir = join(c.dir, 'watched');
  mkdirSync(dir);
  const t = await startChecking(c, 'inotify', ['-d', dir]);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  assert.match(readLines(t.log)[0], /^ready wds=1,3,4$/);
  killAndReap(t.pid);
});

e2e('inotify watches on a tmpfs mounted anew come back by their paths (--force-irmap)', async (c) => {
  const dir = join(c.dir, 'watched');
  mkdirSync(dir);
  const mountTmpfs = () => execFileSync('mount', ['-t', 'tmpfs', 'criu-ts-irmap', dir]);
  mountTmpfs();
  try {
    const t = await startChecking(c, 'inotify', ['-d', dir]);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img, ['--force-irmap', '--irmap-scan-path', dir]);
    const paths = readMessages(join(img, 'files.img'), 'file_entry')
      .flatMap((f) => f.ify?.wd ?? [])
      .map((w) => w.f_handle.path)
      .sort();
    assert.deepEqual(paths, [dir, join(dir, 'a'), join(dir, 'c')], 'each watch saved with its path');
    // A new tmpfs: new inodes on a new device, where no saved handle leads.
    execFileSync('umount', [dir]);
    mountTmpfs();
    for (const f of ['a', 'c']) writeFileSync(join(dir, f), '');
    restoreDetached(img, t.pid);
    assert.equal(await askCheck(t), 'CHECK ok');
    killAndReap(t.pid);
  } finally {
    execFileSync('umount', ['-l', dir]);
  }
});

e2e('a watch on a deleted file the task holds open comes back on its ghost file', async (c) => {
  const dir = join(c.dir, 'watched');
  mkdirSync(dir);
  const t = await startChecking(c, 'inotify', ['-d', dir, '-u']);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('a watch on a deleted file refuses the dump, and the task runs on', async (c) => {
  const dir = join(c.dir, 'watched');
  mkdirSync(dir);
  const t = await startChecking(c, 'inotify', ['-d', dir]);
  // c is deleted while an fd outside the tree keeps it, and so the watch: no handle finds it again.
  const held = openSync(join(dir, 'c'), 'r');
  rmSync(join(dir, 'c'));
  const msg = assertCleanError(dump(t.pid, c.subdir('img')));
  closeSync(held);
  assert.match(msg, /inotify\): the inode of watch 3: its file was deleted; not supported yet$/);
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

e2e('a fanotify group with an inode mark and a mount mark gets its events after restore', async (c) => {
  const dir = join(c.dir, 'marked');
  mkdirSync(dir);
  const t = await startChecking(c, 'fanotify', ['-d', dir]);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const marks = readMessages(join(img, 'files.img'), 'file_entry').flatMap((f) => f.ffy?.mark ?? []);
  assert.deepEqual(marks.map((m) => m.type).sort(), [1, 2], 'an inode mark and a mount mark saved');
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});
