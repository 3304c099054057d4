/**
 * The foundation workload through dump and restore, and the CLI paths around
 * it: twice in a row, -R, restore in the foreground, --pidfile, crit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  signal,
  sleep,
  readLines,
  lastCounter,
  waitForLine,
  procMaps,
  diffMaps,
  fdTable,
  procStatus,
  cmdline,
  assertRunningFree,
  killAndReap,
  adopt,
  runCriuAsync,
  describeRun,
  imageFiles,
  procStat,
  startTarget,
  counterValues,
  assertConsecutive,
  SIGUSR1,
  SIGUSR2,
  type FdInfo,
  SLOW,
} from '../lib/proc.ts';
import {
  dump,
  restore,
  dumpAndReap,
  restoreDetached,
  startFoundation,
  checkFoundationLog,
  checkDataFile,
  waitForCounter,
  counterOf,
  firstProgressFrom,
  DATA_HEADER,
} from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { runCrit } from '../../src/cli/crit.ts';
import { parseJson, toJson, type JsonValue } from '../../src/crit/index.ts';
import { arch } from '../../src/kernel/index.ts';

const CRIT = '/usr/bin/crit';

const fdShape = (fds: FdInfo[]) => fds.map((f) => ({ fd: f.fd, target: f.target, flags: f.flags.toString(8) }));

e2e('foundation: dump + restore continues where it stopped, with all its state', async (c) => {
  const f = startFoundation(c);
  await waitForCounter(f.log, 3);
  signal(f.pid, SIGUSR1);
  const u1 = await waitForLine(f.log, /^i=\d+ .*usr1=1 /);
  await waitForCounter(f.log, counterOf(u1.line));

  const maps0 = procMaps(f.pid);
  const fds0 = fdTable(f.pid);
  const exe0 = readlinkSync(`/proc/${f.pid}/exe`);
  const img = c.subdir('img');
  const beforeDump = lastCounter(f.log);
  dumpAndReap(f.pid, img);
  const atDump = lastCounter(f.log);
  const linesAtDump = readLines(f.log).length;
  assert.ok(atDump >= beforeDump);
  await sleep(300);
  assert.equal(lastCounter(f.log), atDump, 'the dumped process was not killed: its log still grows');

  restoreDetached(img, f.pid);
  await waitForCounter(f.log, atDump + 2, 10_000);
  assert.equal(firstProgressFrom(f.log, linesAtDump), atDump + 1, 'the first line after restore continues the counter');

  // Same process, same layout, same files.
  assert.deepEqual(cmdline(f.pid), f.argv, 'cmdline');
  assert.equal(readlinkSync(`/proc/${f.pid}/exe`), exe0, 'exe');
  assert.equal(procStat(f.pid)!.comm, 'foundation', 'comm');
  assert.deepEqual(diffMaps(maps0, procMaps(f.pid)), [], 'memory layout');
  const vdso0 = maps0.find((m) => m.path === '[vdso]');
  const vdso1 = procMaps(f.pid).find((m) => m.path === '[vdso]');
  assert.ok(vdso0 && vdso1 && vdso0.start === vdso1.start, '[vdso] at the same address');
  assert.deepEqual(fdShape(fdTable(f.pid)), fdShape(fds0), 'file descriptors (targets and flags)');
  const st = procStatus(f.pid)!;
  assert.equal(st.SigBlk, '0000000000000800', 'blocked mask is {SIGUSR2}');
  assert.equal(BigInt('0x' + st.SigCgt) & 0x200n, 0x200n, 'SIGUSR1 is caught');
  const dataPos = fdTable(f.pid).find((x) => x.fd === 3)!.pos;
  assert.ok(dataPos > DATA_HEADER.length, `data file offset ${dataPos} is past the header`);

  // The handler still works, and the pipe kept its 60 KiB.
  const mark = readLines(f.log).length;
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /^i=\d+ .*usr1=2 .*pipe=ok$/, 5000, mark);
  // SIGUSR2 is still blocked: it stays pending instead of killing the process.
  signal(f.pid, SIGUSR2);
  const p2 = await waitForLine(f.log, /^i=\d+ .*pend2=1 /, 5000, mark);
  await waitForCounter(f.log, counterOf(p2.line) + 2, 5000);
  assertRunningFree(f.pid);

  killAndReap(f.pid);
  checkFoundationLog(f.log);
  const dataLines = checkDataFile(f.data!);
  const last = lastCounter(f.log);
  assert.ok(dataLines === last || dataLines === last + 1, `data file has ${dataLines} lines, log ends at i=${last}`);
});

e2e('foundation: dump + restore twice in a row', async (c) => {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 3);
  for (const round of [1, 2]) {
    const img = c.subdir(`img${round}`);
    dumpAndReap(f.pid, img);
    const atDump = lastCounter(f.log);
    const mark = readLines(f.log).length;
    restoreDetached(img, f.pid);
    await waitForCounter(f.log, atDump + 3, 10_000);
    assert.equal(firstProgressFrom(f.log, mark), atDump + 1, `round ${round}: continues`);
  }
  // Two SIGUSR1 sent back to back can merge into one (standard signals do not queue).
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /^i=\d+ .*usr1=1 /, 5000);
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /^i=\d+ .*usr1=2 .*pipe=ok$/, 5000);
  killAndReap(f.pid);
  checkFoundationLog(f.log);
  checkDataFile(f.data!);
});

e2e('dump -R leaves the process running, and the images restore after it is killed', async (c) => {
  // No data file: the original keeps writing after the dump; only the
  // O_APPEND log, which restore does not size-check, is shared.
  const f = startFoundation(c, { dataFile: false, intervalMs: 50 });
  await waitForCounter(f.log, 3);
  const img = c.subdir('img');
  const l0 = lastCounter(f.log);
  const r = dump(f.pid, img, ['-R']);
  const l1 = lastCounter(f.log);
  assert.equal(r.code, 0, describeRun(r));
  assert.ok(imageFiles(img).length > 0, 'images written');
  assertRunningFree(f.pid, 'the process after dump -R');
  await waitForCounter(f.log, l1 + 3, 5000); // it keeps counting

  const killedAt = lastCounter(f.log);
  killAndReap(f.pid);
  const mark = readLines(f.log).length;
  restoreDetached(img, f.pid);
  await waitForCounter(f.log, -1, 10_000, mark);
  const first = firstProgressFrom(f.log, mark);
  assert.ok(
    first >= l0 + 1 && first <= l1 + 1,
    `restored from the dump-time state: first line i=${first}, dump ran between i=${l0} and i=${l1} (killed at ${killedAt})`,
  );
  await waitForCounter(f.log, first + 2, 5000, mark);
  killAndReap(f.pid);
  const after = readLines(f.log)
    .slice(mark)
    .filter((l) => l.startsWith('i='));
  assertConsecutive(counterValues(after), 'counter after restore', first);
  for (const l of after) assert.match(l, /tls=ok errno=ok sum=ok .*mask=ok .*vdso=ok cpu=ok rseq=ok/);
});

// The thread spins with a pattern in every general register it can name, so that each dump
// catches all of them live. arm64 syscall stops keep x7 for themselves: a register put in at
// one is discarded, which the leader's last stop (after unmapping the injection area) is.
e2e('every general register keeps its value through dump -R and through restore', async (c) => {
  const log = join(c.dir, 'gpregs.log');
  const perRound = process.arch === 'arm64' ? '200000' : '20000000';
  const t = startTarget([workload('gpregs'), '-n', perRound], { logFile: log });
  await waitForCounter(log, 2, 60_000);
  let img = '';
  for (let i = 0; i < 3; i++) {
    img = c.subdir('img');
    const r = dump(t.pid, img, ['-R']);
    assert.equal(r.code, 0, describeRun(r));
  }
  assertRunningFree(t.pid, 'the process after dump -R');
  await waitForCounter(log, lastCounter(log) + 2, 60_000);
  const dumped = readLines(log).filter((l) => l.startsWith('i='));
  for (const l of dumped) assert.match(l, /regs=ok$/, 'after dump -R');
  killAndReap(t.pid);
  const mark = readLines(log).length;
  restoreDetached(img, t.pid);
  await waitForCounter(log, -1, 60_000, mark);
  await waitForCounter(log, firstProgressFrom(log, mark) + 2, 60_000, mark);
  killAndReap(t.pid);
  const restored = readLines(log)
    .slice(mark)
    .filter((l) => l.startsWith('i='));
  for (const l of restored) assert.match(l, /regs=ok$/, 'after restore');
});

// arm64 kernels have more auxv entries than CRIU's format holds; criu-ts keeps the rest in an
// extension field. A kernel with less room than the dumping one must still restore the task,
// with what the format holds. Simulated here with a tail longer than any kernel takes.
e2e('an auxv tail the kernel has no room for is left out with a warning, and the process runs on', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  const before = readFileSync(`/proc/${t.pid}/auxv`);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const mmImg = join(img, `mm-${t.pid}.img`);
  const json = join(c.dir, 'mm.json');
  const io = {
    stdout: () => {},
    stderr: (s: string) => {
      throw new Error(s);
    },
    stdin: () => Buffer.alloc(0),
  };
  assert.equal(runCrit(['decode', '-i', mmImg, '-o', json], io), 0);
  // crit's parser: JSON.parse would round the auxv's 64-bit words (arm64's AT_HWCAP) to doubles.
  const doc = parseJson(readFileSync(json, 'utf8')) as { entries: Record<string, JsonValue>[] };
  // AT_IGNORE (1) entries: 64 more words than any kernel's saved_auxv has room for.
  doc.entries[0].mm_saved_auxv_tail = Array.from({ length: 64 }, (_, i) => (i % 2 ? 0 : 1));
  writeFileSync(json, toJson(doc as unknown as JsonValue));
  assert.equal(runCrit(['encode', '-i', json, '-o', mmImg], io), 0);
  const r = restoreDetached(img, t.pid, ['--skip-verify']);
  assert.match(readFileSync(join(img, 'restore.log'), 'utf8') + r.stderr, /no room for the last 32 auxv entries/);
  const at = lastCounter(t.log);
  await waitForCounter(t.log, at + 2);
  assert.deepEqual(
    readFileSync(`/proc/${t.pid}/auxv`).subarray(0, arch.auxvWords * 8),
    before.subarray(0, arch.auxvWords * 8),
    'what the format holds is back',
  );
  killAndReap(t.pid);
});

e2e('restore without -d waits and exits with the process exit status', async (c) => {
  // Long enough to outlive the dump on a slow (emulated) machine.
  const exitAt = 40 * SLOW;
  const f = startFoundation(c, { dataFile: false, intervalMs: 50, exitAt, exitCode: 7 });
  await waitForCounter(f.log, 5);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const atDump = lastCounter(f.log);
  assert.ok(atDump < exitAt, `dumped before the exit (i=${atDump})`);
  adopt(f.pid); // reaped by the sweep if criu-ts dies and it is re-parented to us
  const run = runCriuAsync(['restore', '-D', img, '-v4', '-o', 'restore.log'], { timeoutMs: 60_000 });
  await waitForCounter(f.log, atDump + 1, 10_000);
  assertRunningFree(f.pid, 'restored process');
  const r = await run.done;
  assert.equal(r.code, 7, `criu-ts restore should exit with the restored process's status 7\n${describeRun(r)}`);
  assert.equal(procStat(f.pid)?.state ?? 'gone', 'gone', 'criu-ts reaped the restored process');
  assert.equal(readLines(f.log).at(-1), 'exit code=7');
  checkFoundationLog(f.log);
  assert.equal(lastCounter(f.log), exitAt);
});

e2e('restore --pidfile writes the PID of the restored process', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 3);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const pidfile = join(c.dir, 'restored.pid');
  const r = restore(img, ['-d', '--pidfile', pidfile]);
  adopt(t.pid);
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(readFileSync(pidfile, 'utf8').trim(), String(t.pid));
  const at = lastCounter(t.log);
  await waitForCounter(t.log, at + 2, 5000);
  killAndReap(t.pid);
  assertConsecutive(counterValues(readLines(t.log)), 'counter', 1);
});

e2e('crit decodes every image and crit x ps lists the process', async (c) => {
  assert.ok(
    spawnSync(CRIT, ['--help'], { encoding: 'utf8' }).status === 0,
    `${CRIT} is required (Debian package criu; .ci/run installs it)`,
  );
  const f = startFoundation(c);
  await waitForCounter(f.log, 2);
  const img = c.subdir('img');
  dumpAndReap(f.pid, img);
  const files = imageFiles(img);
  for (const must of ['inventory.img', 'pstree.img', `core-${f.pid}.img`, `mm-${f.pid}.img`, `pagemap-${f.pid}.img`]) {
    assert.ok(files.includes(must), `${must} is missing (have: ${files.join(' ')})`);
  }
  assert.ok(
    files.some((n) => /^pages-\d+\.img$/.test(n)),
    'a pages-N.img',
  );
  for (const name of files) {
    if (/^pages-\d+\.img$/.test(name)) continue; // raw page data, no magic: crit cannot decode it by design
    const r = spawnSync(CRIT, ['decode', '-i', join(img, name)], { encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(r.status, 0, `crit decode -i ${name} failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { magic?: string; entries?: unknown[] };
    assert.ok(j.magic && Array.isArray(j.entries), `crit decode ${name}: no magic/entries`);
  }
  const ps = spawnSync(CRIT, ['decode', '-i', join(img, 'pstree.img')], { encoding: 'utf8' });
  const tree = JSON.parse(ps.stdout) as { entries: { pid: number; ppid: number; pgid: number; sid: number }[] };
  assert.deepEqual(
    tree.entries.map((e) => [e.pid, e.ppid, e.pgid, e.sid]),
    [[f.pid, 0, f.pid, f.pid]],
    'pstree entries',
  );
  const x = spawnSync(CRIT, ['x', img, 'ps'], { encoding: 'utf8' });
  assert.equal(x.status, 0, `crit x ps failed: ${x.stderr}`);
  const row = x.stdout.split('\n').find((l) => l.trim().split(/\s+/)[0] === String(f.pid));
  assert.ok(row, `crit x ps does not list PID ${f.pid}:\n${x.stdout}`);
  assert.match(row, /foundation$/, 'comm in crit x ps');
});
