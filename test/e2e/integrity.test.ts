/**
 * Images you can trust: the checksum manifest catches any damaged file, and page data
 * can be compressed (zstd) or encrypted (AES-256-GCM) on request.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { e2e, startTarget, assertCleanError, procStat, killAndReap, signal, waitForLine, readLines, SIGUSR1, reap } from '../lib/proc.ts';
import { dump, restore, dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const PYTHON = '/usr/bin/python3';

/** The largest pages-N.img of a dump. */
function largestPages(dir: string): string {
  return readdirSync(dir)
    .filter((f) => /^pages-\d+\.img$/.test(f))
    .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
}

function pagesBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => /^pages-\d+\.img$/.test(f))
    .reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

e2e('flipping any single byte of any image file makes restore refuse, naming that file', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  const good = c.subdir('good');
  dumpAndReap(t.pid, good);
  const files = readdirSync(good).filter((f) => f.endsWith('.img'));
  assert.ok(
    files.some((f) => f.startsWith('pages-')),
    'the dump has page data',
  );
  // The header, the middle and the very end of every file.
  for (const f of files) {
    const size = statSync(join(good, f)).size;
    for (const at of new Set([0, Math.floor(size / 2), size - 1])) {
      const dir = join(c.dir, `flip-${at}-${f}`);
      cpSync(good, dir, { recursive: true });
      const p = join(dir, f);
      const b = readFileSync(p);
      b[at] ^= 0x01;
      writeFileSync(p, b);
      const line = assertCleanError(restore(dir, ['-d']));
      assert.ok(line.includes(f), `restore with a byte flipped at ${at} of ${f} must name it: ${line}`);
      assert.equal(procStat(t.pid), null, `no process at PID ${t.pid} after the refused restore of ${f}`);
    }
  }
  // Control: the intact copy restores.
  restoreDetached(good, t.pid);
  await waitForCounter(t.log, -1, 5000, readLines(t.log).length);
  killAndReap(t.pid);
});

e2e('--skip-verify turns the check off: damage then goes unnoticed', async (c) => {
  const t = startTarget([workload('memhog'), '8'], { logFile: join(c.dir, 'memhog.log') });
  await waitForLine(t.log, /^ready /);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const pages = largestPages(img);
  const p = join(img, pages);
  const b = readFileSync(p);
  b[Math.floor(b.length / 2)] ^= 0x40;
  writeFileSync(p, b);
  assert.ok(assertCleanError(restore(img, ['-d'])).includes(pages), 'verified restore refuses');
  restoreDetached(img, t.pid, ['--skip-verify']);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^verify=1 (ok|BAD)$/);
  assert.deepEqual(readLines(t.log).slice(-1), ['verify=1 BAD'], 'the flipped byte reached the restored memory');
  killAndReap(t.pid);
});

e2e('a pages image cut short, restored with --skip-verify, fails in one line naming it and leaves no process', async (c) => {
  const t = startTarget([workload('memhog'), '16'], { logFile: join(c.dir, 'memhog.log') });
  await waitForLine(t.log, /^ready /);
  const good = c.subdir('good');
  dumpAndReap(t.pid, good);
  const pages = largestPages(good);
  // Without the manifest, the size the pagemap announces is still checked before any
  // process is made, wherever the cut falls (the task itself reads the first half, criu-ts
  // the second).
  for (const keep of [0.75, 0.25]) {
    const dir = join(c.dir, `cut-${keep}`);
    cpSync(good, dir, { recursive: true });
    const p = join(dir, pages);
    truncateSync(p, Math.floor(statSync(p).size * keep));
    const line = assertCleanError(restore(dir, ['-d', '--skip-verify']));
    assert.match(line, new RegExp(`^${pages}: truncated: \\d+ bytes, the pagemap needs \\d+$`), line);
    assert.equal(procStat(t.pid), null, `no process at PID ${t.pid} after the failed restore (${keep})`);
  }
  restoreDetached(good, t.pid);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^verify=1 (ok|BAD)$/);
  assert.deepEqual(readLines(t.log).slice(-1), ['verify=1 ok'], 'the intact images restore');
  killAndReap(t.pid);
});

function manifestOf(dir: string): { digest: string; files: Record<string, Record<string, string | number>> } {
  return JSON.parse(readFileSync(join(dir, 'criu-ts-manifest.json'), 'utf8'));
}

e2e('a large dump (pages written on the page writer thread) carries CRC-32s that catch a flipped page byte', async (c) => {
  const t = startTarget([workload('memhog'), '48'], { logFile: join(c.dir, 'memhog.log') });
  await waitForLine(t.log, /^ready /);
  const good = c.subdir('good');
  dumpAndReap(t.pid, good);
  const m = manifestOf(good);
  assert.equal(m.digest, 'crc32');
  const names = readdirSync(good)
    .filter((f) => f.endsWith('.img'))
    .sort();
  assert.deepEqual(
    Object.keys(m.files)
      .filter((f) => f.endsWith('.img'))
      .sort(),
    names,
    'every image file is listed',
  );
  for (const f of names) {
    const b = readFileSync(join(good, f));
    assert.equal(m.files[f].size, b.length, `${f}: size`);
    assert.equal(m.files[f].crc32, crc32(b).toString(16).padStart(8, '0'), `${f}: crc32 matches zlib's`);
  }
  assert.ok(pagesBytes(good) >= 48 << 20, 'the pages file holds the 48 MiB');
  const bad = join(c.dir, 'bad');
  cpSync(good, bad, { recursive: true });
  const p = join(bad, 'pages-1.img');
  const b = readFileSync(p);
  b[b.length - 4096 - 17] ^= 0x10;
  writeFileSync(p, b);
  const line = assertCleanError(restore(bad, ['-d']));
  assert.ok(line.includes('pages-1.img') && /checksum/.test(line), line);
  assert.equal(procStat(t.pid), null, 'no process left at the PID by the refused restore');
  restoreDetached(good, t.pid);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^verify=1 (ok|BAD)$/);
  assert.deepEqual(readLines(t.log).slice(-1), ['verify=1 ok']);
  killAndReap(t.pid);
});

