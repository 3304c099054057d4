/**
 * Rarely used state that a restore must bring back, each piece checked from inside the
 * workload (test/workloads/rarestate.c) after a dump and a restore.
 */
import assert from 'node:assert/strict';
import { e2e, killAndReap } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
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
  ['abstime', 'a CLOCK_REALTIME timerfd armed with TFD_TIMER_ABSTIME and TFD_TIMER_CANCEL_ON_SET'],
];

for (const [mode, what] of COME_BACK) e2e(`${what} comes back`, (c) => roundTrip(c, mode));
e2e("a thread's clear_child_tid: pthread_join sees a restored thread exit", (c) => roundTrip(c, 'join', false));
e2e('a thread waiting in sigsuspend() gets its own mask back when a signal wakes it', (c) => roundTrip(c, 'sigsuspend'));
e2e("a thread's robust list: a robust mutex of a restored thread that died says EOWNERDEAD", (c) => roundTrip(c, 'robust', false));
