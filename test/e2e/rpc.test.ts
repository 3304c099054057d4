/**
 * CRIU's RPC: pycriu (Debian's criu package) drives criu-ts over `swrk` as it drives CRIU;
 * `criu-ts service` serves many requests and clients and survives bad ones; notifications
 * come in CRIU's order; a client that fails a notification or goes away mid-dump leaves the
 * tree running as it was.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  assertRunningFree,
  assertCleanError,
  killAndReap,
  readLines,
  adopt,
  procStat,
  isAlive,
  waitFor,
  CRIU_BIN,
  SLOW,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { client, skip, type Json } from '../lib/rpc-client.ts';
import { decodeMessage } from '../../src/images/index.ts';

const EBADRQC = 56;
async function counter(c: { dir: string }, name = 'counter.log') {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, name) });
  await waitForCounter(t.log, 2);
  return t;
}

/** The tree runs untraced and still counts, and the dump left no images behind. */
async function runsOn(t: { pid: number; log: string }, images?: string): Promise<void> {
  assertRunningFree(t.pid);
  await waitForCounter(t.log, -1, 5000, readLines(t.log).length);
  if (images)
    assert.deepEqual(
      readdirSync(images).filter((f) => f.endsWith('.img')),
      [],
      'no partial images',
    );
}

e2e(
  "pycriu over swrk: dump and restore of a C workload; an unsupported request gets CRIU's error shape",
  async (c) => {
    const t = await counter(c);
    const img = c.subdir('img');
    const d = client('dump', CRIU_BIN, img, String(t.pid), '0');
    assert.equal(d.ok, true, JSON.stringify(d));
    await waitFor(() => !isAlive(t.pid) || procStat(t.pid)?.state === 'Z', 5000 * SLOW, 'the dumped tree to be killed');
    killAndReap(t.pid);
    assert.match(readFileSync(join(img, 'dump.log'), 'utf8'), /RPC DUMP from pid \d+ \(swrk\)/);
    const mark = readLines(t.log).length;
    const r = client('restore', CRIU_BIN, img);
    adopt(t.pid);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.match(r.resp, new RegExp(`pid: ${t.pid}\\b`));
    assertRunningFree(t.pid);
    await waitForCounter(t.log, -1, 10_000, mark);
    // Again, while the restored tree runs: its pid is taken, EEXIST as CRIU answers.
    const again = client('restore', CRIU_BIN, img);
    assert.deepEqual([again.ok, again.errno, again.resp_typ], [false, 17, 2], JSON.stringify(again));
    assertRunningFree(t.pid);
    killAndReap(t.pid);

    const t2 = await counter(c, 'counter2.log');
    const bad = c.subdir('bad');
    const e = client('refused', CRIU_BIN, bad, String(t2.pid));
    assert.deepEqual([e.ok, e.external, e.errno, e.typ, e.resp_typ], [false, true, EBADRQC, 1, 1], JSON.stringify(e));
    assert.match(readFileSync(join(bad, 'dump.log'), 'utf8'), /not supported yet: auto_dedup/);
    assert.equal(e.pre_dump.ok, true, `PRE_DUMP through pycriu: ${JSON.stringify(e.pre_dump)}`);
    assert.match(readFileSync(join(bad, 'pre-dump.log'), 'utf8'), /RPC PRE_DUMP from pid \d+ \(swrk\)/);
    assert.ok(existsSync(join(bad, `pagemap-${t2.pid}.img`)), 'the pre-dump saved the memory');
    await runsOn(t2);
    // Its tracking holder is ours to end once the tree is done with.
    const holder = (JSON.parse(readFileSync(join(bad, 'criu-ts-track.json'), 'utf8')) as { holder: number }).holder;
    killAndReap(holder);
    killAndReap(t2.pid);
  },
  { skip },
);

