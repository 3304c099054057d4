/**
 * tun/tap devices of a tree's network namespace and the /dev/net/tun fds on them (ZDTM's
 * tun_ns): a just-opened fd, a tun with its one queue, a multi-queue tun with a queue detached,
 * a tap with its MAC, and a persistent tap with NAPI owned by a user that no fd holds. After the restore
 * the devices are back at their ifindexes with their kinds, flags and owner, each fd of the
 * task on its device (fdinfo's iff), and the task itself checks through its fds: TUNGETIFF
 * names each device, the queues attach and detach as before, the persistent one is persistent
 * and the one that was not goes away with its last fd. Images exchanged with CRIU 4.2 both ways
 * (a tun file is also a REG entry of the same id, which CRIU opens it by).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, adopt, reap, killAndReap, waitFor, descendants, assertCleanError } from '../lib/proc.ts';
import { dump } from '../lib/cr.ts';
import { across } from '../lib/netns.ts';
import { CRIU42 } from '../lib/runc.ts';

const skipCriu = existsSync(CRIU42) ? false : `no CRIU 4.2 binary at ${CRIU42}`;

const TASK = String.raw`
import ctypes, fcntl, os, signal, struct, sys, time
TUNSETIFF, TUNGETIFF, TUNSETPERSIST, TUNSETOWNER, TUNSETQUEUE = 0x400454ca, 0x800454d2, 0x400454cb, 0x400454cc, 0x400454d9
TUN, TAP, NAPI, NO_PI, MQ, ATTACH, DETACH, EXCL = 0x1, 0x2, 0x10, 0x1000, 0x100, 0x200, 0x400, 0x8000
def ifr(name, flags):
    return struct.pack('16sH22x', name.encode(), flags)
def attach(name, flags):
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, ifr(name, flags))
    return fd
def iff(fd):
    n, f = struct.unpack('16sH22x', fcntl.ioctl(fd, TUNGETIFF, ifr('', 0)))
    return n.rstrip(b'\0').decode(), f
assert os.system('ip link set lo up') == 0
fds = [os.open('/dev/net/tun', os.O_RDWR), attach('ndtun0', TUN | NO_PI), attach('ndmq0', TUN | MQ), attach('ndmq0', TUN | MQ), attach('ndtap1', TAP)]
fcntl.ioctl(fds[3], TUNSETQUEUE, ifr('', DETACH))
p = attach('ndtap0', TAP | NAPI)
if len(sys.argv) > 2:
    # A socket filter on the tap's queue: one instruction, BPF_RET|BPF_K accepting all.
    ins = (ctypes.c_uint64 * 1)(0x6 | 0xffffffff << 32)
    fcntl.ioctl(fds[4], 0x401054d5, struct.pack('HxxxxxxQ', 1, ctypes.addressof(ins)))
fcntl.ioctl(p, TUNSETOWNER, 4321)
fcntl.ioctl(p, TUNSETPERSIST, 1)
os.close(p)
print(' '.join(str(f) for f in fds), flush=True)
out = sys.argv[1]
def check(*_):
    r = []
    try:
        fcntl.ioctl(fds[0], TUNGETIFF, ifr('', 0))
        r.append('fd0 attached')
    except OSError:
        pass
    r.append('%s 0x%x' % iff(fds[1]))
    r.append('%s 0x%x' % iff(fds[2]))
    r.append('%s 0x%x' % iff(fds[3]))
    r.append('%s 0x%x' % iff(fds[4]))
    fcntl.ioctl(fds[2], TUNSETQUEUE, ifr('', DETACH))
    fcntl.ioctl(fds[3], TUNSETQUEUE, ifr('', ATTACH))
    try:
        attach('ndtap0', TAP | EXCL)
        r.append('ndtap0 not persistent')
    except OSError:
        r.append('ndtap0 persistent')
    os.close(fds[1])
    r.append('ndtun0 gone' if os.system('ip link show ndtun0 >/dev/null 2>&1') else 'ndtun0 stays')
    open(out + '.tmp', 'w').write('\n'.join(r) + '\n')
    os.rename(out + '.tmp', out)
signal.signal(signal.SIGUSR1, check)
open(out + '.ready', 'w').close()
while True:
    time.sleep(0.1)
`;

interface TunLink {
  ifindex: number;
  ifname: string;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** The tun devices of the namespace of `pid` as `ip` shows them, queue counts apart. */
