/**
 * Trees that are the init of their own PID namespace, as ZDTM's namespace flavor runs them:
 * shapes and resources that come out differently there than in the host's namespaces.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  adopt,
  reap,
  killAndReap,
  waitFor,
  descendants,
  assertOk,
  readLines,
  signal,
  waitForLine,
  SIGUSR1,
} from '../lib/proc.ts';
import { dump, restoreRoot } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

/** NSpid, NSsid and NSpgid of a task and its parent's NSpid: how it sees itself in its namespace. */
interface NsTask {
  pid: number;
  ppid: number;
  sid: number;
  pgid: number;
}

function nsView(hostPids: number[]): NsTask[] {
  const inner = (host: number, key: string): number => {
    const m = new RegExp(`^${key}:\\s.*?(\\d+)$`, 'm').exec(readFileSync(`/proc/${host}/status`, 'utf8'));
    if (!m) throw new Error(`no ${key} in /proc/${host}/status`);
    return Number(m[1]);
  };
  const hostPpid = (host: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${host}/status`, 'utf8'))?.[1]);
  const ns = new Map(hostPids.map((h) => [h, inner(h, 'NSpid')]));
  return hostPids
    .map((h) => ({ pid: ns.get(h)!, ppid: ns.get(hostPpid(h)) ?? 0, sid: inner(h, 'NSsid'), pgid: inner(h, 'NSpgid') }))
    .sort((a, b) => a.pid - b.pid);
}

/**
 * Start `argv` as the init of a new PID namespace (`unshare --pid --fork FLAGS setsid ARGV`);
 * the unshare and the init, once the init exists.
 */
async function startNs(flags: string[], argv: string[], log?: string): Promise<{ unshare: number; init: number }> {
  const t = startTarget(['unshare', '--pid', '--fork', ...flags, 'setsid', ...argv], log ? { logFile: log } : {});
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the init of the PID namespace');
  adopt(init);
  return { unshare: t.pid, init };
}

/** `sh` running `script` as the init of a new PID namespace (startNs). */
function startShNs(c: { dir: string }, flags: string[], script: string): Promise<{ unshare: number; init: number }> {
  const file = join(c.dir, 'init.sh');
  writeFileSync(file, script);
  return startNs(flags, ['sh', file]);
}

/** Dump the tree of `root` and wait for it and `others` to be gone; restore it: the restored root's host pid. */
function dumpAndRestore(c: { subdir(n: string): string }, root: number, others: number[], dumpArgs: string[] = []): number {
  const img = c.subdir('img');
  const inside = [root, ...descendants(root)];
  assertOk(dump(root, img, dumpArgs));
  for (const p of [...others, ...inside]) reap(p, 10_000);
  return restoreRoot(img, [], true);
}

/** A workload that checks itself on SIGUSR1 and then prints DONE (epflight, shmemfd, skflight): its OK and FAIL lines. */
async function askDone(host: number, log: string): Promise<string[]> {
  signal(host, SIGUSR1);
  await waitForLine(log, /^DONE/, 10_000);
  return readLines(log).filter((l) => /^(OK|FAIL)/.test(l));
}

/** Wait for the init to have become `sleep` (its script ran to its end). */
const sleeping = (init: number) =>
  waitFor(() => readFileSync(`/proc/${init}/comm`, 'utf8') === 'sleep\n' || undefined, 5000, 'the init to sleep');

e2e('an orphan the init took in, in the session of a leader that is its cousin, comes back in that session and group', async (c) => {
  // 1 (init) -> 2 (sh) -> 3 (setsid: leads session 3) -> 4 forks 5 and exits: 5 goes to 1,
  // in session 3 and group 3, while its parent 1 is in another session.
  const { unshare, init } = await startShNs(
    c,
    [],
    'sh -c \'setsid sh -c "sh -c \\"sleep 1000 &\\"; exec sleep 1000" & exec sleep 1000\' &\nexec sleep 1000\n',
  );
  // Settled: the four tasks are there, the orphan's parent gone.
  const settled = (): boolean => {
    try {
      const v = nsView([init, ...descendants(init)]);
      return v.length === 4 && v.some((t) => t.ppid === 1 && t.sid !== 1);
    } catch {
      return false; // a task went away while it was read
    }
  };
  await waitFor(() => settled() || undefined, 5000, 'the orphan under the init');
  for (const d of descendants(init)) adopt(d);
  const before = nsView([init, ...descendants(init)]);
  const orphan = before.find((t) => t.ppid === 1 && t.sid !== 1);
  assert.ok(orphan, `an orphan of another session under the init: ${JSON.stringify(before)}`);
  const leader = before.find((t) => t.pid === orphan.sid);
  assert.ok(leader && leader.ppid !== 1, `its session leader is not a child of the init: ${JSON.stringify(before)}`);
  const host = dumpAndRestore(c, init, [unshare]);
  assert.deepEqual(nsView([host, ...descendants(host)]), before, 'parents, sessions and groups as dumped');
  killAndReap(host);
});

e2e(
  'files under /proc/PID of a process dead at dump time, in the PID namespace of the tree, come back through a stand-in at that pid',
  async (c) => {
    // The init holds /proc/CHILD/mountinfo open and its cwd in /proc/CHILD, CHILD reaped since.
    // Its stdio is the namespace's own: the runner's log files are on mounts outside it.
    const { unshare, init } = await startShNs(
      c,
      ['--mount', '--mount-proc'],
      'exec </dev/null >/dev/null 2>&1; sleep 1000 & c=$!; exec 3</proc/$c/mountinfo; cd /proc/$c; kill -9 $c; wait $c; exec sleep 1000\n',
    );
    await sleeping(init);
    const dead = /^\/proc\/(\d+)\/mountinfo/.exec(readlinkSync(`/proc/${init}/fd/3`))![1];
    const host = dumpAndRestore(c, init, [unshare]);
    assert.match(readlinkSync(`/proc/${host}/fd/3`), new RegExp(`^/proc/${dead}/mountinfo`), "the fd is the dead pid's mountinfo");
    assert.match(readlinkSync(`/proc/${host}/cwd`), new RegExp(`^/proc/${dead}`), "the cwd is the dead pid's directory");
    assert.deepEqual(descendants(host), [], 'the stand-in is gone');
    killAndReap(host);
  },
);

e2e('an epoll in flight (SCM_RIGHTS) in the init of a PID namespace comes back watching its target', async (c) => {
  const log = join(c.dir, 'epflight.log');
  const { unshare, init } = await startNs([], [workload('epflight')], log);
  await waitForLine(log, /^READY/, 5000);
  const host = dumpAndRestore(c, init, [unshare]);
  assert.deepEqual(await askDone(host, log), ['OK epoll in flight']);
  assert.equal(reap(host, 5000)?.code, 0);
});

e2e(
  'with --link-remap, a deleted name of a file with another name, on a tmpfs of the mount namespace, whose directory is gone too',
  async (c) => {
    const d = c.subdir('t');
    const { unshare, init } = await startShNs(
      c,
      ['--mount', '--mount-proc', '--propagation', 'private'],
      `exec </dev/null >/dev/null 2>&1; mount -t tmpfs none ${d}; mkdir ${d}/sub; echo hello > ${d}/sub/f; ln ${d}/sub/f ${d}/g\n` +
        `exec 3<${d}/sub/f; rm ${d}/sub/f; rmdir ${d}/sub; exec sleep 1000\n`,
    );
    await sleeping(init);
    const host = dumpAndRestore(c, init, [unshare], ['--link-remap']);
    assert.equal(readFileSync(`/proc/${host}/fd/3`, 'utf8'), 'hello\n');
    assert.equal(statSync(`/proc/${host}/fd/3`).ino, statSync(`/proc/${host}/root${d}/g`).ino, 'the same inode as its other name');
    assert.deepEqual(readdirSync(`/proc/${host}/root${d}`), ['g'], 'no link of the dump is left');
    killAndReap(host);
  },
);

for (const ns of [true, false])
  e2e(
    `MAP_SHARED anonymous memory held by an fd (/dev/zero (deleted))${ns ? ' in a mount namespace of the tree' : ''} comes back as a memfd of its size and content`,
    async (c) => {
      const log = join(c.dir, 'shmemfd.log');
      const argv = [workload('shmemfd'), log];
      const { unshare, init } = ns ? await startNs(['--mount', '--mount-proc'], argv) : { unshare: undefined, init: startTarget(argv).pid };
      await waitForLine(log, /^READY/, 5000);
      const host = dumpAndRestore(c, init, unshare === undefined ? [] : [unshare]);
      assert.deepEqual(await askDone(host, log), ['OK shmemfd']);
      assert.equal(reap(host, 5000)?.code, 0);
    },
  );

for (const kind of ['inotify', 'fanotify'])
  e2e(
    `${kind} ${kind === 'inotify' ? 'watches' : 'marks (inode and mount)'} on a tmpfs mounted only in the tree's mount namespace get their events after restore`,
    async (c) => {
      const d = c.subdir('t');
      const log = join(c.dir, `${kind}.log`);
      const { unshare, init } = await startShNs(
        c,
        ['--mount', '--mount-proc', '--propagation', 'private'],
        `mount -t tmpfs none ${d}; exec ${workload(kind)} -d ${d} >${log} 2>/dev/null </dev/null\n`,
      );
      await waitForLine(log, /^tick n=2$/, 5000);
      const host = dumpAndRestore(c, init, [unshare]);
      const from = readLines(log).length;
      signal(host, SIGUSR1);
      assert.equal((await waitForLine(log, /^CHECK /, 10_000, from)).line, 'CHECK ok');
      killAndReap(host);
    },
  );

e2e('unix sockets in flight in their own queues (SCM_RIGHTS) come back, each the same socket as the fd that holds it', async (c) => {
  // In a network namespace of its own, as under ZDTM: the dumped sockets, a cycle in flight,
  // keep their names until the kernel collects them, some time after the dumped task is gone.
  const log = join(c.dir, 'skflight.log');
  const { unshare, init } = await startNs(['--net'], [workload('skflight')], log);
  await waitForLine(log, /^READY/, 5000);
  const host = dumpAndRestore(c, init, [unshare]);
  assert.deepEqual(await askDone(host, log), ['OK sockets in flight']);
  assert.equal(reap(host, 5000)?.code, 0);
});