e2e(
  "notifications in CRIU's order for dump and restore; a failed post-dump leaves the tree running",
  async (c) => {
    const t = await counter(c);
    const img = c.subdir('img');
    const n: Json = {};
    n.dump = client('notify', CRIU_BIN, c.subdir('img-R'), String(t.pid), 'dump');
    n['dump-kill'] = client('notify', CRIU_BIN, img, String(t.pid), 'dump-kill');
    await waitFor(() => !isAlive(t.pid) || procStat(t.pid)?.state === 'Z', 5000 * SLOW, 'the dumped tree to be killed');
    killAndReap(t.pid);
    n.restore = client('notify', CRIU_BIN, img, String(t.pid), 'restore');
    adopt(t.pid);
    const names = (k: string) => (n[k].notes as [string, number | null][]).map(([s]) => s);
    assert.deepEqual(names('dump'), ['pre-dump', 'query-ext-files', 'post-dump']);
    assert.deepEqual(names('dump-kill'), ['pre-dump', 'query-ext-files', 'post-dump']);
    assert.deepEqual(names('restore'), ['pre-restore', 'post-restore', 'pre-resume', 'post-resume'], JSON.stringify(n.restore));
    assert.equal(n.restore.notes[1][1], t.pid, 'post-restore carries the root pid');
    for (const k of ['dump', 'dump-kill', 'restore'])
      assert.deepEqual([n[k].final.success, n[k].exit], [true, 0], `${k}: ${JSON.stringify(n[k])}`);
    assert.equal(n.restore.final.pid, t.pid);
    assertRunningFree(t.pid);
    const nack = client('nack', CRIU_BIN, c.subdir('nack'), String(t.pid));
    assert.deepEqual([nack.final.type, nack.final.success, nack.exit], ['DUMP', false, 1], JSON.stringify(nack));
    assert.match(nack.final.cr_errmsg, /script error at post-dump/);
    await runsOn(t);
    killAndReap(t.pid);
  },
  { skip },
);

e2e(
  'an RPC client that disconnects mid-dump leaves the tree running as it was',
  async (c) => {
    const t = await counter(c);
    for (const at of ['pre-dump', 'query-ext-files', 'post-dump', 'none']) {
      const img = c.subdir(`img-${at}`);
      const r = client('disconnect', CRIU_BIN, img, String(t.pid), at);
      if (at !== 'none') assert.equal(r.at, at, JSON.stringify(r));
      assert.notEqual(r.exit, 0, `swrk exit status after a disconnect at ${at}`);
      await runsOn(t, img);
    }
    // Killed while it dumps: it answers, puts the tree back and dies of the signal.
    const img = c.subdir('img-sigterm');
    const k = client('sigterm', CRIU_BIN, img, String(t.pid), { CRIU_TS_HANG: 'files' });
    assert.deepEqual([k.final?.type, k.final?.success, k.exit], ['DUMP', false, -15], JSON.stringify(k));
    assert.match(k.final.cr_errmsg, /interrupted by SIGTERM/);
    await runsOn(t, img);
    killAndReap(t.pid);
  },
  { skip },
);

e2e("--action-script on the command line: CRIU's actions and environment; a failing script fails the dump", async (c) => {
  const out = join(c.dir, 'actions.txt'),
    script = join(c.dir, 'action.sh');
  writeFileSync(
    script,
    `#!/bin/sh\necho "$CRTOOLS_SCRIPT_ACTION \${CRTOOLS_INIT_PID:--} $CRTOOLS_IMAGE_DIR" >> ${out}\n[ "$CRTOOLS_SCRIPT_ACTION" != "$FAIL_AT" ]\n`,
  );
  chmodSync(script, 0o755);
  const t = await counter(c);
  const bad = c.subdir('bad');
  const line = assertCleanError(dump(t.pid, bad, ['--action-script', script], { env: { FAIL_AT: 'post-dump' } }));
  assert.match(line, /action script .* failed at post-dump with exit code 1/);
  await runsOn(t, bad);
  writeFileSync(out, '');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img, ['--action-script', script]);
  restoreDetached(img, t.pid, ['--action-script', script]);
  assert.deepEqual(readLines(out), [
    `pre-dump - ${img}`,
    `post-dump - ${img}`,
    `pre-restore - ${img}`,
    `post-restore ${t.pid} ${img}`,
    `pre-resume ${t.pid} ${img}`,
    `post-resume ${t.pid} ${img}`,
  ]);
  killAndReap(t.pid);
});