function tuns(pid: number): string[] {
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-d', '-j', 'link', 'show', 'type', 'tun'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as TunLink[]).map((l) => {
    const { numqueues: _q, numdisabled: _d, ...data } = l.linkinfo?.info_data ?? {};
    return `${l.ifname} ${l.ifindex} ${l.address ?? '-'} ${JSON.stringify(data)}`;
  });
}

/** tun_flags of each device, read in a sysfs of the namespace of `pid` (`ip` does not show IFF_NAPI). */
function sysFlags(pid: number): string {
  const script = 'mount -t sysfs sysfs /sys && grep -H . /sys/class/net/nd*/tun_flags';
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Each tun fd of the task and the device its fdinfo names. */
function iffs(pid: number, fds: number[]): string[] {
  return fds.map((fd) => `${fd}:${/^iff:\t(.*)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? '?'}`);
}

/** Ask the task to check its fds and devices (SIGUSR1); what it found. */
async function selfCheck(pid: number, out: string): Promise<string> {
  process.kill(pid, 'SIGUSR1');
  await waitFor(() => existsSync(out) || undefined, 10_000, 'the task to check its tun fds');
  return readFileSync(out, 'utf8');
}

/** The task in new PID and network namespaces, its devices made; its tun fds (printed). */
async function startTask(dir: string, more: string[] = []): Promise<{ unshare: number; init: number; out: string; fds: number[] }> {
  const out = join(dir, 'checked');
  const log = join(dir, 'task.log');
  const t = startTarget(
    ['unshare', '--pid', '--fork', '--net', 'setsid', 'sh', '-c', 'exec python3 -c "$0" "$@" >>"$LOG" 2>&1', TASK, out, ...more],
    { logFile: join(dir, 'unshare.log'), env: { ...process.env, LOG: log } },
  );
  const init = await waitFor(() => descendants(t.pid)[0], 5000, 'the task');
  adopt(init);
  await waitFor(() => existsSync(`${out}.ready`) || undefined, 10_000, 'the task ready');
  return { unshare: t.pid, init, out, fds: readFileSync(log, 'utf8').trim().split(' ').map(Number) };
}

for (const [dumpWith, restoreWith] of [
  ['criu-ts', 'criu-ts'],
  ['criu', 'criu-ts'],
  ['criu-ts', 'criu'],
])
  e2e(
    `tun and tap devices with their /dev/net/tun fds come back: ifindexes, kinds, owner, queues, persistence (${dumpWith} dump, ${restoreWith} restore)`,
    async (c) => {
      const { unshare, init, out, fds } = await startTask(c.dir);
      const devices = tuns(init);
      assert.equal(devices.length, 4, devices.join('\n'));
      assert.ok(
        devices.some((d) => d.startsWith('ndtap0 ') && d.includes('"persist":true') && d.includes('"user":4321')),
        devices.join('\n'),
      );
      const flags = sysFlags(init);
      assert.match(flags, /ndtap0\/tun_flags:0x812$/m, 'ndtap0: tap, persistent, NAPI');
      const attached = iffs(init, fds);
      assert.deepEqual(
        attached.map((a) => a.split(':')[1]),
        ['', 'ndtun0', 'ndmq0', 'ndmq0', 'ndtap1'],
      );

      const host = await across({ unshare, init }, c.subdir('img'), dumpWith, restoreWith);
      assert.deepEqual(tuns(host), devices);
      assert.deepEqual(iffs(host, fds), attached);
      assert.equal(sysFlags(host), flags);
      assert.equal(
        await selfCheck(host, out),
        // TUNGETIFF adds IFF_NOFILTER (0x1000) for a queue without a socket filter.
        ['ndtun0 0x1001', 'ndmq0 0x1101', 'ndmq0 0x1501', 'ndtap1 0x1002', 'ndtap0 persistent', 'ndtun0 gone', ''].join('\n'),
      );
      killAndReap(host);
    },
    { skip: dumpWith === 'criu-ts' && restoreWith === 'criu-ts' ? false : skipCriu },
  );

e2e('a tap with a socket filter attached refuses the dump in one line, and the task runs on with it', async (c) => {
  const { unshare, init, out } = await startTask(c.dir, ['filter']);
  const line = assertCleanError(dump(init, c.subdir('img')));
  assert.match(line, /tun device ndtap1: a socket filter attached to it \(TUNATTACHFILTER\) is not saved/);
  const checked = await selfCheck(init, out);
  assert.match(checked, /^ndtap1 0x2$/m, 'the filter is still there (no IFF_NOFILTER)');
  killAndReap(unshare);
  reap(init, 10_000);
});
