/**
 * TCP and UDP sockets: listeners (v4, v6-only, dual-stack) with their options, UDP bound and
 * connected, UDP-Lite, restored and serving; established connections with a peer outside
 * the tree under --tcp-established (dump -R, and dump + restore), --tcp-close, and the refusals.
 * The workloads check their own sockets after restore and print "BAD" when something differs.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { sock, pidfdOpen, pidfdGetfd, close } from '../../src/kernel/index.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  assertCleanError,
  assertRunningFree,
  assertOk,
  adopt,
  waitExit,
  waitForLine,
  lastCounter,
  readLines,
  sleep,
  SLOW,
  CRIU_BIN,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restore, restoreDetached, heldDump, lockTable, tableExists } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { client as rpcClient, skip as rpcSkip } from '../lib/rpc-client.ts';

/** A base port for this run, clear of the ephemeral range (32768-60999). */
const base = (n: number): number => 20000 + ((process.pid * 16 + n * 8) % 12000);

function greeting(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    let got = '';
    s.on('data', (d) => {
      got += d.toString();
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
    s.setTimeout(3000 * SLOW, () => {
      s.destroy();
      reject(new Error(`no greeting from ${host}:${port}`));
    });
  });
}

function udpEcho(type: 'udp4', port: number, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(type);
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`no echo from port ${port}`));
    }, 3000 * SLOW);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m.toString());
    });
    s.send(msg, port, '127.0.0.1');
  });
}

/** The first "tick N" the workload's connected UDP socket sends to [::1]:port. */
function tick(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp6');
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`no tick on [::1]:${port}`));
    }, 3000 * SLOW);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(Number(/^tick (\d+)$/.exec(m.toString())?.[1]));
    });
    s.bind(port, '::1');
  });
}

/** Every service of inetsrv answers, and its own checks pass. */
async function checkServer(b: number, log: string): Promise<void> {
  assert.equal(await greeting(b, '127.0.0.1'), 'hello\n');
  assert.equal(await greeting(b + 1, '::1'), 'hello\n');
  assert.equal(await greeting(b + 2, '127.0.0.1'), 'hello\n', 'the dual-stack listener takes IPv4');
  assert.equal(await greeting(b + 2, '::1'), 'hello\n');
  assert.equal(await udpEcho('udp4', b + 3, 'ping'), 'echo:ping');
  assert.ok((await tick(b + 5)) >= 0);
  const from = readLines(log).length;
  await waitForLine(log, /^i=\d+/, 3000 * SLOW, from);
  const bad = readLines(log).filter((l) => /BAD|bad/.test(l));
  assert.deepEqual(bad, [], 'the workload finds its sockets as it set them');
}

e2e('listening TCP v4/v6/dual-stack and UDP/UDP-Lite sockets come back with their options and serve', async (c) => {
  const b = base(0);
  const t = startTarget([workload('inetsrv'), String(b)], { logFile: join(c.dir, 'inetsrv.log') });
  await waitForLine(t.log, /^i=2 ok/);
  await checkServer(b, t.log);

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const before = lastCounter(t.log);
  restoreDetached(img, t.pid);
  await waitForLine(t.log, (l) => /^i=(\d+)/.test(l) && Number(/^i=(\d+)/.exec(l)![1]) > before + 1, 5000 * SLOW);
  await checkServer(b, t.log);
  // UDP-Lite came back as UDP-Lite: the workload checks SO_PROTOCOL; crit reads the entry.
  const files = execFileSync(
    process.execPath,
    [join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts'), 'crit', 'show', join(img, 'files.img')],
    { encoding: 'utf8' },
  );
  assert.match(files, /"proto": "UDPLITE"/);
  killAndReap(t.pid);
});

/** A peer outside the tree, and the dumped client connected to it (v4 or v6). */
async function connection(
  c: { dir: string },
  port: number,
  host: string,
  env: Record<string, string> = {},
): Promise<{ peer: { pid: number; log: string }; client: { pid: number; log: string } }> {
  const peer = startTarget([workload('tcpconn'), 'peer', String(port)], { logFile: join(c.dir, `peer-${port}.log`) });
  await waitForLine(peer.log, /^listening/);
  const client = startTarget([workload('tcpconn'), 'client', host, String(port)], { logFile: join(c.dir, `client-${port}.log`), env });
  await waitForLine(client.log, /^rx=[1-9]/);
  await waitForLine(peer.log, /^rx=[1-9]/);
  return { peer, client };
}

const rxOf = (log: string): number => {
  const l = readLines(log)
    .filter((x) => x.startsWith('rx='))
    .pop();
  return l ? Number(/^rx=(\d+)/.exec(l)![1]) : 0;
};

/** Both ends still get the right stream, well past what they had: nothing lost or doubled. */
async function streamsGoOn(ends: Array<{ log: string }>, past: number[]): Promise<void> {
  for (const [i, e] of ends.entries()) {
    const want = past[i] + 20_000;
    await waitForLine(e.log, (l) => /^rx=(\d+)/.test(l) && Number(/^rx=(\d+)/.exec(l)![1]) > want, 10_000 * SLOW);
  }
  for (const e of ends)
    assert.deepEqual(
      readLines(e.log).filter((l) => /^(BAD|ERR)/.test(l)),
      [],
      readFileSync(e.log, 'utf8').slice(-300),
    );
}

/** A copy of the client's socket (fd 3), closed at once but for the caller's one look. */
function copyOfSocket(pid: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    const c = pidfdGetfd(pidfd, 3);
    setImmediate(() => close(c));
    return c;
  } finally {
    close(pidfd);
  }
}

