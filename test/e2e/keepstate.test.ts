/**
 * State a restore must bring back as it was, each checked from inside the workload
 * (test/workloads/keepstate.c) after a dump and a restore: ambient capabilities, a deleted
 * file's set-user-ID mode, a child's fd table that differs from its parent's in one flag, a
 * periodic timerfd that fired unread, the open mode of a mapped file, a private mapping of
 * shared anonymous memory, an executable memfd, membarrier registrations, and a thread
 * inside an rseq critical section, files of /proc of the tree, a cgroup removed after the dump.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, killAndReap, adopt, descendants, startTarget, readLines } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';
import { startChecking, askCheck } from '../lib/selfcheck.ts';

/** `precheck`: the workload checks itself before the dump too (not when checking changes the state). */
async function roundTrip(c: { dir: string; subdir(n: string): string }, mode: string, file = false, precheck = true): Promise<void> {
  const args = ['-m', mode, ...(file ? ['-f', join(c.dir, `${mode}.data`)] : [])];
  const t = await startChecking(c, 'keepstate', args);
  if (precheck) assert.equal(await askCheck(t), 'CHECK ok', 'before the dump');
  const kids = descendants(t.pid);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  for (const k of kids) adopt(k);
  assert.equal(await askCheck(t), 'CHECK ok');
  killAndReap(t.pid);
}

e2e('ambient capabilities come back', (c) => roundTrip(c, 'ambient'));
e2e('a deleted file keeps its set-user-ID and set-group-ID mode and its mtime', (c) => roundTrip(c, 'ghostmode', true));
e2e('a child whose fd differs from its parent only by close-on-exec keeps the fd above it, shared', (c) => roundTrip(c, 'fdshare', true));
e2e('a periodic timerfd that fired and was not read keeps running', (c) => roundTrip(c, 'timerfd', false, false));
e2e('a shared file mapping of a file opened read-write can be made writable after restore', (c) => roundTrip(c, 'mapprot', true));
e2e('a private mapping of shared anonymous memory still sees the pages it did not write', (c) => roundTrip(c, 'shmpriv'));
e2e('a memfd opened once read-write can still be executed (execveat AT_EMPTY_PATH)', (c) => roundTrip(c, 'memfdexec'));
e2e("files in /proc of the tree stay open: a child's stat, the task's own fdinfo of a later fd", (c) => roundTrip(c, 'procfd'));
e2e('a file owner set by another euid keeps the uids that set it', (c) => roundTrip(c, 'fownuid'));
e2e('an O_PATH|O_NOFOLLOW fd of a symlink is still the symlink', (c) => roundTrip(c, 'symlink', true));
e2e('a task that unmapped its vDSO is dumped (syscalls run from its libc) and comes back without one', (c) => roundTrip(c, 'novdso'));
e2e('a pseudo-terminal pair outside a shell job: the controlling terminal of a session, raw mode, window size, data flow', (c) =>
  roundTrip(c, 'pty'),
);
e2e("an mlock'd mapping is locked again", (c) => roundTrip(c, 'mlock'));
e2e('a removed directory of a removed directory, held open, comes back removed', async (c) => {
  await roundTrip(c, 'rmdir', true);
  assert.ok(!existsSync(join(c.dir, 'rmdir.data')), 'the directories made for the restore are gone');
});
e2e('fds of its own namespaces (/proc/self/ns/net, uts) are those it is in after restore', (c) => roundTrip(c, 'nsfd'));
e2e('an fd of the console outside a shell job is reopened by its path', (c) => roundTrip(c, 'console', true));
e2e('membarrier registrations come back', (c) => roundTrip(c, 'membarrier'));
e2e('a thread inside an rseq critical section is still aborted by a signal', (c) => roundTrip(c, 'rseq'), {
  skip: process.arch !== 'x64' && 'the workload is x86_64 assembly',
});

const V2_ROOT = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) => existsSync(join(d, 'cgroup.controllers')));

for (const yard of [false, true]) {
  e2e(
    `a task in a cgroup of its own comes back in it, made again with its properties after it was removed${yard ? ' (--cgroup-yard)' : ''}`,
    async (c) => {
      const top = join(V2_ROOT!, `criu-ts-test-${process.pid}`);
      const dir = join(top, 'sub');
      mkdirSync(dir, { recursive: true });
      // The user's yard: each hierarchy mounted in a directory named as CRIU names them.
      const unified = join(c.dir, 'yard', 'unified');
      const opts = yard ? ['--cgroup-yard', join(c.dir, 'yard')] : [];
      if (yard) {
        mkdirSync(unified, { recursive: true });
        execFileSync('mount', ['-t', 'cgroup2', 'none', unified]);
      }
      try {
        writeFileSync(join(dir, 'cgroup.max.descendants'), '5');
        const t = await startChecking(c, 'keepstate', ['-m', 'cgroup', '-f', dir]);
        writeFileSync(join(dir, 'cgroup.procs'), String(t.pid));
        assert.equal(await askCheck(t), 'CHECK ok', 'before the dump');
        const img = c.subdir('img');
        dumpAndReap(t.pid, img, opts);
        rmdirSync(dir);
        restoreDetached(img, t.pid, opts);
        assert.equal(await askCheck(t), 'CHECK ok');
        killAndReap(t.pid);
      } finally {
        if (yard) execFileSync('umount', [unified]);
        for (const d of [dir, top]) if (existsSync(d)) rmdirSync(d);
      }
    },
    { skip: !V2_ROOT && 'no cgroup v2 hierarchy mounted' },
  );
}

e2e('a thread without rseq, its rseq_entry all zero as CRIU writes it, comes back and runs on', async (c) => {
  // glibc registers rseq for every thread unless told not to.
  const t = startTarget([workload('counter'), '50'], {
    logFile: join(c.dir, 'counter.log'),
    env: { GLIBC_TUNABLES: 'glibc.pthread.rseq=0' },
  });
  await waitForCounter(t.log, 2);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const core = join(img, `core-${t.pid}.img`);
  const entries = readMessages(core, 'core_entry');
  assert.equal(entries[0].thread_core?.rseq_entry, undefined, 'criu-ts saves no rseq_entry for it');
  entries[0].thread_core!.rseq_entry = { rseq_abi_pointer: 0n, rseq_abi_size: 0, signature: 0 };
  writeImage(core, 'core_entry', entries);
  const mark = readLines(t.log).length;
  restoreDetached(img, t.pid, ['--skip-verify']);
  await waitForCounter(t.log, -1, 5000, mark);
  killAndReap(t.pid);
});
