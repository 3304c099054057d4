import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flagNames, PROC_FILES, NEUTRAL_STATUS } from '../../src/dump/claims-facts.ts';
import { sigactClaims } from '../../src/resources/sigact.ts';
import { schedClaims } from '../../src/resources/task/index.ts';
import { mmClaims } from '../../src/resources/mm/index.ts';
import { madvBits } from '../../src/proc/index.ts';
import { O } from '../../src/kernel/index.ts';
import type { Check } from '../../src/resources/claims.ts';

const at = { pid: 1, tid: 1 };

test('flagNames names the status flags, leaves out O_LARGEFILE and shows the rest in octal', () => {
  assert.equal(flagNames(0), '');
  assert.equal(flagNames(O.LARGEFILE), '');
  assert.equal(flagNames(O.APPEND | O.NONBLOCK), 'O_APPEND|O_NONBLOCK');
  assert.equal(flagNames(O.DIRECT | 0o20000), 'O_ASYNC|O_DIRECT');
  assert.equal(flagNames(0o4010000), 'O_SYNC');
  assert.equal(flagNames(0o10000), 'O_DSYNC');
  assert.equal(flagNames(0o40), '040');
  assert.equal(flagNames(0o200), 'O_EXCL (PIDFD_THREAD on a pidfd)');
});

test('sigact claims SigIgn unless SIGTRAP is ignored', () => {
  const check = sigactClaims.status!.SigIgn as Check;
  assert.equal(check('0000000000001000', at), undefined);
  assert.match(check('0000000000000010', at)!, /SIGTRAP is ignored/);
});

test('sched claims every policy but SCHED_DEADLINE', () => {
  const check = schedClaims.stat!.policy as Check;
  for (const p of [0, 1, 2, 3, 5]) assert.equal(check(String(p), at), undefined, `policy ${p}`);
  assert.match(check('6', at)!, /SCHED_DEADLINE/);
});

test('mm claims every VmFlags token whose madvise advice it restores', () => {
  for (const tok of ['sr', 'rr', 'dc', 'dd', 'mg', 'hg', 'nh', 'wf']) {
    assert.notEqual(madvBits([tok]), 0n, tok);
    assert.ok(mmClaims.vmFlags!.includes(tok), tok);
  }
  for (const tok of ['lo', 'ht']) assert.ok(mmClaims.vmFlags!.includes(tok), `${tok} is restored (mlock, hugetlb)`);
  assert.ok(mmClaims.vmFlags!.includes('uw'), "uw: criu-ts's own memory tracking (a task's own userfaultfd is an fd, refused)");
  for (const tok of ['lf', 'um', 'sl', 'mt', 'de', 'io', 'pf']) assert.ok(!mmClaims.vmFlags!.includes(tok), tok);
});

test('ksm_stat counts only its merge-any switch; identity lines of status are neutral', () => {
  const ksm = PROC_FILES.find(([n]) => n === 'ksm_stat')![1];
  assert.equal(ksm('ksm_rmap_items 12\nksm_merge_any: yes\nksm_mergeable: no\n'), 'yes');
  assert.equal(ksm(undefined), '');
  for (const k of ['Pid', 'Tgid', 'State', 'Threads', 'SigQ']) assert.ok(NEUTRAL_STATUS.has(k), k);
  for (const k of ['Seccomp', 'Cpus_allowed', 'NoNewPrivs', 'SigPnd']) assert.ok(!NEUTRAL_STATUS.has(k), k);
});

test('autogroup: only a nice value other than 0 counts, a task outside the root CPU group (none shown) included', () => {
  const [, filter, restored] = PROC_FILES.find(([n]) => n === 'autogroup')!;
  assert.equal(restored, '0', 'a restored session has a new autogroup, nice 0, whatever criu-ts has');
  assert.equal(filter('/autogroup-80298 nice 0'), restored);
  assert.equal(filter(''), restored, 'nothing shown');
  assert.equal(filter(undefined), restored, 'no such file');
  assert.equal(filter('/autogroup-7 nice -5'), '-5');
});
