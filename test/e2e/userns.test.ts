/**
 * A tree in a user namespace of its own, with a map that is not the identity (usernsbox: two
 * extents for uids and gids), together with PID, UTS and IPC namespaces it owns. The dump
 * keeps the maps (userns-N.img) and every id as the namespace sees it (CRIU's images); the
 * restore makes the namespace again, from whose inside the worker sees its ids, groups and
 * its file's owner as before. A map in the images that the kernel would refuse is refused
 * naming the image, before any process exists. On a tmpfs mounted inside the namespace, which
 * refuses inodes owned by ids it cannot map (criu-ts's 0), the --link-remap link of the dump
 * and the files criu-ts makes (withThreadFsIds, as ghost files are made) are made as their owner.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
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
  lastCounterLine as lastLine,
  kvField as field,
} from '../lib/proc.ts';
import { dump, restore, waitForCounter, restoreRoot } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages } from '../../src/images/index.ts';
import { withThreadFsIds } from '../../src/kernel/index.ts';

const MAP = '0 100000 65536\n100000 300000 1000\n';
const mapOf = (pid: number, f: string) =>
  readFileSync(`/proc/${pid}/${f}`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '))
    .join('\n');

async function startBox(
  c: { dir: string; subdir(n: string): string },
  mode?: 'chroot' | 'ping',
): Promise<{ launcher: number; init: number; log: string; dir: string }> {
  // Its uid 0 is the host's 100000, which must reach the directory.
  chmodSync(c.dir, 0o755);
  const dir = c.subdir('box');
  chmodSync(dir, 0o777);
  const log = join(c.dir, 'box.log');
  const t = startTarget([workload('usernsbox'), dir, '100', ...(mode ? [mode] : [])], { logFile: log });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the init of the box');
  await waitForCounter(log, 3, 10_000);
  for (const d of descendants(t.pid)) adopt(d);
  return { launcher: t.pid, init, log, dir };
}

function dumpBox(box: { launcher: number; init: number }, img: string): void {
  const kids = descendants(box.init);
  assertOk(dump(box.init, img));
  reap(box.launcher, 10_000);
  reap(box.init, 10_000);
  for (const k of kids) reap(k, 10_000);
}

/** Restore the box (-d) and wait for its worker to count on past `before`: the new root, its descendants, the worker's line. */
async function restoreBox(
  box: { log: string },
  img: string,
  before: string,
): Promise<{ host: number; kids: number[]; after: Record<string, string> }> {
  const marks = readLines(box.log).length;
  const host = restoreRoot(img, [], true);
  const kids = descendants(host);
  const after = await waitForCounter(box.log, Number(field(before, 'i')) + 2, 10_000, marks);
  return { host, kids, after };
}

