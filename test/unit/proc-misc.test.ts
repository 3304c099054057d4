import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseAuxv,
  auxvGet,
  readAuxv,
  AT_PAGESZ,
  AT_SYSINFO_EHDR,
  AT_ENTRY,
  AT_NULL,
  parseLimits,
  readLimits,
  RLIM_INFINITY,
  RLIMIT_NAMES,
  parseMountinfo,
  readMountinfo,
  unescapeOctal,
  parseTimers,
  readTimers,
  SIGEV_SIGNAL,
  SIGEV_THREAD_ID,
  SIGEV_THREAD,
  SIGEV_NONE,
  parseChildren,
  listChildren,
  readComm,
  parseMaps,
  ProcParseError,
} from '../../src/proc/index.ts';

const sampleBuf = (name: string) => readFileSync(new URL(`./samples/proc/${name}`, import.meta.url));
const sample = (name: string) => sampleBuf(name).toString('utf8');

test('auxv: real sample up to and including AT_NULL', () => {
  const w = parseAuxv(sampleBuf('cworkload.auxv'));
  assert.equal(w.length, 46);
  assert.equal(w[w.length - 2], 0n);
  assert.equal(w[w.length - 1], 0n);
  assert.equal(auxvGet(w, AT_PAGESZ), 4096n);
  assert.equal(auxvGet(w, AT_SYSINFO_EHDR), 0x7fa58ba11000n); // the [vdso] start in cworkload.maps
  assert.equal(auxvGet(w, AT_ENTRY), 0x55e9d6dc2210n);
  assert.equal(auxvGet(w, 999), undefined);
  const vdso = parseMaps(sample('cworkload.maps')).find((v) => v.path === '[vdso]')!;
  assert.equal(auxvGet(w, AT_SYSINFO_EHDR), vdso.start);
  assert.equal(parseAuxv(sampleBuf('bash.auxv')).length % 2, 0);
});

test('auxv: stops at AT_NULL, rejects partial pairs', () => {
  const b = Buffer.alloc(48);
  b.writeBigUInt64LE(6n, 0);
  b.writeBigUInt64LE(4096n, 8);
  b.writeBigUInt64LE(BigInt(AT_NULL), 16);
  b.writeBigUInt64LE(0n, 24);
  b.writeBigUInt64LE(9n, 32);
  b.writeBigUInt64LE(1n, 40); // junk after AT_NULL
  assert.deepEqual(parseAuxv(b), [6n, 4096n, 0n, 0n]);
  assert.equal(auxvGet(parseAuxv(b), 9), undefined);
  assert.throws(() => parseAuxv(Buffer.alloc(12)), ProcParseError);
  assert.deepEqual(parseAuxv(Buffer.alloc(0)), []);
});

test('limits: RLIMIT order, unlimited = 2^64-1', () => {
  const l = parseLimits(sample('cworkload.limits'));
  assert.equal(l.length, 16);
  assert.deepEqual(
    l.map((x) => x.name),
    RLIMIT_NAMES,
  );
  assert.deepEqual(l[0], { name: 'Max cpu time', soft: RLIM_INFINITY, hard: RLIM_INFINITY, units: 'seconds' });
  assert.equal(RLIM_INFINITY, 18446744073709551615n);
  assert.equal(l[3].soft, 8388608n); // RLIMIT_STACK
  assert.equal(l[3].hard, RLIM_INFINITY);
  assert.equal(l[4].soft, 0n); // RLIMIT_CORE
  assert.equal(l[7].soft, 20000n); // RLIMIT_NOFILE
  assert.deepEqual(l[13], { name: 'Max nice priority', soft: 0n, hard: 0n, units: '' });
  assert.equal(l[15].units, 'us');
  assert.equal(parseLimits(sample('python3.limits')).length, 16);
  assert.throws(() => parseLimits('Limit  Soft Limit  Hard Limit  Units\nMax cpu time  x  y  seconds\n'), ProcParseError);
  assert.throws(() => parseLimits('Max file size  1  2  bytes\n'), ProcParseError); // RLIMIT_CPU missing
});

