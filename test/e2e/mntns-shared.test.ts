/**
 * Mount namespaces that share: a root in a mount namespace of its own whose root mount is
 * shared, and a child that unshared a copy of it (its mounts peers of the parent's), bound a
 * directory there and works in a directory of it; then the parent mounted a tmpfs that
 * propagated into the child's copy and its bind. After a restore the child has its cwd back
 * (entering the namespace moved it), both namespaces see one tmpfs (one superblock, not two),
 * and the peer groups span the namespaces again: an unmount in the child reaches the parent.
 * And unix sockets of a tree in its own mount namespace: their names are bound again there.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  waitFor,
  descendants,
  cmdline,
  adopt,
  reap,
  readLines,
  signal,
  waitForLine,
  SIGUSR1,
} from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';

/**
 * Starts `body` (sh) in a mount namespace of its own (`unshare -m --propagation private`) that
 * has pivoted into a bind of / with a proc of its own; in `body`, $W is `c.dir`/w and "$@"
 * `args`. `dirs` (under `c.dir`) are made first. The program it ends in: `execs`.
 */
function startInNs(c: { dir: string }, body: string, dirs: string[], args: string[] = [], execs = ['sleep', '1000'], logFile?: string) {
  const w = join(c.dir, 'w');
  for (const x of ['root', 'w', ...dirs]) mkdirSync(join(c.dir, x), { recursive: true });
  const script = join(c.dir, 'setup.sh');
  writeFileSync(
    script,
    `set -e\nR=$1 W=$2\nshift 2\nmount --bind / $R\nmount -t proc proc $R/proc\ncd $R\npivot_root . .\numount -l .\n${body}`,
  );
  const argv = ['unshare', '-m', '--propagation', 'private', 'sh', script, join(c.dir, 'root'), w, ...args];
  return { ...startTarget(argv, { execs, ...(logFile ? { logFile } : {}) }), w };
}

/** A shared root; a child unshares a copy of it and binds test onto test.bind; then a tmpfs on test/sub. */
const SETUP = `mount -t devtmpfs devtmpfs /dev
mount --make-shared /
cd $W
touch ready
unshare -m --propagation unchanged sh -c "mount --bind test test.bind; touch done; exec sleep 1001" 0<ready >>out 2>&1 &
while [ ! -e done ]; do sleep 0.01; done
mount -t tmpfs shared test/sub
echo data > test/sub/f
exec sleep 1000 0<ready >>out 2>&1
`;

/** The peer group numbers (shared:N) of the mounts at `mountpoint` in `pid`'s namespace. */
function groups(pid: number, mountpoint: string): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === mountpoint)
    .map((f) => /shared:(\d+)/.exec(f.slice(6).join(' '))?.[1] ?? 'private');
}

function inNs(pid: number, cmd: string): { status: number | null; out: string } {
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', 'sh', '-c', cmd], { encoding: 'utf8' });
  return { status: r.status, out: (r.stdout + r.stderr).trim() };
}

e2e('a child in a copy of its parent’s shared mount namespace: cwd, one tmpfs, peer groups across both', async (c) => {
  const t = startInNs(c, SETUP, ['w/test/sub', 'w/test.bind']);
  const w = t.w;
  const child = await waitFor(() => descendants(t.pid).find((p) => cmdline(p)?.join(' ') === 'sleep 1001'), 5000, 'the child');
  const sub = `${w}/test/sub`;
  const before = { root: groups(t.pid, '/'), sub: groups(child, sub), bound: groups(child, `${w}/test.bind/sub`) };
  assert.equal(before.root.length, 1);
  assert.deepEqual(groups(child, '/'), before.root, 'the setup made the copies peers');
  assert.deepEqual(groups(t.pid, sub), before.sub);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  adopt(child);
  assert.notEqual(readlinkSync(`/proc/${child}/ns/mnt`), readlinkSync(`/proc/${t.pid}/ns/mnt`));
  assert.equal(readlinkSync(`/proc/${child}/cwd`), w, "the child's working directory, in its own namespace");
  assert.equal(readlinkSync(`/proc/${t.pid}/cwd`), w);
  const root = groups(t.pid, '/');
  assert.equal(root.length, 1);
  assert.notEqual(root[0], 'private');
  assert.deepEqual(groups(child, '/'), root, "the child's root is a peer of its parent's again");
  const s = groups(t.pid, sub);
  assert.deepEqual(groups(child, sub), s, 'the tmpfs mounts are peers across the namespaces');
  assert.deepEqual(groups(child, `${w}/test.bind/sub`), s);
  // One superblock: a file written in one namespace is in the other.
  writeFileSync(`/proc/${t.pid}/root${sub}/g`, 'parent\n');
  assert.equal(readFileSync(`/proc/${child}/root${w}/test.bind/sub/g`, 'utf8'), 'parent\n', 'one tmpfs, seen from both');
  assert.equal(readFileSync(`/proc/${child}/root${sub}/f`, 'utf8'), 'data\n');
  // An unmount in the child's root propagates to its peers: the parent's copy and both binds.
  const u = inNs(child, `umount ${sub} && grep -c ' ${w}/test' /proc/self/mountinfo`);
  assert.equal(u.out, '1', `only the bind is left in the child: ${u.out}`);
  assert.deepEqual(groups(t.pid, sub), [], "the unmount reached the parent's namespace");
  process.kill(child, 'SIGKILL');
  killAndReap(t.pid);
});

