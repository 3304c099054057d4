/**
 * Trees in namespaces of their own, made by util-linux's unshare: a PID namespace whose init
 * (pid 1) has a child, with its own UTS, IPC, network and time namespaces, is dumped and
 * restored into new ones: the pids inside, host and domain name, SysV objects, the loopback's
 * state, addresses, routes and sysctls, a TCP listener in it, CLOCK_MONOTONIC are checked from inside.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  readLines,
  adopt,
  reap,
  killAndReap,
  waitFor,
  descendants,
  assertCleanError,
  assertOk,
  CRIU_BIN,
  sleep,
  lastCounterLine as lastLine,
  kvField as field,
} from '../lib/proc.ts';
import { dump, restore, waitForCounter, dumpAndReap, restoreDetached, restoreRoot } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { reserveHugePages } from '../lib/hugepages.ts';

// A time namespace whose CLOCK_MONOTONIC is a day ahead of the host's.
const DAY = 86400;
const UNSHARE = ['unshare', '--pid', '--fork', '--uts', '--ipc', '--net', '--time', '--monotonic', String(DAY)];

/** Run `cmd` in the network (or with `ns` another) namespace of `pid`; its stdout. */
function inNet(pid: number, cmd: string[], ns = '-n'): string {
  const r = spawnSync('nsenter', ['-t', String(pid), ns, ...cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nsenter ${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A container: unshare (our child) and its child, the namespace's init running nsinit. */
async function startBox(log: string): Promise<{ unshare: number; init: number }> {
  const t = startTarget([...UNSHARE, 'setsid', workload('nsinit'), 'box', 'example.org'], { logFile: log });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the init of the PID namespace');
  for (const d of descendants(t.pid)) adopt(d);
  await waitForCounter(log, 3, 10_000);
  return { unshare: t.pid, init };
}

e2e('the root of a PID namespace gets its own fds only, not those criu-ts inherited without close-on-exec', async (c) => {
  const log = join(c.dir, 'box.log');
  const { unshare, init } = await startBox(log);
  const fds = (pid: number) =>
    readdirSync(`/proc/${pid}/fd`)
      .map(Number)
      .sort((a, b) => a - b);
  const before = fds(init);
  const img = c.subdir('img');
  assertOk(dump(init, img));
  reap(unshare, 10_000);
  for (const d of descendants(init)) reap(d, 10_000);
  // criu-ts started as a shell would start it, with fds of its caller left open (3 and 4 here).
  const extra = openSync(join(c.dir, 'extra'), 'w');
  const pidfile = join(img, 'root.pid');
  try {
    const r = spawnSync(CRIU_BIN, ['restore', '-D', img, '-d', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], {
      stdio: ['ignore', 'pipe', 'pipe', extra, extra],
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    closeSync(extra);
  }
  const host = Number(readFileSync(pidfile, 'utf8'));
  adopt(host);
  for (const d of descendants(host)) adopt(d);
  assert.deepEqual(fds(host), before, 'the fds it had, and no other');
  killAndReap(host);
});

e2e('a PID namespace with its UTS, IPC, network and time namespaces comes back with the same pids inside', async (c) => {
  const log = join(c.dir, 'box.log');
  const { unshare, init } = await startBox(log);
  inNet(init, ['ip', 'addr', 'add', '10.7.7.7/32', 'dev', 'lo']);
  inNet(init, ['ip', 'route', 'add', '10.9.0.0/16', 'dev', 'lo']);
  inNet(init, ['ip', 'rule', 'add', 'from', '10.7.7.7', 'lookup', 'main', 'priority', '100']);
  const ipRules = inNet(init, ['ip', 'rule', 'show']);
  const SYSCTLS = { 'ipv4/conf/all/accept_local': '1', 'ipv4/conf/lo/arp_ignore': '2', 'unix/max_dgram_qlen': '123' };
  const sysctls = (pid: number) => Object.keys(SYSCTLS).map((k) => inNet(pid, ['cat', `/proc/sys/net/${k}`]).trim());
  for (const [k, v] of Object.entries(SYSCTLS)) inNet(init, ['sh', '-c', `echo ${v} > /proc/sys/net/${k}`]);
  assert.deepEqual(sysctls(init), Object.values(SYSCTLS));
  const sysv = workload('sysvfill');
  inNet(init, [sysv, 'make'], '-i');
  const objects = inNet(init, [sysv, 'show'], '-i');
  assert.match(objects, /1:hello 7:world!/);
  const before = lastLine(log);
  assert.equal(field(before, 'pid'), '1');
  const childVpid = field(before, 'childpid');
  const img = c.subdir('img');
  assertOk(dump(init, img));
  reap(unshare, 10_000);
  for (const d of descendants(init)) reap(d, 10_000);
  const pidfile = join(img, 'root.pid');
  const marks = readLines(log).length;
  assertOk(restore(img, ['-d', '--pidfile', pidfile]));
  const host = Number(readFileSync(pidfile, 'utf8'));
  adopt(host);
  await waitForCounter(log, Number(field(before, 'i')) + 3, 10_000, marks);
  const after = lastLine(log);
  assert.equal(field(after, 'pid'), '1', 'the restored init is pid 1 inside');
  assert.equal(field(after, 'ppid'), '0');
  assert.equal(field(after, 'childpid'), childVpid, 'its child has the same pid inside');
  assert.equal(field(after, 'host'), 'box');
  assert.equal(field(after, 'domain'), 'example.org');
  assert.equal(field(before, 'tcp'), 'ok');
  assert.equal(field(after, 'tcp'), 'ok', 'its TCP listener is back in its network namespace');
  const monoGap = Number(field(after, 'mono')) - Number(field(before, 'mono'));
  assert.ok(monoGap >= 0 && monoGap < 60, `CLOCK_MONOTONIC goes on from where it was (${monoGap} s later)`);
  assert.notEqual(host, 1);
  const status = readFileSync(`/proc/${host}/status`, 'utf8');
  assert.match(status, /^NSpid:\s+\d+\s+1$/m);
  for (const ns of ['pid', 'uts', 'ipc', 'net', 'time'])
    assert.notEqual(readlinkSync(`/proc/${host}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), `a ${ns} namespace of its own`);
  assert.equal(inNet(host, [sysv, 'show'], '-i'), objects, 'SysV objects with their ids, owners, modes and contents');
  const lo = inNet(host, ['ip', '-o', 'addr', 'show', 'dev', 'lo']);
  assert.match(lo, /10\.7\.7\.7\/32/, 'the address added to lo');
  assert.match(inNet(host, ['ip', 'route', 'show']), /^10\.9\.0\.0\/16 dev lo/m, 'the route added');
  assert.equal(inNet(host, ['ip', 'rule', 'show']), ipRules, 'the rule added, and the default ones once each');
  assert.match(inNet(host, ['ip', '-o', 'link', 'show', 'dev', 'lo']), /[<,]UP[,>]/, 'lo is up');
  assert.deepEqual(sysctls(host), Object.values(SYSCTLS), 'the net sysctls of the namespace and of lo');
  const kids = descendants(host);
  for (const k of kids) adopt(k);
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

/** Processes whose executable is `exe`. */
function running(exe: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readlinkSync(`/proc/${n}/exe`) === exe;
      } catch {
        return false;
      }
    })
    .map(Number);
}

e2e('a restore that fails once the namespaces are made leaves no process behind, and the dump restores after', async (c) => {
  const log = join(c.dir, 'box.log');
  const { unshare, init } = await startBox(log);
  const img = c.subdir('img');
  assertOk(dump(init, img));
  reap(unshare, 10_000);
  for (const d of descendants(init)) reap(d, 10_000);
  reap(init, 10_000);
  for (const step of ['restore-files', 'restore-memory']) {
    const r = restore(img, ['-d'], { env: { CRIU_TS_FAULT: step } });
    assertCleanError(r);
    assert.deepEqual(running(workload('nsinit')), [], `no task of the tree is left after a failure at ${step}`);
  }
  const host = restoreRoot(img, [], true);
  const kids = descendants(host);
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e('a task that is not the init of its PID namespace is refused, and runs on', async (c) => {
  const log = join(c.dir, 'box.log');
  const { unshare, init } = await startBox(log);
  const child = descendants(init)[0];
  const r = dump(child, c.subdir('img'));
  assert.match(assertCleanError(r), /pid namespace|PID namespace/);
  const n = Number(field(lastLine(log), 'i'));
  await waitForCounter(log, n + 2, 10_000);
  killAndReap(unshare);
  reap(init, 10_000);
  reap(child, 10_000);
});

/** A counter as the init of new PID and network namespaces: unshare, and its child. */
async function startCounterBox(c: { dir: string }): Promise<{ unshare: number; init: number; log: string }> {
  const log = join(c.dir, 'counter.log');
  const t = startTarget(['unshare', '--pid', '--fork', '--net', 'setsid', workload('counter')], { logFile: log });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the counter');
  adopt(init);
  await waitForCounter(log, 3, 10_000);
  return { unshare: t.pid, init, log };
}

/** Dump `init` (extra options), reap what the dump killed, restore -d (with `restoreArgv`); the restored root's pid. */
async function dumpAndRestore(
  box: { unshare: number; init: number; log: string },
  img: string,
  dumpExtra: string[],
  restoreArgv: string[],
): Promise<number> {
  assertOk(dump(box.init, img, dumpExtra));
  reap(box.unshare, 10_000);
  reap(box.init, 10_000);
  const n = Number(field(lastLine(box.log), 'i'));
  const r = spawnSync('bash', ['-c', restoreArgv.join(' ')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `restore: ${r.stderr}`);
  const host = Number(readFileSync(join(img, 'root.pid'), 'utf8'));
  adopt(host);
  await waitForCounter(box.log, n + 2, 10_000);
  return host;
}

e2e('--empty-ns net: the network namespace is not saved, and comes back empty', async (c) => {
  const box = await startCounterBox(c);
  inNet(box.init, ['ip', 'link', 'set', 'lo', 'up']);
  const img = c.subdir('img');
  const host = await dumpAndRestore(
    box,
    img,
    ['--empty-ns', 'net'],
    [CRIU_BIN, 'restore', '-D', img, '-d', '--pidfile', 'root.pid', '--empty-ns', 'net', '-v4', '-o', 'restore.log'],
  );
  assert.ok(
    !existsSync(join(img, 'netdev-2.img')) && !readdirSync(img).some((f) => f.startsWith('ifaddr-')),
    'no links or addresses saved',
  );
  assert.notEqual(readlinkSync(`/proc/${host}/ns/net`), readlinkSync('/proc/self/ns/net'), 'a network namespace of its own');
  assert.doesNotMatch(inNet(host, ['ip', '-o', 'link', 'show', 'dev', 'lo']), /[<,]UP[,>]/, 'its loopback as a new namespace has it: down');
  killAndReap(host);
});

e2e('an external network namespace is named at dump and joined at restore from an inherited fd', async (c) => {
  const name = `criu-ts-ext-${process.pid}`;
  const box = await startCounterBox(c);
  // The namespace outlives the tree, as a container runtime's does: a bind mount holds it.
  assert.equal(spawnSync('ip', ['netns', 'attach', name, String(box.init)]).status, 0, 'ip netns attach');
  try {
    const path = `/run/netns/${name}`;
    const ino = statSync(path).ino;
    assert.equal(readlinkSync(`/proc/${box.init}/ns/net`), `net:[${ino}]`);
    const img = c.subdir('img');
    const host = await dumpAndRestore(
      box,
      img,
      ['--external', `net[${ino}]:extnet`],
      [
        'exec 7<',
        path,
        ';',
        'exec',
        CRIU_BIN,
        'restore',
        '-D',
        img,
        '-d',
        '--pidfile',
        'root.pid',
        '--inherit-fd',
        "'fd[7]:extnet'",
        '-v4',
        '-o',
        'restore.log',
      ],
    );
    assert.equal(readlinkSync(`/proc/${host}/ns/net`), `net:[${ino}]`, 'the restored root is in the namespace it was given');
    killAndReap(host);
    // Without the fd, the restore is refused before anything is created.
    const r = restore(img, ['-d']);
    assert.match(assertCleanError(r), /external \(extnet\).*--inherit-fd/);
  } finally {
    spawnSync('ip', ['netns', 'delete', name]);
  }
});

e2e('a tree without a time namespace comes back in one, its clocks going on from the dump', async (c) => {
  const t = startTarget([workload('counter')], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2, 10_000);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  await sleep(1500);
  restoreDetached(img, t.pid);
  assert.notEqual(readlinkSync(`/proc/${t.pid}/ns/time`), readlinkSync('/proc/self/ns/time'), 'a time namespace of its own');
  const mono = /^monotonic\s+(-?\d+)\s+(\d+)$/m.exec(readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'));
  const off = Number(mono?.[1]) + Number(mono?.[2]) / 1e9;
  assert.ok(off < -1.4 && off > -30, `CLOCK_MONOTONIC set back by the time it spent dumped (offset ${off} s)`);
  killAndReap(t.pid);
});

for (const huge of [false, true])
  e2e(
    `System V shared memory${huge ? ' made with SHM_HUGETLB' : ''} a task keeps attached comes back attached where it was, with its content`,
    async (c) => {
      if (huge) c.t.after(reserveHugePages(4));
      const log = join(c.dir, 'shm.log');
      const t = startTarget(['unshare', '--pid', '--fork', '--ipc', 'setsid', workload('shmcount'), ...(huge ? ['huge'] : [])], {
        logFile: log,
      });
      const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the counter');
      adopt(init);
      await waitForCounter(log, 3, 10_000);
      const img = c.subdir('img');
      assertOk(dump(init, img));
      reap(t.pid, 10_000);
      reap(init, 10_000);
      const before = lastLine(log);
      const pidfile = join(img, 'root.pid');
      assertOk(restore(img, ['-d', '--pidfile', pidfile]));
      const host = Number(readFileSync(pidfile, 'utf8'));
      adopt(host);
      await waitForCounter(log, Number(field(before, 'i')) + 2, 10_000);
      const after = lastLine(log);
      assert.equal(field(after, 'addr'), field(before, 'addr'), 'attached at the same address');
      assert.equal(
        Number(field(after, 'shm')) - Number(field(before, 'shm')),
        Number(field(after, 'i')) - Number(field(before, 'i')),
        'the count in the segment went on',
      );
      assert.equal(field(after, 'page'), huge ? '2048' : '4', 'the segment is on pages of the same size');
      killAndReap(host);
    },
  );

e2e('a criu-ts in a time namespace of its own (as under ZDTM) restores the clocks from the host clocks, not its own', async (c) => {
  const t = startTarget([workload('counter')], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2, 10_000);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  // criu-ts's own CLOCK_MONOTONIC a day ahead: offsets are relative to the host's clocks.
  const r = spawnSync(
    'unshare',
    ['--time', '--monotonic', '86400', '--boottime', '86400', '--fork', CRIU_BIN, 'restore', '-D', img, '-d', '-v4', '-o', 'restore.log'],
    { encoding: 'utf8' },
  );
  adopt(t.pid);
  assert.equal(r.status, 0, r.stderr);
  const mono = /^monotonic\s+(-?\d+)\s+(\d+)$/m.exec(readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'));
  const off = Number(mono?.[1]) + Number(mono?.[2]) / 1e9;
  assert.ok(off < 0 && off > -30, `CLOCK_MONOTONIC goes on from the dump (offset ${off} s, not a day off)`);
  killAndReap(t.pid);
});