e2e(
  'criu-ts service: 1000 requests from one client, several clients in turn, malformed requests answered',
  async (c) => {
    const sock = join(c.dir, 'criu_service.socket'),
      pidfile = join(c.dir, 'service.pid');
    const svc = spawn(
      CRIU_BIN,
      ['service', '--address', sock, '--pidfile', pidfile, '--status-fd', '3', '-v4', '-o', join(c.dir, 'service.log')],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    svc.stderr!.on('data', (b: Buffer) => {
      stderr += b;
    });
    try {
      const status = svc.stdio[3] as NodeJS.ReadableStream;
      await new Promise<void>((resolve, reject) => {
        status.once('data', (b: Buffer) => (b[0] === 0 ? resolve() : reject(new Error(`status byte ${b[0]}`))));
        svc.once('exit', (code) => reject(new Error(`service exited with ${code}: ${stderr}`)));
      });
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(svc.pid));
      const many = client('service-many', sock, '1000');
      assert.deepEqual(many, { ok: 1000, kept: 1000 });

      const t = await counter(c);
      for (let i = 0; i < 3; i++) {
        const img = c.subdir(`svc-${i}`);
        const p = client('service-pycriu', sock, img);
        assert.equal(p.check.ok, true, JSON.stringify(p.check));
        assert.deepEqual([p.refused.ok, p.refused.errno, p.refused.resp_typ], [false, EBADRQC, 1], JSON.stringify(p.refused));
        const d = client('dump', CRIU_BIN, img, String(t.pid), '1');
        assert.equal(d.ok, true, JSON.stringify(d));
        await runsOn(t);
      }

      const q = client('requests', sock);
      assert.deepEqual(
        [q.feature_check.type, q.feature_check.success, q.feature_check.features],
        ['FEATURE_CHECK', true, [true, false, false]],
      );
      assert.deepEqual([q.wait_pid_none.type, q.wait_pid_none.success, q.wait_pid_none.cr_errno], ['WAIT_PID', false, 22]);
      assert.deepEqual(
        [q.wait_pid_stranger.type, q.wait_pid_stranger.success, q.wait_pid_stranger.cr_errno],
        ['WAIT_PID', false, 10 /* ECHILD */],
      );
      // A PRE_DUMP with a bad images directory fd is answered as a failed PRE_DUMP.
      assert.deepEqual([q.pre_dump.type, q.pre_dump.success], ['PRE_DUMP', false], JSON.stringify(q.pre_dump));
      assert.ok(q.pre_dump.cr_errmsg, 'with a message');
      // Without an images directory, as CRIU answers them.
      for (const [k, type] of [
        ['cpuinfo_dump', 'CPUINFO_DUMP'],
        ['page_server', 'PAGE_SERVER'],
      ]) {
        assert.deepEqual([q[k].type, q[k].success, q[k].cr_errno], [type, false, EBADRQC], `${k}: ${JSON.stringify(q[k])}`);
      }

      const m = client('malformed', sock);
      for (const k of ['truncated', 'garbage', 'huge_length', 'no_type', 'unknown_type']) {
        assert.deepEqual([m[k]?.type, m[k]?.success], ['EMPTY', false], `${k}: ${JSON.stringify(m[k])}`);
        assert.ok(m[k].cr_errmsg, `${k} has a message`);
      }
      for (const k of ['notify_outside', 'keep_open_dump'])
        assert.deepEqual([m[k]?.type, m[k]?.success, m[k]?.cr_errno], ['EMPTY', false, EBADRQC], `${k}: ${JSON.stringify(m[k])}`);
      assert.deepEqual([m.big_unknown_field?.type, m.big_unknown_field?.success], ['VERSION', true], JSON.stringify(m.big_unknown_field));
      assert.deepEqual([m.after.type, m.after.success], ['VERSION', true], 'the service answers after the malformed requests');
      // A silent client holds the others for 10 s at most, then gets ETIMEDOUT.
      const quiet = client('silent', sock);
      assert.deepEqual([quiet.silent?.type, quiet.silent?.success, quiet.silent?.cr_errno], ['EMPTY', false, 110], JSON.stringify(quiet));
      assert.deepEqual([quiet.second?.type, quiet.second?.success], ['VERSION', true]);
      assert.ok(quiet.second_after_s >= 9 && quiet.second_after_s < 20, `served after ${quiet.second_after_s} s`);
      assert.equal(svc.exitCode, null, 'the service is still up');
      assert.ok(!existsSync(join(c.dir, 'core')), 'no core dump');
      killAndReap(t.pid);
    } finally {
      svc.kill('SIGKILL');
      await new Promise((r) => (svc.exitCode !== null ? r(null) : svc.once('exit', r)));
    }
  },
  { skip },
);

