/**
 * Bad input and failures: each must end in one line on stderr and exit 1, and
 * must leave the target exactly as it was (a failed dump never harms the
 * target) and no stray process behind (a failed restore kills what it made).
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import {
  e2e,
  startTarget,
  runCriu,
  assertCleanError,
  assertRunningFree,
  imageFiles,
  unusedPid,
  procStatus,
  procStat,
  procMaps,
  diffMaps,
  readLines,
  lastCounter,
  killAndReap,
  signal,
  waitForLine,
  describeRun,
  sleepSync,
  SIGUSR1,
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
} from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';

// ---------------------------------------------------------------- dump: bad targets

e2e('dump of a PID that does not exist fails cleanly', (c) => {
  const pid = unusedPid();
  const img = c.subdir('img');
  const line = assertCleanError(runCriu(['dump', '-t', String(pid), '-D', img]));
  assert.ok(line.includes(String(pid)), `the error names the PID: ${line}`);
  assert.deepEqual(imageFiles(img), [], 'no images');
});

e2e('dump of a kernel thread (kthreadd, PID 2) fails cleanly and leaves it alone', (c) => {
  const before = procStatus(2)!;
  assert.equal(before.Name, 'kthreadd');
  const img = c.subdir('img');
  assertCleanError(runCriu(['dump', '-t', '2', '-D', img]));
  const after = procStatus(2)!;
  assert.equal(after.TracerPid, '0', 'kthreadd is not traced');
  assert.equal(after.State, before.State, 'kthreadd state');
  assert.deepEqual(imageFiles(img), [], 'no images');
});

e2e('criu-ts refuses to dump itself', (c) => {
  const img = c.subdir('img');
  const r = runCriu(['dump', '-t', '@SELF@', '-D', img], { selfPid: true });
  assertCleanError(r);
  assert.deepEqual(imageFiles(img), [], 'no images');
});

// ---------------------------------------------------------------- dump: fault injection

for (const step of ['freeze', 'memory', 'files', 'write-images']) {
  e2e(`a dump that fails at step "${step}" leaves the target running and unchanged`, async (c) => {
    const f = startFoundation(c, { intervalMs: 50 });
    await waitForCounter(f.log, 3);
    signal(f.pid, SIGUSR1);
    await waitForLine(f.log, /^i=\d+ .*usr1=1 /);
    const maps0 = procMaps(f.pid);
    const sig0 = procStatus(f.pid)!;
    const img = c.subdir('img');
    const r = dump(f.pid, img, [], { env: { CRIU_TS_FAULT: step } });
    assertCleanError(r);

    // Not stopped, not traced, not killed; counting on.
    assertRunningFree(f.pid, `target after the failed dump (${step})`);
    const at = lastCounter(f.log);
    await waitForCounter(f.log, at + 3, 5000);
    assertRunningFree(f.pid, `target a moment later (${step})`);
    // Unchanged: same mappings (no injection page left), same signal state,
    // same pipe contents, same file offset.
    assert.deepEqual(diffMaps(maps0, procMaps(f.pid)), [], 'memory layout after the failed dump');
    const sig1 = procStatus(f.pid)!;
    for (const k of ['SigBlk', 'SigCgt', 'SigIgn', 'ShdPnd', 'SigPnd']) assert.equal(sig1[k], sig0[k], k);
    // criu-ts pins what it traces to its own CPU; the target gets its own affinity back.
    assert.equal(sig1.Cpus_allowed_list, sig0.Cpus_allowed_list, 'CPU affinity after the failed dump');
    const mark = readLines(f.log).length;
    signal(f.pid, SIGUSR1);
    await waitForLine(f.log, /^i=\d+ .*usr1=2 .*pipe=ok$/, 5000, mark);
    // No partial images.
    assert.deepEqual(imageFiles(img), [], `partial images left in ${img}`);

    killAndReap(f.pid);
    checkFoundationLog(f.log);
    checkDataFile(f.data!);
  });
}

// A full file system: the write error surfaces as one line naming the pages file, both when
// this thread writes the pages (small dumps, tmpfs) and when the page writer thread does
// (large dumps; ext4 on a loop device, where it writes with O_DIRECT).
const canMkfs = spawnSync('sh', ['-c', 'command -v mkfs.ext4 && test -e /dev/loop-control']).status === 0;
for (const [mib, fsMiB, fsType] of [
  [8, 4, 'tmpfs'],
  [64, 24, 'tmpfs'],
  [64, 24, 'ext4'],
] as const) {
  const skip = fsType === 'ext4' && !canMkfs ? 'needs mkfs.ext4 and loop devices (the AArch64 lab has neither)' : false;
  e2e(
    `a dump of ${mib} MiB into a full ${fsMiB} MiB ${fsType} fails cleanly and the target runs on`,
    async (c) => {
      const t = startTarget([workload('memhog'), String(mib)], { logFile: join(c.dir, 'memhog.log') });
      await waitForLine(t.log, /^ready /);
      const img = c.subdir('small');
      let m;
      if (fsType === 'tmpfs')
        m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${fsMiB}m,mode=0700`, 'criu-ts-full', img], { encoding: 'utf8' });
      else {
        const disk = join(c.dir, 'disk.ext4');
        writeFileSync(disk, '');
        truncateSync(disk, fsMiB << 20);
        const mk = spawnSync('mkfs.ext4', ['-q', '-F', disk], { encoding: 'utf8' });
        assert.equal(mk.status, 0, `mkfs.ext4: ${mk.stderr}`);
        m = spawnSync('mount', ['-o', 'loop', disk, img], { encoding: 'utf8' });
      }
      assert.equal(m.status, 0, `mount ${fsType}: ${m.stderr}`);
      try {
        const line = assertCleanError(dump(t.pid, img));
        assert.match(line, /pages-1\.img.*(ENOSPC|No space left)/, line);
        assert.deepEqual(imageFiles(img), [], 'no partial images');
        assertRunningFree(t.pid, 'target after the failed dump');
        signal(t.pid, SIGUSR1);
        await waitForLine(t.log, /^verify=1 (ok|BAD)$/);
        assert.deepEqual(readLines(t.log).slice(-1), ['verify=1 ok'], 'memory intact after the failed dump');
      } finally {
        spawnSync('umount', [img]);
      }
      killAndReap(t.pid);
    },
    { skip },
  );
}

// ---------------------------------------------------------------- restore: broken images

describe('restore rejects broken images', () => {
  let base = '';
  let good = '';
  let pid = 0;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'criu-ts-e2e-broken-'));
    good = join(base, 'good');
    mkdirSync(good);
    const t = startTarget([workload('counter'), '50'], { logFile: join(base, 'counter.log') });
    pid = t.pid;
    try {
      const deadline = Date.now() + 5000;
      while (lastCounter(t.log) < 2 && Date.now() < deadline) sleepSync(20);
      const r = dump(pid, good);
      assert.equal(r.code, 0, describeRun(r));
    } finally {
      killAndReap(pid);
    }
  });
  after(() => {
    if (!process.env.CRIU_TS_KEEP) rmSync(base, { recursive: true, force: true });
  });

  function broken(c: { dir: string }, name: string, breakIt: (dir: string) => void): string {
    const dir = join(c.dir, name);
    cpSync(good, dir, { recursive: true });
    breakIt(dir);
    return dir;
  }

  function expectCleanFailure(dir: string, mentions: string, extra: string[] = []): void {
    const line = assertCleanError(restore(dir, ['-d', ...extra]));
    assert.ok(line.includes(mentions), `the error should name ${mentions}: ${line}`);
    assert.equal(procStat(pid), null, `PID ${pid} must not exist after a failed restore`);
  }

  e2e('missing images directory', (c) => {
    const dir = join(c.dir, 'does-not-exist');
    const line = assertCleanError(restore(dir, ['-d']));
    assert.ok(line.includes(dir) || line.includes('does-not-exist'), `the error should name the directory: ${line}`);
    assert.ok(!existsSync(dir), 'restore must not create the images directory');
  });

  e2e('missing core-PID.img', (c) => {
    const dir = broken(c, 'no-core', (d) => rmSync(join(d, `core-${pid}.img`)));
    expectCleanFailure(dir, `core-${pid}.img`);
  });

  e2e('truncated mm-PID.img', (c) => {
    const dir = broken(c, 'short-mm', (d) => {
      const p = join(d, `mm-${pid}.img`);
      truncateSync(p, Math.floor(readFileSync(p).length / 2));
    });
    expectCleanFailure(dir, `mm-${pid}.img`);
  });

  e2e('corrupted pstree.img', (c) => {
    const dir = broken(c, 'bad-pstree', (d) => {
      const p = join(d, 'pstree.img');
      const b = readFileSync(p);
      // Keep the two magics and the first entry's size; flip every payload byte.
      for (let k = 12; k < b.length; k++) b[k] ^= 0xff;
      writeFileSync(p, b);
    });
    expectCleanFailure(dir, 'pstree.img');
  });

  e2e('a dump made on another architecture', (c) => {
    // x86_64 dumps say mtype 1 (X86_64), arm64 dumps 3 (AARCH64).
    const [mine, other] = process.arch === 'arm64' ? ['aarch64', 'x86_64'] : ['x86_64', 'aarch64'];
    const dir = broken(c, 'other-arch', (d) => {
      const p = join(d, `core-${pid}.img`);
      const core = readMessages(p, 'core_entry')[0];
      writeImage(p, 'core_entry', [{ ...core, mtype: other === 'aarch64' ? 3 : 1 }]);
      rmSync(join(d, 'criu-ts-manifest.json'));
    });
    expectCleanFailure(dir, `core-${pid}.img: the dump is for ${other}, this machine is ${mine}`, ['--skip-verify']);
  });

  e2e('the images still restore (control)', (c) => {
    const dir = broken(c, 'intact', () => {});
    restoreDetached(dir, pid);
    killAndReap(pid);
  });
});

e2e('restore while the PID is taken fails cleanly and leaves the original alone', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  const img = c.subdir('img');
  const r = dump(t.pid, img, ['-R']);
  assert.equal(r.code, 0, describeRun(r));
  assertRunningFree(t.pid);
  const start0 = procStat(t.pid)!.starttime;
  const line = assertCleanError(restore(img, ['-d']));
  assert.ok(line.includes(String(t.pid)), `the error should mention PID ${t.pid}: ${line}`);
  assertRunningFree(t.pid, 'the original');
  assert.equal(procStat(t.pid)!.starttime, start0, 'still the original process');
  await waitForCounter(t.log, lastCounter(t.log) + 2, 5000);
  killAndReap(t.pid);
});

// ---------------------------------------------------------------- CLI

e2e('an unimplemented CRIU option is refused: not supported yet: --lazy-pages; an unknown --network-lock method too', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 1);
  const img = c.subdir('img');
  const line = assertCleanError(runCriu(['dump', '-t', String(t.pid), '-D', img, '--lazy-pages']));
  assert.equal(line.trim(), 'not supported yet: --lazy-pages');
  const bad = assertCleanError(runCriu(['dump', '-t', String(t.pid), '-D', img, '--network-lock', 'pf']));
  assert.match(bad, /unknown network lock method pf: use nftables, iptables or skip$/);
  assertRunningFree(t.pid);
  assert.deepEqual(imageFiles(img), []);
  killAndReap(t.pid);
});

e2e('--pre-dump-mode read is accepted by dump', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 1);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img, ['--pre-dump-mode', 'read']);
});

e2e('--pre-dump-mode with a bad value is a clean error', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 1);
  const img = c.subdir('img');
  assertCleanError(runCriu(['dump', '-t', String(t.pid), '-D', img, '--pre-dump-mode', 'bogus']));
  assertRunningFree(t.pid);
  killAndReap(t.pid);
});

e2e('an unknown command is a clean error', () => {
  assertCleanError(runCriu(['no-such-command']));
});
