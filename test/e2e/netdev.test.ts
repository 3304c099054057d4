/**
 * Links of a network namespace the tree owns, made by the test: a veth pair with both ends
 * inside, one end of it a port of a bridge inside, a veth whose other end is outside (given back
 * by --external veth[IF]:OUT@BRIDGE), and a macvlan on a bridge outside (--external
 * macvlan[IF]:PARENT). After the restore each has its ifindex, MAC, MTU, master, kind, flags,
 * addresses and routes, checked from inside with `ip`, and traffic crosses the outer veth.
 * Images exchanged with CRIU 4.2 both ways; CRIU's crit reads them; bad images and missing
 * --external refuse the restore in one line and leave no device behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, adopt, reap, killAndReap, waitFor, descendants, assertCleanError } from '../lib/proc.ts';
import { dump, restore, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIU42 } from '../lib/runc.ts';
import { across } from '../lib/netns.ts';
import { readMessages, writeImage } from '../../src/images/index.ts';

const skipCriu = existsSync(CRIU42) ? false : `no CRIU 4.2 binary at ${CRIU42}`;
// Names of the host's devices, unique to this run (the machine is shared).
const tag = (process.pid % 10000).toString();
const OUTER = `ndvh${tag}`;
const HOSTBR = `ndbr${tag}`;
const PARENT = `ndmp${tag}`;

function sh(cmd: string[], at?: number): string {
  const r = spawnSync(at === undefined ? cmd[0] : 'nsenter', at === undefined ? cmd.slice(1) : [`--net=/proc/${at}/ns/net`, ...cmd], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const ipIn = (pid: number, args: string): string => sh(['ip', ...args.split(' ')], pid);
const ipHost = (args: string): string => sh(['ip', ...args.split(' ')]);
const hostHas = (dev: string): boolean => spawnSync('ip', ['link', 'show', dev], { stdio: 'ignore' }).status === 0;

interface Link {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address: string;
  master?: string;
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

/** What must come back of the links, addresses and routes, as `ip` shows them inside. */
function state(pid: number): { links: string[]; addrs: string[]; routes: string } {
  const links = (JSON.parse(ipIn(pid, '-d -j link show')) as Link[]).map((l) =>
    [
      l.ifindex,
      l.ifname,
      l.mtu,
      l.address,
      l.flags.includes('UP') ? 'up' : 'down',
      l.master ?? '-',
      l.link ?? '-',
      l.linkinfo?.info_kind ?? '-',
      l.linkinfo?.info_data?.mode ?? '-',
    ].join(' '),
  );
  const addrs = (JSON.parse(ipIn(pid, '-j addr show')) as Array<{ ifname: string; addr_info: Array<{ local: string; prefixlen: number }> }>)
    .flatMap((l) => l.addr_info.map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`))
    .sort();
  // Two routes of one prefix list in the order they were added: CRIU's restore also adds them by device.
  return { links, addrs, routes: ipIn(pid, 'route show table main').split('\n').sort().join('\n') };
}

/** A counter as the init of new PID and network namespaces, with its links made. */
async function startBox(dir: string, withOuter = true): Promise<{ unshare: number; init: number; log: string }> {
  const log = join(dir, 'counter.log');
  const t = startTarget(['unshare', '--pid', '--fork', '--net', 'setsid', 'sh', '-c', 'exec "$0" >>"$1" 2>&1', workload('counter'), log], {
    logFile: join(dir, 'unshare.log'),
  });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the counter');
  adopt(init);
  await waitForCounter(log, 2, 10_000);
  ipIn(init, 'link set lo up');
  ipIn(init, 'link add va0 mtu 1400 type veth peer name va1');
  ipIn(init, 'link add brin type bridge');
  ipIn(init, 'link set brin address 02:00:00:77:00:01');
  ipIn(init, 'link set va1 master brin');
  for (const d of ['va0', 'va1', 'brin']) ipIn(init, `link set ${d} up`);
  ipIn(init, 'addr add 10.77.2.1/24 dev brin');
  ipIn(init, 'addr add fe80:4567::1/64 nodad dev brin');
  ipIn(init, 'addr add 10.77.2.2/24 dev va0');
  if (withOuter) {
    ipHost(`link add ${OUTER} type veth peer name vc0 netns ${init}`);
    ipHost(`link add ${HOSTBR} type bridge`);
    ipHost(`link set ${OUTER} master ${HOSTBR} up`);
    ipHost(`link set ${HOSTBR} up`);
    ipHost(`addr add 10.77.1.1/24 dev ${HOSTBR}`);
    ipIn(init, 'link set vc0 up');
    ipIn(init, 'addr add 10.77.1.2/24 dev vc0');
    ipIn(init, 'route add 10.99.0.0/16 via 10.77.1.1');
    ipHost(`link add ${PARENT} type bridge`);
    ipHost(`link add mv0 link ${PARENT} type macvlan mode private`);
    ipHost(`link set mv0 netns ${init}`);
    ipIn(init, 'link set mv0 mtu 1300 up');
    ipIn(init, 'addr add 10.77.3.2/24 dev mv0');
  }
  return { unshare: t.pid, init, log };
}

function cleanHost(): void {
  for (const d of [OUTER, HOSTBR, PARENT]) spawnSync('ip', ['link', 'del', d], { stdio: 'ignore' });
}

const EXTERNAL = ['--external', `veth[vc0]:${OUTER}@${HOSTBR}`, '--external', `macvlan[mv0]:${PARENT}`];

/** A TCP connection to a closed port inside: refused (RST) only if the packets cross the veth. */
function reaches(addr: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: addr, port: 9, timeout: 3000 });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
}

const img = (dir: string) => readdirSync(dir).find((f) => /^netdev-\d+\.img$/.test(f))!;

for (const [dumpWith, restoreWith] of [
  ['criu-ts', 'criu-ts'],
  ['criu', 'criu-ts'],
  ['criu-ts', 'criu'],
])
  e2e(
    `veth pairs, a bridge with its port and a macvlan come back whole (${dumpWith} dump, ${restoreWith} restore)`,
    async (c) => {
      cleanHost();
      try {
        const box = await startBox(c.dir);
        const before = state(box.init);
        assert.ok(before.links.some((l) => / va1 .* brin /.test(l)) && before.links.some((l) => / mv0 .* macvlan private$/.test(l)));
        const dir = c.subdir('img');
        // The dumped namespace goes away in the background, with its macvlan on PARENT: a new one
        // of the same address on the same parent is refused (EADDRINUSE) while it is still there.
        const freshParent = () => {
          ipHost(`link del ${PARENT}`);
          ipHost(`link add ${PARENT} type bridge`);
        };
        const host = await across(box, dir, dumpWith, restoreWith, { restore: EXTERNAL, between: freshParent });
        assert.deepEqual(state(host), before, 'links, addresses and routes inside');
        if (dumpWith === 'criu-ts') {
          // CRIU's crit reads the image.
          const crit = spawnSync('crit', ['decode', '-i', join(dir, img(dir)), '--pretty'], { encoding: 'utf8' });
          assert.equal(crit.status, 0, crit.stderr);
          assert.match(crit.stdout, /"type": "MACVLAN"[\s\S]*"mode": 1,/);
        }
        assert.match(ipHost(`link show ${OUTER}`), new RegExp(`master ${HOSTBR} .*state UP`), 'the outer end is back in its bridge, up');
        assert.equal(await reaches('10.77.1.2'), 'ECONNREFUSED', 'the namespace answers over the veth');
        await waitForCounter(
          join(c.dir, 'counter.log'),
          -1,
          10_000,
          readFileSync(join(c.dir, 'counter.log'), 'utf8').split('\n').length - 1,
        );
        killAndReap(host);
      } finally {
        cleanHost();
      }
    },
    { skip: dumpWith === 'criu-ts' && restoreWith === 'criu-ts' ? false : skipCriu },
  );

e2e(
  'a veth or macvlan without its --external, or a bad netdev image, fails the restore in one line and leaves no device behind',
  async (c) => {
    cleanHost();
    try {
      const box = await startBox(c.dir);
      const dir = c.subdir('img');
      const d = dump(box.init, dir);
      assert.equal(d.code, 0, d.stderr);
      reap(box.unshare, 10_000);
      reap(box.init, 10_000);
      assert.match(
        assertCleanError(restore(dir, ['-d', EXTERNAL[2], EXTERNAL[3]])),
        /netdev-\d+\.img: device vc0: .*--external veth\[vc0\]/,
      );
      assert.match(
        assertCleanError(restore(dir, ['-d', EXTERNAL[0], EXTERNAL[1]])),
        /netdev-\d+\.img: device mv0: .*--external macvlan\[mv0\]/,
      );
      // --veth-pair, the old form of --external veth[], is taken: the macvlan's parent is still missing.
      assert.match(
        assertCleanError(restore(dir, ['-d', '--veth-pair', `vc0=${OUTER}@${HOSTBR}`])),
        /netdev-\d+\.img: device mv0: .*--external macvlan\[mv0\]/,
      );
      const file = join(dir, img(dir));
      const good = readFileSync(file);
      writeFileSync(file, Buffer.concat([good.subarray(0, 8), Buffer.from('garbage that is no protobuf at all')]));
      assert.match(assertCleanError(restore(dir, ['-d', '--skip-verify', ...EXTERNAL])), /^netdev-\d+\.img: /);
      // An MTU the kernel refuses fails once the namespace is being made: it goes, with its links.
      writeFileSync(file, good);
      const devs = readMessages(file, 'net_device_entry');
      devs.find((x) => x.name === 'brin')!.mtu = 10;
      writeImage(file, 'net_device_entry', devs);
      const r = restore(dir, ['-d', '--skip-verify', ...EXTERNAL]);
      assert.match(assertCleanError(r), /ip link add name brin .* failed/);
      await waitFor(() => !hostHas(OUTER) || undefined, 10_000, 'the outer veth end gone');
    } finally {
      cleanHost();
    }
  },
);

e2e(
  'a veth end moved in from outside comes back as a device made beforehand and moved in at its ifindex (--external netdev[IF]:NAME)',
  async (c) => {
    const MOVED = `ndmv${tag}`;
    const PEER = `ndmp${tag}x`;
    const clean = () => {
      cleanHost();
      for (const d of [MOVED, PEER]) spawnSync('ip', ['link', 'del', d], { stdio: 'ignore' });
    };
    clean();
    try {
      const box = await startBox(c.dir, false);
      ipHost(`link add vm0 type veth peer name ${OUTER}`);
      ipHost(`link set vm0 netns ${box.init}`);
      // Its outer end up: `ip route restore` refuses a route of a link without carrier (linkdown).
      ipHost(`link set ${OUTER} up`);
      ipIn(box.init, 'link set vm0 mtu 1450 up');
      ipIn(box.init, 'addr add 10.77.4.2/24 dev vm0');
      const before = state(box.init);
      const dir = c.subdir('img');
      assert.equal(dump(box.init, dir).code, 0);
      reap(box.unshare, 10_000);
      reap(box.init, 10_000);
      await waitFor(() => !hostHas(OUTER) || undefined, 10_000, 'the old outer end gone');
      assert.match(assertCleanError(restore(dir, ['-d'])), /netdev-\d+\.img: device vm0: .*--external netdev\[vm0\]:NAME/);
      ipHost(`link add ${MOVED} type veth peer name ${PEER}`);
      ipHost(`link set ${PEER} up`);
      const pidfile = join(dir, 'root.pid');
      writeFileSync(pidfile, '');
      const r = restore(dir, ['-d', '--pidfile', pidfile, '--external', `netdev[vm0]:${MOVED}`]);
      assert.equal(r.code, 0, r.stderr);
      const host = Number(readFileSync(pidfile, 'utf8'));
      adopt(host);
      assert.equal(hostHas(MOVED), false, 'moved out of the host');
      const after = state(host);
      assert.deepEqual(after, before, 'the same ifindex, name, MTU, MAC, addresses and routes');
      killAndReap(host);
    } finally {
      clean();
    }
  },
);
