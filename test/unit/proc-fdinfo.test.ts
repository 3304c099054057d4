import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, openSync, closeSync } from 'node:fs';
import { parseFdinfo, readFdinfo, listFds, readLink, ProcParseError } from '../../src/proc/index.ts';

const sample = (name: string) => readFileSync(new URL(`./samples/proc/${name}`, import.meta.url), 'utf8');

test('fdinfo: regular file (pos, octal flags, mnt_id, ino)', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.8'));
  assert.equal(f.pos, 123n);
  assert.equal(f.flags, 0o100002); // O_LARGEFILE|O_RDWR
  assert.equal(f.mntId, 26);
  assert.equal(f.ino, 2146670);
  assert.deepEqual(f.tfds, []);
  assert.equal(f.fields.get('flags'), '0100002');
  const pipe = parseFdinfo(sample('cworkload.fdinfo.251'));
  assert.equal(pipe.flags, 0o1);
  assert.equal(pipe.ino, 7981);
});

test('fdinfo: eventfd', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.3'));
  assert.equal(f.eventfdCount, 42n);
  assert.equal(f.eventfdId, 1);
  assert.equal(f.eventfdSemaphore, false);
  assert.equal(f.flags, 0o4002); // O_NONBLOCK|O_RDWR
  assert.equal(f.fields.get('eventfd-count'), '2a');
});

test('fdinfo: eventpoll tfds', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.4'));
  assert.deepEqual(f.tfds, [
    { tfd: 3, events: 0x80000019, data: 0x1122334455667788n, pos: 0n, ino: 0x40f, sdev: 0x10 },
    { tfd: 5, events: 0x19, data: 0x1122334400000005n, pos: 0n, ino: 0x40f, sdev: 0x10 },
  ]);
  // Old kernels print only tfd/events/data.
  const old = parseFdinfo('pos:\t0\nflags:\t02\ntfd:        7 events:       1 data:                0\n');
  assert.deepEqual(old.tfds, [{ tfd: 7, events: 1, data: 0n }]);
  assert.equal(old.mntId, -1);
});

test('fdinfo: timerfd', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.5'));
  assert.deepEqual(f.timerfd, {
    clockid: 1,
    ticks: 0n,
    settimeFlags: 0,
    itValue: { sec: 97n, nsec: 162526908n },
    itInterval: { sec: 1n, nsec: 0n },
  });
  const abs = parseFdinfo(
    'pos:\t0\nflags:\t02\nmnt_id:\t17\nclockid: 0\nticks: 5\nsettime flags: 03\nit_value: (0, 0)\nit_interval: (0, 0)\n',
  );
  assert.equal(abs.timerfd!.settimeFlags, 3);
  assert.equal(abs.timerfd!.ticks, 5n);
});

test('fdinfo: signalfd', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.6'));
  assert.equal(f.sigmask, (1n << 9n) | (1n << 14n));
  assert.equal(f.flags, 0o2000002); // O_CLOEXEC|O_RDWR
});

test('fdinfo: inotify', () => {
  const f = parseFdinfo(sample('cworkload.fdinfo.7'));
  assert.equal(f.inotify.length, 1);
  const w = f.inotify[0];
  assert.equal(w.wd, 1);
  assert.equal(w.ino, 0x3f7e8n);
  assert.equal(w.sdev, 0xfe00000);
  assert.equal(w.mask, 0x300); // IN_CREATE|IN_DELETE
  assert.equal(w.ignoredMask, 0);
  assert.equal(w.fhandle.bytes, 8);
  assert.equal(w.fhandle.type, 1);
  assert.equal(w.fhandle.handle.toString('hex'), 'e8f7030000000000');
});

test('fdinfo: fanotify, locks, pidfd (hand-made in the kernel formats)', () => {
  const f = parseFdinfo(
    [
      'pos:\t0',
      'flags:\t02',
      'mnt_id:\t15',
      'ino:\t1039',
      'fanotify flags:10 event-flags:8002',
      'fanotify ino:3f7e8 sdev:fe00000 mflags:0 mask:3b ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7030000000000',
      'fanotify mnt_id:1a mflags:0 mask:1 ignored_mask:40000000',
      'fanotify sdev:800001 mflags:0 mask:8 ignored_mask:0',
      'lock:\t1: POSIX  ADVISORY  WRITE 4078 fe:00:2146670 0 EOF',
      'lock:\t',
    ].join('\n') + '\n',
  );
  assert.deepEqual(f.fanotify, { flags: 0x10, eventFlags: 0x8002 });
  assert.equal(f.fanotifyMarks.length, 3);
  const [ino, mnt, sb] = f.fanotifyMarks;
  assert.equal(ino.kind, 'inode');
  if (ino.kind === 'inode') {
    assert.equal(ino.ino, 0x3f7e8n);
    assert.equal(ino.mask, 0x3b);
    assert.equal(ino.fhandle.handle.length, 8);
  }
  assert.deepEqual(mnt, { kind: 'mount', mntId: 0x1a, mflags: 0, mask: 1, ignoredMask: 0x40000000 });
  assert.deepEqual(sb, { kind: 'sb', sdev: 0x800001, mflags: 0, mask: 8, ignoredMask: 0 });
  assert.deepEqual(f.locks, ['1: POSIX  ADVISORY  WRITE 4078 fe:00:2146670 0 EOF']);

  const p = parseFdinfo('pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1042\nPid:\t4078\nNSpid:\t4078\t1\n');
  assert.equal(p.pidfdPid, 4078);
  assert.deepEqual(p.pidfdNsPid, [4078, 1]);

  assert.throws(() => parseFdinfo('flags:\t02\n'), ProcParseError);
  assert.throws(() => parseFdinfo('pos:\t0\nflags:\t09\n'), ProcParseError);
  assert.throws(() => parseFdinfo('pos:\t0\ntfd: x\n'), ProcParseError);
});

test('readers: fds of this process', () => {
  const fd = openSync('/proc/self/status', 'r');
  try {
    assert.ok(listFds(process.pid).includes(fd));
    assert.equal(readLink(process.pid, `fd/${fd}`), `/proc/${process.pid}/status`);
    const info = readFdinfo(process.pid, fd);
    assert.equal(info.pos, 0n);
    assert.ok(info.mntId > 0);
    assert.equal(info.flags & 3, 0); // O_RDONLY
  } finally {
    closeSync(fd);
  }
});
