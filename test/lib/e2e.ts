// e2e(): a node:test test with process hygiene (see proc.ts).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { TestContext } from 'node:test';
import { SLOW } from './slow.ts';
import { tail } from './logs.ts';
import { sweep } from './reap.ts';
import { describeRun } from './run-criu.ts';
import { current, logTails } from './scratch.ts';

let afterInstalled = false;

export interface E2EContext {
  /** A fresh directory for this test (removed when it passes, kept when it fails). */
  dir: string;
  t: TestContext;
  /** A new empty subdirectory of dir. */
  subdir(name: string): string;
}

export interface E2EOptions {
  timeout?: number;
  skip?: boolean | string;
  todo?: boolean | string;
}

/**
 * A node:test test with process hygiene. Whatever happens in `fn`, every
 * process started or adopted is killed and reaped afterwards, and a leak fails
 * the test. On failure the targets' logs and criu-ts's logs are shown and the
 * directory is kept (set CRIU_TS_KEEP=1 to keep it always).
 */
export function e2e(name: string, fn: (c: E2EContext) => Promise<void> | void, opts: E2EOptions = {}): void {
  if (!afterInstalled) {
    afterInstalled = true;
    after(async () => {
      const problems = await sweep();
      if (problems.length) throw new Error(`processes leaked by the test file:\n  ${problems.join('\n  ')}`);
    });
  }
  test(name, { timeout: (opts.timeout ?? 120_000) * SLOW, skip: opts.skip, todo: opts.todo }, async (t) => {
    const safe = name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40);
    const dir = mkdtempSync(join(tmpdir(), `criu-ts-e2e-${safe}-`));
    current.dir = dir;
    current.targets = [];
    current.runs = [];
    let failure: unknown = null;
    try {
      await fn({
        dir,
        t,
        subdir: (n: string) => mkdtempSync(join(dir, `${n}-`)),
      });
    } catch (e) {
      failure = e;
    }
    let problems: string[];
    try {
      problems = await sweep();
    } catch (e) {
      problems = [`sweep failed: ${(e as Error).message}`];
    }
    // A failing todo test is expected: show why, but do not pile up its dirs.
    const keep = !!process.env.CRIU_TS_KEEP || ((failure !== null || problems.length > 0) && !opts.todo);
    if (failure || problems.length) {
      const diag: string[] = [keep ? `test dir kept: ${dir}` : `test dir: ${dir} (removed)`];
      for (const tg of current.targets) diag.push(`--- target PID ${tg.pid} ${tg.argv.join(' ')} log (tail):\n${tail(tg.log, 15)}`);
      for (const r of current.runs) diag.push(`--- ${describeRun(r)}`);
      const lt = logTails();
      if (lt) diag.push(lt);
      t.diagnostic(diag.join('\n'));
    }
    if (!keep) rmSync(dir, { recursive: true, force: true });
    current.dir = null;
    if (failure) {
      if (problems.length && failure instanceof Error) failure.message += `\n(also leaked: ${problems.join('; ')})`;
      throw failure;
    }
    if (problems.length) throw new Error(`process hygiene:\n  ${problems.join('\n  ')}`);
  });
}

// ---------------------------------------------------------------- misc

/** A pid that no process has right now (from the top of the pid range). */
export function unusedPid(): number {
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  for (let p = max - 1; p > max - 1000; p--) if (!existsSync(`/proc/${p}`)) return p;
  throw new Error('no unused pid found');
}

/** *.img files in a directory ([] if the directory does not exist). */
export function imageFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith('.img'))
    .sort();
}
