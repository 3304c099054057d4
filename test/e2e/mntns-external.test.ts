/**
 * Mount namespaces that reach outside: a mount that is a slave of a host mount's peer group
 * (named with --external mnt[PATH]:KEY, or found by --external mnt[] with
 * --enable-external-masters) is a slave of that group again after a restore; a nested
 * namespace's bind of a file system mounted only in its parent's namespace, with one deleted
 * file open on mounts of both namespaces (a ghost, or a link with --link-remap); and a stack of
 * tmpfs mounts covering each other, each read through a copy of its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, waitFor, descendants, cmdline, adopt, runCriu, assertOk } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { critDecodeAll, haveCrit } from '../lib/crit.ts';

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
}

/** mountinfo of `pid`: per mountpoint, its optional fields (shared:N, master:N). */
function propagation(pid: number, mountpoint: string): string | undefined {
  for (const l of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const f = l.split(' ');
    if (f[4] === mountpoint) return f.slice(6, f.indexOf('-')).join(' ');
  }
  return undefined;
}

/**
 * A tree in a mount namespace of its own whose mounts are slaves of the host's, pivoted into a
 * bind of / with a proc of its own; `binds` (host source → mountpoint) bound before the pivot.
 */
function startSlaveNs(
  c: { dir: string },
  binds: Array<[string, string]>,
  body = `exec sleep 1000 0<${join(c.dir, 'out')} >>${join(c.dir, 'out')} 2>&1`,
) {
  const r = join(c.dir, 'root');
  mkdirSync(r, { recursive: true });
  writeFileSync(join(c.dir, 'out'), '');
  const script = join(c.dir, 'setup.sh');
  writeFileSync(
    script,
    `set -e\nmount --make-rslave /\nmount --bind / ${r}\n${binds.map(([s, d]) => `mount --bind ${s} ${r}${d}\n`).join('')}mount -t proc proc ${r}/proc\ncd ${r}\npivot_root . .\numount -l .\n${body}\n`,
  );
  return startTarget(['unshare', '-m', '--propagation', 'unchanged', 'sh', script], { execs: ['sleep', '1000'] });
}

/** A shared tmpfs at `dir` on the host (its own peer group), with a file. */
function sharedTmpfs(dir: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  sh(`mount -t tmpfs ext ${dir} && mount --make-private ${dir} && mount --make-shared ${dir} && echo ${text} > ${dir}/f`);
  const group = /shared:(\d+)/.exec(propagation(process.pid, dir) ?? '')?.[1];
  assert.ok(group, `the host tmpfs at ${dir} is shared`);
  return group;
}

e2e('a slave of a host mount named external: its master again after a restore, and propagation from the host', async (c) => {
  const src = join(c.dir, 'src');
  const dst = join(c.dir, 'dst');
  mkdirSync(dst);
  const group = sharedTmpfs(src, 'host');
  try {
    const t = startSlaveNs(c, [[src, dst]]);
    await waitFor(() => propagation(t.pid, dst), 5000, 'the bind');
    assert.equal(propagation(t.pid, dst), `master:${group}`);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img, ['--external', `mnt[${dst}]:EXT`]);
    restoreDetached(img, t.pid, ['--external', `mnt[EXT]:${src}`]);
    assert.equal(propagation(t.pid, dst), `master:${group}`, 'a slave of the host group again');
    assert.equal(readFileSync(`/proc/${t.pid}/root${dst}/f`, 'utf8'), 'host\n');
    sh(`mkdir ${src}/sub && mount -t tmpfs late ${src}/sub && echo late > ${src}/sub/g`);
    assert.equal(readFileSync(`/proc/${t.pid}/root${dst}/sub/g`, 'utf8'), 'late\n', 'a mount on the host propagates in');
    killAndReap(t.pid);
  } finally {
    sh(`umount -R ${src}`);
  }
});

