/**
 * Test workloads: test/workloads/NAME.c compiled once per run with gcc into a
 * cache dir keyed by a hash of the source and the flags.
 *
 * Cache: $CRIU_TS_CACHE/workloads, else <repo>/.cache/workloads. Each binary
 * lives at <cache>/<hash>/<NAME>, so its comm is NAME.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const WORKLOAD_DIR = join(REPO_ROOT, 'test', 'workloads');
export const CFLAGS: readonly string[] = ['-O1', '-g', '-pthread', '-Wall', '-Wextra'];

export function cacheDir(): string {
  const base = process.env.CRIU_TS_CACHE ?? join(REPO_ROOT, '.cache');
  return join(base, 'workloads');
}

const built = new Map<string, string>();

/**
 * Path to the compiled workload NAME (test/workloads/NAME.c), building it if needed, with
 * `extraFlags` after the usual ones. The cache is keyed by the machine's architecture too:
 * the checkout (and its cache) is shared with the emulated arm64 lab.
 */
export function workload(name: string, extraFlags: readonly string[] = []): string {
  const flags = [...CFLAGS, ...extraFlags];
  const id = `${name}\0${flags.join(' ')}`;
  const hit = built.get(id);
  if (hit) return hit;
  const src = join(WORKLOAD_DIR, `${name}.c`);
  const text = readFileSync(src);
  const h = createHash('sha256').update(process.arch).update('\0').update(flags.join(' ')).update('\0').update(text);
  // Headers of test/workloads it includes ("x.h") are part of what it is built from.
  for (const m of text.toString('latin1').matchAll(/^#include "([\w.-]+\.h)"/gm))
    h.update('\0').update(readFileSync(join(WORKLOAD_DIR, m[1])));
  const hash = h.digest('hex').slice(0, 16);
  const dir = join(cacheDir(), hash);
  const bin = join(dir, name);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.tmp-${process.pid}`;
    try {
      execFileSync('gcc', [...flags, '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      rmSync(tmp, { force: true });
      const err = e as { stderr?: Buffer };
      throw new Error(`gcc failed for ${src}:\n${err.stderr?.toString() ?? String(e)}`);
    }
    renameSync(tmp, bin); // atomic: concurrent runs see either nothing or a whole binary
  }
  built.set(id, bin);
  return bin;
}
