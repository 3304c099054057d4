/**
 * POSIX timers, seccomp filters and file locks through dump and restore: each workload
 * checks its own state after restore (timers firing at their ids, to their threads, with
 * their values; a filter still denying; a lock still excluding).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  type E2EContext,
  type Target,
  e2e,
  startTarget,
  killAndReap,
  readLines,
  waitForLine,
  waitFor,
  parseKV,
  assertRunningFree,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { taskTids } from '../lib/tree.ts';
import { readMessages } from '../../src/images/index.ts';

const ticks = (log: string, from = 0): Record<string, string>[] =>
  readLines(log)
    .slice(from)
    .filter((l) => l.startsWith('tick '))
    .map(parseKV);

e2e('POSIX timers come back at their ids with their clocks, signals, values, threads and remaining time, and fire on', async (c) => {
  const t = startTarget([workload('ptimers')], { logFile: join(c.dir, 'ptimers.log') });
  const ready = parseKV((await waitForLine(t.log, /^ready /, 5000)).line);
  await waitFor(() => ticks(t.log).length >= 4, 5000, 'a few ticks');
  const before = ticks(t.log).at(-1)!;
  assert.ok(
    Number(before.a) > 0 && Number(before.b) > 0 && Number(before.d) > 0,
    `every timer fired before the dump: ${JSON.stringify(before)}`,
  );
  assert.equal(before.bad, '0');
  const timers0 = readFileSync(`/proc/${t.pid}/timers`, 'utf8');
  assert.match(timers0, /notify: signal\/tid\./, 'a timer signals a thread');
  assert.doesNotMatch(timers0, /^ID: 1$/m, 'a gap in the ids');
  const tids0 = taskTids(t.pid);

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const mark = readLines(t.log).length;
  const last = ticks(t.log).at(-1)!;
  restoreDetached(img, t.pid);
  assert.equal(readFileSync(`/proc/${t.pid}/timers`, 'utf8'), timers0, '/proc/PID/timers as before the dump');
  assert.deepEqual(taskTids(t.pid), tids0, "the worker and glibc's timer thread are back");
  await waitFor(() => ticks(t.log, mark).length >= 6, 5000, 'ticks after restore');
  const after = ticks(t.log, mark).at(-1)!;
  for (const k of ['a', 'b', 'd'])
    assert.ok(Number(after[k]) > Number(last[k]) + 1, `timer ${k} fires after restore: ${last[k]} -> ${after[k]}`);
  assert.equal(after.bad, '0', "every signal came with its value and timer id, B's on the worker, and the unarmed timer stayed so");
  assert.ok(
    Number(after.left) >= 990 && Number(after.left) <= Number(last.left),
    `the one-shot timer keeps its remaining time: ${last.left} -> ${after.left}`,
  );
  assert.equal(ready.worker, String(tids0[1]));
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

const statusOf = (pid: number, tid: number): Map<string, string> =>
  new Map(
    readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
const EPERM = '1',
  EACCES = '13';

e2e('a sandboxed program (seccomp filters shared by its threads with TSYNC) is still sandboxed after restore', async (c) => {
  const t = startTarget([workload('seccompd', ['-lpthread'])], { logFile: join(c.dir, 'seccompd.log') });
  const worker = Number(parseKV((await waitForLine(t.log, /^ready /, 5000)).line).worker);
  for (const tid of [t.pid, worker]) {
    const st = statusOf(t.pid, tid);
    assert.deepEqual(
      [st.get('Seccomp'), st.get('Seccomp_filters'), st.get('NoNewPrivs')],
      ['2', '2', '1'],
      `thread ${tid} before the dump`,
    );
  }
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const filters = readMessages(join(img, 'seccomp.img'), 'seccomp_entry')[0]?.seccomp_filters ?? [];
  assert.equal(filters.length, 2, "one chain of two filters, the leader's (the worker shares it)");
  assert.deepEqual(
    filters.map((f) => f.flags),
    [1, 3],
    'TSYNC on both, LOG on the older',
  );
  const mark = readLines(t.log).length;
  restoreDetached(img, t.pid);
  for (const tid of [t.pid, worker]) {
    const st = statusOf(t.pid, tid);
    assert.deepEqual([st.get('Seccomp'), st.get('Seccomp_filters'), st.get('NoNewPrivs')], ['2', '2', '1'], `thread ${tid} after restore`);
  }
  await waitFor(
    () =>
      readLines(t.log)
        .slice(mark)
        .filter((l) => l.startsWith('tick ')).length >= 3,
    5000,
    'ticks after restore',
  );
  const tick = parseKV(
    readLines(t.log)
      .slice(mark)
      .filter((l) => l.startsWith('tick '))
      .at(-1)!,
  );
  assert.equal(tick.main, `${EPERM},${EACCES}`, 'getppid and getpgid are still denied in main');
  assert.equal(tick.worker, `${EPERM},${EACCES}`, 'and in the worker');
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

/** Dump and restore `t`, whose seccomp mode must be `mode` on both sides; its "tick" lines since the restore, once there are `n`. */
async function crSeccomp(c: E2EContext, t: Target, mode: string, n: number): Promise<string[]> {
  assert.equal(statusOf(t.pid, t.pid).get('Seccomp'), mode, 'seccomp mode before the dump');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const mark = readLines(t.log).length;
  restoreDetached(img, t.pid);
  assert.equal(statusOf(t.pid, t.pid).get('Seccomp'), mode, 'seccomp mode after restore');
  const ticks = () =>
    readLines(t.log)
      .slice(mark)
      .filter((l) => l.startsWith('tick '));
  await waitFor(() => ticks().length >= n, 10_000, 'ticks after restore');
  return ticks();
}

