/**
 * The network lock and the TCP states past ESTABLISHED, on real processes talking to a peer
 * outside the dumped tree: half-closed connections (FIN_WAIT2, CLOSE_WAIT) survive dump +
 * restore under the nftables and the iptables lock, the peer's bytes sent in between arriving
 * once; and the bad cases: a peer that resets during the dump, criu-ts killed with the lock
 * taken, a restore whose port is taken, corrupt socket images.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  assertCleanError,
  adopt,
  waitExit,
  waitForLine,
  readLines,
  procStat,
  runCriu,
  sleep,
  SLOW,
} from '../lib/proc.ts';
import { dumpAndReap, restore, restoreDetached, heldDump, lockTable, tableExists } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';
import { sock, pidfdOpen, pidfdGetfd, close } from '../../src/kernel/index.ts';

/** A base port for this run, clear of the ephemeral range (32768-60999) and of inet-sockets' ports. */
const base = (n: number): number => 21000 + ((process.pid * 16 + n * 8) % 11000);
const at = (k: number): number => (7 * k + 3) % 251;
const pattern = (from: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => at(from + i)));

/** iptables rules of the lock on this local port (both directions), v4 or v6. */
const lockRules = (v6: boolean, port: number): string[] =>
  execFileSync(v6 ? 'ip6tables' : 'iptables', ['-w', '-S'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /0xc114/.test(l) && new RegExp(`--[sd]port ${port}\\b`).test(l));

/** A peer in this process: what it received (checked against the stream), and its socket. */
function listen(port: number, host: string, onConn: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  return new Promise((resolve) => srv.listen(port, host, () => resolve(srv)));
}

for (const [name, host] of [
  ['IPv4', '127.0.0.1'],
  ['IPv6', '::1'],
] as const) {
  e2e(
    `a connection in FIN_WAIT2 (${name}) survives dump + restore under the nftables lock; the peer's bytes of the gap arrive once, then its end`,
    async (c) => {
      const port = base(name === 'IPv4' ? 0 : 1);
      let tx = 0;
      let peer: net.Socket | undefined;
      let timer: NodeJS.Timeout | undefined;
      const srv = await listen(port, host, (s) => {
        peer = s;
        s.on('error', () => {});
        timer = setInterval(() => {
          s.write(pattern(tx, 200));
          tx += 200;
        }, 10);
      });
      const t = startTarget([workload('tcphalf'), 'wr', host, String(port)], { logFile: join(c.dir, 'wr.log') });
      try {
        await waitForLine(t.log, /^rx=[1-9]/);
        assert.match(execFileSync('ss', ['-Htn', 'state', 'fin-wait-2', `( dport = :${port} )`], { encoding: 'utf8' }), /\S/, 'FIN_WAIT2');
        const img = c.subdir('img');
        dumpAndReap(t.pid, img, ['--tcp-established']);
        const table = lockTable(join(img, 'dump.log'));
        assert.ok(tableExists(table), 'the lock stays until the restore');
        // The peer goes on sending while the client is gone: held by the lock, not reset.
        await sleep(300);
        assert.ok(!peer?.destroyed, 'the peer saw nothing');
        restoreDetached(img, t.pid, ['--tcp-established']);
        assert.ok(!tableExists(table), 'the restore removed the lock');
        const sentBefore = tx;
        await waitForLine(t.log, (l) => /^rx=(\d+)/.test(l) && Number(/^rx=(\d+)/.exec(l)?.[1]) > sentBefore, 10_000 * SLOW);
        clearInterval(timer);
        peer?.end();
        await waitForLine(t.log, /^eof rx=\d+/, 10_000 * SLOW);
        const last = readLines(t.log).find((l) => l.startsWith('eof'));
        assert.equal(last, `eof rx=${tx}`, 'every byte once, then the end of the stream');
        assert.equal((await waitExit(t.pid, 5000 * SLOW))?.code, 0);
      } finally {
        clearInterval(timer);
        peer?.destroy();
        srv.close();
        killAndReap(t.pid);
      }
    },
  );
}

e2e(
  'a connection in CLOSE_WAIT survives dump + restore under the iptables lock: it still sees the end of stream and keeps sending',
  async (c) => {
    const port = base(2);
    let rx = 0;
    let bad = '';
    let cport = 0;
    const srv = await listen(port, '127.0.0.1', (s) => {
      cport = s.remotePort ?? 0;
      s.on('error', () => {});
      s.end();
      s.on('data', (d: Buffer) => {
        if (!d.equals(pattern(rx, d.length))) bad ||= `bad bytes at ${rx}`;
        rx += d.length;
      });
    });
    const t = startTarget([workload('tcphalf'), 'rd', '127.0.0.1', String(port)], { logFile: join(c.dir, 'rd.log') });
    try {
      await waitForLine(t.log, /^tx=[1-9]/);
      assert.match(execFileSync('ss', ['-Htn', 'state', 'close-wait', `( dport = :${port} )`], { encoding: 'utf8' }), /\S/, 'CLOSE_WAIT');
      const img = c.subdir('img');
      dumpAndReap(t.pid, img, ['--tcp-established', '--network-lock', 'iptables']);
      assert.ok(readLines(join(img, 'dump.log')).some((l) => /network locked with iptables: 1 connection/.test(l)));
      assert.equal(lockRules(false, cport).length, 2, 'both directions are locked until the restore');
      const before = rx;
      restoreDetached(img, t.pid, ['--tcp-established']);
      assert.deepEqual(lockRules(false, cport), [], 'the restore removed the rules');
      const deadline = Date.now() + 10_000 * SLOW;
      while (rx < before + 3000 && Date.now() < deadline) await sleep(50);
      assert.ok(rx >= before + 3000, `the peer got ${rx - before} bytes after the restore`);
      assert.equal(bad, '');
      assert.deepEqual(
        readLines(t.log).filter((l) => /^(BAD|ERR)/.test(l)),
        [],
      );
    } finally {
      srv.close();
      killAndReap(t.pid);
    }
  },
);

/** The client's stream goes on well past where it is, with nothing wrong but repair-mode moments. */
async function goesOn(log: string): Promise<void> {
  const rx = Number(
    /rx=(\d+)/.exec(
      readLines(log)
        .filter((l) => l.startsWith('rx='))
        .pop() ?? '',
    )?.[1],
  );
  await waitForLine(log, (l) => /^rx=(\d+)/.test(l) && Number(/^rx=(\d+)/.exec(l)?.[1]) > rx + 20_000, 10_000 * SLOW);
  assert.deepEqual(
    readLines(log).filter((l) => /^(BAD|ERR)/.test(l)),
    [],
  );
}

e2e('a peer that resets during the dump: dump -R succeeds, the lock goes, and the tree learns of the reset', async (c) => {
  const port = base(3);
  const peer = startTarget([workload('tcpconn'), 'peer', String(port)], { logFile: join(c.dir, 'peer.log') });
  await waitForLine(peer.log, /^listening/);
  const client = startTarget([workload('tcpconn'), 'client', '127.0.0.1', String(port)], { logFile: join(c.dir, 'client.log') });
  try {
    await waitForLine(client.log, /^rx=[1-9]/);
    const dir = c.subdir('img');
    const go = join(c.dir, 'go');
    const held = await heldDump(client.pid, dir, ['-R', '--tcp-established'], { CRIU_TS_HANG_UNTIL: go });
    // The peer dies with bytes unread: its reset is dropped by the lock, the client is frozen.
    killAndReap(peer.pid);
    await sleep(200);
    writeFileSync(go, '');
    assert.equal(await held.ended, 0, readFileSync(join(dir, 'dump.log'), 'utf8').slice(-500));
    assert.ok(!tableExists(lockTable(join(dir, 'dump.log'))), 'the lock is gone');
    // Unlocked and out of repair, the client's next segment draws the reset from the peer's host.
    assert.equal((await waitExit(client.pid, 10_000 * SLOW))?.code, 4);
    assert.match(readLines(client.log).join('\n'), /^ERR (send|recv): (Connection reset by peer|Broken pipe)/m);
  } finally {
    killAndReap(client.pid);
    killAndReap(peer.pid);
  }
});

/** TCP_REPAIR of the client's socket (its fd 3), through a copy. */
function inRepair(pid: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    const c = pidfdGetfd(pidfd, 3);
    try {
      return sock.getsockoptInt(c, sock.SOL.TCP, sock.TCP.REPAIR);
    } finally {
      close(c);
    }
  } finally {
    close(pidfd);
  }
}