/** $1 the workload, $2 its log; it works in $W, a tmpfs of the namespace's own (on the host, another directory). */
const UNIXSK = `mount -t devtmpfs devtmpfs /dev
mount -t tmpfs sk $W
exec "$1" $W </dev/null >>$2 2>&1
`;

e2e('unix sockets of a tree in its own mount namespace: names bound, connected and sent to there', async (c) => {
  const log = join(c.dir, 'unixsk.log');
  const d = join(c.dir, 'w');
  const t = startInNs(c, UNIXSK, [], [workload('unixsk'), log], [workload('unixsk'), d], log);
  await waitForLine(log, /^READY/, 5000);
  // Each name once: an accepted connection shows its listener's name only before a restore.
  const names = () =>
    [
      ...new Set(
        readFileSync(`/proc/${t.pid}/net/unix`, 'utf8')
          .split('\n')
          .map((l) => l.trim().split(/\s+/)[7])
          .filter((n) => n?.startsWith(d) || n === 'rel-seq'),
      ),
    ].sort();
  const before = names();
  assert.ok(before.length >= 2, `bound names: ${before}`);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(names(), before, 'the same names, absolute and relative');
  signal(t.pid, SIGUSR1);
  await waitForLine(log, /^DONE/, 10_000);
  assert.deepEqual(
    readLines(log).filter((l) => l.startsWith('FAIL')),
    [],
    'the workload checks its sockets in its namespace',
  );
  assert.equal(reap(t.pid, 5000)?.code, 0);
});

/** Mounts stacked on their parent's root. */
const STACKED = `cd $W
mount -t tmpfs under a
mkdir -p a/b/c
echo deep > a/b/c/f
mount --bind a/b a
mount -t tmpfs top a/c
echo top > a/c/t
exec sleep 1000 0<a/c/t >>a/c/out 2>&1
`;

/** Each mount as mountpoint, root, file system and source, sorted. */
function shape(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.split(' ');
      const tail = l.slice(l.indexOf(' - ') + 3).split(' ');
      return `${f[4]} ${f[3]} ${tail[0]} ${tail[1]}`;
    })
    .sort();
}

e2e('a mount stacked on its parent’s root (a bind over the tmpfs it binds) with a mount under it', async (c) => {
  const t = startInNs(c, STACKED, ['w/a']);
  const w = t.w;
  const before = shape(t.pid);
  assert.ok(before.includes(`${w}/a /b tmpfs under`), before.join('\n'));
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(shape(t.pid), before);
  assert.equal(readFileSync(`/proc/${t.pid}/root${w}/a/c/t`, 'utf8'), 'top\n');
  assert.equal(readFileSync(`/proc/${t.pid}/fd/0`, 'utf8'), 'top\n', 'stdin is open in the top tmpfs');
  killAndReap(t.pid);
});

/** Binds of what was removed since. */
const REMOVED = `cd $W
mount -t tmpfs tmp t
mkdir t/src t/dst
echo inside > t/src/x
touch t/f t/g
echo file > t/f
mount --bind t/src t/dst
mount --bind t/f t/g
rm t/src/x
rmdir t/src
rm t/f
mount --bind dsrc ddst
rmdir dsrc
exec sleep 1000 0<t/g >>t/out 2>&1
`;

