/**
 * Real servers from Debian packages (redis-server, nginx with its workers, python3's
 * http.server, a Node HTTP server) with clients connected across `dump -R` and across
 * dump + restore (--tcp-established): each client keeps its one connection, which the same
 * server process goes on serving (redis' CLIENT ID, nginx's $connection and
 * $connection_requests, the Node server's own count, the server end in `ss` owned by the same
 * pid), and new clients are served after. criu-ts's own network lock holds the connections
 * between dump and restore.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, assertOk, assertRunningFree, descendants, waitFor, sleep, type E2EContext } from '../lib/proc.ts';
import { dump, dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { KeepAlive, Resp, serverEnd, startRedis } from '../lib/clients.ts';

/** A port for this run, clear of the ephemeral range (32768-60999) and of inet-sockets' ports. */
const portFor = (n: number): number => 20000 + ((process.pid * 16 + 8 + n) % 12000);

/** Something the held clients must still get, on their own connections. */
type Check = () => Promise<void>;

/**
 * The server tree at `pid` through `dump -R`, then through dump + restore, with `held` checked
 * after each and `fresh` (a new client) too. While the tree is gone, criu-ts's network lock
 * keeps the clients' segments from drawing resets, and a request sent then (`held` again, on
 * the same connection) is answered once the server is back and the lock gone.
 */
async function acrossDumps(c: E2EContext, pid: number, held: Check, fresh: Check): Promise<void> {
  await held();
  assertOk(dump(pid, c.subdir('leave-running'), ['-R', '--tcp-established']));
  assertRunningFree(pid);
  await held();
  await fresh();

  const img = c.subdir('img');
  dumpAndReap(pid, img, ['--tcp-established']);
  assert.match(readFileSync(join(img, 'dump.log'), 'utf8'), /network lock kept/);
  const during = held();
  during.catch(() => {});
  await sleep(100);
  restoreDetached(img, pid, ['--tcp-established']);
  assert.match(readFileSync(join(img, 'restore.log'), 'utf8'), /network locked for [\d.]+ ms/);
  await during;
  await held();
  await fresh();
}

/** The server end of each held connection is owned by `pid` or one of its descendants. */
function ownedByTree(pid: number, port: number, cports: number[]): void {
  const tree = [pid, ...descendants(pid)];
  for (const cp of cports) {
    const owner = serverEnd(port, cp);
    assert.ok(owner !== null && tree.includes(owner), `the connection from port ${cp} is held by ${owner}, not the tree of ${pid}`);
  }
}

e2e(
  'redis-server keeps its data and its connected client (same CLIENT ID) across dump -R and dump + restore, and a reply waiting in its socket arrives whole',
  async (c) => {
    const port = portFor(0);
    const { srv, r } = await startRedis(c.dir, port);
    assert.equal(await r.cmd('SET', 'before', 'dump'), '+OK');
    const id = await r.cmd('CLIENT', 'ID');
    let n = 0;
    await acrossDumps(
      c,
      srv.pid,
      async () => {
        assert.equal(await r.cmd('CLIENT', 'ID'), id, 'the same connection (CLIENT ID)');
        assert.equal(await r.cmd('GET', 'before'), 'dump');
        assert.equal(await r.cmd('SET', `k${++n}`, String(n)), '+OK');
        assert.match(await r.cmd('CLIENT', 'LIST'), new RegExp(`^id=${id.slice(1)} addr=127\\.0\\.0\\.1:${r.localPort} `, 'm'));
        ownedByTree(srv.pid, port, [r.localPort]);
      },
      async () => {
        const f = await Resp.connect(port);
        assert.equal(await f.cmd('GET', `k${n}`), String(n));
        assert.notEqual(await f.cmd('CLIENT', 'ID'), id);
        f.close();
      },
    );

    // A reply the client does not read yet: 4 MiB, most of it still in the server's socket
    // when it is dumped, arrives whole and once after the restore.
    const big = Buffer.alloc(4 << 20, 'redis').toString();
    assert.equal(await r.cmd('SET', 'big', big), '+OK');
    r.sock.pause();
    const reply = r.cmd('GET', 'big');
    await sleep(300);
    const img = c.subdir('queued');
    dumpAndReap(srv.pid, img, ['--tcp-established']);
    const unsent = readFileSync(join(img, 'dump.log'), 'utf8')
      .split('\n')
      .map((l) => Number(/TCP \d+ bytes to read, (\d+) to send/.exec(l)?.[1] ?? 0));
    assert.ok(Math.max(...unsent) > 1 << 16, `the reply waits in the server's send queue (${Math.max(...unsent)} bytes)`);
    restoreDetached(img, srv.pid, ['--tcp-established']);
    r.sock.resume();
    assert.ok((await reply) === big, 'the whole reply, once');
    assert.equal(await r.cmd('CLIENT', 'ID'), id);
    r.close();
    killAndReap(srv.pid);
  },
);

