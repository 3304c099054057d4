/**
 * A tree in a mount namespace of its own (unshare -m, then pivot_root into a bind of /): a
 * tmpfs with files, its peer and its slave, a bind of a host directory, a read-only bind, proc
 * and devtmpfs. After a restore the namespace has the same mounts (mountinfo compared with ids,
 * devices and peer group numbers renumbered), the tmpfs its files, and the task its fds and
 * cwd in the restored mounts; the host's mount table is untouched. External mounts, --root
 * and what is refused.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  assertCleanError,
  assertRunningFree,
  killAndReap,
  isAlive,
  waitFor,
  descendants,
  cmdline,
  adopt,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restore, restoreDetached } from '../lib/cr.ts';
import { readMessages } from '../../src/images/index.ts';

/**
 * Runs under `unshare -m --propagation private`: $1 new root, $2 dir of the test, $3 host dir,
 * $4 "yes" for a bind whose file system is mounted nowhere else, $5 "yes" for a child in a
 * mount namespace of its own.
 */
const SETUP = `set -e
R=$1 D=$2 H=$3 B=$4 N=$5
mount --bind / $R
mount -t proc proc $R/proc
mount -t devtmpfs devtmpfs $R/dev
mount -t tmpfs -o size=2m,mode=711 tmpfs $R$D/t
mkdir -p $R$D/t/sub/deeper
echo tmpdata > $R$D/t/sub/deeper/x
printf '%s' "$(seq 1 2000)" > $R$D/t/big
mount --make-shared $R$D/t
mount --bind $R$D/t $R$D/peer
mount --bind $R$D/t/sub $R$D/sl
mount --make-slave $R$D/sl
mount --bind $H $R$D/a
mount --bind -o ro $H $R$D/ro
mount -t tmpfs under $R$D/ov
echo under > $R$D/ov/u
mount -t tmpfs top $R$D/ov
if [ -n "$B" ]; then mount -t tmpfs tmpfs $D/hidden; mkdir $D/hidden/s; mount --bind $D/hidden/s $R$D/b; fi
cd $R
pivot_root . .
umount -l .
cd $D/t/sub
exec 3<$D/a/f 4>>$D/t/sub/log 0</dev/null 1>>$D/t/sub/out 2>&1
if [ -n "$N" ]; then
  unshare -m --propagation private sh -c "mount -t tmpfs nested $D/t/sub/deeper; echo nested > $D/t/sub/deeper/n; exec 5<$D/t/sub/deeper/n; exec sleep 1001" &
fi
exec sleep 1000
`;

interface Ns {
  pid: number;
  d: string;
  host: string;
}

function startNs(c: { dir: string }, bindOfHidden = false, nested = false): Ns {
  const d = c.dir;
  for (const x of ['root', 't', 'peer', 'sl', 'a', 'ro', 'b', 'hidden', 'host', 'ov']) mkdirSync(join(d, x));
  writeFileSync(join(d, 'host', 'f'), 'hostdata\n');
  const script = join(d, 'setup.sh');
  writeFileSync(script, SETUP);
  const argv = [
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    script,
    join(d, 'root'),
    d,
    join(d, 'host'),
    bindOfHidden ? 'yes' : '',
    nested ? 'yes' : '',
  ];
  const t = startTarget(argv, { execs: ['sleep', '1000'] });
  return { pid: t.pid, d, host: join(d, 'host') };
}

/**
 * mountinfo without what a restore renumbers or reorders: each mount named by its mountpoint
 * and root (its parent likewise), devices and peer group numbers renumbered, lines sorted.
 */
function mounts(pid: number): string[] {
  const lines = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n');
  const name = new Map(lines.map((l) => l.split(' ')).map((f) => [f[0], `${f[4]}:${f[3]}`]));
  const groups = new Map<string, string>();
  return lines
    .map((l) => {
      const [id, parent, , ...rest] = l.split(' ');
      const tail = rest.join(' ').replace(/(shared|master):(\d+)/g, (_m, k: string, n: string) => {
        if (!groups.has(n)) groups.set(n, `g${groups.size}`);
        return `${k}:${groups.get(n)}`;
      });
      return `${name.get(id)} on ${name.get(parent) ?? 'outside'} ${tail}`;
    })
    .sort();
}

