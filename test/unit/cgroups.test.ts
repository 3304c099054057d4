/** cg_member_entry.cgns_prefix from the paths outside and inside a cgroup namespace, as CRIU computes it. */
import assert from 'node:assert/strict';
import test from 'node:test';
import { cgnsPrefixes, parseCgroupFile } from '../../src/resources/cgroups.ts';

const outside = parseCgroupFile('12:pids:/ns/sub\n11:cpu,cpuacct:/\n1:name=zdtmtst:/test\n0::/ns/a/b\n');

test('cgns_prefix: the part of each path above the namespace root', () => {
  const inside = parseCgroupFile('12:pids:/sub\n11:cpu,cpuacct:/\n1:name=zdtmtst:/\n0::/a/b\n');
  const got = cgnsPrefixes(outside, inside, 'task 1');
  const byName = new Map(got.map((c) => [c.name, c]));
  assert.equal(byName.get('pids')?.cgns_prefix, 3, '/ns of /ns/sub');
  assert.equal(byName.get('cpu,cpuacct')?.cgns_prefix, 0, 'rooted at the hierarchy root');
  assert.equal(byName.get('name=zdtmtst')?.cgns_prefix, 5, 'at the namespace root: the whole path');
  assert.equal(byName.get('')?.cgns_prefix, 3);
  for (const c of got) assert.equal(c.path.slice(0, c.cgns_prefix) + c.path.slice(c.cgns_prefix ?? 0), c.path);
});

test('cgns_prefix: a task outside its namespace root is refused, naming it', () => {
  const inside = parseCgroupFile('12:pids:/../other\n11:cpu,cpuacct:/\n1:name=zdtmtst:/\n0::/a/b\n');
  assert.throws(
    () => cgnsPrefixes(outside, inside, 'task 7'),
    /task 7: its cgroup pids:\/\.\.\/other inside its cgroup namespace is not below/,
  );
  // A suffix that is not a whole path component.
  const partial = parseCgroupFile('0::/b\n');
  assert.throws(() => cgnsPrefixes(parseCgroupFile('0::/ab\n'), partial, 'task 8'), /not below the namespace's root/);
});
