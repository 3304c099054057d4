import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseMaps,
  parseSmaps,
  parseMapsLine,
  madvBits,
  vmFlagsInfo,
  isVmaRangeLine,
  isVvar,
  isVdso,
  isVsyscall,
  PROT_READ,
  PROT_WRITE,
  PROT_EXEC,
  MAP_GROWSDOWN,
  MAP_LOCKED,
  MAP_NORESERVE,
  ProcParseError,
} from '../../src/proc/index.ts';

const sample = (name: string) => readFileSync(new URL(`./samples/proc/${name}`, import.meta.url), 'utf8');

test('maps: real C workload (file with spaces, deleted, shared anon, vvar_vclock, vsyscall)', () => {
  const v = parseMaps(sample('cworkload.maps'));
  assert.equal(v.length, 32);
  const exe = v[0];
  assert.equal(exe.start, 0x55e9d6dc1000n);
  assert.equal(exe.end, 0x55e9d6dc2000n);
  assert.equal(exe.prot, PROT_READ);
  assert.equal(exe.shared, false);
  assert.equal(exe.pgoff, 0n);
  assert.deepEqual(exe.dev, { major: 0xfe, minor: 0 });
  assert.equal(exe.inode, 2146674);
  assert.equal(exe.path, '/tmp/cap/w');
  assert.equal(exe.deleted, false);
  assert.equal(v[1].prot, PROT_READ | PROT_EXEC);
  assert.equal(v[1].pgoff, 0x1000n);

  const byPath = (p: string) => v.filter((x) => x.path === p);
  const spaced = byPath('/tmp/cap/my file (x).dat');
  assert.equal(spaced.length, 1);
  assert.equal(spaced[0].shared, true);
  assert.equal(spaced[0].prot, PROT_READ | PROT_WRITE);
  assert.equal(spaced[0].deleted, false);

  const gone = byPath('/tmp/cap/gone.dat');
  assert.equal(gone.length, 1);
  assert.equal(gone[0].deleted, true);

  const shmem = byPath('/dev/zero');
  assert.equal(shmem.length, 1);
  assert.equal(shmem[0].deleted, true);
  assert.equal(shmem[0].shared, true);
  assert.deepEqual(shmem[0].dev, { major: 0, minor: 1 });
  assert.equal(shmem[0].inode, 1025);

  for (const p of ['[heap]', '[stack]', '[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]']) assert.equal(byPath(p).length, 1, p);
  const vs = byPath('[vsyscall]')[0];
  assert.equal(vs.start, 0xffffffffff600000n);
  assert.equal(vs.end, 0xffffffffff601000n);
  assert.equal(vs.prot, PROT_EXEC);
  assert.ok(isVsyscall(vs));
  assert.ok(isVvar(byPath('[vvar_vclock]')[0]));
  assert.ok(isVdso(byPath('[vdso]')[0]));

  const anon = v.filter((x) => x.path === '');
  assert.ok(anon.length >= 6);
  for (const a of anon) {
    assert.equal(a.inode, 0);
    assert.equal(a.deleted, false);
  }
  // Sorted and non-overlapping.
  for (let i = 1; i < v.length; i++) assert.ok(v[i - 1].end <= v[i].start);
});

test('maps and smaps agree on python3 and bash', () => {
  for (const name of ['python3', 'bash', 'cworkload']) {
    const m = parseMaps(sample(`${name}.maps`));
    const s = parseSmaps(sample(`${name}.smaps`));
    assert.equal(s.length, m.length, name);
    for (let i = 0; i < m.length; i++) {
      const { vmFlags, size, rss, anonymous, swap, locked, kernelPageSize, protectionKey, ...hdr } = s[i];
      assert.equal(protectionKey, undefined, 'no ProtectionKey line without pkeys');
      assert.deepEqual(hdr, m[i], `${name} vma ${i}`);
      assert.ok(vmFlags instanceof Set);
      assert.equal(BigInt(size!) * 1024n, s[i].end - s[i].start);
      assert.equal(typeof rss, 'number');
      assert.equal(typeof anonymous, 'number');
      assert.equal(typeof swap, 'number');
      assert.equal(typeof locked, 'number');
      assert.equal(kernelPageSize, 4);
    }
  }
});

test('smaps: VmFlags and madv of the real workload', () => {
  const s = parseSmaps(sample('cworkload.smaps'));
  const at = (start: bigint) => s.find((v) => v.start === start)!;
  // madvise(DONTDUMP, DONTFORK, WIPEONFORK, RANDOM) + mlock of the first page (split VMA)
  const locked = at(0x7fa58af1a000n);
  assert.deepEqual([...locked.vmFlags!], ['rd', 'wr', 'mr', 'mw', 'me', 'lo', 'rr', 'dc', 'ac', 'wf', 'dd']);
  const expectMadv = (1n << 1n) | (1n << 10n) | (1n << 16n) | (1n << 18n);
  assert.equal(madvBits(locked.vmFlags), expectMadv);
  assert.equal(locked.locked, 4);
  assert.equal(locked.rss, 4);
  assert.equal(locked.anonymous, 4);
  const info = vmFlagsInfo(locked.vmFlags);
  assert.equal(info.mapFlags, MAP_LOCKED);
  assert.equal(info.madv, expectMadv);
  assert.equal(info.ioPf, false);
  const rest = at(0x7fa58af1b000n);
  assert.equal(madvBits(rest.vmFlags), expectMadv);
  assert.equal(vmFlagsInfo(rest.vmFlags).mapFlags, 0);

  // MAP_NORESERVE PROT_NONE area
  assert.equal(vmFlagsInfo(at(0x7fa58ac00000n).vmFlags).mapFlags, MAP_NORESERVE);
  // thread stack guard: nohugepage
  assert.equal(madvBits(at(0x7fa58b01a000n).vmFlags), 1n << 15n);
  // [stack] grows down
  const stack = s.find((v) => v.path === '[stack]')!;
  assert.equal(vmFlagsInfo(stack.vmFlags).mapFlags, MAP_GROWSDOWN);
  // [vvar] is io|pf and dontdump
  const vvar = s.find((v) => v.path === '[vvar]')!;
  assert.equal(vmFlagsInfo(vvar.vmFlags).ioPf, true);
  assert.equal(madvBits(vvar.vmFlags), 1n << 16n);
  // shared writable file mapping
  const shf = s.find((v) => v.path === '/tmp/cap/my file (x).dat')!;
  assert.equal(vmFlagsInfo(shf.vmFlags).sharedMayWrite, true);
  assert.equal(vmFlagsInfo(s.find((v) => v.path === '/dev/zero')!.vmFlags).sharedMayWrite, true);
  // vsyscall: only "ex"
  assert.deepEqual([...s.find((v) => v.path === '[vsyscall]')!.vmFlags!], ['ex']);
});