function hostMounts(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8');
}

/** The mount id (in /proc/PID/mountinfo) at `mountpoint`. */
function mountIdAt(pid: number, mountpoint: string): string | undefined {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === mountpoint)
    .at(-1)?.[0];
}

function fdMountId(pid: number, fd: number): string | undefined {
  return /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
}

function inNs(pid: number, cmd: string): { status: number | null; out: string } {
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', 'sh', '-c', cmd], { encoding: 'utf8' });
  return { status: r.status, out: (r.stdout + r.stderr).trim() };
}

e2e('a mount namespace comes back with its tmpfs (one covered), peers, slave, binds, proc; fds and cwd in it', async (c) => {
  const ns = startNs(c);
  const before = mounts(ns.pid);
  assert.ok(
    before.some((l) => / shared:g\d+ .* tmpfs /.test(l) && / master:g\d+ /.test(before.join('\n'))),
    'the setup made a peer group and a slave',
  );
  const host = hostMounts();
  const img = c.subdir('img');
  dumpAndReap(ns.pid, img);
  const entries = readdirSync(img).filter((n) => n.startsWith('mountpoints-') || n.startsWith('tmpfs-dev-'));
  assert.equal(entries.length, 4, `one mountpoints image, one archive per tmpfs (the peer and the slave share one): ${entries}`);
  restoreDetached(img, ns.pid);
  assert.deepEqual(mounts(ns.pid), before, 'the same mounts, flags and propagation, relative to the root');
  assert.equal(hostMounts(), host, "the host's mount table is as it was");
  assert.deepEqual(
    readdirSync('/tmp').filter((n) => n.startsWith('.criu-ts-root-')),
    [],
    'no yard directory left',
  );
  const d = ns.d;
  assert.equal(readFileSync(`/proc/${ns.pid}/root${d}/t/sub/deeper/x`, 'utf8'), 'tmpdata\n', 'the tmpfs has its files');
  assert.equal(
    readFileSync(`/proc/${ns.pid}/root${d}/peer/big`, 'utf8').length,
    readFileSync(`/proc/${ns.pid}/root${d}/t/big`, 'utf8').length,
  );
  assert.equal(readlinkSync(`/proc/${ns.pid}/fd/3`), `${d}/a/f`);
  assert.equal(fdMountId(ns.pid, 3), mountIdAt(ns.pid, `${d}/a`), 'fd 3 is open in the restored bind mount');
  assert.equal(fdMountId(ns.pid, 4), mountIdAt(ns.pid, `${d}/t`), 'fd 4 is open in the restored tmpfs');
  assert.equal(readlinkSync(`/proc/${ns.pid}/cwd`), `${d}/t/sub`);
  assert.equal(inNs(ns.pid, `cat ${d}/a/f`).out, 'hostdata');
  assert.equal(inNs(ns.pid, `umount ${d}/ov && cat ${d}/ov/u`).out, 'under', 'a covered tmpfs has its files');
  const w = inNs(ns.pid, `echo x > ${d}/ro/y`);
  assert.notEqual(w.status, 0, 'the read-only bind is read-only');
  assert.match(w.out, /Read-only file system/);
  // The peer group works: a mount under t shows up under peer, and in the slave (sub).
  const p = inNs(ns.pid, `mkdir -p ${d}/t/sub/m && mount -t tmpfs x ${d}/t/sub/m && grep -c " ${d}/\\(peer\\|sl\\)/" /proc/self/mountinfo`);
  assert.equal(p.out, '2', `a new mount propagates to the peer and the slave: ${p.out}`);
  assert.equal(hostMounts(), host, 'and not to the host');
  killAndReap(ns.pid);
});