e2e('--external mnt[] finds host mounts itself: a private bind and, with --enable-external-masters, a slave', async (c) => {
  const src = join(c.dir, 'src');
  const priv = join(c.dir, 'priv');
  const dst = join(c.dir, 'dst');
  const pdst = join(c.dir, 'pdst');
  for (const d of [dst, pdst]) mkdirSync(d);
  const group = sharedTmpfs(src, 'host');
  mkdirSync(priv);
  sh(`mount -t tmpfs privext ${priv} && mount --make-private ${priv} && mkdir ${priv}/sub && echo p > ${priv}/sub/f`);
  try {
    const t = startSlaveNs(c, [
      [src, dst],
      [`${priv}/sub`, pdst],
    ]);
    await waitFor(() => propagation(t.pid, pdst), 5000, 'the binds');
    const img = c.subdir('img');
    // Without --enable-external-masters the slave is not found external, and is refused.
    const refused = spawnSync(
      join(import.meta.dirname, '../../bin/criu-ts'),
      ['dump', '-t', String(t.pid), '-D', img, '--external', 'mnt[]'],
      {
        encoding: 'utf8',
      },
    );
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, new RegExp(`${dst}.*a slave of peer group ${group}, which is outside the namespace`));
    assert.equal(statSync(`/proc/${t.pid}`).isDirectory(), true, 'the refused dump left the target running');
    dumpAndReap(t.pid, img, ['--external', 'mnt[]', '--enable-external-masters']);
    if (haveCrit()) {
      const mnts = readdirSync(img).filter((n) => n.startsWith('mountpoints-'));
      const entries = critDecodeAll(img, mnts, c.subdir('crit')).get(mnts[0])!.entries as Array<Record<string, unknown>>;
      const byMp = (mp: string) => entries.find((e) => e.mountpoint === mp)!;
      assert.equal(byMp(pdst).ext_key, 'CRIU:AUTOGENERATED');
      assert.equal(byMp(pdst).source, `${priv.slice(1)}/sub`, 'the host path, as CRIU keeps it');
      assert.equal(byMp(dst).ext_key, 'CRIU:AUTOGENERATED');
    }
    restoreDetached(img, t.pid, ['--external', 'mnt[]']);
    assert.equal(propagation(t.pid, dst), `master:${group}`);
    assert.equal(propagation(t.pid, pdst), '', 'the private bind stays private');
    // One superblock with the host's: a file written there is seen inside.
    writeFileSync(`${priv}/sub/g`, 'after\n');
    assert.equal(readFileSync(`/proc/${t.pid}/root${pdst}/g`, 'utf8'), 'after\n');
    killAndReap(t.pid);
  } finally {
    sh(`umount -R ${src}; umount -R ${priv}`);
  }
});

/**
 * The root works in $W (its own namespace, private): a tmpfs at t with t/1 bound at one and
 * F open there (fd 3); a child unshares, takes one and t off, binds t/2 at two and opens F's
 * other name there (fd 4); both names go ($1 = keep: a third name t/F stays, for --link-remap).
 */
const GHOST = `mount -t devtmpfs devtmpfs /dev
cd $W
mount -t tmpfs t t
mkdir t/1 t/2
echo data > t/1/F
ln t/1/F t/2/F
[ "$1" = keep ] && ln t/1/F t/F
mount --bind t/1 one
exec 3<one/F
unshare -m --propagation private sh -c "umount one; mount --bind t/2 two; umount -l t; exec 4<two/F; touch ready; exec sleep 1001 0<out >>out 2>&1" &
while [ ! -e ready ]; do sleep 0.01; done
rm ready t/1/F t/2/F
exec sleep 1000 0<out >>out 2>&1
`;

/**
 * `body` (sh) in a private mount namespace of its own pivoted into a bind of / with a proc of
 * its own; $W is `c.dir`/w (with `dirs` made in it) and "$@" `args`.
 */
function startPivoted(c: { dir: string }, body: string, dirs: string[], args: string[] = []) {
  const w = join(c.dir, 'w');
  const r = join(c.dir, 'root');
  for (const d of ['', ...dirs]) mkdirSync(join(w, d), { recursive: true });
  writeFileSync(join(w, 'out'), '');
  mkdirSync(r, { recursive: true });
  const script = join(c.dir, 'setup.sh');
  writeFileSync(script, `set -e\nmount --bind / ${r}\nmount -t proc proc ${r}/proc\ncd ${r}\npivot_root . .\numount -l .\nW=${w}\n${body}`);
  return { ...startTarget(['unshare', '-m', '--propagation', 'private', 'sh', script, ...args], { execs: ['sleep', '1000'] }), w };
}

function startGhost(c: { dir: string }, keep: boolean) {
  return startPivoted(c, GHOST, ['t', 'one', 'two'], keep ? ['keep'] : []);
}

/** dev:ino and mount id of `pid`'s fd. */
function fdInode(pid: number, fd: number): { inode: string; mnt: number; text: string } {
  const st = statSync(`/proc/${pid}/fd/${fd}`);
  const mnt = Number(/^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]);
  return { inode: `${st.dev}:${st.ino}`, mnt, text: readFileSync(`/proc/${pid}/fd/${fd}`, 'utf8') };
}

function mountIds(pid: number): Set<number> {
  return new Set(
    readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => Number(l.split(' ')[0])),
  );
}

