/**
 * Clear errors everywhere: a field of an image that the kernel would refuse or that points
 * nowhere is one line naming the image and the field, before any process is created; a
 * failure inside a restored task names what it was doing; a dump refused by ptrace or whose
 * target dies says so at once. Images are edited with the project's own codec and restored
 * with --skip-verify, so that the checksum manifest does not catch the edit first.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import {
  e2e,
  startTarget,
  runCriu,
  runCriuAsync,
  assertCleanError,
  assertRunningFree,
  killAndReap,
  procStat,
  waitForLine,
  CRIU_BIN,
  type E2EContext,
} from '../lib/proc.ts';
import { restore, dumpAndReap, startFoundation, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';

describe('restore names the image and the field of a bad value', () => {
  let base = '';
  let good = '';
  let pid = 0;

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'criu-ts-e2e-bad-images-'));
    good = join(base, 'good');
    mkdirSync(good);
    const f = startFoundation({ dir: base } as E2EContext, { intervalMs: 50, heapMiB: 4 });
    pid = f.pid;
    await waitForCounter(f.log, 2);
    dumpAndReap(pid, good);
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

  function expectLine(dir: string, re: RegExp): void {
    const line = assertCleanError(restore(dir, ['-d', '--skip-verify']));
    assert.match(line, re);
    assert.equal(procStat(pid), null, `PID ${pid} must not exist after a failed restore`);
  }

  e2e('a pid above pid_max in pstree.img', (c) => {
    const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1'));
    const dir = broken(c, 'pid-max', (d) => {
      const p = join(d, 'pstree.img');
      const e = readMessages(p, 'pstree_entry');
      e[0].pid = max + 5;
      e[0].threads = [max + 5];
      writeImage(p, 'pstree_entry', e);
    });
    expectLine(dir, new RegExp(`^pstree\\.img: entry 0: pid ${max + 5} is outside 1\\.\\.${max - 1} \\(pid_max ${max}\\)$`));
  });

  e2e('a negative vDSO size in mm-PID.img', (c) => {
    const dir = broken(c, 'vdso', (d) => {
      const p = join(d, `mm-${pid}.img`);
      const mm = readMessages(p, 'mm_entry')[0];
      const i = mm.vmas.findIndex((v) => v.status & (1 << 3));
      assert.ok(i >= 0, 'the dump has a [vdso]');
      mm.vmas[i].end = mm.vmas[i].start - 4096n;
      writeImage(p, 'mm_entry', [mm]);
    });
    expectLine(
      dir,
      new RegExp(`^mm-${pid}\\.img: vmas\\[\\d+\\] \\(\\[vdso\\]\\): end 0x[0-9a-f]+ is not above start 0x[0-9a-f]+ \\(size -4096\\)$`),
    );
  });

  e2e('a guard region outside every VMA in mm-PID.img', (c) => {
    const dir = broken(c, 'guard', (d) => {
      const p = join(d, `mm-${pid}.img`);
      const mm = readMessages(p, 'mm_entry')[0];
      const top = mm.vmas.reduce((a, v) => (v.end > a ? v.end : a), 0n);
      mm.vmas.push({ start: top + 0x10000n, end: top + 0x11000n, pgoff: 0n, shmid: 0n, prot: 0, flags: 0, status: 1 << 16, fd: -1n });
      writeImage(p, 'mm_entry', [mm]);
    });
    expectLine(dir, new RegExp(`^mm-${pid}\\.img: guard region 0x[0-9a-f]+-0x[0-9a-f]+: not inside one VMA of the task$`));
  });

  e2e('a missing fdinfo image is an error, not a process without fds', (c) => {
    const dir = broken(c, 'no-fdinfo', (d) => {
      const name = readdirSync(d).find((n) => /^fdinfo-\d+\.img$/.test(n));
      assert.ok(name, 'the dump has an fdinfo image');
      rmSync(join(d, name));
    });
    expectLine(dir, /^fdinfo-\d+\.img: missing$/);
  });

  e2e('a half-overwritten directory: files.img of another dump', (c) => {
    const dir = broken(c, 'half', (d) => {
      const p = join(d, 'files.img');
      // What another dump's files.img looks like to these fdinfo entries: other ids.
      const files = readMessages(p, 'file_entry').map((e) => ({
        ...e,
        id: e.id + 1000,
        ...(e.reg ? { reg: { ...e.reg, id: e.reg.id + 1000 } } : {}),
      }));
      writeImage(p, 'file_entry', files);
    });
    expectLine(
      dir,
      /^(fdinfo-\d+\.img: fd \d+: id \d+ is not in files\.img|mm-\d+\.img: .* is not in files\.img|fs-\d+\.img: \w+_id \d+ is not in files\.img)$/,
    );
  });

  e2e('a failed open of a file the restore needs names the path', (c) => {
    const dir = broken(c, 'openat', (d) => {
      const p = join(d, 'files.img');
      const files = readMessages(p, 'file_entry');
      const exe = readMessages(join(d, `mm-${pid}.img`), 'mm_entry')[0].exe_file_id;
      const e = files.find((x) => x.id === exe && x.reg);
      assert.ok(e?.reg, 'the executable is a regular file in files.img');
      e.reg.name = '/nonexistent/criu-ts-exe';
      writeImage(p, 'file_entry', files);
    });
    // Opened by criu-ts and passed to the task (an openat in the task names the task too).
    expectLine(dir, /^open(?:at)? \/nonexistent\/criu-ts-exe(?: in task \d+)?: .*ENOENT/i);
  });

  e2e('the images still restore (control)', (c) => {
    const dir = broken(c, 'intact', () => {});
    const r = restore(dir, ['-d', '--skip-verify']);
    assert.equal(r.code, 0, r.stderr);
    assertRunningFree(pid);
    killAndReap(pid);
  });
});

e2e("an unprivileged dump of another user's process is refused at once, with the reason", () => {
  const t = startTarget(['sleep', '600']);
  // Build the bundle as root first: the unprivileged run may not write the cache.
  runCriu(['check']);
  const dir = mkdtempSync(join(tmpdir(), 'criu-ts-e2e-nobody-'));
  try {
    chownSync(dir, 65534, 65534);
    const t0 = Date.now();
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        CRIU_BIN,
        'dump',
        '-t',
        String(t.pid),
        '-D',
        join(dir, 'img'),
        '--timeout',
        '10',
      ],
      { encoding: 'utf8', cwd: dir, timeout: 60_000 },
    );
    const ms = Date.now() - t0;
    const lines = r.stderr.trim().split('\n');
    assert.equal(r.status, 1, r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      new RegExp(`cannot freeze task ${t.pid}: ptrace refused \\(EPERM\\) on thread ${t.pid}: it runs as uid 0 and criu-ts as uid 65534`),
    );
    assert.ok(ms < 5000, `refused after ${ms} ms, not after the 10 s freeze timeout`);
    assertRunningFree(t.pid);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    killAndReap(t.pid);
  }
});

e2e('a target killed in the middle of its dump is named, with how it died', async (c) => {
  let last = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    const log = join(c.dir, `memhog-${attempt}.log`);
    const t = startTarget([workload('memhog'), '768'], { logFile: log });
    await waitForLine(log, /ready/, 30_000);
    const img = c.subdir('img');
    const run = runCriuAsync(['dump', '-t', String(t.pid), '-D', img, '-v4', '-o', 'dump.log']);
    // Killed once its memory is being read: the call that notices is process_vm_readv.
    await waitForLine(join(img, 'dump.log'), /memory, \d+ VMAs/, 30_000).catch(() => undefined);
    process.kill(t.pid, 'SIGKILL');
    const r = await run.done;
    killAndReap(t.pid);
    if (r.code === 0) {
      last = 'the dump finished before the kill';
      continue;
    }
    const line = assertCleanError(r);
    assert.equal(line, `task ${t.pid} died during the dump (killed by SIGKILL); the rest of the tree is left running`);
    assert.deepEqual(
      readdirSync(img).filter((n) => n.endsWith('.img')),
      [],
      'no images are left',
    );
    return;
  }
  assert.fail(last);
});