e2e('a manifest with sha256 digests, as older criu-ts wrote, is still verified', async (c) => {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  await waitForCounter(t.log, 2);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const m = manifestOf(img);
  const files: Record<string, { size: number; sha256: string }> = {};
  for (const f of Object.keys(m.files)) {
    const b = readFileSync(join(img, f));
    files[f] = { size: b.length, sha256: createHash('sha256').update(b).digest('hex') };
  }
  writeFileSync(join(img, 'criu-ts-manifest.json'), JSON.stringify({ ...m, digest: 'sha256', files }));
  const bad = join(c.dir, 'bad');
  cpSync(img, bad, { recursive: true });
  const core = readdirSync(bad).find((f) => /^core-\d+\.img$/.test(f))!;
  const b = readFileSync(join(bad, core));
  b[b.length >> 1] ^= 0x01;
  writeFileSync(join(bad, core), b);
  assert.ok(assertCleanError(restore(bad, ['-d'])).includes(core), 'a damaged file under a sha256 manifest is refused by name');
  writeFileSync(join(bad, 'criu-ts-manifest.json'), JSON.stringify({ ...m, digest: 'md4', files }));
  assert.match(assertCleanError(restore(bad, ['-d'])), /criu-ts-manifest\.json.*unknown digest "md4"/);
  restoreDetached(img, t.pid);
  await waitForCounter(t.log, -1, 5000, readLines(t.log).length);
  killAndReap(t.pid);
});

const PY_TEXT = `
import os, sys, time
marker = ("criu" + "-ts-" + "secret-marker-") * 4
words = {i: ("line %d of very compressible text " % i) * 8 + marker for i in range(60000)}
print("start pid=%d" % os.getpid(), flush=True)
i = 0
while True:
    i += 1
    assert words[i % 60000].endswith(marker)
    print("i=%d" % i, flush=True)
    time.sleep(0.05)
`;

async function startPython(c: { dir: string }): Promise<{ pid: number; log: string }> {
  const script = join(c.dir, 'words.py');
  writeFileSync(script, PY_TEXT);
  const t = startTarget([PYTHON, '-u', script], { logFile: join(c.dir, 'py.log') });
  await waitForCounter(t.log, 2, 20_000);
  return t;
}

e2e('--compress zstd: smaller pages for compressible memory, and the dump restores', async (c) => {
  const t = await startPython(c);
  const plain = c.subdir('plain');
  assert.equal(dump(t.pid, plain, ['-R']).code, 0);
  const packed = c.subdir('zstd');
  dumpAndReap(t.pid, packed, ['--compress', 'zstd']);
  const ratio = pagesBytes(plain) / pagesBytes(packed);
  assert.ok(ratio > 2, `zstd should shrink python's pages well: ${pagesBytes(plain)} -> ${pagesBytes(packed)} bytes`);
  const mark = readLines(t.log).length;
  restoreDetached(packed, t.pid);
  await waitForCounter(t.log, -1, 10_000, mark);
  killAndReap(t.pid);
});

e2e(
  '--encrypt: no plaintext page in any file, and it restores only with the key',
  async (c) => {
    const t = await startPython(c);
    const marker = Buffer.from('criu-ts-secret-marker-criu-ts-secret-marker-');
    const key = join(c.dir, 'key');
    writeFileSync(key, randomBytes(32).toString('hex'));
    const wrong = join(c.dir, 'wrong-key');
    writeFileSync(wrong, randomBytes(32));
    // Control: without encryption the marker is in the page data, so the check below can fail.
    const plain = c.subdir('plain');
    assert.equal(dump(t.pid, plain, ['-R']).code, 0);
    assert.ok(
      readdirSync(plain).some((f) => readFileSync(join(plain, f)).includes(marker)),
      'the marker is in a plain dump',
    );

    const img = c.subdir('enc');
    // A sealed pstree cannot be read back to find the tree: python3 is one process.
    assert.equal(dump(t.pid, img, ['--encrypt', key]).code, 0);
    assert.equal(reap(t.pid)?.signal, 9);
    for (const f of readdirSync(img)) {
      assert.ok(!readFileSync(join(img, f)).includes(marker), `${f} holds the marker in plain text`);
    }
    assert.ok(assertCleanError(restore(img, ['-d'])).includes('encrypt'), 'without the key: refused');
    assert.equal(procStat(t.pid), null);
    assert.ok(/key/.test(assertCleanError(restore(img, ['-d', '--encrypt', wrong]))), 'with another key: refused');
    assert.equal(procStat(t.pid), null);
    const mark = readLines(t.log).length;
    restoreDetached(img, t.pid, ['--encrypt', key]);
    await waitForCounter(t.log, -1, 10_000, mark);
    killAndReap(t.pid);
  },
  { timeout: 180_000 },
);
