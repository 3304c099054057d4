/**
 * Network namespaces below the tree's own (ZDTM's netns_sub): the root (namespace A) has a
 * child that made namespace B, whose child went back to A holding B's socket, and a child that
 * made namespace C holding A's socket and its own. Each namespace is saved (netdev-N.img...),
 * each socket names its own (ns_id) and comes back in it: checked from inside each namespace by
 * which abstract names answer there. A veth between two of them (ZDTM's netns_sub_veth) comes
 * back with an end in each, at its ifindex, and a datagram crosses it; a device criu-ts does not
 * save refuses the dump.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, adopt, reap, killAndReap, waitFor, descendants, assertOk, assertCleanError } from '../lib/proc.ts';
import { dump, restoreRoot } from '../lib/cr.ts';
import { across } from '../lib/netns.ts';

const TREE = String.raw`
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
NEWNET = 0x40000000
def sk(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b'\0ndt-%d' % n)
    return s
def idle(who):
    open(sys.argv[1] + '.' + who, 'w').close()
    while True:
        time.sleep(0.1)
home = os.open('/proc/self/ns/net', os.O_RDONLY)
s0 = sk(0)
if os.fork() == 0:
    s0.close()
    assert libc.unshare(NEWNET) == 0
    if len(sys.argv) > 2:
        assert os.system('ip link add ndifb0 type ifb') == 0
    s1 = sk(1)
    if os.fork() == 0:
        assert libc.setns(home, NEWNET) == 0
        os.close(home)
        idle('back')
    os.close(home)
    s1.close()
    idle('b')
if os.fork() == 0:
    os.close(home)
    assert libc.unshare(NEWNET) == 0
    s2 = sk(2)
    idle('c')
os.close(home)
s0.close()
idle('root')
`;

const CONNECT = String.raw`
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.connect(b'\0' + sys.argv[1].encode())
    print('ok')
except ConnectionRefusedError:
    print('refused')
`;

const netOf = (pid: number): string => readlinkSync(`/proc/${pid}/ns/net`);

/** Which of the names ndt-0..2 answer in the network namespace of `pid`. */
function answers(pid: number): string {
  return [0, 1, 2]
    .map((n) => {
      const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'python3', '-c', CONNECT, `ndt-${n}`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    })
    .join(' ');
}

