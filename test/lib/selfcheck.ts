/**
 * Workloads that check their own state after restore (test/workloads/checkloop.h): they print
 * "tick n=N" and answer SIGUSR1 with "CHECK ok" or "CHECK fail: WHY".
 */
import { join } from 'node:path';
import { startTarget, signal, waitForLine, readLines, SIGUSR1, type Target } from './proc.ts';
import { workload } from './workloads.ts';

/** Start workload `name` with `args`, its output in DIR/NAME.log, once it ticks. */
export async function startChecking(c: { dir: string }, name: string, args: string[]): Promise<Target> {
  const t = startTarget([workload(name), ...args], { logFile: join(c.dir, `${name}.log`) });
  await waitForLine(t.log, /^tick n=2$/);
  return t;
}

/** Ask the workload to check itself: its CHECK line. */
export async function askCheck(t: { pid: number; log: string }): Promise<string> {
  const from = readLines(t.log).length;
  signal(t.pid, SIGUSR1);
  return (await waitForLine(t.log, /^CHECK /, 10_000, from)).line;
}
