/**
 * The page server (src/migrate): CRIU 4.2's `dump --page-server` into `criu-ts page-server`,
 * criu-ts's `dump --page-server` into CRIU's and into its own, each restored by CRIU and by
 * criu-ts with every page checked inside the workload (dirtier's SIGUSR2). And what a page
 * server does with garbage, a truncated stream and a client gone: one line, no images left.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { basename, join } from 'node:path';
import {
  e2e,
  startTarget,
  assertOk,
  assertCleanError,
  adopt,
  isAlive,
  descendants,
  reap,
  signal,
  waitForLine,
  readLines,
  runCriu,
  runCriuAsync,
  SIGUSR1,
  SIGUSR2,
  type Target,
} from '../lib/proc.ts';
import { dump, dumpAndReap, pageCounts, restore, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIU42 } from '../lib/runc.ts';
import { client, skip } from '../lib/rpc-client.ts';
import { CRIU_BIN } from '../lib/run-criu.ts';

const haveCriu = existsSync(CRIU42);

async function verify(t: Target, n: number, what: string): Promise<void> {
  const mark = readLines(t.log).length;
  signal(t.pid, SIGUSR2);
  const { line } = await waitForLine(t.log, new RegExp(`^verify=${n} `), 10_000, mark);
  assert.equal(line, `verify=${n} ok`, `${what}: every word of every page`);
}

async function dirtier(c: { dir: string }): Promise<Target> {
  const t = startTarget([workload('dirtier'), '16'], { logFile: join(c.dir, 'dirtier.log') });
  await waitForLine(t.log, /^ready/, 5000);
  signal(t.pid, SIGUSR1);
  await waitForLine(t.log, /^dirtied=1$/, 5000);
  return t;
}

const port = (): number => 20000 + Math.floor(Math.random() * 20000);

/** A dirtier, the dump's own directory, the page server's, and a port for it. */
async function setup(c: { dir: string; subdir(n: string): string }) {
  return { t: await dirtier(c), local: c.subdir('local'), remote: c.subdir('remote'), p: port() };
}

/** Whether something listens on TCP port p (from /proc/net/tcp{,6}: state 0A). */
function listening(p: number): boolean {
  const hex = `:${p.toString(16).toUpperCase().padStart(4, '0')} `;
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((f) =>
    readFileSync(f, 'latin1')
      .split('\n')
      .some((l) => l.includes(hex) && / 0A /.test(l) && l.trim().split(/\s+/)[1].endsWith(hex.trim())),
  );
}

