import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMountinfo } from '../../src/proc/index.ts';
import { FSTYPE, mountOrder, rootMount, toEntry, under } from '../../src/resources/ns/mnt-tree.ts';
import { MS } from '../../src/kernel/constants.ts';

const entry = (line: string) => toEntry(parseMountinfo(line)[0]);

test('a mountinfo line becomes the mnt_entry CRIU writes', () => {
  const e = entry('71 68 0:41 / /mnt\\040x ro,nosuid,relatime shared:3 master:7 - tmpfs tmpfs ro,sync,size=1024k,mode=755');
  assert.equal(e.fstype, FSTYPE.TMPFS);
  assert.equal(e.mountpoint, '/mnt x');
  assert.equal(e.root_dev, (0 << 20) | 41);
  assert.equal(e.flags, MS.RDONLY | MS.NOSUID | MS.RELATIME | MS.SHARED | MS.SLAVE);
  assert.equal(e.shared_id, 3);
  assert.equal(e.master_id, 7);
  assert.equal(e.sb_flags, MS.RDONLY | MS.SYNCHRONOUS);
  assert.equal(e.options, 'size=1024k,mode=755', 'superblock flags are not options');
  assert.equal(e.fsname, undefined);
});

test('without relatime or noatime the mount was strictatime; a disk file system keeps its name', () => {
  const e = entry('27 1 254:0 /srv / rw - ext4 /dev/vda rw,discard');
  assert.equal(e.flags, MS.STRICTATIME);
  assert.equal(e.fstype, FSTYPE.UNSUPPORTED);
  assert.equal(e.fsname, 'ext4');
  assert.equal(e.root_dev, (254 << 20) >>> 0);
});

test('mount order: parents first; a sibling below another sibling before it', () => {
  const m = (mnt_id: number, parent_mnt_id: number, mountpoint: string) => ({ mnt_id, parent_mnt_id, mountpoint });
  const tree = [m(10, 1, '/'), m(13, 10, '/a'), m(12, 10, '/a/b'), m(14, 13, '/a/c'), m(11, 10, '/proc'), m(15, 11, '/proc/sys')];
  assert.equal(rootMount(tree).mnt_id, 10);
  assert.deepEqual(
    mountOrder(tree).map((x) => x.mnt_id),
    [10, 11, 15, 12, 13, 14],
  );
  // Ids in the other order than the paths: /x/y (id 3) before /x (id 1), whatever /z (id 2) does.
  const t2 = [m(10, 99, '/'), m(3, 10, '/x/y'), m(2, 10, '/z'), m(1, 10, '/x')];
  assert.deepEqual(
    mountOrder(t2).map((x) => x.mnt_id),
    [10, 3, 1, 2],
  );
  assert.throws(() => rootMount([m(10, 1, '/'), m(11, 2, '/x')]), /2 roots/);
  // A bind of /sub of a file system (13, under /a) waits for its whole mount (14, at /b).
  const b = (mnt_id: number, parent_mnt_id: number, mountpoint: string, root: string, root_dev = 7) => ({
    ...m(mnt_id, parent_mnt_id, mountpoint),
    root,
    root_dev,
  });
  const t3 = [b(10, 1, '/', '/', 1), b(11, 10, '/a', '/', 2), b(13, 11, '/a/s', '/sub'), b(12, 10, '/a2', '/sub'), b(14, 10, '/b', '/')];
  assert.deepEqual(
    mountOrder(t3).map((x) => x.mnt_id),
    [10, 11, 14, 13, 12],
  );
});

test('under: a path relative to a directory', () => {
  assert.equal(under('/a', '/a/b/c'), 'b/c');
  assert.equal(under('/', '/x'), 'x');
  assert.equal(under('/a', '/a'), '');
  assert.equal(under('/a', '/ab'), undefined);
});
