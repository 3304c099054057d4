/**
 * bin/criu-ts runs a bundle of the sources (esbuild) and builds it again when a source is newer;
 * without esbuild, or with CRIU_TS_SOURCES=1, it runs the sources. Each case runs on a copy of
 * the checkout's src/ and bin/, so the checkout's own bundle is never touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../lib/workloads.ts';

/** A checkout copy; node_modules links the real one, or (noEsbuild) everything of it but esbuild. */
function checkout(noEsbuild = false): string {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-launcher-'));
  for (const d of ['src', 'bin']) fs.cpSync(path.join(REPO_ROOT, d), path.join(top, d), { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, 'package-lock.json'), path.join(top, 'package-lock.json'));
  const nm = path.join(REPO_ROOT, 'node_modules');
  if (!noEsbuild) fs.symlinkSync(nm, path.join(top, 'node_modules'));
  else {
    fs.mkdirSync(path.join(top, 'node_modules', '.bin'), { recursive: true });
    for (const e of fs.readdirSync(nm))
      if (e !== '.bin' && e !== 'esbuild') fs.symlinkSync(path.join(nm, e), path.join(top, 'node_modules', e));
    fs.symlinkSync(path.join(nm, '.bin', 'node'), path.join(top, 'node_modules', '.bin', 'node'));
  }
  return top;
}

/** Run `bin/criu-ts check --feature kcmp` of a copy; returns the bundle it ran, or 'sources'. */
function run(top: string, env: Record<string, string> = {}): string {
  // NODE_OPTIONS is read by node, not by the launcher: a preload that shows which file node runs.
  const probe = path.join(top, 'entry-probe.mjs');
  fs.writeFileSync(probe, 'console.error(`entry=${process.argv[1]}`);\n');
  const r = spawnSync(path.join(top, 'bin', 'criu-ts'), ['check', '--feature', 'kcmp'], {
    encoding: 'utf8',
    env: { ...process.env, ...env, NODE_OPTIONS: `--import=${probe}` },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /kcmp is supported/);
  const entry = /entry=(\S+)/.exec(r.stderr)![1];
  return entry.endsWith('/src/cli/main.ts') ? 'sources' : path.relative(top, entry);
}

const current = (top: string) => fs.readlinkSync(path.join(top, '.cache', 'bundle', 'current'));

test('bin/criu-ts builds its bundle once, reuses it, and builds it again after a source changes', () => {
  const top = checkout();
  try {
    const first = run(top);
    assert.match(first, /^\.cache\/bundle\/build\.\w+\/main\.mjs$/, 'the first run built a bundle and ran it');
    const build = current(top);
    for (const w of ['writer-worker.mjs', 'verify-worker.mjs']) {
      assert.ok(fs.existsSync(path.join(top, '.cache', 'bundle', build, w)), `the ${w} worker is bundled beside main.mjs`);
    }
    assert.equal(run(top), '.cache/bundle/current/main.mjs', 'the second run reuses it');
    assert.equal(current(top), build);
    const later = new Date(Date.now() + 2000);
    fs.utimesSync(path.join(top, 'src', 'log.ts'), later, later);
    assert.notEqual(run(top), '.cache/bundle/current/main.mjs', 'a newer source makes a new build');
    assert.notEqual(current(top), build);
    assert.equal(run(top, { CRIU_TS_SOURCES: '1' }), 'sources');
  } finally {
    fs.rmSync(top, { recursive: true, force: true });
  }
});

test('bin/criu-ts runs the sources when esbuild is not installed', () => {
  const top = checkout(true);
  try {
    assert.equal(run(top), 'sources');
    assert.ok(!fs.existsSync(path.join(top, '.cache', 'bundle', 'current')), 'no bundle without esbuild');
  } finally {
    fs.rmSync(top, { recursive: true, force: true });
  }
});

test('bin/criu-ts finds its checkout through a symlink to it and from a relative path', () => {
  const top = checkout();
  const link = path.join(os.tmpdir(), `criu-ts-link-${process.pid}`);
  try {
    fs.symlinkSync(path.join(top, 'bin', 'criu-ts'), link);
    for (const [cmd, cwd] of [
      [link, os.tmpdir()],
      ['./criu-ts', path.join(top, 'bin')],
      ['bin/criu-ts', top],
      ['../bin/criu-ts', path.join(top, 'src')],
    ]) {
      const r = spawnSync(cmd, ['--version'], { cwd, encoding: 'utf8' });
      assert.equal(r.status, 0, `${cmd} from ${cwd}: ${r.stderr}`);
      assert.match(r.stdout, /^criu-ts /, `${cmd} from ${cwd}`);
    }
  } finally {
    fs.rmSync(link, { force: true });
    fs.rmSync(top, { recursive: true, force: true });
  }
});
