/**
 * Netfilter of a network namespace the tree owns: iptables rules (Debian's nft-based iptables,
 * and the legacy iptables and ip6tables) and nftables tables are saved as CRIU saves them
 * (iptables-N.img, ip6tables-N.img, nftables-N.img) and come back in the new namespace, checked
 * from inside; CRIU's lock of the whole namespace is in the saved rules and gone once the tree
 * is back; images exchanged with CRIU 4.2 both ways; --join-ns net; bad rules images.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  waitForLine,
  e2e,
  readLines,
  startTarget,
  adopt,
  reap,
  killAndReap,
  waitFor,
  descendants,
  assertCleanError,
  assertOk,
} from '../lib/proc.ts';
import { dump, restore, waitForCounter, restoreRoot } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIU42 } from '../lib/runc.ts';
import { across } from '../lib/netns.ts';

const skipCriu = existsSync(CRIU42) ? false : `no CRIU 4.2 binary at ${CRIU42}`;

function inNet(pid: number | string, cmd: string[]): string {
  const at = typeof pid === 'number' ? `/proc/${pid}/ns/net` : pid;
  const r = spawnSync('nsenter', [`--net=${at}`, ...cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nsenter ${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * The rules as the namespace's own tools list them, without dates and counters, and without
 * what an iptables lock leaves once removed (CRIU's too): empty accepting base chains and tables.
 */