e2e(
  'criu-ts killed with the iptables lock taken: its guardian removes the rules and turns repair off, or the next command if both were killed',
  async (c) => {
    const port = base(4);
    const peer = startTarget([workload('tcpconn'), 'peer', String(port)], { logFile: join(c.dir, 'peer.log') });
    await waitForLine(peer.log, /^listening/);
    const client = startTarget([workload('tcpconn'), 'client', '::1', String(port)], {
      logFile: join(c.dir, 'client.log'),
      env: { TCPCONN_TOLERATE: '1' },
    });
    try {
      await waitForLine(client.log, /^rx=[1-9]/);
      const dir = c.subdir('img');
      const held = await heldDump(client.pid, dir, ['--tcp-established', '--network-lock', 'iptables'], {
        CRIU_TS_RUN_DIR: c.subdir('run'),
      });
      const log = readFileSync(join(dir, 'dump.log'), 'utf8');
      const guardian = Number(/TCP repair guardian: pid (\d+)/.exec(log)?.[1]);
      const out = lockRules(true, port).find((l) => l.startsWith('-A OUTPUT')) ?? '';
      held.kill();
      assert.ok(guardian > 0);
      adopt(guardian);
      const cport = Number(new RegExp(`--sport (\\d+) --dport ${port} `).exec(out)?.[1]);
      assert.ok(cport > 0, `the connection is locked: ${out}`);
      assert.equal(await held.ended, 'SIGKILL');
      await waitExit(guardian, 5000 * SLOW);
      assert.deepEqual(lockRules(true, cport), [], 'no rule outlives the dump');
      await goesOn(client.log);
      assert.equal(inRepair(client.pid), 0);

      // criu-ts and its guardian killed together: the rules and repair mode stay until the
      // next criu-ts command, which reads the dump's journal.
      const run = c.subdir('run');
      const img2 = c.subdir('img2');
      const held2 = await heldDump(client.pid, img2, ['--tcp-established', '--network-lock', 'iptables'], { CRIU_TS_RUN_DIR: run });
      const g2 = Number(/TCP repair guardian: pid (\d+)/.exec(readFileSync(join(img2, 'dump.log'), 'utf8'))?.[1]);
      assert.ok(g2 > 0);
      adopt(g2);
      process.kill(g2, 'SIGKILL');
      held2.kill();
      await held2.ended;
      await waitExit(g2, 5000 * SLOW);
      assert.equal(lockRules(true, cport).length, 2, 'the rules are left');
      assert.equal(inRepair(client.pid), 1, 'the socket is left in repair mode');
      const r = runCriu(['check'], { env: { CRIU_TS_RUN_DIR: run } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /turned TCP repair off on 1 socket/);
      assert.match(r.stderr, /removed the network lock \(iptables\)/);
      assert.deepEqual(lockRules(true, cport), []);
      assert.equal(inRepair(client.pid), 0);
      await goesOn(client.log);
    } finally {
      killAndReap(client.pid);
      killAndReap(peer.pid);
    }
  },
);

e2e(
  'a restore whose port is taken fails in one line naming the address, kills what it made and unlocks; corrupt socket images are refused by name',
  async (c) => {
    const port = base(5);
    const www = c.subdir('www');
    const srv = startTarget(['/usr/bin/python3', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', www, String(port)], {
      logFile: join(c.dir, 'http.log'),
    });
    await waitForLine(srv.log, /Serving HTTP/);
    const client = net.connect({ port, host: '127.0.0.1' });
    client.on('error', () => {});
    await new Promise((r) => client.on('connect', r));
    client.write('GET / HTTP/1.1\r\n');
    await sleep(300);
    const img = c.subdir('img');
    dumpAndReap(srv.pid, img, ['--tcp-established']);
    const table = lockTable(join(img, 'dump.log'));
    // Another process takes the listening port meanwhile.
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
    try {
      const line = assertCleanError(restore(img, ['-d', '--tcp-established']));
      assert.match(line, new RegExp(`inet socket \\d+ \\(LISTEN 127\\.0\\.0\\.1:${port}\\): .*EADDRINUSE`));
      assert.equal(procStat(srv.pid), null, 'the restored server was killed');
      assert.ok(!tableExists(table), 'the failed restore unlocked the network');
    } finally {
      squatter.close();
      client.destroy();
    }

    // Corrupt images: each refused in one line that names the image, before any task runs.
    const files = join(img, 'files.img');
    const entries = readMessages(files, 'file_entry');
    const isk = entries.findIndex((e) => e.isk && e.isk.dst_port !== 0);
    assert.ok(isk >= 0, 'the connection is in files.img');
    const refused = (edit: (e: (typeof entries)[number]) => void, re: RegExp): void => {
      const copy = readMessages(files, 'file_entry');
      edit(copy[isk]);
      writeImage(files, 'file_entry', copy);
      try {
        assert.match(assertCleanError(restore(img, ['-d', '--tcp-established', '--skip-verify'])), re);
      } finally {
        writeImage(files, 'file_entry', entries);
      }
    };
    refused((e) => {
      if (e.isk) e.isk.family = 99;
    }, /^files\.img: file \d+: isk family 99 is not AF_INET or AF_INET6$/);
    refused((e) => {
      if (e.isk) e.isk.state = 42;
    }, /^files\.img: file \d+: isk TCP state 42 \(state 42\) is not one a socket can be restored in$/);
    const stream = readdirSync(img).find((f) => f.startsWith('tcp-stream-'));
    assert.ok(stream, 'a tcp-stream image');
    truncateSync(join(img, stream), statSync(join(img, stream)).size - 3);
    assert.match(
      assertCleanError(restore(img, ['-d', '--tcp-established', '--skip-verify'])),
      new RegExp(`${stream.replace('.', '\\.')}: .*(bytes of queues|short|truncated|end)`),
    );
    assert.equal(procStat(srv.pid), null);
  },
);

e2e('criu-ts network-unlock -D DIR removes the lock a dump kept, for either method', async (c) => {
  for (const [i, m] of ['nftables', 'iptables'].entries()) {
    const port = base(6) + i;
    const peer = startTarget([workload('tcpconn'), 'peer', String(port)], { logFile: join(c.dir, `peer-${m}.log`) });
    await waitForLine(peer.log, /^listening/);
    const t = startTarget([workload('tcpconn'), 'client', '127.0.0.1', String(port)], { logFile: join(c.dir, `client-${m}.log`) });
    try {
      await waitForLine(t.log, /^rx=[1-9]/);
      const img = c.subdir(m);
      dumpAndReap(t.pid, img, ['--tcp-established', '--network-lock', m]);
      assert.equal(lockRules(false, port).length, m === 'iptables' ? 2 : 0);
      const u = runCriu(['network-unlock', '-D', img]);
      assert.equal(u.code, 0, u.stderr);
      if (m === 'nftables') {
        const table = lockTable(join(img, 'dump.log'));
        assert.equal(u.stdout, `network unlocked: table inet ${table} removed\n`);
        assert.ok(!tableExists(table));
      } else {
        assert.equal(u.stdout, 'network unlocked: 2 iptables rule(s) removed\n');
        assert.deepEqual(lockRules(false, port), []);
      }
    } finally {
      killAndReap(t.pid);
      killAndReap(peer.pid);
    }
  }
});
