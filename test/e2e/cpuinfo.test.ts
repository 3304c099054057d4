/**
 * cpuinfo dump / check (resources/cpu/cpuinfo.ts): the image is CRIU 4.2's, byte for byte, on
 * this machine; a check of it passes here, with criu-ts and with CRIU; an image whose CPU had a
 * feature this one lacks fails the check with one line, with criu-ts as with CRIU; and the
 * same through RPC CPUINFO_DUMP and CPUINFO_CHECK.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, assertOk, assertCleanError, runCriu } from '../lib/proc.ts';
import { CRIU42 } from '../lib/runc.ts';
import { client, skip } from '../lib/rpc-client.ts';
import { CRIU_BIN } from '../lib/run-criu.ts';

const haveCriu = existsSync(CRIU42);
const criu = (...args: string[]) => spawnSync(CRIU42, args, { encoding: 'utf8' });

e2e('cpuinfo dump writes what CRIU 4.2 writes; check passes here; a CPU feature this one lacks fails it in one line', (c) => {
  const mine = c.subdir('mine');
  assertOk(runCriu(['cpuinfo', 'dump', '-D', mine]));
  assertOk(runCriu(['cpuinfo', 'check', '-D', mine]));
  if (haveCriu) {
    const theirs = c.subdir('criu');
    assert.equal(criu('cpuinfo', 'dump', '-D', theirs).status, 0);
    assert.deepEqual(readFileSync(join(mine, 'cpuinfo.img')), readFileSync(join(theirs, 'cpuinfo.img')), 'the same bytes as CRIU 4.2');
    assertOk(runCriu(['cpuinfo', 'check', '-D', theirs]));
    assert.equal(criu('cpuinfo', 'check', '-D', mine).status, 0, "CRIU 4.2 passes criu-ts's image");
  }
  // 3DNow! (capability word 1, bit 31): an instruction-set feature no CPU made since 2010 has.
  const doctored = c.subdir('doctored');
  const dec = runCriu(['crit', 'decode', '-i', join(mine, 'cpuinfo.img')]);
  assertOk(dec);
  const img = JSON.parse(dec.stdout);
  const x = img.entries[0].x86_entry[0];
  assert.equal(x.capability[1] >>> 31, 0, 'this CPU has no 3DNow!');
  x.capability[1] = (x.capability[1] | 0x80000000) >>> 0;
  writeFileSync(join(doctored, 'cpuinfo.json'), JSON.stringify(img));
  assertOk(runCriu(['crit', 'encode', '-i', join(doctored, 'cpuinfo.json'), '-o', join(doctored, 'cpuinfo.img')]));
  const line = assertCleanError(runCriu(['cpuinfo', 'check', '-D', doctored]));
  assert.match(line, /lacks instruction-set features of the dump's: capability bit\(s\) 63 \(word 1\)/);
  if (haveCriu) assert.notEqual(criu('cpuinfo', 'check', '-D', doctored).status, 0, 'CRIU 4.2 refuses it too');
  // A missing or empty image: one line.
  assert.match(assertCleanError(runCriu(['cpuinfo', 'check', '-D', c.subdir('empty')])), /cpuinfo\.img/);
});

e2e(
  'RPC CPUINFO_DUMP and CPUINFO_CHECK (swrk)',
  (c) => {
    const dir = c.subdir('img');
    const r = client('cpuinfo', CRIU_BIN, dir);
    assert.deepEqual([r.CPUINFO_DUMP.type, r.CPUINFO_DUMP.success], ['CPUINFO_DUMP', true], JSON.stringify(r));
    assert.deepEqual([r.CPUINFO_CHECK.type, r.CPUINFO_CHECK.success], ['CPUINFO_CHECK', true], JSON.stringify(r));
    assert.ok(existsSync(join(dir, 'cpuinfo.img')));
  },
  { skip },
);