e2e('a task in seccomp strict mode comes back in strict mode and runs on', async (c) => {
  const t = startTarget([workload('seccompd', ['-lpthread']), '-s'], { logFile: join(c.dir, 'strict.log') });
  await waitFor(() => readLines(t.log).filter((l) => l.startsWith('tick ')).length >= 2, 5000, 'ticks');
  await crSeccomp(c, t, '1', 2);
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

/** The fdinfo lock lines of each of `fds` of `pid`, without their ordinals. */
const fdLocks = (pid: number, fds: number[]): string[] =>
  fds.flatMap((fd) =>
    readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('lock:'))
      .map((l) => `${fd} ${l.replace(/^lock:\s*\d+:\s*/, '').replace(/\s+/g, ' ')}`),
  );

/** Exit status of a python3 that tries a lock of each kind on `file` without waiting (0: got it). */
function tryLock(kind: 'flock' | 'posix' | 'ofd', file: string, start = 0, len = 1): number {
  const code = {
    flock: 'fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)',
    posix: `fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, ${len}, ${start})`,
    ofd: `fcntl.fcntl(f, fcntl.F_OFD_SETLK, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, ${start}, ${len}, 0))`,
  }[kind];
  const r = spawnSync('/usr/bin/python3', [
    '-c',
    `import fcntl, struct, sys\nf = open(sys.argv[1], 'r+')\ntry:\n  ${code}\nexcept OSError:\n  sys.exit(1)`,
    file,
  ]);
  return r.status ?? -1;
}

e2e(
  'flock, POSIX and OFD locks and a lease come back with --file-locks and still exclude others; without it the dump is refused',
  async (c) => {
    const t = startTarget([workload('flocks'), c.dir], { logFile: join(c.dir, 'flocks.log') });
    const child = Number(parseKV((await waitForLine(t.log, /^ready /, 5000)).line).child);
    const locks0 = fdLocks(t.pid, [3, 4, 5, 6]);
    assert.equal(locks0.length, 5, `four locks and a lease: ${locks0.join('; ')}`);
    const f = (n: string) => join(c.dir, n);
    assert.deepEqual(
      [tryLock('flock', f('flock')), tryLock('posix', f('posix')), tryLock('posix', f('posix'), 200), tryLock('ofd', f('ofd'), 15)],
      [1, 1, 1, 1],
      'each lock excludes before the dump',
    );
    assert.equal(tryLock('posix', f('posix'), 50), 0, 'bytes 10-99 are free');

    const refused = dump(t.pid, c.subdir('refused'));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /it holds a file lock \(.*\), saved only with --file-locks; not supported yet/);
    assertRunningFree(t.pid);
    // The child alone: the flock it shares was taken by its parent, which would keep it.
    const alone = dump(child, c.subdir('alone'), ['--file-locks']);
    assert.match(
      alone.stderr,
      new RegExp(`^task ${child}: fd 3 \\(.*flock\\): its lock was taken by ${t.pid}, outside the tree \\(FLOCK .*\\); not supported yet`),
    );
    assertRunningFree(child);

    const img = c.subdir('img');
    dumpAndReap(t.pid, img, ['--file-locks']);
    assert.equal(readMessages(join(img, 'filelocks.img'), 'file_lock_entry').length, 5, 'the shared flock is saved once');
    restoreDetached(img, t.pid, ['--file-locks']);
    assert.deepEqual(fdLocks(t.pid, [3, 4, 5, 6]), locks0, 'the same locks and lease, held by the same task');
    assert.deepEqual(
      [tryLock('flock', f('flock')), tryLock('posix', f('posix')), tryLock('posix', f('posix'), 200), tryLock('ofd', f('ofd'), 15)],
      [1, 1, 1, 1],
      'each lock still excludes',
    );
    assert.equal(tryLock('posix', f('posix'), 50), 0, 'bytes 10-99 are still free');
    assert.ok(fdLocks(child, [3]).length === 1, 'the child still shares the flock');
    assertRunningFree(t.pid);
    killAndReap(t.pid);
  },
);

