// The running e2e test's state that the helpers share: its directory, the targets it started
// and the criu-ts runs it made (shown when it fails).
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tail } from './logs.ts';
import type { Target } from './targets.ts';
import type { CriuResult } from './run-criu.ts';

export const current: { dir: string | null; targets: Target[]; runs: CriuResult[] } = { dir: null, targets: [], runs: [] };

let fallback: string | null = null;

/** A scratch dir for output made outside an e2e() body (e.g. in a before hook); removed at exit. */
export function scratchDir(): string {
  if (current.dir) return current.dir;
  if (!fallback) {
    const dir = mkdtempSync(join(tmpdir(), 'criu-ts-scratch-'));
    fallback = dir;
    process.on('exit', () => {
      if (!process.env.CRIU_TS_KEEP) rmSync(dir, { recursive: true, force: true });
    });
  }
  return fallback;
}

/** The tails of criu-ts's -o logs under the test's directory. */
export function logTails(): string {
  if (!current.dir) return '';
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory() && depth < 3) walk(p, depth + 1);
      // criu-ts's -o logs live in the images dirs (subdirs); targets' logs at the top
      else if (st.isFile() && depth > 0 && n.endsWith('.log')) out.push(`\n--- ${p} (tail)\n${tail(p, 40)}`);
    }
  };
  try {
    walk(current.dir, 0);
  } catch {
    /* best effort */
  }
  return out.join('');
}