e2e('an external mount: refused at restore without its path, bound from the new path with it', async (c) => {
  const ns = startNs(c);
  const img = c.subdir('img');
  dumpAndReap(ns.pid, img, ['--external', `mnt[${ns.d}/a]:HOSTDIR`]);
  const me = readdirSync(img).find((n) => n.startsWith('mountpoints-'))!;
  const ext = readMessages(join(img, me), 'mnt_entry').filter((e) => e.ext_key !== undefined);
  assert.deepEqual(
    ext.map((e) => [e.mountpoint, e.ext_key]),
    [[`${ns.d}/a`, 'HOSTDIR']],
  );
  const host = hostMounts();
  const msg = assertCleanError(restore(img, ['-d']));
  assert.match(msg, new RegExp(`mount \\d+ \\(${ns.d}/a, [^)]+\\): external, and no --external mnt\\[HOSTDIR\\]:PATH says where it is`));
  assert.ok(!isAlive(ns.pid), 'nothing was created');
  assert.equal(hostMounts(), host);
  const other = join(c.dir, 'other');
  mkdirSync(other);
  writeFileSync(join(other, 'f'), 'otherdata\n');
  restoreDetached(img, ns.pid, ['--ext-mount-map', `HOSTDIR:${other}`]);
  assert.equal(readFileSync(`/proc/${ns.pid}/fd/3`, 'utf8'), 'otherdata\n', 'fd 3 reopened in the new source');
  killAndReap(ns.pid);
});

e2e('a mount that cannot be made again refuses the dump, naming it; the tree runs on', async (c) => {
  const ns = startNs(c, true);
  const r = dump(ns.pid, c.subdir('img'));
  const msg = assertCleanError(r);
  assert.match(
    msg,
    new RegExp(
      `task ${ns.pid}: mount namespace: mount \\d+ \\(${ns.d}/b, fstype 5\\): a bind of /s whose file system is mounted nowhere else in the namespace`,
    ),
  );
  assertRunningFree(ns.pid, 'the target after a refused dump');
  killAndReap(ns.pid);
});

e2e('a file open on a mount that another mount covers now refuses the dump, naming both; the tree runs on', async (c) => {
  // overmounted_file's shape: a file of a tmpfs held open, then a bind of its directory over it.
  const d = join(c.dir, 'm');
  mkdirSync(d);
  const script = join(c.dir, 'over.sh');
  writeFileSync(
    script,
    `set -e\nexec 0</dev/null 1>/dev/null 2>&1\nmount -t tmpfs t $1\nmkdir $1/o\nmount -t tmpfs o $1/o\necho data > $1/o/f\nexec 3<$1/o/f\nmount --bind $1/o $1/o\nexec sleep 1000\n`,
  );
  const t = startTarget(['unshare', '-m', '--propagation', 'private', 'sh', script, d], { execs: ['sleep', '1000'] });
  const msg = assertCleanError(dump(t.pid, c.subdir('img')));
  assert.match(msg, new RegExp(`task ${t.pid}: fd 3 \\(${d}/o/f\\) is on mount \\d+, which mount \\d+ covers at that path`));
  assertRunningFree(t.pid, 'the target after a refused dump');
  assert.equal(readFileSync(`/proc/${t.pid}/fd/3`, 'utf8'), 'data\n');
  killAndReap(t.pid);
});

e2e('--root: the namespace is rebuilt on another copy of its root file system', async (c) => {
  // A busybox root, bound onto itself and pivoted into; restored onto a second copy.
  const mk = (name: string, marker: string): string => {
    const r = join(c.dir, name);
    for (const x of ['bin', 'proc', 'etc', 'tmp']) mkdirSync(join(r, x), { recursive: true });
    copyFileSync('/usr/bin/busybox', join(r, 'bin', 'busybox'));
    chmodSync(join(r, 'bin', 'busybox'), 0o755);
    for (const x of ['sh', 'sleep', 'umount']) symlinkSync('busybox', join(r, 'bin', x));
    writeFileSync(join(r, 'etc', 'marker'), marker);
    return r;
  };
  const r1 = mk('rootfs', 'first\n');
  const r2 = mk('rootfs2', 'second\n');
  const script = join(c.dir, 'setup.sh');
  writeFileSync(
    script,
    `set -e\nmount --bind $1 $1\nmount -t proc proc $1/proc\nmount -t tmpfs tmpfs $1/tmp\necho t > $1/tmp/x\ncd $1\npivot_root . .\n/bin/umount -l .\ncd /tmp\nexec 3</etc/marker 0</etc/marker 1>/tmp/log 2>&1\nexec /bin/sleep 1000\n`,
  );
  const t = startTarget(['unshare', '-m', '--propagation', 'private', 'sh', script, r1], { execs: ['/bin/sleep', '1000'] });
  const before = mounts(t.pid);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid, ['--root', r2]);
  assert.deepEqual(
    mounts(t.pid).map((l) => l.replaceAll(r2, r1)),
    before,
    'the same mounts, on a root bound from --root',
  );
  assert.equal(readFileSync(`/proc/${t.pid}/fd/3`, 'utf8'), 'second\n', 'files open in the root come from --root');
  assert.equal(readFileSync(`/proc/${t.pid}/root/tmp/x`, 'utf8'), 't\n');
  killAndReap(t.pid);
});