e2e('an sqlite3 shell holding a write lock is restored with --file-locks and its lock still excludes a second writer', async (c) => {
  const db = join(c.dir, 'test.db');
  const fifo = join(c.dir, 'in.fifo');
  execFileSync('mkfifo', [fifo]);
  const w = openSync(fifo, 'r+'); // keeps the FIFO open: sqlite3 reads its commands from it
  try {
    const t = startTarget(['sqlite3', db], { logFile: join(c.dir, 'sqlite.log'), stdin: fifo });
    writeSync(w, "CREATE TABLE t(x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1); SELECT 'locked';\n");
    await waitForLine(t.log, /^locked$/, 5000);
    const second = () => spawnSync('sqlite3', [db, 'BEGIN EXCLUSIVE; SELECT 1;'], { encoding: 'utf8' });
    assert.match(second().stderr, /database is locked/, 'a second writer is locked out before the dump');
    const img = c.subdir('img');
    dumpAndReap(t.pid, img, ['--file-locks']);
    assert.doesNotMatch(second().stderr, /database is locked/, 'while the shell is gone the database is free');
    restoreDetached(img, t.pid, ['--file-locks']);
    assert.match(second().stderr, /database is locked/, 'a second writer is locked out after restore');
    writeSync(w, "COMMIT; SELECT 'n=' || count(*) FROM t;\n");
    await waitForLine(t.log, /^n=1$/, 5000);
    assert.equal(second().stdout.trim(), '1', 'once the shell commits, the database is free again');
    assertRunningFree(t.pid);
    killAndReap(t.pid);
  } finally {
    closeSync(w);
  }
});

// A real program sandboxes itself: python3 installs, through ctypes, a filter that makes
// getpgid fail with EACCES, then reports what os.getpgid does.
const SANDBOXED_PY = `
import ctypes, os, struct, sys, time
nr = {'x86_64': 121, 'aarch64': 155}[os.uname().machine]
code = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x00050000 | 13), (0x06, 0, 0, 0x7fff0000)]
insns = b''.join(struct.pack('HBBI', *i) for i in code)
buf = ctypes.create_string_buffer(insns)
prog = struct.pack('HxxxxxxQ', len(code), ctypes.addressof(buf))
pbuf = ctypes.create_string_buffer(prog)
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.prctl(22, 2, ctypes.c_void_p(ctypes.addressof(pbuf)), 0, 0) == 0, ctypes.get_errno()
print('ready', flush=True)
while True:
    try:
        os.getpgid(0)
        print('tick allowed', flush=True)
    except OSError as e:
        print('tick errno=%d' % e.errno, flush=True)
    time.sleep(0.05)
`;

e2e('python3 that put itself in a seccomp sandbox is still sandboxed after restore', async (c) => {
  const script = join(c.dir, 'sandboxed.py');
  writeFileSync(script, SANDBOXED_PY);
  const t = startTarget(['/usr/bin/python3', script], { logFile: join(c.dir, 'py.log') });
  await waitForLine(t.log, /^tick errno=13$/, 10_000);
  assert.deepEqual([...new Set(await crSeccomp(c, t, '2', 3))], ['tick errno=13'], 'getpgid is still denied');
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

e2e(
  'a sandboxed task is never unfiltered while it is dumped: its forbidden call, made without pause, stays denied through 10 dumps -R',
  async (c) => {
    const t = startTarget([workload('seccompbusy')], { logFile: join(c.dir, 'busy.log') });
    await waitForLine(t.log, /^tick i=/, 10_000);
    for (let i = 0; i < 10; i++) {
      const r = dump(t.pid, c.subdir(`img${i}`), ['-R']);
      assert.equal(r.code, 0, r.stderr);
    }
    const ticks = readLines(t.log).filter((l) => l.startsWith('tick ')).length;
    await waitFor(() => readLines(t.log).filter((l) => l.startsWith('tick ')).length > ticks, 10_000, 'a tick after the dumps');
    assert.deepEqual(
      readLines(t.log).filter((l) => !/^(ready|tick i=\d+)$/.test(l)),
      [],
      'getpgid was never allowed',
    );
    assertRunningFree(t.pid);
    killAndReap(t.pid);
  },
);

e2e('filters installed as root, by a task that then became another user, come back; the restore of its uids is not filtered', async (c) => {
  const t = startTarget([workload('seccompd', ['-lpthread']), '-u'], { logFile: join(c.dir, 'seccompd.log') });
  const worker = Number(parseKV((await waitForLine(t.log, /^ready /, 5000)).line).worker);
  const state = () =>
    [t.pid, worker].map((tid) => ['Seccomp_filters', 'NoNewPrivs', 'Uid', 'CapEff'].map((k) => statusOf(t.pid, tid).get(k)).join(' '));
  const before = state();
  assert.deepEqual(
    before,
    Array(2).fill('3 0 1000\t1000\t1000\t1000 0000000000000000'),
    'three filters, no no_new_privs, uid 1000, no capabilities',
  );
  const ticks = await crSeccomp(c, t, '2', 3);
  assert.deepEqual(state(), before, 'the same after restore');
  assert.equal(
    ticks.at(-1)!.replace(/^tick i=\d+ /, ''),
    `main=${EPERM},${EACCES} worker=${EPERM},${EACCES}`,
    'getppid and getpgid still denied in both threads',
  );
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});