for (const keep of [false, true]) {
  e2e(
    `a deleted file open on mounts of two namespaces (${keep ? 'a hard link left: --link-remap' : 'a ghost'}): one inode, each fd on its namespace's mount`,
    async (c) => {
      const t = startGhost(c, keep);
      const child = await waitFor(() => descendants(t.pid).find((p) => cmdline(p)?.join(' ') === 'sleep 1001'), 5000, 'the child');
      const before = fdInode(child, 3);
      assert.equal(fdInode(child, 4).inode, before.inode);
      assert.ok(!mountIds(child).has(before.mnt), "fd 3 is on a mount of the parent's namespace");
      const img = c.subdir('img');
      dumpAndReap(t.pid, img, keep ? ['--link-remap'] : []);
      restoreDetached(img, t.pid, keep ? ['--link-remap'] : []);
      adopt(child);
      const a = fdInode(child, 3);
      const b = fdInode(child, 4);
      assert.equal(a.inode, b.inode, 'one inode for both fds');
      assert.equal(a.text, 'data\n');
      assert.ok(mountIds(t.pid).has(a.mnt) && !mountIds(child).has(a.mnt), "fd 3 is on the parent's mount");
      assert.ok(mountIds(child).has(b.mnt), "fd 4 is on the child's mount");
      assert.match(readlinkSync(`/proc/${child}/fd/4`), /two\/F \(deleted\)$/);
      assert.deepEqual(readdirSync(`/proc/${child}/root${t.w}/two`), [], 'no name left behind');
      if (keep) assert.deepEqual(readdirSync(`/proc/${t.pid}/root${t.w}/t`).sort(), ['1', '2', 'F']);
      process.kill(child, 'SIGKILL');
      killAndReap(t.pid);
    },
  );
}

/** tmpfs mounts stacked at a/b and a, each with a file (ZDTM's tempfs_overmounted). */
const STACK = `cd $W
mkdir -p a/b
mount -t tmpfs n1 a/b; echo 1 > a/b/f
mount -t tmpfs n2 a/b; echo 2 > a/b/f; mkdir a/b/c
mount -t tmpfs n3 a/b/c; echo 3 > a/b/c/f
mount -t tmpfs n4 a; echo 4 > a/f
mount -t tmpfs n5 a; echo 5 > a/f; mkdir a/b
mount -t tmpfs n6 a/b; echo 6 > a/b/f
exec sleep 1000 0<out >>out 2>&1
`;

e2e('tmpfs mounts covering each other: every layer’s files back', async (c) => {
  const t = startPivoted(c, STACK, []);
  const w = t.w;
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  // Read each layer from the top, taking off what covers it, in a copy of the namespace.
  const r = spawnSync(
    'nsenter',
    [
      '-t',
      String(t.pid),
      '-m',
      'unshare',
      '-m',
      'sh',
      '-c',
      `cd ${w}; cat a/b/f; umount a/b; cat a/f; umount a; cat a/f; umount a; cat a/b/c/f a/b/f; umount -l a/b; cat a/b/f`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.stdout, '6\n5\n4\n3\n2\n1\n', r.stderr);
  killAndReap(t.pid);
});

/** A binfmt_misc mount with a format registered: $1 the format's name. */
const BINFMT = `cd $W
mount -t binfmt_misc none bm
echo ":$1:E::$1::/bin/true:" > bm/register
exec sleep 1000 0<out >>out 2>&1
`;

e2e('a binfmt_misc mount with a format registered (the only mount of its superblock): saved, registered again', async (c) => {
  const name = `criu-ts-e2e-${process.pid}`;
  const t = startPivoted(c, BINFMT, ['bm'], [name]);
  try {
    const bm = `/proc/${t.pid}/root${t.w}/bm`;
    assert.match(readFileSync(`${bm}/${name}`, 'utf8'), /^enabled/);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    // CRIU's binfmt-misc.img (crit has no handler for its magic: criu-ts's own decodes it).
    const e = JSON.parse(assertOk(runCriu(['crit', 'show', join(img, 'binfmt-misc.img')])).stdout).entries;
    assert.deepEqual(e, [{ name, enabled: true, interpreter: '/bin/true', flags: '', extension: name }]);
    restoreDetached(img, t.pid);
    assert.equal(propagation(t.pid, `${t.w}/bm`), '', 'mounted again');
    assert.match(readFileSync(`${bm}/${name}`, 'utf8'), /extension \.criu-ts-e2e/);
    killAndReap(t.pid);
  } finally {
    const host = join(c.dir, 'bm-host');
    mkdirSync(host, { recursive: true });
    spawnSync('sh', ['-c', `mount -t binfmt_misc none ${host} && { echo -1 > ${host}/${name}; umount ${host}; }`]);
  }
});
