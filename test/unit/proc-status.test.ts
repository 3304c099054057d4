import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseStatus, parseStat, readStatus, readStat, listThreads, ProcParseError } from '../../src/proc/index.ts';

const sample = (name: string) => readFileSync(new URL(`./samples/proc/${name}`, import.meta.url), 'utf8');

test('status: real C workload (comm with parentheses, blocked signals)', () => {
  const s = parseStatus(sample('cworkload.status'));
  assert.equal(s.name, 'we (ird) ) x');
  assert.equal(s.umask, 0o022);
  assert.equal(s.state, 'S');
  assert.equal(s.tgid, 4078);
  assert.equal(s.pid, 4078);
  assert.equal(s.ppid, 1);
  assert.equal(s.tracerPid, 0);
  assert.deepEqual(s.uid, [0, 0, 0, 0]);
  assert.deepEqual(s.gid, [0, 0, 0, 0]);
  assert.equal(s.fdSize, 256);
  assert.deepEqual(s.groups, []);
  assert.deepEqual(s.nsTgid, [4078]);
  assert.deepEqual(s.nsPid, [4078]);
  assert.equal(s.threads, 2);
  assert.equal(s.kthread, 0);
  // SIGUSR1 (10) and SIGTERM (15) blocked: bits 9 and 14
  assert.equal(s.sigBlk, (1n << 9n) | (1n << 14n));
  assert.equal(s.sigPnd, 0n);
  assert.equal(s.capEff, 0x000001fffeffffffn);
  assert.equal(s.capInh, 0n);
  assert.equal(s.noNewPrivs, false);
  assert.equal(s.seccomp, 0);
  assert.equal(s.seccompFilters, 0);
  assert.ok(s.sigQ.limit > 0);
  assert.equal(s.raw.get('VmStk')?.endsWith('kB'), true);
  assert.equal(s.raw.get('Speculation_Store_Bypass'), 'vulnerable');
});

test('status: python3 thread and bash', () => {
  const t = parseStatus(sample('python3-thread.status'));
  assert.equal(t.tgid, 4231);
  assert.equal(t.pid, 4274);
  assert.deepEqual(t.nsPid, [4274]);
  assert.equal(t.threads, 2);
  assert.equal(t.sigIgn, 0x1001006n);
  assert.equal(t.sigCgt, 0x100000000n);
  const b = parseStatus(sample('bash.status'));
  assert.equal(b.name, 'bash');
  assert.equal(b.sigBlk, 0x10000n); // SIGCHLD blocked while waiting
  assert.equal(b.sigCgt, 0x10200n); // SIGUSR1 trap + SIGCHLD
});

test('status: hand-made (groups, nested pid ns, seccomp, escapes, errors)', () => {
  const text =
    [
      'Name:\ta\\\\b\\nc ',
      'State:\tt (tracing stop)',
      'Tgid:\t7',
      'Pid:\t8',
      'PPid:\t1',
      'TracerPid:\t99',
      'Uid:\t1000\t1001\t1002\t1003',
      'Gid:\t5\t6\t7\t8',
      'Groups:\t4 24 27 ',
      'NStgid:\t7\t1',
      'NSpid:\t8\t2',
      'NSpgid:\t7\t1',
      'NSsid:\t7\t1',
      'SigQ:\t0/100',
      'ShdPnd:\t0000000000000100',
      'CapAmb:\t0000000000000400',
      'NoNewPrivs:\t1',
      'Seccomp:\t2',
      'Seccomp_filters:\t3',
      'Future_field:\t  x y ',
    ].join('\n') + '\n';
  const s = parseStatus(text);
  assert.equal(s.name, 'a\\b\nc ');
  assert.equal(s.state, 't');
  assert.equal(s.tracerPid, 99);
  assert.deepEqual(s.uid, [1000, 1001, 1002, 1003]);
  assert.deepEqual(s.groups, [4, 24, 27]);
  assert.deepEqual(s.nsPid, [8, 2]);
  assert.deepEqual(s.nsSid, [7, 1]);
  assert.equal(s.shdPnd, 0x100n);
  assert.equal(s.capAmb, 0x400n);
  assert.equal(s.noNewPrivs, true);
  assert.equal(s.seccomp, 2);
  assert.equal(s.seccompFilters, 3);
  assert.equal(s.raw.get('Future_field'), 'x y');
  assert.equal(s.umask, -1);
  assert.throws(() => parseStatus('Name:\tx\nState:\tR (running)\n'), ProcParseError);
  assert.throws(() => parseStatus(text.replace('Uid:\t1000\t1001\t1002\t1003', 'Uid:\t1000\t1001')), ProcParseError);
});

