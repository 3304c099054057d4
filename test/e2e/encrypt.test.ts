/**
 * --encrypt: every image is sealed and the manifest authenticated, so a secret held anywhere
 * in the process appears in no file of the dump, and a restore given the key refuses any file
 * that the key did not authenticate (a downgrade, a swap, a plain file slipped in).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  runCriu,
  assertCleanError,
  assertRunningFree,
  killAndReap,
  waitForLine,
  procStat,
  adopt,
  reap,
} from '../lib/proc.ts';
import { restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages } from '../../src/images/index.ts';

/** Every repeated numeric field of a message, as the bytes the registers held (xmm_space, vregs...). */
function registerArrays(v: unknown): Buffer[] {
  if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number')) return [Buffer.from(Uint32Array.from(v as number[]).buffer)];
  if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'bigint'))
    return [Buffer.from(BigUint64Array.from(v as bigint[]).buffer)];
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.values(v).flatMap(registerArrays);
  return [];
}

e2e('an encrypted dump holds no secret of the process in any file, and only its key restores it', async (c) => {
  const marker = `mk${randomBytes(12).toString('hex')}`;
  const home = c.subdir('home');
  const t = startTarget([workload('secrets'), marker, home], { env: { SECRET: marker } });
  await waitForLine(t.log, /^ready /);
  const comm = readFileSync(`/proc/${t.pid}/comm`, 'utf8').trim();
  const cwd = readlinkSync(`/proc/${t.pid}/cwd`);
  const key = join(c.dir, 'key');
  writeFileSync(key, randomBytes(32).toString('hex'));
  const wrong = join(c.dir, 'wrong-key');
  writeFileSync(wrong, randomBytes(32));
  const needles = [marker, marker.slice(0, 16), comm];
  const leaks = (dir: string) =>
    readdirSync(dir).flatMap((f) => {
      const b = readFileSync(join(dir, f));
      return needles.filter((n) => b.includes(n)).map((n) => `${f} holds ${n}`);
    });

  // Control: a plain dump holds the marker, so the scan below can fail.
  const plain = c.subdir('plain');
  assert.equal(runCriu(['dump', '-t', String(t.pid), '-D', plain, '-R']).code, 0);
  const plainLeaks = leaks(plain);
  assert.ok(
    plainLeaks.some((l) => l.startsWith('pages-')),
    `heap/stack in plain page data: ${plainLeaks.join(', ')}`,
  );
  assert.ok(
    registerArrays(readMessages(join(plain, `core-${t.pid}.img`), 'core_entry')[0]).some((b) => b.includes(marker.slice(0, 16))),
    'the vector register holds the marker in the plain core',
  );
  assert.ok(plainLeaks.includes(`core-${t.pid}.img holds ${comm}`), `comm in the plain core: ${plainLeaks.join(', ')}`);
  assert.ok(
    plainLeaks.some((l) => l.startsWith('reg-files') || l.startsWith('files')),
    `paths in plain files.img: ${plainLeaks.join(', ')}`,
  );
  assert.ok(
    plainLeaks.some((l) => l.startsWith('pipes-data')),
    `pipe data in plain: ${plainLeaks.join(', ')}`,
  );

  const enc1 = c.subdir('enc1');
  assert.equal(runCriu(['dump', '-t', String(t.pid), '-D', enc1, '-R', '--encrypt', key, '-v4', '-o', join(c.dir, 'enc1.log')]).code, 0);
  assertRunningFree(t.pid);
  const enc = c.subdir('enc');
  // The sealed pstree cannot be read to find the tree: the workload is one process.
  assert.equal(runCriu(['dump', '-t', String(t.pid), '-D', enc, '--encrypt', key]).code, 0);
  assert.equal(reap(t.pid)?.signal, 9);
  assert.deepEqual(leaks(enc), [], 'no secret in any file of the encrypted dump');
  // Registers are varint-encoded in a plain core, so no byte scan finds them: every image but
  // the page data must be sealed whole, and the page data encrypted.
  for (const f of readdirSync(enc)) {
    const head = readFileSync(join(enc, f)).subarray(0, 8).toString('latin1');
    // The manifest names files and sizes; stats-dump holds counts (CRIU's tools read it).
    if (f === 'criu-ts-manifest.json' || f === 'stats-dump') continue;
    assert.equal(head, f.startsWith('pages-') ? 'CRTSPAGE' : 'CRTSSEAL', `${f} is sealed`);
  }
  assert.deepEqual(leaks(enc1), []);

  const attack = (name: string, edit: (d: string) => void, expect: RegExp, extra: string[] = ['--encrypt', key]) => {
    const d = c.subdir(name);
    cpSync(enc, d, { recursive: true });
    edit(d);
    const line = assertCleanError(runCriu(['restore', '-D', d, '-d', ...extra]));
    assert.match(line, expect, `${name}: ${line}`);
    assert.equal(procStat(t.pid), null, `${name}: nothing restored`);
  };
  const core = `core-${t.pid}.img`;
  attack('no-key', () => {}, /encrypt/, []);
  attack('wrong-key', () => {}, /key/, ['--encrypt', wrong]);
  attack('manifest-deleted', (d) => rmSync(join(d, 'criu-ts-manifest.json')), /criu-ts-manifest\.json: missing/);
  attack('manifest-deleted-skip-verify', (d) => rmSync(join(d, 'criu-ts-manifest.json')), /criu-ts-manifest\.json: missing/, [
    '--encrypt',
    key,
    '--skip-verify',
  ]);
  attack(
    'manifest-replaced',
    (d) => cpSync(join(plain, 'criu-ts-manifest.json'), join(d, 'criu-ts-manifest.json')),
    /criu-ts-manifest\.json: not authenticated/,
  );
  attack(
    'manifest-edited',
    (d) => {
      const f = join(d, 'criu-ts-manifest.json');
      const m = JSON.parse(readFileSync(f, 'utf8'));
      m.files[core].size += 1;
      writeFileSync(f, JSON.stringify(m));
    },
    /criu-ts-manifest\.json: does not authenticate/,
  );
  attack('plain-core', (d) => cpSync(join(plain, core), join(d, core)), new RegExp(`${core.replace('.', '\\.')}: does not match`));
  attack('plain-pages', (d) => cpSync(join(plain, 'pages-1.img'), join(d, 'pages-1.img')), /pages-1\.img: /);
  attack('swapped-core', (d) => cpSync(join(enc1, core), join(d, core)), new RegExp(`${core.replace('.', '\\.')}: does not match`));
  attack('swapped-pages', (d) => cpSync(join(enc1, 'pages-1.img'), join(d, 'pages-1.img')), /pages-1\.img: /);
  attack(
    'renamed',
    (d) => {
      cpSync(join(d, `fs-${t.pid}.img`), join(d, `mm-${t.pid}.img`));
    },
    new RegExp(`mm-${t.pid}\\.img: does not match`),
  );

  restoreDetached(enc, t.pid, ['--encrypt', key]);
  adopt(t.pid);
  assert.equal(readFileSync(`/proc/${t.pid}/comm`, 'utf8').trim(), comm);
  assert.equal(readlinkSync(`/proc/${t.pid}/cwd`), cwd);
  assert.ok(readFileSync(`/proc/${t.pid}/environ`).includes(`SECRET=${marker}`));
  killAndReap(t.pid);
});
