/**
 * Pseudo-terminals outside a shell job (test/workloads/ptydata.c): unread data both ways, a
 * partial line included, comes back intact (and stays intact after a dump with -R); an fd of
 * /dev/tty comes back as the task's controlling terminal; a slave whose master was closed comes
 * back hung up. Each is checked from inside the task. A tty-data.img entry for a file that is no
 * terminal fails the restore with one line naming the image.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, killAndReap, assertCleanError, assertRunningFree, procStat } from '../lib/proc.ts';
import { dump, dumpAndReap, restore, restoreDetached } from '../lib/cr.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';

e2e('unread data in a pty, both ways and a partial line, comes back intact', async (c) => {
  const t = await startChecking(c, 'ptydata', []);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const data = readMessages(join(img, 'tty-data.img'), 'tty_data_entry');
  assert.deepEqual(
    data.map((e) => Buffer.from(e.data).toString()).sort(),
    ['line1\nparti', 'out\r\n'],
    "CRIU's tty_data_entry, one per side",
  );
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('a dump with -R puts the unread terminal data back', async (c) => {
  const t = await startChecking(c, 'ptydata', []);
  const r = dump(t.pid, c.subdir('img'), ['-R']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('a tty-data.img entry for a tty that is not in the dump, or cut short, fails the restore in one line', async (c) => {
  const t = await startChecking(c, 'ptydata', []);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const bad = c.subdir('bad');
  cpSync(img, bad, { recursive: true });
  const p = join(bad, 'tty-data.img');
  const entries = readMessages(p, 'tty_data_entry');
  entries[0].tty_id = 9999;
  writeImage(p, 'tty_data_entry', entries);
  assert.match(
    assertCleanError(restore(bad, ['-d', '--skip-verify'])),
    /tty-data\.img: data for tty 9999, which is no pseudo-terminal of the dump/,
  );
  assert.equal(procStat(t.pid), null, 'nothing is left of the failed restore');
  const cut = c.subdir('cut');
  cpSync(img, cut, { recursive: true });
  const raw = readFileSync(join(cut, 'tty-data.img'));
  writeFileSync(join(cut, 'tty-data.img'), raw.subarray(0, raw.length - 3));
  assert.match(assertCleanError(restore(cut, ['-d', '--skip-verify'])), /^tty-data\.img: truncated entry at offset \d+/);
  assert.equal(procStat(t.pid), null, 'nothing is left of the failed restore');
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e("an fd of /dev/tty comes back on the pty that is again its controlling terminal, its session's child has it too", async (c) => {
  const t = await startChecking(c, 'ptydata', ['-t']);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const infos = readMessages(join(img, 'tty-info.img'), 'tty_info_entry');
  assert.ok(
    infos.some((e) => e.type === 4 && e.id === 2012 && e.sid === t.pid),
    "CRIU's TTY_TYPE__CTTY entry with the session",
  );
  assert.equal(
    infos.find((e) => e.id === 0)?.sid,
    t.pid,
    "the slave's entry has its session too (TIOCGSID answers criu-ts only through the master: the leader's stat says it)",
  );
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});

e2e('a task without a terminal in a session that has one is refused and runs on', async (c) => {
  const t = await startChecking(c, 'ptydata', ['-t', '-n']);
  const msg = assertCleanError(dump(t.pid, c.subdir('img')));
  assert.match(msg, /controlling terminal: it has none while its session leader \d+ has one, which it would inherit/);
  assertRunningFree(t.pid, 'the target after a refused dump');
  assert.equal(await askCheck(t), 'CHECK fail: the child of its session has another terminal', 'the task is as it was');
  killAndReap(t.pid);
});

e2e('a slave whose master was closed comes back hung up', async (c) => {
  const t = await startChecking(c, 'ptydata', ['-c']);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const [info] = readMessages(join(img, 'tty-info.img'), 'tty_info_entry');
  assert.equal(info.termios, undefined, 'a hung-up terminal has no settings, as CRIU saves it');
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
});