e2e('binds of a directory and a file removed since (mountinfo //deleted) come back removed', async (c) => {
  const t = startInNs(c, REMOVED, ['w/t', 'w/dsrc', 'w/ddst']);
  const w = t.w;
  const before = shape(t.pid);
  assert.ok(before.includes(`${w}/t/dst /src//deleted tmpfs tmp`), before.join('\n'));
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(shape(t.pid), before, 'the same binds, of removed roots');
  assert.equal(readFileSync(`/proc/${t.pid}/fd/0`, 'utf8'), 'file\n', 'stdin is the bound file');
  assert.deepEqual(readdirSync(`/proc/${t.pid}/root${w}/t`).sort(), ['dst', 'g', 'out'], 'nothing made for the binds is left');
  assert.ok(!existsSync(join(w, 'dsrc')), 'nor on the root file system');
  killAndReap(t.pid);
});

/** A removed file open through a read-only bind. */
const GHOST_RO = `cd $W
mount -t tmpfs tmp t
echo removed > t/f
mount --bind t ro
mount -o remount,bind,ro ro
exec 3<ro/f
rm t/f
exec sleep 1000 0<&3 >>t/out 2>&1
`;

e2e('a removed file open through a read-only bind: its ghost is made there, and the bind is read-only again', async (c) => {
  const t = startInNs(c, GHOST_RO, ['w/t', 'w/ro']);
  const w = t.w;
  const opts = (pid: number) =>
    readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[4] === `${w}/ro`)?.[5];
  assert.match(opts(t.pid) ?? '', /^ro,/);
  const before = shape(t.pid);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(shape(t.pid), before);
  assert.match(opts(t.pid) ?? '', /^ro,/, 'the bind is read-only again');
  assert.equal(readFileSync(`/proc/${t.pid}/fd/0`, 'utf8'), 'removed\n', 'the removed file, from its ghost');
  assert.match(readlinkSync(`/proc/${t.pid}/fd/0`), /\(deleted\)$/);
  assert.deepEqual(readdirSync(`/proc/${t.pid}/root${w}/t`), ['out'], 'no ghost file left');
  killAndReap(t.pid);
});

/** A peer group whose member of a narrower root (p1/a, a bind of /sub) comes first in the tree. */
const NARROW_FIRST = `cd $W
mount -t tmpfs t q
mkdir q/sub
mount -t tmpfs p p1
mkdir p1/a
mount --bind q s
mount --make-shared s
mount --bind s/sub p1/a
exec sleep 1000 0<q/sub >>q/out 2>&1
`;

e2e('a peer group joined from its member of the widest root, wherever the others are in the tree', async (c) => {
  const t = startInNs(c, NARROW_FIRST, ['w/q', 'w/p1', 'w/s']);
  const w = t.w;
  const [s] = groups(t.pid, `${w}/s`);
  assert.notEqual(s, 'private');
  assert.deepEqual(groups(t.pid, `${w}/p1/a`), [s], 'the setup made p1/a a peer of s');
  const before = shape(t.pid);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(shape(t.pid), before);
  const [after] = groups(t.pid, `${w}/s`);
  assert.notEqual(after, 'private');
  assert.deepEqual(groups(t.pid, `${w}/p1/a`), [after], 'p1/a is a peer of s again');
  killAndReap(t.pid);
});

/** A pty of a devpts of the namespace's own bound on a file (as a container's /dev/console), its master held. */
const CONSOLE = `cd $W
mount -t tmpfs dev d
mkdir d/pts
touch d/console d/out
mount -t devpts -o newinstance,ptmxmode=0666 pts d/pts
exec 3<>d/pts/ptmx
mount --bind d/pts/0 d/console
exec sleep 1000 0<d/out >>d/out 2>&1
`;

e2e('a pty bound on a file (a console): made in the new devpts for the bind, its master the one restored', async (c) => {
  const t = startInNs(c, CONSOLE, ['w/d']);
  const w = t.w;
  const before = shape(t.pid);
  assert.ok(before.includes(`${w}/d/console /0 devpts pts`), before.join('\n'));
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(shape(t.pid), before, 'the console is a bind of pts/0 again (not of a removed one)');
  assert.match(readFileSync(`/proc/${t.pid}/fdinfo/3`, 'utf8'), /^tty-index:\s+0$/m, 'fd 3 is the master of pty 0');
  const root = `/proc/${t.pid}/root${w}/d`;
  assert.equal(statSync(`${root}/console`).ino, statSync(`${root}/pts/0`).ino, 'the console is pts/0 of the namespace’s devpts');
  killAndReap(t.pid);
});