function rules(pid: number | string): string {
  const legacy = ['iptables-legacy-save', 'ip6tables-legacy-save'].map((t) => inNet(pid, [t]).replace(/^#.*\n/gm, ''));
  const nft = inNet(pid, ['nft', 'list', 'ruleset'])
    .replace(/counter packets \d+ bytes \d+/g, 'counter')
    .replace(/\tchain \w+ \{\n\t\ttype filter hook \w+ priority filter; policy accept;\n\t\}\n/g, '')
    .replace(/\n\n+/g, '\n')
    .replace(/^table \w+ \w+ \{\n\}\n/gm, '');
  return [nft, ...legacy].join('----\n').replace(/\[\d+:\d+\]/g, '');
}

/** A counter as the init of new PID and network namespaces, with rules of every kind. */
async function startBox(dir: string): Promise<{ unshare: number; init: number; log: string }> {
  // The counter's own log: unshare writes to its own when its child is killed, which CRIU's
  // restore would see as a file grown since the dump.
  const log = join(dir, 'counter.log');
  const sh = ['sh', '-c', 'exec "$0" >>"$1" 2>&1', workload('counter'), log];
  const t = startTarget(['unshare', '--pid', '--fork', '--net', 'setsid', ...sh], { logFile: join(dir, 'unshare.log') });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the counter');
  adopt(init);
  await waitForCounter(log, 2, 10_000);
  inNet(init, ['ip', 'link', 'set', 'lo', 'up']);
  inNet(init, ['iptables', '-A', 'INPUT', '-p', 'icmp', '-j', 'DROP']);
  inNet(init, ['iptables-legacy', '-A', 'INPUT', '-p', 'tcp', '--dport', '99', '-j', 'REJECT']);
  inNet(init, ['ip6tables-legacy', '-P', 'FORWARD', 'DROP']);
  inNet(init, [
    'nft',
    'add table inet box; add chain inet box c { type filter hook output priority 5; }; add rule inet box c udp dport 53 drop',
  ]);
  return { unshare: t.pid, init, log };
}

const lockIn = (img: string): string =>
  readdirSync(img)
    .map((f) => (/^(nftables|iptables)-\d+\.img$/.test(f) ? readFileSync(join(img, f), 'utf8') : ''))
    .join('');

for (const method of ['nftables', 'iptables'])
  e2e(`iptables and nftables rules of the tree's network namespace come back in the new one (--network-lock ${method})`, async (c) => {
    const box = await startBox(c.dir);
    const before = rules(box.init);
    assert.match(before, /table inet box/);
    assert.match(before, /-A INPUT -p tcp -m tcp --dport 99 -j REJECT/);
    const img = c.subdir('img');
    const host = await across(box, img, 'criu-ts', 'criu-ts', { dump: ['--network-lock', method] });
    assert.notEqual(readlinkSync(`/proc/${host}/ns/net`), readlinkSync('/proc/self/ns/net'), 'a network namespace of its own');
    assert.equal(rules(host), before, 'the same rules inside, and no lock left');
    // The dump locked the namespace whole before saving its rules, as CRIU does.
    assert.match(lockIn(img), method === 'nftables' ? /table inet CRIU-\S+ \{[\s\S]*policy drop/ : /chain CRIU \{/);
    await waitForCounter(box.log, -1, 10_000, readLines(box.log).length);
    killAndReap(host);
  });

e2e('a dump that leaves the tree running (-R), or fails, removes its lock of the whole namespace', async (c) => {
  const box = await startBox(c.dir);
  const before = rules(box.init);
  for (const method of ['nftables', 'iptables']) {
    const img = c.subdir(`img-${method}`);
    assertOk(dump(box.init, img, ['-R', '--network-lock', method]));
    assert.match(lockIn(img), /CRIU/, 'the lock is in the saved rules');
    assert.equal(rules(box.init), before, `no ${method} lock left in the namespace`);
  }
  // A dump that fails once the namespace is locked removes the lock, and the tree runs on.
  const r = dump(box.init, c.subdir('img-failed'), ['--network-lock', 'nftables'], { env: { CRIU_TS_FAULT: 'write-images' } });
  assertCleanError(r);
  assert.equal(rules(box.init), before, 'no lock left by the failed dump');
  await waitForCounter(box.log, -1, 10_000, readLines(box.log).length);
  killAndReap(box.unshare);
  reap(box.init, 10_000);
});

/** Processes running the counter workload. */
const counters = (): number =>
  readdirSync('/proc').filter((n) => {
    try {
      return /^\d+$/.test(n) && readlinkSync(`/proc/${n}/exe`) === workload('counter');
    } catch {
      return false;
    }
  }).length;

e2e('a rules or conntrack image that cannot be applied fails the restore with one line naming it, and leaves nothing behind', async (c) => {
  const box = await startBox(c.dir);
  const img = c.subdir('img');
  assertOk(dump(box.init, img));
  reap(box.unshare, 10_000);
  reap(box.init, 10_000);
  const name = (re: RegExp) => readdirSync(img).find((f) => re.test(f))!;
  const files = [name(/^nftables-\d+\.img$/), name(/^iptables-\d+\.img$/), name(/^netns-ct-\d+\.img$/)];
  const good = files.map((f) => readFileSync(join(img, f)));
  const bad = ['table inet x { chain c { nonsense here } }\n', '*filter\n-A NO-SUCH-CHAIN -j DROP\nCOMMIT\n', 'garbage'];
  const running = counters();
  for (const [i, file] of files.entries()) {
    for (const [k, f] of files.entries()) writeFileSync(join(img, f), k === i ? bad[k] : good[k]);
    const r = restore(img, ['-d', '--skip-verify']);
    const line = assertCleanError(r);
    assert.match(line, new RegExp(`${file.replace('.', '\\.')}: (cannot restore its|not ctnetlink messages)`));
    assert.equal(counters(), running, `no task left behind after the failed restore of ${file}`);
  }
});

for (const [dumpWith, restoreWith] of [
  ['criu', 'criu-ts'],
  ['criu-ts', 'criu'],
])
  e2e(
    `rules of the tree's network namespace dumped by ${dumpWith} are restored by ${restoreWith}`,
    async (c) => {
      const box = await startBox(c.dir);
      const before = rules(box.init);
      const host = await across(box, c.subdir('img'), dumpWith, restoreWith, { dump: ['--network-lock', 'iptables'] });
      assert.equal(rules(host), before, 'the same rules inside, no lock left');
      killAndReap(host);
    },
    { skip: skipCriu },
  );

e2e('--join-ns net: the tree goes back into the namespace it was in, still locked by the dump until it is back', async (c) => {
  const name = `criu-ts-nf-${process.pid}`;
  const box = await startBox(c.dir);
  assert.equal(spawnSync('ip', ['netns', 'attach', name, String(box.init)]).status, 0, 'ip netns attach');
  try {
    const path = `/run/netns/${name}`;
    const img = c.subdir('img');
    const before = rules(path);
    assertOk(dump(box.init, img, ['--network-lock', 'nftables']));
    reap(box.unshare, 10_000);
    reap(box.init, 10_000);
    assert.match(inNet(path, ['nft', 'list', 'tables']), /table inet CRIU-/, 'the namespace stays locked after the dump');
    const pidfile = join(img, 'root.pid');
    assertOk(restore(img, ['-d', '--pidfile', pidfile, '--join-ns', `net:${path}`]));
    const host = Number(readFileSync(pidfile, 'utf8'));
    adopt(host);
    assert.equal(readlinkSync(`/proc/${host}/ns/net`), inNet(path, ['readlink', '/proc/self/ns/net']).trim(), 'in the namespace it joined');
    assert.equal(rules(path), before, 'its rules as they were, the lock gone');
    killAndReap(host);
  } finally {
    spawnSync('ip', ['netns', 'delete', name]);
  }
});

e2e('a TCP connection behind stateful rules goes on after restore: its conntrack entry comes back with the namespace', async (c) => {
  const [peerLog, clientLog] = ['peer.log', 'client.log'].map((f) => join(c.dir, f));
  // The peer is the child of the client, the init of new PID and network namespaces. Only
  // packets of connections conntrack knows pass, once the connection is made: one restored
  // without its entry is picked up again mid-stream as not established and stalls.
  const rules =
    'add table ip f; add chain ip f n; add rule ip f n tcp dport 7777 ct state new accept;' +
    'add chain ip f c { type filter hook input priority 0; policy drop; }; add rule ip f c ct state established accept; add rule ip f c jump n;' +
    'add chain ip f o { type filter hook output priority 0; }; add rule ip f o ct mark set 42';
  const script = `ip link set lo up; nft '${rules}'; "$0" peer 7777 >>"$1" 2>&1 & sleep 0.3; exec "$0" client 127.0.0.1 7777 >>"$2" 2>&1`;
  const t = startTarget(['unshare', '--pid', '--fork', '--net', 'setsid', 'sh', '-c', script, workload('tcpconn'), peerLog, clientLog], {
    logFile: join(c.dir, 'unshare.log'),
  });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the client');
  adopt(init);
  await waitForLine(clientLog, /^rx=[1-9]/);
  // The mark is what only the saved entry has.
  inNet(init, ['nft', 'flush chain ip f n; flush chain ip f o']);
  assert.match(inNet(init, ['cat', '/proc/net/nf_conntrack']), /dport=7777 .*mark=42/);
  const img = c.subdir('img');
  assertOk(dump(init, img, ['--tcp-established']));
  for (const p of [t.pid, init, ...descendants(init)]) reap(p, 10_000);
  const ct = readdirSync(img).find((f) => /^netns-ct-\d+\.img$/.test(f));
  assert.ok(ct && readFileSync(join(img, ct)).length > 0, 'the conntrack table is saved');
  const rx = Number(
    /^rx=(\d+)/.exec(
      readLines(clientLog)
        .filter((l) => l.startsWith('rx='))
        .at(-1) ?? '',
    )?.[1],
  );
  const host = restoreRoot(img, ['--tcp-established'], true);
  assert.match(
    inNet(host, ['cat', '/proc/net/nf_conntrack']),
    /tcp .* ESTABLISHED src=127\.0\.0\.1 dst=127\.0\.0\.1 .*dport=7777 .*mark=42/,
  );
  await waitForLine(clientLog, (l) => Number(/^rx=(\d+)/.exec(l)?.[1] ?? 0) > rx + 20_000, 10_000);
  assert.deepEqual(
    [...readLines(clientLog), ...readLines(peerLog)].filter((l) => /^(BAD|ERR)/.test(l)),
    [],
  );
  const kids = descendants(host);
  killAndReap(host);
  for (const k of kids) reap(k, 10_000);
});

e2e('an nft-based iptables rule nft cannot list back (an xtables extension) is refused naming it, and the tree runs on', async (c) => {
  const box = await startBox(c.dir);
  inNet(box.init, ['iptables', '-A', 'OUTPUT', '-m', 'comment', '--comment', 'kept?', '-j', 'ACCEPT']);
  const r = dump(box.init, c.subdir('img'));
  assert.match(assertCleanError(r), /the rule ip filter OUTPUT \(handle \d+\) in its network namespace uses the xtables match comment/);
  const at = readLines(box.log).length;
  await waitForCounter(box.log, -1, 10_000, at);
  killAndReap(box.unshare);
  reap(box.init, 10_000);
});