/** nginx's configuration: master + 2 workers, everything under dir, keep-alive connections kept long. */
function nginxConf(dir: string, port: number): string {
  const tmp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/tmp-${k};`).join('\n');
  return `daemon off;
master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  log_format conn '$pid $connection $connection_requests $request_uri $status';
  access_log ${dir}/access.log conn;
  keepalive_timeout 300s;
  keepalive_requests 10000;
${tmp}
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
  }
}
`;
}

e2e('nginx (master and workers) keeps serving its keep-alive connections across dump -R and dump + restore', async (c) => {
  const port = portFor(1);
  // Its workers run as nobody: they must reach the files.
  chmodSync(c.dir, 0o755);
  mkdirSync(join(c.dir, 'www'), { mode: 0o755 });
  writeFileSync(join(c.dir, 'www', 'index.html'), 'hello from nginx\n');
  writeFileSync(join(c.dir, 'nginx.conf'), nginxConf(c.dir, port));
  const srv = startTarget(['/usr/sbin/nginx', '-p', c.dir, '-c', join(c.dir, 'nginx.conf'), '-e', join(c.dir, 'error.log')], {
    logFile: join(c.dir, 'nginx.out'),
    // The master names itself "nginx: master process ..." as soon as it starts.
    execed: (cl) => /^(\/usr\/sbin\/)?nginx\b/.test(cl[0] ?? ''),
  });
  await waitFor(() => descendants(srv.pid).length === 2, 10_000, 'nginx to start its 2 workers');
  // Several keep-alive connections, which the two workers share between them.
  const kas: KeepAlive[] = [];
  for (let k = 0; k < 6; k++) kas.push(await KeepAlive.connect(port, 10_000));
  const access = (): string[][] =>
    readFileSync(join(c.dir, 'access.log'), 'utf8')
      .split('\n')
      .filter((l) => l)
      .map((l) => l.split(' '));
  const requests = kas.map(() => 0);
  const conns: Array<string[] | undefined> = kas.map(() => undefined);
  await acrossDumps(
    c,
    srv.pid,
    async () => {
      for (const [k, ka] of kas.entries()) {
        const uri = `/index.html?client=${k}`;
        const res = await ka.get(uri);
        requests[k]++;
        assert.equal(res.status, 200);
        assert.equal(res.body, 'hello from nginx\n');
        assert.notEqual(res.headers.connection, 'close');
        // The same worker's same connection, one request further.
        const last = await waitFor(() => access().findLast((x) => x[2] === String(requests[k]) && x[3] === uri), 5000, 'the access log');
        conns[k] ??= last.slice(0, 2);
        assert.deepEqual(last.slice(0, 2), conns[k], `request ${requests[k]} of client ${k} came on the same worker's connection`);
      }
      ownedByTree(
        srv.pid,
        port,
        kas.map((ka) => ka.localPort),
      );
    },
    async () => {
      const f = await KeepAlive.connect(port);
      assert.equal((await f.get('/index.html')).body, 'hello from nginx\n');
      assert.equal((await f.get('/index.html')).status, 200);
      f.close();
    },
  );
  c.t.diagnostic(`workers serving the held connections: ${[...new Set(conns.map((x) => x?.[0]))].join(', ')}`);
  assert.equal(descendants(srv.pid).length, 2, 'both workers are back');
  for (const ka of kas) ka.close();
  killAndReap(srv.pid);
});

e2e('python3 -m http.server (HTTP/1.1) keeps serving a keep-alive connection across dump -R and dump + restore', async (c) => {
  const port = portFor(2);
  const www = c.subdir('www');
  writeFileSync(join(www, 'hello.txt'), 'hello from python\n');
  const srv = startTarget(
    ['/usr/bin/python3', '-m', 'http.server', '--protocol', 'HTTP/1.1', '--bind', '127.0.0.1', '--directory', www, String(port)],
    { logFile: join(c.dir, 'http.log') },
  );
  const ka = await KeepAlive.connect(port, 10_000);
  await acrossDumps(
    c,
    srv.pid,
    async () => {
      const res = await ka.get('/hello.txt');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'hello from python\n');
      ownedByTree(srv.pid, port, [ka.localPort]);
    },
    async () => {
      const f = await KeepAlive.connect(port);
      assert.equal((await f.get('/hello.txt')).body, 'hello from python\n');
      f.close();
    },
  );
  ka.close();
  killAndReap(srv.pid);
});

// A Node HTTP server that numbers its connections and each one's requests: the answer tells
// which connection served it, and how many requests that connection had carried.
const NODE_SERVER = `
const http = require('http');
let conns = 0;
const srv = http.createServer((req, res) => {
  const s = req.socket;
  s.requests = (s.requests || 0) + 1;
  const body = 'conn=' + s.conn + ' req=' + s.requests + '\\n';
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});
srv.on('connection', (s) => { s.conn = ++conns; });
srv.keepAliveTimeout = 600000;
srv.headersTimeout = 0;
srv.requestTimeout = 0;
srv.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;
const NODE = '/usr/bin/node';
const nodeMajor = existsSync(NODE) ? Number(/^v(\d+)/.exec(spawnSync(NODE, ['-v'], { encoding: 'utf8' }).stdout)?.[1] ?? 0) : 0;
// The libuv of Node 22 and later keeps an io_uring open, which criu-ts cannot checkpoint yet.
const nodeSkip = nodeMajor === 0 ? 'no /usr/bin/node' : nodeMajor >= 22 ? `Node ${nodeMajor}'s libuv keeps an io_uring` : false;

e2e(
  'a Node HTTP server keeps serving a keep-alive connection (its own count of requests goes on) across dump -R and dump + restore',
  async (c) => {
    const port = portFor(3);
    const srv = startTarget([NODE, '-e', NODE_SERVER, String(port)], { logFile: join(c.dir, 'node.log') });
    const ka = await KeepAlive.connect(port, 15_000);
    let requests = 0;
    await acrossDumps(
      c,
      srv.pid,
      async () => {
        const res = await ka.get('/');
        assert.equal(res.status, 200);
        assert.equal(res.body, `conn=1 req=${++requests}\n`, 'the first connection, one request further');
        ownedByTree(srv.pid, port, [ka.localPort]);
      },
      async () => {
        const f = await KeepAlive.connect(port);
        assert.match((await f.get('/')).body, /^conn=\d+ req=1\n$/);
        assert.match((await f.get('/')).body, /^conn=\d+ req=2\n$/);
        f.close();
      },
    );
    ka.close();
    killAndReap(srv.pid);
  },
  { skip: nodeSkip },
);