for (const [name, host] of [
  ['IPv4', '127.0.0.1'],
  ['IPv6', '::1'],
] as const) {
  e2e(`an established ${name} connection to a peer outside the tree survives dump -R and dump + restore (--tcp-established)`, async (c) => {
    const port = base(host === '::1' ? 2 : 1);
    // The client lives through a killed criu-ts below, which can leave it one call that meets
    // repair mode before the guardian turns it off: it reports that call and goes on.
    const { peer, client } = await connection(c, port, host, { TCPCONN_TOLERATE: '1' });
    const transient = (): string[] => readLines(client.log).filter((l) => l.startsWith('TRANSIENT'));

    // Without --tcp-established the connection is refused, and both ends go on.
    const line = assertCleanError(dump(client.pid, c.subdir('refused')));
    assert.match(line, /an established TCP connection; --tcp-established dumps it/);
    assertRunningFree(client.pid);

    // A dump that fails once the connection is in repair mode turns repair off again.
    const fdir = c.subdir('failed');
    const failed = dump(client.pid, fdir, ['--tcp-established'], { env: { CRIU_TS_FAULT: 'write-images' } });
    assert.equal(failed.code, 1, failed.stderr);
    assert.ok(
      readLines(join(fdir, 'dump.log')).some((l) => /TCP \d+ bytes to read/.test(l)),
      'the connection was frozen and saved',
    );
    assertRunningFree(client.pid);
    await streamsGoOn([client, peer], [rxOf(client.log), rxOf(peer.log)]);

    // criu-ts killed (SIGKILL) with the connection in repair mode: its guardian turns repair off.
    const kdir = c.subdir('killed');
    const criu = await heldDump(client.pid, kdir, ['--tcp-established'], { CRIU_TS_RUN_DIR: c.subdir('run') });
    assert.equal(sock.getsockoptInt(copyOfSocket(client.pid), sock.SOL.TCP, sock.TCP.REPAIR), 1, 'the connection is in repair mode');
    assert.deepEqual(transient(), [], 'no call met repair mode while criu-ts ran');
    const guardian = Number(/TCP repair guardian: pid (\d+)/.exec(readFileSync(join(kdir, 'dump.log'), 'utf8'))?.[1]);
    assert.ok(guardian > 0, 'the dump started a guardian');
    adopt(guardian); // ours once criu-ts is gone
    criu.kill();
    assert.equal(await criu.ended, 'SIGKILL');
    await streamsGoOn([client, peer], [rxOf(client.log), rxOf(peer.log)]);
    assert.ok(!tableExists(lockTable(join(kdir, 'dump.log'))), 'the guardian removed the network lock');
    const seen = transient().length;
    assert.ok(seen <= 2, `a moment of repair mode at most: ${seen} calls met it`);

    const rdir = c.subdir('leave-running');
    const r1 = dump(client.pid, rdir, ['-R', '--tcp-established']);
    assert.equal(r1.code, 0, r1.stderr);
    assertRunningFree(client.pid);
    assert.ok(readLines(join(rdir, 'dump.log')).some((l) => /network locked for [\d.]+ ms$/.test(l)));
    assert.ok(!tableExists(lockTable(join(rdir, 'dump.log'))), 'no lock is left after dump -R');
    await streamsGoOn([client, peer], [rxOf(client.log), rxOf(peer.log)]);

    // dump + restore: the peer keeps sending while the client is gone; the network lock
    // (nftables) keeps its segments from drawing a reset until the restored socket is there.
    const img = c.subdir('img');
    dumpAndReap(client.pid, img, ['--tcp-established']);
    assert.ok(
      readLines(join(img, 'dump.log')).some((l) => /image tcp-stream-[0-9a-f]+\.img/.test(l)),
      'a tcp-stream image',
    );
    assert.ok(readLines(join(img, 'dump.log')).some((l) => /network lock kept/.test(l)));
    const table = lockTable(join(img, 'dump.log'));
    assert.ok(tableExists(table), 'the lock stays between dump and restore');
    await sleep(300);
    restoreDetached(img, client.pid, ['--tcp-established']);
    assert.ok(!tableExists(table), 'the restore removed the lock');
    assert.ok(readLines(join(img, 'restore.log')).some((l) => /network locked for [\d.]+ ms of the restore/.test(l)));
    await streamsGoOn([client, peer], [rxOf(client.log), rxOf(peer.log)]);
    assert.equal(transient().length, seen, 'no call met repair mode after the killed dump');
    killAndReap(client.pid);
    killAndReap(peer.pid);
  });
}

