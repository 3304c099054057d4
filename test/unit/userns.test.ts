// The id translation of a tree in a user namespace of its own, and the checks of its maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdMaps } from '../../src/resources/ns/index.ts';
import { badExtents } from '../../src/resources/ns/user.ts';

const MAP = [
  { first: 0, lower_first: 100000, count: 65536 },
  { first: 100000, lower_first: 300000, count: 1000 },
];
const maps = new IdMaps({ uid_map: MAP, gid_map: MAP });

test('ids of nested messages are translated both ways, credentials only into the namespace', () => {
  const creds = { uid: 101000, euid: 300005, gid: 100000, groups: [100007, 300008] };
  assert.deepEqual(maps.toNs('creds_entry', creds), { uid: 1000, euid: 100005, gid: 0, groups: [7, 100008] });
  assert.equal(creds.uid, 101000, 'the entry given is left as it was');
  const sk = { id: 1, file_perms: { mode: 0o755, uid: 101000, gid: 300001 } };
  const inNs = maps.toNs('unix_sk_entry', sk);
  assert.deepEqual(inNs.file_perms, { mode: 0o755, uid: 1000, gid: 100001 });
  assert.deepEqual(maps.toHost('unix_sk_entry', inNs, 'x.img').file_perms, sk.file_perms);
  assert.deepEqual(maps.toHost('creds_entry', { uid: 5 }, 'x.img'), { uid: 5 }, 'credentials are set from inside');
  const mnt = maps.toNs('mnt_entry', { options: 'mode=755,uid=100000,gid=300002,nr_inodes=7' });
  assert.equal(mnt.options, 'mode=755,uid=0,gid=100002,nr_inodes=7', "a mount's uid= and gid= options");
  assert.equal(maps.toHost('mnt_entry', mnt, 'x.img').options, mnt.options, 'the root mounts from inside');
  assert.equal(maps.toNs('task_core_entry', { loginuid: 0xffffffff }).loginuid, 0xffffffff, 'an unset loginuid stays unset');
  assert.equal(maps.toHost('task_core_entry', { loginuid: 3 }, 'x.img').loginuid, 3, 'the task writes its loginuid');
});

test("a network namespace's ping_group_range is kept in the namespace's gids, as CRIU keeps it", () => {
  const netns = { ipv4_sysctl: [{ type: 5, sarg: '100000\t300999' }], unix_conf: [{ type: 6, iarg: 10 }] };
  const inNs = maps.toNs('netns_entry', netns);
  assert.equal(inNs.ipv4_sysctl[0].sarg, '0\t100999');
  assert.equal(maps.toHost('netns_entry', inNs, 'netns-2.img').ipv4_sysctl[0].sarg, '100000\t300999', 'criu-ts writes it from outside');
  const none = { ipv4_sysctl: [{ type: 5, sarg: '1\t0' }] };
  assert.deepEqual(maps.toNs('netns_entry', none), none, 'the default (no gid at all) stays as it is');
  assert.throws(
    () => maps.toNs('netns_entry', { ipv4_sysctl: [{ type: 5, sarg: '0 2147483647' }] }),
    /ipv4_sysctl\[0\]: gid 0 is not mapped/,
  );
});

test('an id the namespace cannot see is refused naming the field', () => {
  assert.throws(() => maps.toNs('ghost_file_entry', { uid: 0, gid: 100000 }), /ghost_file_entry\.uid: uid 0 is not mapped/);
  assert.throws(
    () => maps.toHost('ipc_desc_entry', { uid: 70000 }, 'ipcns-shm-3.img'),
    /ipcns-shm-3\.img: ipc_desc_entry\.uid: uid 70000 is outside/,
  );
});

test('maps the kernel would refuse are named', () => {
  assert.equal(badExtents(MAP), undefined);
  assert.match(badExtents([])!, /no extent/);
  assert.match(badExtents([MAP[0], { first: 10, lower_first: 500000, count: 1 }])!, /overlap inside/);
  assert.match(badExtents([MAP[0], { first: 70000, lower_first: 100010, count: 1 }])!, /overlap outside/);
  assert.match(badExtents([{ first: 0, lower_first: 4294967295, count: 2 }])!, /past 2\^32/);
  assert.match(badExtents([{ first: 0, lower_first: 0, count: 0 }])!, /count 0/);
});