e2e('a restore that fails leaves no mount, namespace or yard behind', async (c) => {
  const ns = startNs(c);
  const img = c.subdir('img');
  dumpAndReap(ns.pid, img);
  const host = hostMounts();
  const yards = () => readdirSync('/tmp').filter((n) => n.startsWith('.criu-ts-root-'));
  // Halfway through the tree: a mountpoint is gone.
  rmdirSync(join(ns.d, 'ro'));
  let msg = assertCleanError(restore(img, ['-d']));
  assert.match(msg, new RegExp(`mount \\d+ \\(${ns.d}/ro, [^)]+\\): mount: ENOENT`));
  assert.ok(!isAlive(ns.pid), 'no process left');
  assert.equal(hostMounts(), host, 'no mount left');
  assert.deepEqual(yards(), []);
  mkdirSync(join(ns.d, 'ro'));
  // Once the namespace is built: a file the task held is gone.
  rmSync(join(ns.host, 'f'));
  msg = assertCleanError(restore(img, ['-d']));
  assert.match(msg, /\/a\/f: no such file or directory/);
  assert.ok(!isAlive(ns.pid), 'no process left');
  assert.equal(hostMounts(), host, 'no mount left');
  assert.deepEqual(yards(), []);
  // An external mount whose source is missing is refused before anything exists.
  const img2 = c.subdir('img2');
  writeFileSync(join(ns.host, 'f'), 'hostdata\n');
  const t = startNs({ dir: c.subdir('again') });
  dumpAndReap(t.pid, img2, ['--external', `mnt[${t.d}/a]:K`]);
  msg = assertCleanError(restore(img2, ['-d', '--external', 'mnt[K]:/nonexistent/dir']));
  assert.match(msg, /: its source \/nonexistent\/dir does not exist/);
});

e2e('a child in a mount namespace of its own: both namespaces come back, each file in its own', async (c) => {
  const ns = startNs(c, false, true);
  const child = await waitFor(() => descendants(ns.pid).find((p) => cmdline(p)?.join(' ') === 'sleep 1001'), 5000, 'the nested child');
  const [rootBefore, childBefore] = [mounts(ns.pid), mounts(child)];
  assert.notDeepEqual(rootBefore, childBefore);
  const img = c.subdir('img');
  dumpAndReap(ns.pid, img);
  assert.equal(readdirSync(img).filter((n) => n.startsWith('mountpoints-')).length, 2, 'one image per namespace');
  restoreDetached(img, ns.pid);
  adopt(child);
  assert.deepEqual(mounts(ns.pid), rootBefore);
  assert.deepEqual(mounts(child), childBefore);
  assert.notEqual(readlinkSync(`/proc/${child}/ns/mnt`), readlinkSync(`/proc/${ns.pid}/ns/mnt`));
  assert.equal(readFileSync(`/proc/${child}/fd/5`, 'utf8'), 'nested\n', "the child's file, in its tmpfs");
  assert.equal(fdMountId(child, 5), mountIdAt(child, `${ns.d}/t/sub/deeper`));
  assert.equal(readFileSync(`/proc/${ns.pid}/root${ns.d}/t/sub/deeper/x`, 'utf8'), 'tmpdata\n', "the root's namespace has no nested tmpfs");
  process.kill(child, 'SIGKILL');
  killAndReap(ns.pid);
});
