/**
 * An images directory that someone else can write must not turn root's dump or restore against
 * root: a planted symlink or hard link is never written through, a FIFO named like an image
 * never hangs a restore, and what criu-ts creates is 0600.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, assertCleanError, assertRunningFree, killAndReap, adopt } from '../lib/proc.ts';
import { dump, dumpAndReap, restore, startFoundation, waitForCounter } from '../lib/cr.ts';

const VICTIM = 'root-owned secret\n';

e2e('dump replaces planted symlinks and hard links in the images dir instead of writing through them', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  const victim = join(c.dir, 'victim');
  const linked = join(c.dir, 'linked');
  writeFileSync(victim, VICTIM, { mode: 0o644 });
  writeFileSync(linked, VICTIM, { mode: 0o644 });
  symlinkSync(victim, join(img, 'pages-1.img'));
  symlinkSync(victim, join(img, 'inventory.img'));
  symlinkSync(victim, join(img, 'criu-ts-manifest.json'));
  symlinkSync(victim, join(img, 'dump.log'));
  linkSync(linked, join(img, `core-${f.pid}.img`));
  const r = dump(f.pid, img, ['-R']);
  assert.equal(r.code, 0, r.stderr);
  assertRunningFree(f.pid);
  assert.equal(readFileSync(victim, 'utf8'), VICTIM, "the symlinks' target is untouched");
  assert.equal(readFileSync(linked, 'utf8'), VICTIM, "the hard link's other name is untouched");
  for (const n of readdirSync(img)) {
    const st = statSync(join(img, n));
    assert.ok(st.isFile(), `${n} is a regular file of its own`);
    assert.equal(st.mode & 0o777, 0o600, `${n} is 0600`);
    assert.equal(st.nlink, 1, `${n} has one name`);
  }
  killAndReap(f.pid);
});

e2e('restore refuses an image that is a symlink, naming it, and leaves nothing behind', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const core = join(img, `core-${f.pid}.img`);
  const moved = join(c.dir, 'core-elsewhere.img');
  execFileSync('mv', [core, moved]);
  symlinkSync(moved, core);
  const line = assertCleanError(restore(img, ['-d', '--skip-verify']));
  assert.match(line, new RegExp(`core-${f.pid}\\.img: .*symbolic link`), line);
  assert.ok(!existsSync(`/proc/${f.pid}`), 'nothing restored');
});

e2e('restore refuses a FIFO named like an image at once instead of hanging', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const name = `fs-${f.pid}.img`;
  execFileSync('rm', [join(img, name)]);
  execFileSync('mkfifo', [join(img, name)]);
  const r = restore(img, ['-d', '--skip-verify'], { timeoutMs: 20_000 });
  const line = assertCleanError(r);
  assert.match(line, new RegExp(`${name.replace('.', '\\.')}: .*not a regular file`), line);
  assert.ok(r.ms < 10_000, `answered in ${r.ms} ms`);
  assert.ok(!existsSync(`/proc/${f.pid}`), 'nothing restored');
});

e2e('--pidfile replaces a planted symlink instead of writing through it', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const victim = join(c.dir, 'victim');
  writeFileSync(victim, VICTIM);
  const pidfile = join(c.dir, 'restored.pid');
  symlinkSync(victim, pidfile);
  const r = restore(img, ['-d', '--pidfile', pidfile]);
  adopt(f.pid);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), VICTIM, "the symlink's target is untouched");
  assert.equal(readFileSync(pidfile, 'utf8').trim(), String(f.pid));
  assert.equal(statSync(pidfile).mode & 0o777, 0o600);
  killAndReap(f.pid);
});

e2e('a dump into a directory another user owns is refused unless --force; one others can write gets 0600 files', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const theirs = c.subdir('theirs');
  chownSync(theirs, 65534, 65534);
  assert.match(assertCleanError(dump(f.pid, theirs, ['-R'])), /belongs to uid 65534.*--force/);
  assert.deepEqual(readdirSync(theirs), [], 'nothing written');
  assertRunningFree(f.pid);
  assert.equal(dump(f.pid, theirs, ['-R', '--force']).code, 0, '--force dumps there');
  assertRunningFree(f.pid);
  // ZDTM makes its images directories 0777: accepted, and nothing there is readable by others.
  const open = c.subdir('open');
  chmodSync(open, 0o777);
  assert.equal(dump(f.pid, open, ['-R']).code, 0);
  for (const n of readdirSync(open)) assert.equal(statSync(join(open, n)).mode & 0o077, 0, `${n} is private`);
  assertRunningFree(f.pid);
  killAndReap(f.pid);
});

e2e('a root restore of an image another user owns or can write is refused unless --trust-images', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const core = join(img, `core-${f.pid}.img`);
  chownSync(core, 65534, 65534);
  assert.match(assertCleanError(restore(img, ['-d'])), new RegExp(`core-${f.pid}\\.img: belongs to uid 65534.*--trust-images`));
  chownSync(core, 0, 0);
  chmodSync(core, 0o666);
  assert.match(assertCleanError(restore(img, ['-d'])), new RegExp(`core-${f.pid}\\.img: is writable by others.*--trust-images`));
  assert.ok(!existsSync(`/proc/${f.pid}`), 'nothing restored');
  const r = restore(img, ['-d', '--trust-images']);
  adopt(f.pid);
  assert.equal(r.code, 0, r.stderr);
  assertRunningFree(f.pid);
  killAndReap(f.pid);
});
