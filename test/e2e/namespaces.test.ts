/**
 * Trees in namespaces of their own, made by util-linux's unshare: a PID namespace whose init
 * (pid 1) has a child, with its own UTS, IPC and network namespaces, is dumped and restored
 * into new ones: the pids inside, host and domain name, SysV objects, the loopback's state
 * and addresses are checked from inside.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, readLines, adopt, reap, killAndReap, waitFor, descendants, assertCleanError, assertOk } from '../lib/proc.ts';
import { dump, restore, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const UNSHARE = ['unshare', '--pid', '--fork', '--uts', '--ipc', '--net'];

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

const lastLine = (log: string) =>
  readLines(log)
    .filter((l) => l.startsWith('i='))
    .at(-1) ?? '';
const field = (line: string, k: string) => new RegExp(`\\b${k}=(\\S*)`).exec(line)?.[1];

e2e('a PID namespace with its UTS, IPC and network namespaces comes back with the same pids inside', async (c) => {
  const log = join(c.dir, 'box.log');
  const { unshare, init } = await startBox(log);
  inNet(init, ['ip', 'link', 'set', 'lo', 'up']);
  inNet(init, ['ip', 'addr', 'add', '10.7.7.7/32', 'dev', 'lo']);
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
  assert.notEqual(host, 1);
  const status = readFileSync(`/proc/${host}/status`, 'utf8');
  assert.match(status, /^NSpid:\s+\d+\s+1$/m);
  for (const ns of ['pid', 'uts', 'ipc', 'net'])
    assert.notEqual(readlinkSync(`/proc/${host}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), `a ${ns} namespace of its own`);
  assert.equal(inNet(host, [sysv, 'show'], '-i'), objects, 'SysV objects with their ids, owners, modes and contents');
  const lo = inNet(host, ['ip', '-o', 'addr', 'show', 'dev', 'lo']);
  assert.match(lo, /10\.7\.7\.7\/32/, 'the address added to lo');
  assert.match(inNet(host, ['ip', '-o', 'link', 'show', 'dev', 'lo']), /[<,]UP[,>]/, 'lo is up');
  const kids = descendants(host);
  for (const k of kids) adopt(k);
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
