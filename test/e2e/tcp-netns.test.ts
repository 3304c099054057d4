/**
 * TCP connections of a tree in a network namespace of its own, both ends in the tree (in two
 * processes, restored one after the other): the network lock is in that namespace at the
 * dump, and in the one the restore makes before any socket, so that a restored half-closed
 * end answering the peer's FIN sent again finds its peer locked out, not missing (a reset).
 * The processes check both streams and their ends after the restore.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, waitExit, waitForLine, readLines, SLOW, type E2EContext, type Target } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { readMessages } from '../../src/images/index.ts';
import { workload } from '../lib/workloads.ts';

const inNet = (pid: number, cmd: string[]): string => execFileSync('nsenter', ['-t', String(pid), '-n', ...cmd], { encoding: 'utf8' });

/** The workload NAME PORT [v6] alone in a network namespace of its own, its loopback up, once it is ready. */
async function startInNetns(c: E2EContext, name: string, port: number, v6: boolean): Promise<Target> {
  const w = [workload(name), String(port), ...(v6 ? ['v6'] : [])];
  const t = startTarget(['unshare', '--net', 'sh', '-c', `ip link set lo up && exec ${w.join(' ')}`], {
    logFile: join(c.dir, 'inner.log'),
    execs: w,
  });
  await waitForLine(t.log, /^ready/);
  return t;
}

/** SIGUSR1 to the restored workload: it checks its connection and exits 0 with `ok`, no BAD or ERR line. */
async function finish(t: Target, ok: string): Promise<void> {
  process.kill(t.pid, 'SIGUSR1');
  const ex = await waitExit(t.pid, 20_000 * SLOW);
  assert.deepEqual(
    readLines(t.log).filter((l) => /^(BAD|ERR)/.test(l)),
    [],
  );
  assert.equal(ex?.code, 0);
  assert.ok(readLines(t.log).includes(ok));
}

for (const [family, method] of [
  ['IPv4', 'nftables'],
  ['IPv6', 'iptables'],
] as const) {
  e2e(
    `both ends of a half-closed ${family} connection in the tree's own network namespace survive dump + restore under the ${method} lock`,
    async (c) => {
      const port = 8000 + (process.pid % 1000);
      const t = await startInNetns(c, 'tcpinner', port, family === 'IPv6');
      try {
        const states = inNet(t.pid, ['ss', '-Htan']);
        assert.match(states, /FIN-WAIT-2/, states);
        assert.match(states, /CLOSE-WAIT/, states);
        const img = c.subdir('img');
        dumpAndReap(t.pid, img, ['--tcp-established', '--network-lock', method]);
        const inv = readMessages(join(img, 'inventory.img'), 'inventory_entry')[0];
        assert.equal(inv.network_lock_method, method === 'iptables' ? 0 : 1);
        // Nothing of the lock in criu-ts's namespace: it was in the tree's, gone with it.
        const table = `CRIU-${inv.dump_criu_run_id}`.slice(0, 26);
        assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), new RegExp(`${table}\n`));
        assert.doesNotMatch(execFileSync('ip6tables', ['-w', '-S'], { encoding: 'utf8' }), new RegExp(`-port ${port}\\b`));
        restoreDetached(img, t.pid, ['--tcp-established']);
        // The restore removed the lock in the new namespace too.
        assert.doesNotMatch(inNet(t.pid, ['nft', 'list', 'ruleset']), /CRIU|c114/i);
        await finish(t, 'ok rx=6000 tx=2000');
      } finally {
        killAndReap(t.pid);
      }
    },
  );
}

/**
 * A connection in LAST_ACK whose FIN's ACK a rule of the tree's own drops (ZDTM's
 * socket-tcp-closed-last-ack): the peer's FIN, which soccr sends again as a marked segment to
 * the restored end, must get past that rule, and it does only if the namespace's own rules
 * come after its sockets. Without it the end came back in FIN_WAIT1, and the reset its next
 * FIN draws read ECONNRESET instead of the end of stream.
 */
for (const [family, method] of [
  ['IPv4', 'nftables'],
  ['IPv6', 'iptables'],
] as const) {
  e2e(`an ${family} connection in LAST_ACK behind the tree's own drop rule comes back in LAST_ACK under the ${method} lock`, async (c) => {
    const t = await startInNetns(c, 'tcplastack', 9000 + (process.pid % 1000), family === 'IPv6');
    try {
      assert.match(inNet(t.pid, ['ss', '-Htan']), /LAST-ACK/);
      const img = c.subdir('img');
      dumpAndReap(t.pid, img, ['--tcp-established', '--network-lock', method]);
      restoreDetached(img, t.pid, ['--tcp-established']);
      const states = inNet(t.pid, ['ss', '-Htan']);
      assert.match(states, /^LAST-ACK /m, states);
      // The tree's own rules are back, the lock is gone.
      const rules = inNet(t.pid, ['nft', 'list', 'ruleset']);
      assert.match(rules, /table inet tree/);
      assert.doesNotMatch(rules, /CRIU|c114/i);
      assert.doesNotMatch(readFileSync(join(img, 'restore.log'), 'utf8'), /TCP connection restored in/);
      await finish(t, 'ok');
    } finally {
      killAndReap(t.pid);
    }
  });
}
