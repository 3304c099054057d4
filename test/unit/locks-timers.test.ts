import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLockLine, checkLockOwner, procLocksKey, FL } from '../../src/resources/files/locks.ts';
import { checkPosixTimer } from '../../src/resources/posix-timers.ts';
import { parseTimers } from '../../src/proc/index.ts';

test('lock lines of fdinfo: kind, type, range, owner; leases being broken, waiters and mandatory locks are not saved', () => {
  const w = parseLockLine('1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 9');
  assert.ok(typeof w !== 'string');
  assert.deepEqual([w.flag, w.type, w.start, w.len, w.pid], [FL.POSIX, 1, 0n, 10n, 1234]);
  const r = parseLockLine('2: OFDLCK ADVISORY  READ -1 fe:00:5678 100 EOF');
  assert.ok(typeof r !== 'string');
  assert.deepEqual([r.flag, r.type, r.start, r.len, r.pid], [FL.OFD, 0, 100n, 0n, -1]);
  assert.equal(r.key, procLocksKey('7: OFDLCK ADVISORY  READ -1 fe:00:5678 100 EOF'), 'the same lock in /proc/locks');
  const l = parseLockLine('1: LEASE  ACTIVE    WRITE 1 fe:00:1 0 EOF');
  assert.ok(typeof l !== 'string');
  assert.deepEqual([l.flag, l.type, l.start, l.len], [FL.LEASE, 1, 0n, 0n]);
  assert.match(String(parseLockLine('1: LEASE  BREAKING  READ 1 fe:00:1 0 EOF')), /^it holds a lease being broken/);
  assert.match(String(parseLockLine('1: -> FLOCK  ADVISORY  WRITE 1 fe:00:1 0 EOF')), /^it waits/);
  assert.match(String(parseLockLine('1: FLOCK  MSNFS  WRITE 1 fe:00:1 0 EOF')), /msnfs lock/);
  const f = parseLockLine('1: FLOCK  ADVISORY  WRITE 99 fe:00:1 0 EOF');
  assert.ok(typeof f !== 'string');
  assert.equal(checkLockOwner(f, new Set([99])), undefined);
  assert.match(checkLockOwner(f, new Set([5]))!, /taken by 99, outside the tree/);
});

test('POSIX timers: CPU clocks of the task are kept, those of others and unknown clocks refused', () => {
  const [own, other, thread, odd] = parseTimers(
    [
      'ID: 0',
      'signal: 14/0000000000000000',
      'notify: signal/pid.10',
      'ClockID: -6',
      'ID: 1',
      'signal: 14/0000000000000000',
      'notify: signal/pid.10',
      'ClockID: ' + String((~77 << 3) | 2),
      'ID: 2',
      'signal: 34/00000000000000ff',
      'notify: signal/tid.12',
      'ClockID: 1',
      'ID: 3',
      'signal: 14/0000000000000000',
      'notify: signal/pid.10',
      'ClockID: 5',
    ].join('\n'),
  ).sort((a, b) => a.id - b.id);
  const at = { pid: 10, tid: 10 };
  assert.equal(checkPosixTimer(own, at, new Set([10, 12])), undefined);
  assert.match(checkPosixTimer(other, at, new Set([10, 12]))!, /CPU clock of 77, outside the tree/);
  assert.equal(checkPosixTimer(thread, at, new Set([10, 12])), undefined);
  assert.match(checkPosixTimer(thread, at, new Set([10]))!, /signals thread 12/);
  assert.match(checkPosixTimer(odd, at, new Set([10]))!, /clock 5/);
});