test('madvBits: every mapped token, CRIU two-character matching, unknowns ignored', () => {
  const all = new Set(['sr', 'rr', 'dc', 'dd', 'mg', 'hg', 'nh', 'wf', 'rd', 'wr', 'ex', 'xx']);
  const want = [2, 1, 10, 16, 12, 14, 15, 18].reduce((a, b) => a | (1n << BigInt(b)), 0n);
  assert.equal(madvBits(all), want);
  assert.equal(madvBits(undefined), 0n);
  assert.equal(madvBits(new Set()), 0n);
  assert.equal(madvBits(['mgx']), 1n << 12n);
});

test('maps: hand-made edge cases', () => {
  const pad = (hdr: string) => hdr.padEnd(72, ' ') + ' ';
  // Path with leading and inner spaces is taken from the kernel's column.
  const l1 = pad('7f0000000000-7f0000001000 rw-s 00002000 08:01 1234 ') + '  lead space.bin';
  assert.equal(parseMapsLine(l1).path, '  lead space.bin');
  // Header longer than the pad column: exactly one extra space.
  const l2 = 'ffffffffff600000-ffffffffff601000 r--p 7fffffffffff0000 103:1f 18446744073709 ' + ' /x y (deleted)';
  const v2 = parseMapsLine(l2);
  assert.equal(v2.path, '/x y');
  assert.equal(v2.deleted, true);
  assert.deepEqual(v2.dev, { major: 0x103, minor: 0x1f });
  assert.equal(v2.pgoff, 0x7fffffffffff0000n);
  // Not laid out by the kernel: any spacing works.
  assert.equal(parseMapsLine('1000-2000 r--p 00000000 00:00 0 [anon:my name]').path, '[anon:my name]');
  // Anonymous with and without trailing space.
  assert.equal(parseMapsLine('1000-2000 ---p 00000000 00:00 0 ').path, '');
  assert.equal(parseMapsLine('1000-2000 ---p 00000000 00:00 0').path, '');
  // Deleted suffix only when it is a suffix.
  const l3 = parseMapsLine(pad('1000-2000 r--p 00000000 fe:00 7 ') + '/a (deleted)/b');
  assert.equal(l3.path, '/a (deleted)/b');
  assert.equal(l3.deleted, false);
  assert.throws(() => parseMapsLine('1000-2000 r--x 00000000 00:00 0'), ProcParseError);
  assert.throws(() => parseMaps('garbage\n'), ProcParseError);
  assert.deepEqual(parseMaps(''), []);
});

test('smaps: empty VmFlags line and unknown fields', () => {
  const text = [
    '00400000-00401000 r-xp 00000000 fe:00 12                                 /bin/x',
    'Size:                  4 kB',
    'Rss:                   4 kB',
    'Anonymous:             0 kB',
    'Swap:                  0 kB',
    'ProtectionKey:         0',
    'VmFlags: ',
    '7ffff7ff0000-7ffff7ff1000 rw-p 00000000 00:00 0 ',
    'Rss:                   0 kB',
    'Swap:                 12 kB',
    'VmFlags: rd wr mr mw me ac sd mg hg',
    '',
  ].join('\n');
  const s = parseSmaps(text);
  assert.equal(s.length, 2);
  assert.equal(s[0].vmFlags!.size, 0);
  assert.equal(madvBits(s[0].vmFlags), 0n);
  assert.equal(s[0].size, 4);
  assert.equal(s[1].swap, 12);
  assert.equal(madvBits(s[1].vmFlags), (1n << 12n) | (1n << 14n));
  assert.ok(isVmaRangeLine('0-1 x'));
  assert.ok(!isVmaRangeLine('VmFlags: rd'));
  assert.ok(!isVmaRangeLine('Rss: 4 kB'));
  assert.throws(() => parseSmaps('Rss: 4 kB\n'), ProcParseError);
});

test('smaps: a ProtectionKey line (CPUs with memory protection keys) gives the VMA its key', () => {
  const text = [
    '7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ',
    'Size:                  4 kB',
    'KernelPageSize:        4 kB',
    'ProtectionKey:         0',
    'VmFlags: rd wr mr mw me ac',
    '7f0000001000-7f0000002000 rw-p 00000000 00:00 0 ',
    'Size:                  4 kB',
    'KernelPageSize:        4 kB',
    'ProtectionKey:         3',
    'VmFlags: rd wr mr mw me ac',
    '',
  ].join('\n');
  assert.deepEqual(
    parseSmaps(text).map((v) => v.protectionKey),
    [0, 3],
  );
});
