/**
 * --shell-job: a program on a terminal (its stdin/stdout/stderr are a pty) is dumped as a
 * shell job and restored onto the terminal criu-ts runs on.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, adopt, assertCleanError, procStat, sleep, SLOW } from '../lib/proc.ts';
import { dump } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'criu-ts');

/** Counter values printed on a terminal that script(1) records (lines end with \r\n). */
function counters(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'latin1')
    .split('\n')
    .map((l) => /^i=(\d+)/.exec(l.trim()))
    .filter((m) => m !== null)
    .map((m) => Number(m![1]));
}

async function until<T>(what: string, fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms * SLOW;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

e2e("a program on a terminal is dumped and restored as a shell job onto criu-ts's terminal", async (c) => {
  // script(1) gives the counter a pty as its controlling terminal and stdio.
  const out1 = join(c.dir, 'pty1.out');
  const s1 = startTarget(['/usr/bin/script', '-qfec', `exec ${workload('counter')} 50`, out1], { logFile: join(c.dir, 'script1.log') });
  await until('the counter on the first terminal', () => (counters(out1).length >= 3 ? true : undefined));
  const counter = Number(readFileSync(`/proc/${s1.pid}/task/${s1.pid}/children`, 'utf8').trim());
  assert.ok(counter > 0, 'script runs the counter');
  adopt(counter);

  // Without --shell-job the terminal is refused, and the counter keeps running.
  const line = assertCleanError(dump(counter, c.subdir('no-shell-job')));
  assert.match(line, /terminal|shell-job/, line);
  assert.ok(procStat(counter)?.state !== 'Z', 'still running');

  const img = c.subdir('img');
  const d = dump(counter, img, ['--shell-job']);
  assert.equal(d.code, 0, d.stderr);
  // script(1), the counter's parent, reaps it and exits; then its PID is free.
  await until('the dumped counter to be gone', () => (procStat(counter) === null ? true : undefined));
  const before = counters(out1);
  killAndReap(s1.pid);

  // Restore from inside another terminal, without -d: criu-ts stays and waits for it.
  const out2 = join(c.dir, 'pty2.out');
  const s2 = startTarget(['/usr/bin/script', '-qfec', `${BIN} restore -D ${img} --shell-job -v4 -o restore.log`, out2], {
    logFile: join(c.dir, 'script2.log'),
  });
  const after = await until('the restored counter on the second terminal', () => (counters(out2).length >= 3 ? counters(out2) : undefined));
  assert.equal(after[0], before[before.length - 1] + 1, `it continues where it stopped (${before.slice(-2)} then ${after.slice(0, 2)})`);
  const st = procStat(counter);
  assert.ok(st && st.state !== 'Z', 'the counter runs at its old PID');
  adopt(counter);
  killAndReap(counter);
  killAndReap(s2.pid);
});

e2e("a shell job in raw mode comes back in raw mode on criu-ts's terminal (termios)", async (c) => {
  const out1 = join(c.dir, 'pty1.out');
  const s1 = startTarget(['/usr/bin/script', '-qfec', `exec ${workload('rawtty')}`, out1], { logFile: join(c.dir, 'script1.log') });
  const raw = (file: string) =>
    existsSync(file)
      ? readFileSync(file, 'latin1')
          .split('\n')
          .map((l) => /raw=(\w+)/.exec(l)?.[1])
          .filter((v) => v !== undefined)
      : [];
  await until('the raw-mode program on the first terminal', () => (raw(out1).length >= 2 ? true : undefined));
  assert.deepEqual([...new Set(raw(out1))], ['yes'], 'raw mode before the dump');
  const prog = Number(readFileSync(`/proc/${s1.pid}/task/${s1.pid}/children`, 'utf8').trim());
  adopt(prog);
  const img = c.subdir('img');
  const d = dump(prog, img, ['--shell-job']);
  assert.equal(d.code, 0, d.stderr);
  await until('the dumped program to be gone', () => (procStat(prog) === null ? true : undefined));
  killAndReap(s1.pid);

  // The second terminal starts in cooked mode, with echo.
  const out2 = join(c.dir, 'pty2.out');
  const s2 = startTarget(['/usr/bin/script', '-qfec', `${BIN} restore -D ${img} --shell-job -v4 -o restore.log`, out2], {
    logFile: join(c.dir, 'script2.log'),
  });
  const after = await until('the restored program on the second terminal', () => (raw(out2).length >= 3 ? raw(out2) : undefined));
  assert.deepEqual([...new Set(after)], ['yes'], 'still in raw mode after restore');
  adopt(prog);
  killAndReap(prog);
  killAndReap(s2.pid);
});