/** The tree below `init`: [A's child that made B, its child back in A, the child that made C]. */
function shape(init: number): { b: number; back: number; c: number } {
  const all = descendants(init);
  const kids = (p: number) => all.filter((x) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${x}/status`, 'utf8'))?.[1]) === p);
  const top = kids(init);
  const b = top.find((p) => kids(p).length === 1)!;
  const c = top.find((p) => p !== b)!;
  return { b, back: kids(b)[0], c };
}

function check(init: number): void {
  const { b, back, c } = shape(init);
  assert.equal(netOf(back), netOf(init), 'the grandchild is back in the root namespace');
  assert.equal(new Set([netOf(init), netOf(b), netOf(c)]).size, 3, 'three namespaces');
  assert.notEqual(netOf(init), readlinkSync('/proc/self/ns/net'));
  assert.equal(answers(init), 'ok refused refused', 'namespace A: only its own socket (held in C)');
  assert.equal(answers(b), 'refused ok refused', 'namespace B: only its own socket (held in A)');
  assert.equal(answers(c), 'refused refused ok', 'namespace C: only its own socket');
}

async function startTree(dir: string, more: string[] = []): Promise<{ unshare: number; init: number }> {
  const ready = join(dir, 'ready');
  const t = startTarget(['unshare', '--pid', '--fork', '--net', 'setsid', 'python3', '-c', TREE, ready, ...more], {
    logFile: join(dir, 'tree.log'),
  });
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the init');
  adopt(init);
  // Each task says when it is set up (its namespace made, its socket bound).
  await waitFor(() => ['root', 'b', 'back', 'c'].every((w) => existsSync(`${ready}.${w}`)) || undefined, 10_000, 'the tree ready');
  for (const p of descendants(init)) adopt(p);
  return { unshare: t.pid, init };
}

e2e('tasks in network namespaces below the root, holding sockets of each other, come back each in its own', async (c) => {
  const { unshare, init } = await startTree(c.dir);
  check(init);
  const img = c.subdir('img');
  assertOk(dump(init, img));
  reap(unshare, 10_000);
  reap(init, 10_000);
  const netdevs = readdirSync(img).filter((f) => /^netdev-\d+\.img$/.test(f));
  assert.equal(netdevs.length, 3, `a netdev image per namespace: ${netdevs.join(' ')}`);
  const host = restoreRoot(img);
  check(host);
  killAndReap(host);
});

e2e('a device criu-ts does not save in a namespace below the root refuses the dump in one line, and the tree runs on', async (c) => {
  const { unshare, init } = await startTree(c.dir, ['dummy']);
  const { b } = shape(init);
  const line = assertCleanError(dump(init, c.subdir('img')));
  assert.match(line, new RegExp(`task ${b}: namespaces: net: network device ndifb0 \\(ifb\\) in its network namespace`));
  check(init);
  killAndReap(unshare);
  reap(init, 10_000);
});

const UDP_ECHO = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
if sys.argv[1] == 'listen':
    s.bind((sys.argv[2], 7007))
    print('bound', flush=True)
    d, a = s.recvfrom(100)
    s.sendto(d, a)
else:
    s.sendto(b'hello', (sys.argv[2], 7007))
    print(s.recvfrom(100)[0].decode())
`;

/** The veth ends as `ip` shows them in the namespace of `pid`: name, ifindex, peer's ifindex, up. */
function vethEnds(pid: number): string[] {
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-j', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (
    JSON.parse(r.stdout) as Array<{ ifname: string; ifindex: number; link_index: number; flags: string[]; link_netnsid?: number }>
  ).map(
    (l) =>
      `${l.ifname} ${l.ifindex} peer ${l.link_index} ${l.link_netnsid === undefined ? 'here' : 'in another'} ${l.flags.includes('UP') ? 'up' : 'down'}`,
  );
}

/** A datagram from namespace B's task to the root's, over the veth, and its echo back. */
function udpAcross(from: number, to: number): void {
  const srv = spawnSync(
    'sh',
    [
      '-c',
      `nsenter --net=/proc/${to}/ns/net python3 -c "$0" listen 10.77.0.1 & sleep 0.5; nsenter --net=/proc/${from}/ns/net python3 -c "$0" send 10.77.0.1; wait`,
      UDP_ECHO,
    ],
    {
      encoding: 'utf8',
      timeout: 15_000,
    },
  );
  assert.equal(srv.status, 0, srv.stderr);
  assert.match(srv.stdout, /hello/);
}

e2e(
  'a veth between two namespaces of the tree comes back with each end in its namespace, at its ifindex, and carries traffic',
  async (c) => {
    const { unshare, init } = await startTree(c.dir);
    const { b } = shape(init);
    const ip = (pid: number, args: string): void => {
      const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', ...args.split(' ')], { encoding: 'utf8' });
      assert.equal(r.status, 0, `ip ${args}: ${r.stderr}`);
    };
    ip(init, `link add ndx0 index 41 type veth peer name ndx1 index 42 netns ${b}`);
    ip(init, 'addr add 10.77.0.1/24 dev ndx0');
    ip(init, 'link set ndx0 up');
    ip(b, 'addr add 10.77.0.2/24 dev ndx1');
    ip(b, 'link set ndx1 up');
    udpAcross(b, init);
    const before = [vethEnds(init), vethEnds(b)];
    assert.deepEqual(before, [['ndx0 41 peer 42 in another up'], ['ndx1 42 peer 41 in another up']]);
    const host = await across({ unshare, init }, c.subdir('img'), 'criu-ts', 'criu-ts');
    check(host);
    const after = shape(host);
    assert.deepEqual([vethEnds(host), vethEnds(after.b)], before);
    udpAcross(after.b, host);
    killAndReap(host);
  },
);
