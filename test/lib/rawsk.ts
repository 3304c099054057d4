/**
 * The rawsk workload (netlink, packet, raw and ping sockets, a socket filter): start it, and
 * let it check its sockets. ICMP echo ("ping") sockets need the caller's group in
 * net.ipv4.ping_group_range (IPv6 uses it too), for the workload and for the restore that
 * makes them again: withPing() opens it to every group and puts the old range back.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTarget, reap, readLines, signal, waitForLine, SIGUSR1, type E2EContext } from './proc.ts';
import { workload } from './workloads.ts';

const RANGE = '/proc/sys/net/ipv4/ping_group_range';

function allowPing(): () => void {
  const old = readFileSync(RANGE, 'utf8').trim();
  writeFileSync(RANGE, '0 2147483647');
  return () => writeFileSync(RANGE, old.replace(/\s+/, ' '));
}

/** Run `fn` with ping sockets allowed, and the old ping_group_range back afterwards. */
export async function withPing(fn: () => Promise<void>): Promise<void> {
  const undo = allowPing();
  try {
    await fn();
  } finally {
    undo();
  }
}

export async function startRawsk(c: E2EContext, modes: string[] = []): Promise<{ pid: number; log: string }> {
  const t = startTarget([workload('rawsk'), ...modes], { logFile: join(c.dir, 'rawsk.log') });
  await waitForLine(t.log, /^READY/, 5000);
  return t;
}

/** Let the workload check its sockets: every check passes, at least `atLeast` of them, and it exits 0. */
export async function checkRawsk(t: { pid: number; log: string }, atLeast: number): Promise<void> {
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^DONE/, 20_000);
  const fails = readLines(t.log).filter((l) => /^(FAIL|BAD)/.test(l));
  assert.deepEqual(fails, [], 'checks that failed');
  const oks = readLines(t.log).filter((l) => l.startsWith('OK')).length;
  assert.ok(oks >= atLeast, `${oks} checks ran`);
  const ex = reap(t.pid, 5000);
  assert.equal(ex?.code, 0, `exit ${JSON.stringify(ex)}`);
}