e2e('a tree in a user namespace of its own comes back with its maps, credentials and file owners', async (c) => {
  const box = await startBox(c);
  const before = lastLine(box.log);
  assert.equal(field(before, 'uid'), '1000,1002,100005');
  assert.equal(field(before, 'gid'), '1001,1003,100006');
  assert.equal(field(before, 'groups'), '7,100008');
  assert.equal(field(before, 'owner'), '1000:1001');
  // Who owns a task's /proc files says whether it is dumpable (its effective uid, or root).
  const procOwners = (pids: number[]) => pids.map((p) => statSync(`/proc/${p}/cmdline`).uid);
  const ownersBefore = procOwners([box.init, ...descendants(box.init)]);
  const img = c.subdir('img');
  dumpBox(box, img);
  const usernsImg = readdirSync(img).find((n) => /^userns-\d+\.img$/.test(n));
  assert.ok(usernsImg, 'userns-N.img written');
  const [maps] = readMessages(join(img, usernsImg), 'userns_entry');
  assert.deepEqual(
    maps.uid_map.map((e) => `${e.first} ${e.lower_first} ${e.count}`),
    ['0 100000 65536', '100000 300000 1000'],
  );
  // The worker's credentials as it sees them (CRIU's images), not the host's 101000...
  const [core] = readMessages(join(img, 'core-2.img'), 'core_entry');
  const creds = core.thread_core?.creds;
  assert.deepEqual([creds?.uid, creds?.euid, creds?.suid, creds?.gid, creds?.egid, creds?.sgid], [1000, 1002, 100005, 1001, 1003, 100006]);
  assert.deepEqual(creds?.groups, [7, 100008]);
  // The tree's pid namespace pids are those inside: 1 and 2.
  const { host, kids, after } = await restoreBox(box, img, before);
  assert.equal(after.pid, '2');
  assert.equal(after.uid, '1000,1002,100005', 'real, effective and saved uids, seen from inside');
  assert.equal(after.gid, '1001,1003,100006');
  assert.equal(after.groups, '7,100008', 'supplementary groups, one of them in the second extent');
  assert.equal(after.owner, '1000:1001');
  assert.deepEqual(procOwners([host, ...kids]), ownersBefore, 'each task as dumpable as it was (its /proc files owned alike)');
  assert.equal(mapOf(host, 'uid_map'), MAP.trim());
  assert.equal(mapOf(host, 'gid_map'), MAP.trim());
  assert.notEqual(readlinkSync(`/proc/${host}/ns/user`), readlinkSync('/proc/self/ns/user'));
  // The other namespaces belong to the new user namespace: the root can act on them.
  assert.match(readFileSync(`/proc/${kids[0]}/status`, 'utf8'), /^Uid:\s+101000\s+101002\s+300005\s+101002$/m, "the worker's host uids");
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e('chrooted tasks in a user namespace come back chrooted, their unset loginuid left as it is', async (c) => {
  const box = await startBox(c, 'chroot');
  const before = lastLine(box.log);
  assert.equal(field(before, 'owner'), '1000:1001', 'the worker sees DIR/owned as /owned');
  const tasks = () => [box.init, ...descendants(box.init)];
  assert.deepEqual(
    tasks().map((p) => readlinkSync(`/proc/${p}/root`)),
    [box.dir, box.dir],
  );
  const loginuids = tasks().map((p) => readFileSync(`/proc/${p}/loginuid`, 'utf8'));
  const img = c.subdir('img');
  dumpBox(box, img);
  const { host, kids, after } = await restoreBox(box, img, before);
  assert.equal(after.owner, '1000:1001', 'the worker still sees /owned: its root is DIR');
  const again = [host, ...kids];
  assert.deepEqual(
    again.map((p) => readlinkSync(`/proc/${p}/root`)),
    [box.dir, box.dir],
  );
  assert.deepEqual(
    again.map((p) => readFileSync(`/proc/${p}/loginuid`, 'utf8')),
    loginuids,
  );
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e('restored by a criu-ts with a loginuid of its own, a tree in a user namespace keeps its unset loginuid', async (c) => {
  const box = await startBox(c);
  const tasks = (root: number) => [root, ...descendants(root)];
  const unset = tasks(box.init).map((p) => readFileSync(`/proc/${p}/loginuid`, 'utf8'));
  assert.deepEqual(unset, ['4294967295', '4294967295']);
  const img = c.subdir('img');
  dumpBox(box, img);
  // 100005 is 5 inside: the tasks would inherit it, and could not unset it from inside.
  const pidfile = join(img, 'root.pid');
  const r = spawnSync(
    'sh',
    ['-c', 'echo 100005 > /proc/self/loginuid && exec "$@"', 'sh', CRIU_BIN, 'restore', '-D', img, '-d', '--pidfile', pidfile],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const host = Number(readFileSync(pidfile, 'utf8'));
  adopt(host);
  const kids = descendants(host);
  for (const k of kids) adopt(k);
  assert.deepEqual(
    tasks(host).map((p) => readFileSync(`/proc/${p}/loginuid`, 'utf8')),
    unset,
  );
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e("a ping socket in a user namespace comes back, its ping_group_range kept in the namespace's gids", async (c) => {
  const box = await startBox(c, 'ping');
  const before = lastLine(box.log);
  assert.equal(field(before, 'ping'), '1000,1003,1', 'the worker holds a ping socket');
  const img = c.subdir('img');
  dumpBox(box, img);
  const netns = readdirSync(img).find((n) => /^netns-\d+\.img$/.test(n));
  assert.ok(netns, 'netns-N.img written');
  const [conf] = readMessages(join(img, netns), 'netns_entry');
  assert.equal(conf.ipv4_sysctl[0]?.sarg, '1000\t1003', "the range in the namespace's gids (CRIU's image)");
  const { host, kids, after } = await restoreBox(box, img, before);
  assert.equal(after.ping, '1000,1003,1', 'the same range seen from inside, and a ping socket still');
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e('a userns image whose extents overlap, or run past 2^32, is refused naming it, and nothing is left', async (c) => {
  const box = await startBox(c);
  const img = c.subdir('img');
  dumpBox(box, img);
  const name = readdirSync(img).find((n) => /^userns-\d+\.img$/.test(n))!;
  const json = execFileSync(CRIU_BIN, ['crit', 'decode', '-i', join(img, name)], { encoding: 'utf8' });
  const good = JSON.parse(json);
  for (const bad of [
    [
      { first: 0, lower_first: 100000, count: 65536 },
      { first: 1000, lower_first: 300000, count: 10 },
    ],
    [{ first: 0, lower_first: 4294967000, count: 65536 }],
    [],
  ]) {
    const edited = structuredClone(good);
    edited.entries[0].uid_map = bad;
    writeFileSync(join(c.dir, 'bad.json'), JSON.stringify(edited));
    execFileSync(CRIU_BIN, ['crit', 'encode', '-i', join(c.dir, 'bad.json'), '-o', join(img, name)]);
    const before = new Set(descendants(process.pid));
    const line = assertCleanError(restore(img, ['-d', '--skip-verify']));
    assert.match(line, new RegExp(`${name}: uid_map: `));
    assert.deepEqual(
      descendants(process.pid).filter((p) => !before.has(p)),
      [],
      'no process made',
    );
  }
});

e2e('a user namespace whose setgroups is denied is refused at dump, and runs on', async (c) => {
  const t = startTarget(['unshare', '--user', '--map-root-user', '--fork', 'sleep', '1000']);
  const pid = await waitFor(() => descendants(t.pid)[0], 5000, 'the process in the user namespace');
  for (const d of descendants(t.pid)) adopt(d);
  // unshare(1) writes setgroups and the maps once its child exists: wait for them.
  await waitFor(
    () => readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim() === 'deny' && readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim() !== '',
    5000,
    'setgroups deny and the maps',
  );
  const img = c.subdir('img');
  assert.match(assertCleanError(dump(pid, img)), /namespaces: user: its \/proc\/PID\/setgroups is "deny"/);
  assert.deepEqual(
    readdirSync(img).filter((n) => n.endsWith('.img')),
    [],
  );
  assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) S /, 'it runs on');
  killAndReap(t.pid);
  reap(pid, 10_000);
});

e2e('on a tmpfs mounted in the user namespace, the --link-remap link and the files criu-ts makes are made as their owner', async (c) => {
  chmodSync(c.dir, 0o755);
  const dir = c.subdir('box');
  chmodSync(dir, 0o777);
  const log = join(c.dir, 'box.log');
  // Written to by the box again from its own mount namespace, as its root (the host's 100000).
  writeFileSync(log, '', { mode: 0o666 });
  chmodSync(log, 0o666);
  const argv = [workload('usernsbox'), dir, '100', 'ghost'];
  // The host's stacked /dev/shm (a tmpfs covering a tmpfs) is locked in a copy owned by the user
  // namespace: taken off in a private namespace first, so that nothing there is covered.
  const sh = `umount /dev/shm 2>/dev/null; exec "$@"`;
  const t = startTarget(['unshare', '-m', '--propagation', 'private', 'sh', '-c', sh, 'sh', ...argv], { logFile: log, execs: argv });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the init of the box');
  const before = await waitForCounter(log, 3, 10_000);
  for (const d of descendants(t.pid)) adopt(d);
  assert.equal(before.ghost, 'ghostdata');
  assert.equal(before.linked, 'linkdata');
  const img = c.subdir('img');
  assertOk(dump(init, img, ['-R', '--link-remap']));
  const tmpfs = `/proc/${init}/root${dir}`;
  const links = readdirSync(tmpfs).filter((n) => /^link_remap\.\d+$/.test(n));
  assert.equal(links.length, 1, 'the link of the deleted name, made in the tmpfs');
  assert.equal(statSync(join(tmpfs, links[0])).uid, 100000, "owned by the file's owner, the namespace's root");
  const after = await waitForCounter(log, Number(before.i) + 2, 10_000, readLines(log).length);
  assert.equal(after.ghost, 'ghostdata', 'the tree runs on');
  // criu-ts's own ids are not the file system's: refused by the kernel, made as the owner.
  assert.throws(() => writeFileSync(join(tmpfs, 'mine'), 'x'), { code: 'EOVERFLOW' });
  withThreadFsIds(100000, 100000, () => writeFileSync(join(tmpfs, 'mine'), 'x', { mode: 0o600 }));
  const st = statSync(join(tmpfs, 'mine'));
  assert.deepEqual([st.uid, st.gid], [100000, 100000]);
  assert.equal(existsSync(join(tmpfs, 'mine')), true);
  // criu-ts's thread is back to its own ids.
  assert.match(readFileSync('/proc/thread-self/status', 'utf8'), /^Uid:\s+0\s+0\s+0\s+0$/m);
  killAndReap(t.pid);
});