e2e('--tcp-close: an established connection comes back closed; --skip-in-flight drops pending connections', async (c) => {
  const port = base(3);
  const { peer, client } = await connection(c, port, '127.0.0.1');
  const img = c.subdir('img');
  dumpAndReap(client.pid, img, ['--tcp-close']);
  assert.ok(!readLines(join(img, 'dump.log')).some((l) => /tcp-stream/.test(l)), 'no stream saved');
  // The peer saw the connection end when the client was killed; the restored client finds
  // its socket closed, and its next send fails.
  await waitForLine(peer.log, /^ERR/, 5000 * SLOW);
  const from = readLines(client.log).length;
  adopt(client.pid);
  assertOk(restore(img, ['-d', '--tcp-close']));
  assert.equal((await waitExit(client.pid, 5000 * SLOW))?.code, 4);
  assert.match(readLines(client.log).slice(from).join('\n'), /^ERR send: (Broken pipe|Transport endpoint is not connected)/m);
  killAndReap(peer.pid);

  // A listener with a connection nobody accepted yet: refused, or dropped on request.
  const b = base(4);
  const srv = startTarget([workload('inetsrv'), String(b)], { logFile: join(c.dir, 'inetsrv.log') });
  await waitForLine(srv.log, /^i=1 ok/);
  execFileSync('kill', ['-STOP', String(srv.pid)]);
  const pending = net.connect({ port: b, host: '127.0.0.1' });
  pending.on('error', () => {});
  await new Promise((r) => pending.on('connect', r));
  const refused = assertCleanError(dump(srv.pid, c.subdir('in-flight')));
  assert.match(refused, /1 connection\(s\) not accepted yet; --skip-in-flight drops them/);
  const img2 = c.subdir('skip');
  dumpAndReap(srv.pid, img2, ['--skip-in-flight']);
  pending.destroy();
  // It was dumped stopped, and comes back stopped.
  adopt(srv.pid);
  assertOk(restore(img2, ['-d']));
  execFileSync('kill', ['-CONT', String(srv.pid)]);
  await checkServer(b, srv.log);
  killAndReap(srv.pid);
});

e2e('python3 -m http.server with a client in the middle of a request: dump + restore, then the request is answered', async (c) => {
  const port = base(5);
  const www = c.subdir('www');
  writeFileSync(join(www, 'hello.txt'), 'hello from before the dump\n');
  const srv = startTarget(['/usr/bin/python3', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', www, String(port)], {
    logFile: join(c.dir, 'http.log'),
  });
  await waitForLine(srv.log, /Serving HTTP/);
  // The client sends half a request: the server's handler thread waits for the rest.
  const client = net.connect({ port, host: '127.0.0.1' });
  await new Promise((r) => client.on('connect', r));
  let reply = '';
  client.on('data', (d) => {
    reply += d.toString();
  });
  client.write('GET /hello.txt HTTP/1.1\r\nHost: x\r\n');
  await sleep(300);
  // The network lock (nftables by default) keeps the client's segments from a reset while the server is gone.
  const img = c.subdir('img');
  dumpAndReap(srv.pid, img, ['--tcp-established']);
  restoreDetached(img, srv.pid, ['--tcp-established']);
  client.write('\r\n');
  const deadline = Date.now() + 5000 * SLOW;
  while (!reply.includes('hello from before the dump') && Date.now() < deadline) await sleep(50);
  assert.match(reply, /^HTTP\/1\.0 200 OK/);
  assert.match(reply, /hello from before the dump/);
  client.destroy();
  // The restored listener serves new clients too.
  const res = await fetch(`http://127.0.0.1:${port}/hello.txt`);
  assert.equal(await res.text(), 'hello from before the dump\n');
  killAndReap(srv.pid);
});

e2e(
  'over RPC (pycriu, swrk): tcp_established and network_lock dump an established connection, and its restore brings it back',
  async (c) => {
    const port = base(5);
    const { peer, client: cl } = await connection(c, port, '127.0.0.1');
    const img = c.subdir('img');
    const d = rpcClient('dump', CRIU_BIN, img, String(cl.pid), '0', 'tcp');
    assert.equal(d.ok, true, JSON.stringify(d));
    assert.match(
      readFileSync(join(img, 'dump.log'), 'utf8'),
      /network lock kept/,
      'the nftables lock asked for (network_lock 2) was taken',
    );
    await waitExit(cl.pid, 10_000);
    const past = [rxOf(cl.log), rxOf(peer.log)];
    const r = rpcClient('restore', CRIU_BIN, img, 'tcp');
    adopt(cl.pid);
    assert.equal(r.ok, true, JSON.stringify(r));
    await streamsGoOn([cl, peer], past);
    killAndReap(cl.pid);
    killAndReap(peer.pid);
  },
  { skip: rpcSkip },
);
