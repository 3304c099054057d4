/**
 * Rarely used state that a restore must bring back, each piece checked from inside the
 * workload (test/workloads/rarestate.c) after a dump and a restore; state that no image keeps
 * refuses the dump, naming it, and is still there afterwards.
 */
import assert from 'node:assert/strict';
import { e2e, killAndReap, assertCleanError, assertRunningFree } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';

/** `precheck`: the workload checks itself before the dump too (not when checking changes the state). */
async function roundTrip(c: { dir: string; subdir(n: string): string }, mode: string, precheck = true): Promise<void> {
  const t = await startChecking(c, 'rarestate', ['-m', mode]);
  if (precheck) assert.equal(await askCheck(t), 'CHECK ok', 'before the dump');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
}

const COME_BACK: Array<[string, string]> = [
  ['autodisarm', 'a sigaltstack with SS_AUTODISARM (bit 31 of ss_flags)'],
  ['pipesz', 'the size of a pipe (F_SETPIPE_SZ)'],
  ['dumpable', 'PR_SET_DUMPABLE 0'],
  ['keepcaps', 'PR_SET_KEEPCAPS'],
  ['secbits', 'securebits (SECBIT_NOROOT)'],
  ['thpdisable', 'PR_SET_THP_DISABLE'],
  ['efdsem', 'an eventfd in semaphore mode'],
  ['futurewrite', 'a memfd sealed with F_SEAL_FUTURE_WRITE'],
  ['madvfork', 'MADV_DONTFORK and MADV_WIPEONFORK'],
  ['thnnp', "a thread's own no_new_privs"],
  ['thcaps', "a thread's own effective capabilities"],
  ['onaltstack', 'a thread running a signal handler on its sigaltstack (SS_ONSTACK)'],
  ['itimers', 'ITIMER_VIRTUAL and ITIMER_PROF'],
  ['epollflags', 'an EPOLLEXCLUSIVE registration and a disarmed EPOLLONESHOT one'],
  ['sealexec', 'a memfd sealed with F_SEAL_EXEC'],
  ['abstime', 'a CLOCK_REALTIME timerfd armed with TFD_TIMER_ABSTIME and TFD_TIMER_CANCEL_ON_SET'],
];

for (const [mode, what] of COME_BACK) e2e(`${what} comes back`, (c) => roundTrip(c, mode));
e2e("a thread's clear_child_tid: pthread_join sees a restored thread exit", (c) => roundTrip(c, 'join', false));
e2e('a thread waiting in sigsuspend() gets its own mask back when a signal wakes it', (c) => roundTrip(c, 'sigsuspend'));
e2e("a thread's robust list: a robust mutex of a restored thread that died says EOWNERDEAD", (c) => roundTrip(c, 'robust', false));

async function refused(c: { dir: string; subdir(n: string): string }, mode: string, line: RegExp): Promise<void> {
  const t = await startChecking(c, 'rarestate', ['-m', mode]);
  assert.equal(await askCheck(t), 'CHECK ok', 'before the dump');
  const got = assertCleanError(dump(t.pid, c.subdir('img')));
  assert.match(got, new RegExp(`^task ${t.pid} \\(thread \\d+\\): `), got);
  assert.match(got, line, got);
  assertRunningFree(t.pid);
  assert.equal(await askCheck(t), 'CHECK ok', 'the state is still there after the refused dump');
  killAndReap(t.pid);
}

const REFUSED: Array<[string, string, RegExp]> = [
  ['thpersonality', 'a personality of its own', /personality: the thread's is 00020000, its process's 00000000/],
  ['thfs', 'a working directory and umask of its own', /working directory, root and umask: the thread has its own \(unshare CLONE_FS\)/],
  ['thfiles', 'an fd table of its own', /fd table: the thread has its own \(unshare CLONE_FILES\)/],
  ['thnetns', 'a network namespace of its own', /namespaces: the thread is in net:\[\d+\], its process in net:\[\d+\]/],
];

for (const [mode, what, line] of REFUSED)
  e2e(`a dump of a thread with ${what} is refused, naming it, and the thread keeps it`, (c) => refused(c, mode, line));