test('mountinfo: real sample and escapes', () => {
  const m = parseMountinfo(sample('cworkload.mountinfo'));
  assert.ok(m.length >= 5);
  const proc = m.find((x) => x.mountPoint === '/proc')!;
  assert.deepEqual(proc, {
    mntId: 21,
    parentId: 26,
    major: 0,
    minor: 20,
    root: '/',
    rootDeleted: false,
    mountPoint: '/proc',
    options: 'rw,relatime',
    optionalFields: [],
    fstype: 'proc',
    source: 'proc',
    superOptions: 'rw',
  });
  const [e] = parseMountinfo('36 35 98:0 /mnt1\\040x /mnt\\134a\\011b rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n');
  assert.equal(e.root, '/mnt1 x');
  assert.equal(e.mountPoint, '/mnt\\a\tb');
  assert.deepEqual(e.optionalFields, ['master:1', 'shared:7']);
  assert.equal(e.fstype, 'ext3');
  assert.equal(e.superOptions, 'rw,errors=continue');
  const [d] = parseMountinfo('40 1 0:5 /memfd:x\\040(deleted) /m rw - fuse.sshfs  rw\n');
  assert.equal(d.root, '/memfd:x');
  assert.equal(d.rootDeleted, true);
  assert.equal(d.source, '');
  assert.equal(d.fstype, 'fuse.sshfs');
  // A bind of a removed directory: dentry_path's mark.
  const [r] = parseMountinfo('41 1 0:6 /test-src//deleted /m rw - tmpfs none rw\n');
  assert.equal(r.root, '/test-src');
  assert.equal(r.rootDeleted, true);
  assert.equal(unescapeOctal('a\\012b'), 'a\nb');
  assert.throws(() => parseMountinfo('1 2 3\n'), ProcParseError);
});

test('timers: real sample (SIGEV_SIGNAL with sigval, SIGEV_THREAD_ID)', () => {
  const t = parseTimers(sample('cworkload.timers'));
  assert.deepEqual(t, [
    { id: 1, signo: 35, sigval: 0n, notify: 'signal', toThread: true, notifyPid: 4078, sigevNotify: SIGEV_THREAD_ID, clockId: 0 },
    { id: 0, signo: 12, sigval: 0xdeadbeefn, notify: 'signal', toThread: false, notifyPid: 4078, sigevNotify: SIGEV_SIGNAL, clockId: 1 },
  ]);
  const h = parseTimers(
    'ID: 3\nsignal: 14/(null)\nnotify: thread/pid.9\nClockID: -6\nID: 4\nsignal: 0/0000000000000000\nnotify: none/pid.9\nClockID: 7\n',
  );
  assert.equal(h[0].sigval, 0n);
  assert.equal(h[0].sigevNotify, SIGEV_THREAD);
  assert.equal(h[0].clockId, -6);
  assert.equal(h[1].sigevNotify, SIGEV_NONE);
  assert.deepEqual(parseTimers(''), []);
  assert.throws(() => parseTimers('ID: 1\nsignal: 14/0\n'), ProcParseError);
  assert.throws(() => parseTimers('signal: 14/0\n'), ProcParseError);
});

test('children: sample and parser', () => {
  assert.deepEqual(parseChildren(sample('bash.children')), [4344]);
  assert.deepEqual(parseChildren(''), []);
  assert.deepEqual(parseChildren('1 22 333 '), [1, 22, 333]);
});

test('readers: auxv, limits, mountinfo, timers, comm, children of this process', () => {
  const pid = process.pid;
  assert.equal(auxvGet(readAuxv(pid), AT_PAGESZ), 4096n);
  assert.equal(readLimits(pid).length, 16);
  assert.ok(readMountinfo(pid).some((m) => m.mountPoint === '/'));
  assert.ok(Array.isArray(readTimers(pid)));
  assert.ok(readComm(pid).length > 0);
  assert.ok(Array.isArray(listChildren(pid, pid)));
});
