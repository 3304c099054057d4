/**
 * Images exchanged with CRIU itself: a dump written by CRIU restores with criu-ts, and a
 * criu-ts dump of the foundation workloads restores with CRIU; so does redis-server with a client
 * connected (--tcp-established), both ways. Needs a CRIU 4.x binary that
 * works on this kernel: set CRIU_REF to it (Debian 12's criu 3.17 does not run here). Without
 * it these tests are skipped, and say so.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, adopt, reap, readLines, signal, waitForLine, SIGUSR1, type E2EContext } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached, startFoundation, checkFoundationLog, checkDataFile, waitForCounter } from '../lib/cr.ts';
import { Resp, startRedis } from '../lib/clients.ts';
import { withPing, startRawsk, checkRawsk } from '../lib/rawsk.ts';

const CRIU = process.env.CRIU_REF;
const skip = CRIU && existsSync(CRIU) ? false : 'set CRIU_REF to a CRIU 4.x binary to run the interop tests';

function criu(args: string[]): void {
  const r = spawnSync(CRIU!, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `criu ${args.join(' ')} failed:\n${r.stderr}`);
}

/** The foundation workload through one tool's dump and the other's restore. */
async function foundationAcross(c: E2EContext, dumpWith: 'criu' | 'criu-ts'): Promise<void> {
  const f = startFoundation(c, { intervalMs: 50 });
  await waitForCounter(f.log, 3);
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /usr1=1 /, 5000);
  const img = c.subdir('img');
  if (dumpWith === 'criu') {
    criu(['dump', '-t', String(f.pid), '-D', img, '-v4', '-o', 'criu-dump.log']);
    reap(f.pid);
  } else {
    dumpAndReap(f.pid, img);
  }
  const at = readLines(f.log).length;
  if (dumpWith === 'criu') restoreDetached(img, f.pid, ['--skip-verify']);
  else {
    criu(['restore', '-D', img, '-d', '-v4', '-o', 'criu-restore.log']);
    adopt(f.pid);
  }
  await waitForCounter(f.log, -1, 10_000, at);
  signal(f.pid, SIGUSR1);
  await waitForLine(f.log, /usr1=2 .*pipe=ok$/, 5000);
  killAndReap(f.pid);
  checkFoundationLog(f.log);
  checkDataFile(f.data!);
}

e2e('a criu-ts dump of the foundation workload restores with CRIU', (c) => foundationAcross(c, 'criu-ts'), { skip });
e2e('a CRIU dump of the foundation workload restores with criu-ts', (c) => foundationAcross(c, 'criu'), { skip });

e2e(
  'a CRIU dump of python3 restores with criu-ts',
  async (c) => {
    const t = startTarget(
      ['/usr/bin/python3', '-u', '-c', 'import time\ni=0\nwhile True:\n  i+=1; print("i=%d" % i, flush=True); time.sleep(0.05)'],
      { logFile: join(c.dir, 'py.log') },
    );
    await waitForCounter(t.log, 3, 10_000);
    const img = c.subdir('img');
    criu(['dump', '-t', String(t.pid), '-D', img, '-v4', '-o', 'criu-dump.log']);
    reap(t.pid);
    const at = readLines(t.log).length;
    restoreDetached(img, t.pid, ['--skip-verify']);
    await waitForCounter(t.log, -1, 10_000, at);
    killAndReap(t.pid);
  },
  { skip },
);

/**
 * redis-server with a client connected (--tcp-established) through one tool's dump and the
 * other's restore: the client keeps its connection (same CLIENT ID) and the data, and new
 * clients are served. Each tool takes its own default network lock at dump (CRIU's iptables
 * rules, criu-ts's nftables table), and the other removes it at restore.
 */
async function redisAcross(c: E2EContext, dumpWith: 'criu' | 'criu-ts'): Promise<void> {
  const port = 20000 + ((process.pid * 16 + 11) % 12000);
  const { srv, r } = await startRedis(c.dir, port);
  assert.equal(await r.cmd('SET', 'k', 'before'), '+OK');
  const id = await r.cmd('CLIENT', 'ID');
  const img = c.subdir('img');
  if (dumpWith === 'criu') {
    criu(['dump', '-t', String(srv.pid), '-D', img, '-v4', '-o', 'criu-dump.log', '--tcp-established']);
    reap(srv.pid);
  } else dumpAndReap(srv.pid, img, ['--tcp-established']);
  const during = r.cmd('INCR', 'during');
  during.catch(() => {});
  if (dumpWith === 'criu') restoreDetached(img, srv.pid, ['--skip-verify', '--tcp-established']);
  else {
    criu(['restore', '-D', img, '-d', '-v4', '-o', 'criu-restore.log', '--tcp-established']);
    adopt(srv.pid);
  }
  assert.equal(await during, ':1', 'a command sent while the server was gone is answered once');
  const rules = `${spawnSync('iptables-save', { encoding: 'utf8' }).stdout}${spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout}`;
  assert.doesNotMatch(rules, new RegExp(`(--[sd]port|\\.) ${port}\\b`), 'the restore removed the lock of the dump');
  assert.equal(await r.cmd('CLIENT', 'ID'), id, 'the same connection');
  assert.equal(await r.cmd('GET', 'k'), 'before');
  const f = await Resp.connect(port);
  assert.equal(await f.cmd('GET', 'during'), '1');
  f.close();
  r.close();
  killAndReap(srv.pid);
}

e2e('a CRIU dump of redis-server with a connected client restores with criu-ts', (c) => redisAcross(c, 'criu'), { skip });
e2e('a criu-ts dump of redis-server with a connected client restores with CRIU', (c) => redisAcross(c, 'criu-ts'), { skip });

/**
 * Netlink, packet (a ring mapped), raw and ping sockets and a socket filter, dumped by one
 * tool and restored by the other. CRIU does not bind ICMP echo sockets again (their ident is
 * lost), so the ping sockets go only the way criu-ts restores.
 */
async function rawskAcross(c: E2EContext, dumpWith: 'criu' | 'criu-ts'): Promise<void> {
  await withPing(async () => {
    const t = await startRawsk(c, dumpWith === 'criu' ? [] : ['nl', 'raw', 'pkt', 'ring', 'flt']);
    const img = c.subdir('img');
    if (dumpWith === 'criu') {
      criu(['dump', '-t', String(t.pid), '-D', img, '-v4', '-o', 'criu-dump.log']);
      reap(t.pid);
      restoreDetached(img, t.pid, ['--skip-verify']);
    } else {
      dumpAndReap(t.pid, img);
      criu(['restore', '-D', img, '-d', '-v4', '-o', 'criu-restore.log']);
      adopt(t.pid);
    }
    await checkRawsk(t, 20);
  });
}

e2e('a CRIU dump of netlink, packet, raw and ping sockets restores with criu-ts', (c) => rawskAcross(c, 'criu'), { skip });
e2e('a criu-ts dump of netlink, packet, raw sockets and a filter restores with CRIU', (c) => rawskAcross(c, 'criu-ts'), { skip });