e2e(
  'criu-ts service -d returns once the daemon listens, in its own session, its pid in --pidfile',
  (c) => {
    const sock = join(c.dir, 'd.socket'),
      pidfile = join(c.dir, 'd.pid');
    const r = spawnSync(CRIU_BIN, ['service', '-d', '--address', sock, '--pidfile', pidfile], { encoding: 'utf8', timeout: 30_000 * SLOW });
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(readFileSync(pidfile, 'utf8'));
    adopt(pid);
    assert.equal(procStat(pid)?.sid, pid, 'the daemon leads its own session');
    assert.deepEqual(client('service-many', sock, '5'), { ok: 5, kept: 5 });
    killAndReap(pid);
  },
  { skip },
);

/**
 * One swrk request from Python (a SOCK_SEQPACKET pair, as go-criu makes it), under strace: the
 * answers in hex and the programs the launcher ran.
 */
function swrkRaw(dir: string, requests: string[]): { answers: string[]; execs: string[] } {
  const trace = join(dir, `execve-${Date.now()}.txt`);
  const py = [
    'import socket, subprocess, sys',
    'a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)',
    `p = subprocess.Popen(['strace', '-f', '-qq', '-e', 'trace=execve', '-o', sys.argv[1], sys.argv[2], 'swrk', str(b.fileno())], pass_fds=[b.fileno()], stdin=subprocess.DEVNULL)`,
    'b.close()',
    'for r in sys.argv[3:]:',
    '    a.send(bytes.fromhex(r)); print(a.recv(65536).hex())',
    'a.close(); sys.exit(p.wait())',
  ].join('\n');
  const r = spawnSync('python3', ['-c', py, trace, CRIU_BIN, ...requests], { encoding: 'utf8', timeout: 30_000 * SLOW });
  assert.equal(r.status, 0, r.stderr);
  const execs = readFileSync(trace, 'utf8')
    .split('\n')
    .map((l) => /execve\("([^"]+)"/.exec(l)?.[1])
    .filter((x): x is string => !!x && !/ENOENT/.test(x));
  return { answers: r.stdout.trim().split('\n'), execs };
}

e2e(
  'swrk: a version probe is answered by the launcher without Node, byte for byte as Node answers it; other requests reach Node',
  async (c) => {
    const VERSION = '080a';
    // The first probe may be Node's (it leaves the answer for the launcher); the next is the launcher's.
    const first = swrkRaw(c.dir, [VERSION]);
    const second = swrkRaw(c.dir, [VERSION]);
    assert.equal(second.answers[0], first.answers[0], 'the same answer');
    const resp = decodeMessage('criu_resp', Buffer.from(second.answers[0], 'hex'));
    assert.deepEqual([resp.type, resp.success, resp.version?.major_number, resp.version?.minor_number], [10, true, 4, 2]);
    assert.ok(
      second.execs.every((e) => !/\/node$/.test(e)),
      `no Node started: ${second.execs.join(' ')}`,
    );
    assert.ok(
      second.execs.some((e) => /\/cat$/.test(e)),
      `the answer replayed: ${second.execs.join(' ')}`,
    );
    // FEATURE_CHECK, and VERSION kept open then VERSION again: Node, given the request the launcher read.
    const feature = swrkRaw(c.dir, ['0809']);
    assert.deepEqual(
      [decodeMessage('criu_resp', Buffer.from(feature.answers[0], 'hex')).type, feature.execs.some((e) => /\/node$/.test(e))],
      [9, true],
    );
    const kept = swrkRaw(c.dir, ['080a2001', VERSION]);
    assert.deepEqual(
      kept.answers.map((h) => decodeMessage('criu_resp', Buffer.from(h, 'hex')).type),
      [10, 10],
    );
    assert.deepEqual(
      readdirSync(join(CRIU_BIN, '..', '..', '.cache', 'bundle')).filter((f) => f.startsWith('swrk-first')),
      [],
      'no request left behind',
    );
  },
);