async function untilListening(p: number): Promise<void> {
  for (let i = 0; i < 200 && !listening(p); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(listening(p), `a page server listens on ${p}`);
}

/** criu-ts page-server in the foreground (a child of the test), once it listens. */
async function tsPageServer(dir: string, p: number) {
  const ps = runCriuAsync(['page-server', '-D', dir, '--port', String(p), '-v4', '-o', 'page-server.log']);
  await untilListening(p);
  return ps;
}

/** CRIU 4.2's page-server -d: it returns once it listens. */
function criuPageServer(dir: string, p: number, extra: string[] = []): number {
  const pidfile = join(dir, 'ps.pid');
  const r = spawnSync(
    CRIU42,
    ['page-server', '-D', dir, '--port', String(p), '-d', '--pidfile', pidfile, '-v4', '-o', 'ps.log', ...extra],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, `CRIU page-server: ${r.stderr}`);
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  adopt(pid);
  return pid;
}

/** Put the dump's local images next to the page data, as a migration copies them over. */
function merge(from: string, to: string): void {
  for (const f of readdirSync(from)) if (f.endsWith('.img') || f.endsWith('.json')) copyFileSync(join(from, f), join(to, f));
}

function criuRestore(dir: string, t: Target, logSize: number): void {
  // CRIU checks that the log the task writes to has the size it had at the dump.
  truncateSync(t.log, logSize);
  const r = spawnSync(CRIU42, ['restore', '-D', dir, '-d', '--shell-job', '-v4', '-o', 'criu-restore.log'], { encoding: 'utf8' });
  adopt(t.pid);
  assert.equal(
    r.status,
    0,
    `CRIU restore: ${r.stderr}\n${readFileSync(join(dir, 'criu-restore.log'), 'utf8').split('\n').slice(-15).join('\n')}`,
  );
}

function kill(t: Target): void {
  process.kill(t.pid, 'SIGKILL');
  reap(t.pid);
}

e2e(
  'CRIU 4.2 dumps into criu-ts page-server; CRIU and criu-ts restore it, every page intact',
  async (c) => {
    const { t, local, remote, p } = await setup(c);
    const ps = await tsPageServer(remote, p);
    const d = spawnSync(
      CRIU42,
      [
        'dump',
        '-t',
        String(t.pid),
        '-D',
        local,
        '--shell-job',
        '--page-server',
        '--address',
        '127.0.0.1',
        '--port',
        String(p),
        '-v4',
        '-o',
        'dump.log',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(d.status, 0, `CRIU dump: ${d.stderr}`);
    reap(t.pid);
    assertOk(await ps.done);
    const logSize = readFileSync(t.log).length;
    assert.ok(!readdirSync(local).some((f) => f.startsWith('pages-') || f.startsWith('pagemap-')), 'no page data stays with the dump');
    assert.ok(existsSync(join(remote, `pagemap-${t.pid}.img`)) && existsSync(join(remote, 'pages-65537.img')), 'the page server wrote it');
    assert.ok(existsSync(join(remote, 'criu-ts-manifest-page-server.json')), 'with a manifest of its own');
    merge(local, remote);
    // CRIU's dump has no manifest of its own: only --skip-verify restores it, with a warning.
    assert.match(assertCleanError(restore(remote, ['-d', '--shell-job'])), /criu-ts-manifest\.json: missing/);
    restoreDetached(remote, t.pid, ['--shell-job', '--skip-verify']);
    await verify(t, 1, 'criu-ts');
    kill(t);
    criuRestore(remote, t, logSize);
    await verify(t, 1, 'CRIU 4.2');
    kill(t);
  },
  { skip: !haveCriu },
);

e2e(
  "criu-ts dumps into CRIU 4.2's page-server; CRIU and criu-ts restore it",
  async (c) => {
    const { t, local, remote, p } = await setup(c);
    const psPid = criuPageServer(remote, p);
    assertOk(dump(t.pid, local, ['--shell-job', '--page-server', '--address', '127.0.0.1', '--port', String(p)]));
    reap(t.pid);
    assert.ok(reap(psPid), "CRIU's page server ended with the session");
    assert.equal(spawnSync('grep', ['-c', 'Session over', join(remote, 'ps.log')]).status, 0);
    const logSize = readFileSync(t.log).length;
    const m = JSON.parse(readFileSync(join(local, 'criu-ts-manifest.json'), 'utf8'));
    assert.deepEqual(m.pageServer, { files: [`pagemap-${t.pid}.img`] }, 'the manifest names what went to the page server');
    merge(local, remote);
    criuRestore(remote, t, logSize);
    await verify(t, 1, 'CRIU 4.2');
    kill(t);
    // Page data without criu-ts's page server manifest cannot be checked: refused, unless --skip-verify.
    assert.match(assertCleanError(restore(remote, ['-d', '--shell-job'])), /criu-ts-manifest-page-server\.json: missing/);
    restoreDetached(remote, t.pid, ['--shell-job', '--skip-verify']);
    await verify(t, 1, 'criu-ts');
    kill(t);
  },
  { skip: !haveCriu },
);

e2e('criu-ts dump into criu-ts page-server -d: both manifests checked at restore, damaged page data refused', async (c) => {
  const t = await dirtier(c);
  const local = c.subdir('local'),
    remote = c.subdir('remote');
  const p = port();
  const pidfile = join(c.dir, 'ps.pid');
  assertOk(runCriu(['page-server', '-D', remote, '--port', String(p), '-d', '--pidfile', pidfile]));
  const psPid = Number(readFileSync(pidfile, 'utf8').trim());
  adopt(psPid);
  assert.ok(listening(p), '-d returns once the page server listens');
  assertOk(dump(t.pid, local, ['--shell-job', '--page-server', '--address', '127.0.0.1', '--port', String(p)]));
  reap(t.pid);
  assert.equal(reap(psPid)?.code, 0, 'the page server ended with the session');
  merge(local, remote);
  restoreDetached(remote, t.pid, ['--shell-job']);
  await verify(t, 1, 'criu-ts, both manifests checked');
  kill(t);
  const pages = join(remote, 'pages-65537.img');
  const b = readFileSync(pages);
  b[5000] ^= 1;
  writeFileSync(pages, b);
  assert.match(assertCleanError(restore(remote, ['-d', '--shell-job'])), /pages-65537\.img: checksum mismatch/);
});

/** Connect to a page server, send `bytes`, then close (or half-close and wait for its answer). */
async function rawClient(p: number, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = net.connect(p, '127.0.0.1', () => s.end(bytes));
    s.on('data', () => {});
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

function iov(cmd: number, nrPages: bigint, vaddr: bigint, dst: bigint): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(cmd >>> 0, 0);
  b.writeBigUInt64LE(nrPages, 8);
  b.writeBigUInt64LE(vaddr, 16);
  b.writeBigUInt64LE(dst, 24);
  return b;
}

e2e('a page server given garbage, a truncated stream or a client gone: one line, no images left', async (c) => {
  const open = iov(4, 0n, 0n, (42n << 8n) | 1n);
  const add = iov((4 << 16) | 6, 4n, 0x10000n, (42n << 8n) | 1n);
  const cases: [string, Buffer, RegExp][] = [
    ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(64, 'x')), /unknown command 0x20544547/],
    ['a truncated command', Buffer.concat([open, add.subarray(0, 20)]), /ends in the middle of a command \(20 of 32 bytes\)/],
    [
      'truncated page data',
      Buffer.concat([open, add, Buffer.alloc(4096 * 2 + 100)]),
      /ends in the middle of page data at 0x10000 \(8292 of 16384 bytes\)/,
    ],
    [
      'a client gone before CLOSE',
      Buffer.concat([open, add, Buffer.alloc(4096 * 4)]),
      /closed the connection before the end of the session/,
    ],
  ];
  for (const [what, bytes, want] of cases) {
    const dir = c.subdir(what.replace(/\W+/g, '-'));
    const p = port();
    const ps = runCriuAsync(['page-server', '-D', dir, '--port', String(p)]);
    await untilListening(p);
    await rawClient(p, bytes);
    const line = assertCleanError(await ps.done);
    assert.match(line, want, what);
    assert.match(line, /the images it received are removed/, what);
    assert.deepEqual(
      readdirSync(dir).filter((f) => !f.endsWith('.log')),
      [],
      `${what}: nothing that looks like images is left`,
    );
  }
});

e2e(
  'RPC PAGE_SERVER (pycriu over swrk): answered with the pid and port of a page server that then takes a dump',
  async (c) => {
    const { t, local, remote } = await setup(c);
    const r = client('page_server', CRIU_BIN, remote, 'PAGE_SERVER');
    assert.deepEqual([r.type, r.success], ['PAGE_SERVER', true], JSON.stringify(r));
    const { pid, port: p } = r.ps as { pid: number; port: number };
    adopt(pid);
    assert.ok(p > 0 && listening(p), `the page server listens on the port it answered (${p})`);
    assertOk(dump(t.pid, local, ['--shell-job', '--page-server', '--address', '127.0.0.1', '--port', String(p)]));
    reap(t.pid);
    assert.equal(reap(pid)?.code, 0, 'the page server ended with the session');
    assert.match(readFileSync(join(remote, 'page-server.log'), 'utf8'), /pages received/);
    merge(local, remote);
    restoreDetached(remote, t.pid, ['--shell-job']);
    await verify(t, 1, 'criu-ts, from the RPC page server');
    kill(t);
  },
  { skip },
);

e2e(
  'RPC DUMP with criu_opts.ps (pycriu): the page data goes to the page server',
  async (c) => {
    const { t, local, remote, p } = await setup(c);
    const ps = await tsPageServer(remote, p);
    const d = client('dump_ps', CRIU_BIN, local, String(t.pid), String(p));
    assert.equal(d.ok, true, JSON.stringify(d));
    reap(t.pid);
    assertOk(await ps.done);
    assert.ok(existsSync(join(remote, `pagemap-${t.pid}.img`)), 'the pagemap is on the page server');
    assert.ok(!existsSync(join(local, `pagemap-${t.pid}.img`)), 'and not with the dump');
    merge(local, remote);
    restoreDetached(remote, t.pid, ['--shell-job']);
    await verify(t, 1, 'criu-ts, after an RPC dump through a page server');
    kill(t);
  },
  { skip },
);

for (const server of ['criu-ts', 'CRIU 4.2'] as const)
  e2e(
    `incremental through ${server}'s page server: pre-dump, then a dump of what was written since; restored by criu-ts and CRIU`,
    async (c) => {
      const t = await dirtier(c);
      const [l1, l2, r1, r2] = ['l1', 'l2', 'r1', 'r2'].map((n) => c.subdir(n));
      const start = async (dir: string, extra: string[]): Promise<{ to: string[]; end: () => Promise<void> }> => {
        const p = port();
        const to = ['--page-server', '--address', '127.0.0.1', '--port', String(p)];
        if (server === 'CRIU 4.2') {
          const pid = criuPageServer(dir, p, extra);
          return { to, end: async () => assert.ok(reap(pid), "CRIU's page server ended") };
        }
        const ps = runCriuAsync(['page-server', '-D', dir, '--port', String(p), ...extra]);
        await untilListening(p);
        return { to, end: async () => void assertOk(await ps.done) };
      };
      const s1 = await start(r1, []);
      assertOk(runCriu(['pre-dump', '-t', String(t.pid), '-D', l1, '-v4', '-o', 'pre-dump.log', ...s1.to]));
      await s1.end();
      // The tracking holder the pre-dump left; the dump ends it.
      const holder = (JSON.parse(readFileSync(join(l1, 'criu-ts-track.json'), 'utf8')) as { holder: number }).holder;
      adopt(holder);
      signal(t.pid, SIGUSR1);
      await waitForLine(t.log, /^dirtied=2$/, 5000);
      const s2 = await start(r2, ['--prev-images-dir', `../${basename(r1)}`]);
      assertOk(dump(t.pid, l2, ['--shell-job', '--prev-images-dir', `../${basename(l1)}`, ...s2.to]));
      reap(t.pid);
      assert.ok(reap(holder), 'the dump ended the tracking');
      await s2.end();
      const n = pageCounts(r2, t.pid);
      assert.ok(
        n.parent > 3000 && n.present < 1200,
        `only what was written since went (${n.present} pages; ${n.parent} left to the pre-dump)`,
      );
      const logSize = readFileSync(t.log).length;
      merge(l1, r1);
      merge(l2, r2);
      restoreDetached(r2, t.pid, ['--shell-job', ...(server === 'CRIU 4.2' ? ['--skip-verify'] : [])]);
      await verify(t, 1, 'criu-ts');
      kill(t);
      if (haveCriu) {
        criuRestore(r2, t, logSize);
        await verify(t, 1, 'CRIU 4.2');
        kill(t);
      }
    },
    { skip: server === 'CRIU 4.2' && !haveCriu },
  );

e2e(
  'a dump whose page server is not there, or has no parent images for an incremental dump, fails in one line; the tree runs on',
  async (c) => {
    const { t, local, remote, p } = await setup(c);
    const none = dump(t.pid, local, ['--shell-job', '--page-server', '--address', '127.0.0.1', '--port', String(p)]);
    assert.match(assertCleanError(none), /cannot connect to the page server at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.ok(isAlive(t.pid), 'the tree runs on');
    // A pre-dump, then an incremental dump into a page server given no previous images.
    const pre = c.subdir('pre');
    const ps1 = await tsPageServer(c.subdir('pre-remote'), p);
    assertOk(runCriu(['pre-dump', '-t', String(t.pid), '-D', pre, '--page-server', '--address', '127.0.0.1', '--port', String(p)]));
    assertOk(await ps1.done);
    const holder = (JSON.parse(readFileSync(join(pre, 'criu-ts-track.json'), 'utf8')) as { holder: number }).holder;
    adopt(holder);
    const p2 = port();
    const ps2 = await tsPageServer(remote, p2);
    const r = dump(t.pid, local, [
      '--shell-job',
      '-R',
      '--prev-images-dir',
      `../${basename(pre)}`,
      '--page-server',
      '--address',
      '127.0.0.1',
      '--port',
      String(p2),
    ]);
    assert.match(assertCleanError(r), /the page server has no parent images .*--prev-images-dir/);
    assert.ok(isAlive(t.pid), 'the tree runs on');
    assert.match(assertCleanError(await ps2.done), /closed the connection before the end of the session/);
    assert.deepEqual(
      readdirSync(remote).filter((f) => f.endsWith('.img')),
      [],
      'the page server kept nothing',
    );
    await verify(t, 1, 'after the failed dumps');
    process.kill(holder, 'SIGKILL');
    reap(holder);
  },
);

e2e('a page server killed in the middle of a session leaves only a hidden staging directory, which the next one removes', async (c) => {
  const dir = c.subdir('remote');
  const p = port();
  const ps = runCriuAsync(['page-server', '-D', dir, '--port', String(p)]);
  await untilListening(p);
  const s = net.connect(p, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.write(Buffer.concat([iov(4, 0n, 0n, (42n << 8n) | 1n), iov((4 << 16) | 6, 64n, 0x10000n, (42n << 8n) | 1n), Buffer.alloc(4096 * 8)]));
  s.on('error', () => {});
  // The open answer (has_parent) says the page server got that far.
  await new Promise((r) => s.once('data', r));
  await new Promise((r) => setTimeout(r, 200));
  process.kill(ps.pid, 'SIGKILL');
  await ps.done;
  s.destroy();
  const left = readdirSync(dir);
  assert.deepEqual(
    left.filter((f) => !f.startsWith('.criu-ts-page-server.')),
    [],
    `nothing that looks like images: ${left}`,
  );
  assert.equal(left.length, 1, 'the staging directory of the killed one');
  const p2 = port();
  const next = runCriuAsync(['page-server', '-D', dir, '--port', String(p2)]);
  await untilListening(p2);
  await rawClient(p2, iov(0x1023, 0n, 0n, 0n));
  assertOk(await next.done);
  assert.deepEqual(readdirSync(dir), ['criu-ts-manifest-page-server.json'], 'the next session removed it');
});

e2e(
  'a parent and child sharing anonymous and memfd memory, through a page server: shared memory pagemaps go too, and they share it again',
  async (c) => {
    const t = startTarget([workload('sharer'), '-f', join(c.dir, 'shared.txt'), '-m', '-M'], { logFile: join(c.dir, 'sharer.log') });
    const lines = (role: string) => readLines(t.log).filter((l) => l.startsWith(`${role} n=`));
    for (let i = 0; i < 100 && (lines('P').length < 3 || lines('C').length < 3); i++) await new Promise((r) => setTimeout(r, 50));
    const local = c.subdir('local'),
      remote = c.subdir('remote');
    const p = port();
    const ps = await tsPageServer(remote, p);
    dumpAndReap(t.pid, local, ['--page-server', '--address', '127.0.0.1', '--port', String(p)]);
    assertOk(await ps.done);
    const shmem = readdirSync(remote).filter((f) => f.startsWith('pagemap-shmem-'));
    assert.equal(shmem.length, 2, `the anonymous shared page and the memfd went to the page server: ${readdirSync(remote)}`);
    merge(local, remote);
    const at = { P: lines('P').length, C: lines('C').length };
    restoreDetached(remote, t.pid);
    for (const d of descendants(t.pid)) adopt(d);
    for (let i = 0; i < 200 && (lines('P').length < at.P + 4 || lines('C').length < at.C + 4); i++)
      await new Promise((r) => setTimeout(r, 50));
    const last = (role: string) =>
      Object.fromEntries(
        lines(role)
          .at(-1)!
          .slice(2)
          .split(' ')
          .map((kv) => kv.split('=')),
      );
    const P = last('P'),
      C = last('C');
    // Each sees the other's latest count, through both shared pages: they share them again.
    assert.ok(
      Number(P.peer) >= Number(C.n) - 1 && Number(P.mpeer) >= Number(C.n) - 1,
      `parent sees the child: ${JSON.stringify(P)} ${JSON.stringify(C)}`,
    );
    assert.ok(
      Number(C.peer) >= Number(P.n) - 1 && Number(C.mpeer) >= Number(P.n) - 1,
      `child sees the parent: ${JSON.stringify(P)} ${JSON.stringify(C)}`,
    );
    assert.ok(Number(P.n) > at.P + 2, 'the parent went on counting');
    for (const d of descendants(t.pid)) process.kill(d, 'SIGKILL');
    process.kill(t.pid, 'SIGKILL');
    for (const d of descendants(t.pid)) reap(d);
    reap(t.pid);
  },
);

e2e(
  "page server and dump in one directory, started together (ZDTM's --page-server mode): restored from there, both manifests checked",
  async (c) => {
    const t = await dirtier(c);
    const dir = c.subdir('img');
    const p = port();
    // Not waited for: the dump's connection is tried again while the page server starts.
    const ps = runCriuAsync(['page-server', '--port', String(p), '--log-file', 'page-server.log', '--images-dir', dir]);
    assertOk(dump(t.pid, dir, ['--shell-job', '--page-server', '--address', '127.0.0.1', '--port', String(p)]));
    reap(t.pid);
    assertOk(await ps.done);
    assert.ok(existsSync(join(dir, 'criu-ts-manifest.json')) && existsSync(join(dir, 'criu-ts-manifest-page-server.json')));
    restoreDetached(dir, t.pid, ['--shell-job']);
    await verify(t, 1, 'criu-ts, one directory');
    kill(t);
  },
);