test('stat: comm with ") (" inside uses the last parenthesis', () => {
  const s = parseStat(sample('cworkload.stat'));
  assert.equal(s.pid, 4078);
  assert.equal(s.comm, 'we (ird) ) x');
  assert.equal(s.state, 'S');
  assert.equal(s.ppid, 1);
  assert.equal(s.pgrp, 4067);
  assert.equal(s.session, 2561);
  assert.equal(s.ttyNr, 0);
  assert.equal(s.tpgid, -1);
  assert.equal(s.flags, 4194304);
  assert.equal(s.nice, 0);
  assert.equal(s.priority, 20);
  assert.equal(s.numThreads, 2);
  assert.equal(s.startTime, 16063n);
  assert.equal(s.vsize, 14151680n);
  assert.equal(s.rss, 342);
  assert.equal(s.rsslim, 18446744073709551615n);
  assert.equal(s.startCode, 94462820491264n);
  assert.equal(s.endCode, 94462820493129n);
  assert.equal(s.startStack, 140732062789264n);
  assert.equal(s.blocked, 16896n); // SIGUSR1|SIGTERM
  assert.equal(s.sigignore, 6n);
  assert.equal(s.exitSignal, 17);
  assert.equal(s.processor, 1);
  assert.equal(s.startData, 94462820502992n);
  assert.equal(s.endData, 94462820503800n);
  assert.equal(s.startBrk, 94463853137920n);
  assert.equal(s.argStart, 140732062796343n);
  assert.equal(s.argEnd, 140732062796347n);
  assert.equal(s.envStart, 140732062796347n);
  assert.equal(s.envEnd, 140732062797812n);
  assert.equal(s.exitCode, 0);
  const t = parseStat(sample('cworkload-thread.stat'));
  assert.equal(t.comm, 'w');
  assert.equal(t.pid, 4080);
  assert.equal(t.exitSignal, -1);
});

test('stat: hand-made comm edge cases and errors', () => {
  // state then fields 4..52 of proc(5), each set to its own field number
  const tail = ' R ' + Array.from({ length: 49 }, (_, i) => i + 4).join(' ') + '\n';
  assert.equal(parseStat('12 ((a) (b)))' + tail).comm, '(a) (b))');
  assert.equal(parseStat('12 ()' + tail).comm, '');
  assert.equal(parseStat('12 ( R 1 2 )' + tail).comm, ' R 1 2 ');
  assert.equal(parseStat('12 (x\ny)' + tail).comm, 'x\ny');
  const x = parseStat('12 (x)' + tail);
  assert.equal(x.ppid, 4);
  assert.equal(x.startTime, 22n);
  assert.equal(x.kstkeip, 30n);
  assert.equal(x.exitSignal, 38);
  assert.equal(x.delayacctBlkioTicks, 42n);
  assert.equal(x.envEnd, 51n);
  assert.equal(x.exitCode, 52);
  assert.throws(() => parseStat('12 x R 1'), ProcParseError);
  assert.throws(() => parseStat('12 (x) R 1 2 3'), ProcParseError);
});

test('python3 samples parse', () => {
  const s = parseStat(sample('python3.stat'));
  assert.equal(s.comm, 'python3');
  assert.equal(s.numThreads, 2);
  assert.equal(parseStat(sample('python3-thread.stat')).pid, 4274);
  assert.equal(parseStatus(sample('python3.status')).threads, 2);
});

test('readers on this process', () => {
  const st = readStatus(process.pid);
  assert.equal(st.pid, process.pid);
  const stat = readStat(process.pid);
  assert.equal(stat.pid, process.pid);
  assert.equal(stat.ppid, st.ppid);
  const tids = listThreads(process.pid);
  assert.ok(tids.includes(process.pid));
  assert.equal(readStatus(process.pid, tids[tids.length - 1]).tgid, process.pid);
  assert.equal(readStat(process.pid, process.pid).pid, process.pid);
});
