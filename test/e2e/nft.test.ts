/**
 * The nftables lock criu-ts sends over netlink (src/resources/net/nft.ts), read back by the
 * `nft` tool: the same table, chains, rules and set elements CRIU's text makes, for IPv4 and
 * IPv6 connections, in batches past one message's size; and it drops what it should, a packet
 * of a locked 4-tuple, on the real kernel.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { e2e, sleep, startTarget, killAndReap } from '../lib/proc.ts';
import { lockAvailable, lockConns, lockNetns, unlock, type LockedConn } from '../../src/resources/net/netlock.ts';

const nftList = (table: string): string => execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' });
const exists = (table: string): boolean => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(`inet ${table}\n`);

e2e('the lock table over netlink reads back in nft as CRIU text makes it, and goes away whole', async () => {
  const table = `CRIU-t${process.pid}`;
  const spec = { method: 'nftables' as const, table, conns: [] };
  const v4: LockedConn = { v6: false, local: '127.0.0.1', lport: 80, peer: '127.0.0.2', pport: 443 };
  const v6: LockedConn = { v6: true, local: '0:0:0:0:0:0:0:1', lport: 22, peer: '0:0:0:0:0:ffff:a00:1', pport: 1234 };
  try {
    lockConns(spec, [v4, v6], true);
    const text = nftList(table);
    for (const chain of ['input', 'output']) {
      const body = new RegExp(`chain ${chain} \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
      assert.match(body, new RegExp(`type filter hook ${chain} priority filter; policy accept;`));
      assert.deepEqual(
        body
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l && !l.startsWith('type')),
        [
          'meta mark 0x0000c114 accept',
          'ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop',
          'ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop',
        ],
      );
    }
    assert.match(text, /type ipv4_addr \. inet_service \. ipv4_addr \. inet_service/);
    assert.match(text, /type ipv6_addr \. inet_service \. ipv6_addr \. inet_service/);
    for (const el of ['127.0.0.1 . 80 . 127.0.0.2 . 443', '127.0.0.2 . 443 . 127.0.0.1 . 80', '::1 . 22 . ::ffff:10.0.0.1 . 1234'])
      assert.ok(text.includes(el), `element ${el}`);
    // More connections than one message holds (a nested attribute is at most 64 KiB).
    const many: LockedConn[] = Array.from({ length: 3000 }, (_, i) => ({ ...v4, lport: 1000 + i }));
    lockConns(spec, many, false);
    const n = (nftList(table).match(/127\.0\.0\.1 \. \d+ \. 127\.0\.0\.2 \. 443/g) ?? []).length;
    assert.equal(n, 3001, 'every element of a lock past one message');
  } finally {
    assert.equal(unlock(spec), undefined);
  }
  assert.ok(!exists(table), 'the table is gone');
  assert.equal(unlock(spec), undefined, 'a lock already gone is no error');
  assert.ok(lockAvailable('nftables'));
  assert.ok(!/CRIU-check/.test(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })), 'the check leaves no table');
});

e2e('a locked 4-tuple gets nothing through, and another connection to the same port goes on', async () => {
  const srv = net.createServer((s) => s.on('data', (d) => s.write(d)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const connect = (): Promise<net.Socket> =>
    new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => r(s));
    });
  const [a, b] = [await connect(), await connect()];
  const spec = { method: 'nftables' as const, table: `CRIU-d${process.pid}`, conns: [] };
  const echo = (s: net.Socket, ms: number): Promise<boolean> =>
    new Promise((r) => {
      const t = setTimeout(() => r(false), ms);
      s.once('data', () => {
        clearTimeout(t);
        r(true);
      });
      s.write('x');
    });
  try {
    lockConns(spec, [{ v6: false, local: '127.0.0.1', lport: a.localPort ?? 0, peer: '127.0.0.1', pport: port }], true);
    assert.equal(await echo(a, 400), false, 'the locked connection gets nothing through');
    assert.equal(await echo(b, 2000), true, 'another connection to the same port goes on');
    assert.equal(unlock(spec), undefined);
    // The segment dropped is sent again: the echo comes once the lock is gone.
    await sleep(50);
    assert.equal(await echo(a, 5000), true, 'the connection goes on after the unlock');
  } finally {
    unlock(spec);
    a.destroy();
    b.destroy();
    srv.close();
  }
});

e2e('a network namespace locked whole: a table made with policy drop, refused if it exists, removed', async () => {
  const { pid } = startTarget(['unshare', '-n', 'sleep', '30'], { execs: ['sleep', '30'] });
  await sleep(200);
  const inNs = (args: string[]): string => execFileSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'nft', ...args], { encoding: 'utf8' });
  const spec = { method: 'nftables' as const, table: 'CRIU-ns', conns: [], netns: { pid, link: '' } };
  try {
    spec.netns.link = execFileSync('readlink', [`/proc/${pid}/ns/net`], { encoding: 'utf8' }).trim();
    lockNetns(spec);
    const text = inNs(['list', 'table', 'inet', 'CRIU-ns']);
    assert.match(text, /chain input \{\s*type filter hook input priority filter; policy drop;\s*meta mark 0x0000c114 accept/);
    assert.match(text, /chain output \{\s*type filter hook output priority filter; policy drop;\s*meta mark 0x0000c114 accept/);
    // The run id names the table: one there already is not this dump's to take.
    assert.throws(() => lockNetns(spec), /cannot lock the network namespace of \d+ with nftables: .*add table inet CRIU-ns: EEXIST/);
    lockNetns(spec);
    assert.equal(unlock(spec), undefined);
    assert.equal(inNs(['list', 'tables']).trim(), '', 'nothing left in the namespace');
    assert.equal(unlock(spec), undefined, 'gone already');
  } finally {
    killAndReap(pid);
  }
});
