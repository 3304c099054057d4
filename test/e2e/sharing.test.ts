/**
 * What processes of a tree share: an open file description (one offset),
 * MAP_SHARED anonymous memory, a memfd mapping, an fd table / fs_struct /
 * signal handlers (clone without CLONE_THREAD); and sessions and groups whose
 * leader is dead; and freezing through a freezer cgroup.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  signal,
  sleep,
  readLines,
  waitForLine,
  waitFor,
  descendants,
  assertRunningFree,
  parseKV,
  assertConsecutive,
  procStat,
  SIGUSR1,
} from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { kcmp, KCMP } from '../../src/kernel/index.ts';
import { treeSnapshot, renderTree, fdTargets } from '../lib/tree.ts';

/** "P n=3 peer=2 mpeer=-1" lines of one role, parsed. */
function roleLines(log: string, role: 'P' | 'C'): Record<string, string>[] {
  return readLines(log)
    .filter((l) => l.startsWith(`${role} `))
    .map(parseKV);
}

/** The data file has only whole "P n=N" / "C n=N" lines, each role consecutive from 1. */
function checkSharedFile(path: string): { p: number; c: number } {
  const text = readFileSync(path, 'latin1');
  assert.ok(!text.includes('\0'), 'the shared file has holes: the two processes wrote at different offsets');
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a whole line');
  const seq: Record<string, number[]> = { P: [], C: [] };
  for (const l of lines) {
    const m = /^([PC]) n=(\d+)$/.exec(l);
    assert.ok(m, `torn or overwritten line ${JSON.stringify(l)}: the offset is not shared`);
    seq[m[1]].push(Number(m[2]));
  }
  assertConsecutive(seq.P, 'parent lines in the shared file', 1);
  assertConsecutive(seq.C, 'child lines in the shared file', 1);
  return { p: seq.P.length, c: seq.C.length };
}

async function startSharer(c: { dir: string }, flags: string[]): Promise<{ pid: number; child: number; log: string; file: string }> {
  const file = join(c.dir, 'shared.txt');
  const t = startTarget([workload('sharer'), '-f', file, ...flags], { logFile: join(c.dir, 'sharer.log') });
  await waitFor(() => roleLines(t.log, 'C').length >= 3 && roleLines(t.log, 'P').length >= 3, 5000, 'both to run');
  const kids = descendants(t.pid);
  assert.equal(kids.length, 1, 'one child');
  return { pid: t.pid, child: kids[0], log: t.log, file };
}

/** Dump, restore, and wait for both to have written `more` lines each since. */
async function crossDumpPair(
  c: { subdir(n: string): string },
  s: { pid: number; child: number; log: string },
  more = 4,
): Promise<{ p: number; c: number }> {
  const img = c.subdir('img');
  dumpAndReap(s.pid, img);
  const at = { p: roleLines(s.log, 'P').length, c: roleLines(s.log, 'C').length };
  restoreDetached(img, s.pid);
  assertRunningFree(s.child, 'the restored child');
  assert.equal(procStat(s.child)!.ppid, s.pid, "the child's parent");
  await waitFor(() => roleLines(s.log, 'P').length >= at.p + more && roleLines(s.log, 'C').length >= at.c + more, 10_000, 'both to go on');
  return at;
}

e2e('a parent and a child keep sharing one file offset through dump + restore', async (c) => {
  const s = await startSharer(c, []);
  const fd = 3;
  assert.equal(kcmp(s.pid, s.child, KCMP.FILE, fd, fd), 0, 'one open file description before');
  await crossDumpPair(c, s);
  assert.equal(fdTargets(s.pid).get(fd), s.file);
  assert.equal(kcmp(s.pid, s.child, KCMP.FILE, fd, fd), 0, 'still one open file description after restore');
  killAndReap(s.pid);
  const n = checkSharedFile(s.file);
  assert.ok(n.p >= 7 && n.c >= 7, `both wrote to the file: ${JSON.stringify(n)}`);
});

/** After restore each must see the other's new values in the shared page. */
async function checkPeers(s: { log: string }, key: 'peer' | 'mpeer', at: { p: number; c: number }): Promise<void> {
  const pLines = roleLines(s.log, 'P'),
    cLines = roleLines(s.log, 'C');
  const pAfter = pLines.slice(at.p),
    cAfter = cLines.slice(at.c);
  // The newest value each side saw of the other is past what the other had written at dump time.
  const pSaw = Math.max(...pAfter.map((l) => Number(l[key])));
  const cSaw = Math.max(...cAfter.map((l) => Number(l[key])));
  assert.ok(pSaw > at.c + 1, `the parent sees the child's writes after restore (saw ${pSaw}, child was at ${at.c} at dump)`);
  assert.ok(cSaw > at.p + 1, `the child sees the parent's writes after restore (saw ${cSaw}, parent was at ${at.p} at dump)`);
}

/** The inode of the shared mapping named like `path` in /proc/PID/maps (e.g. "/dev/zero (deleted)"). */
function sharedInode(pid: number, path: RegExp): string {
  const line = readFileSync(`/proc/${pid}/maps`, 'latin1')
    .split('\n')
    .find((l) => / rw-s /.test(l) && path.test(l));
  assert.ok(line, `no shared writable mapping matching ${path} in ${pid}`);
  return line.trim().split(/\s+/)[4];
}

e2e('a parent and a child keep sharing MAP_SHARED anonymous memory and a file offset', async (c) => {
  const s = await startSharer(c, ['-m']);
  assert.equal(sharedInode(s.pid, /\/dev\/zero/), sharedInode(s.child, /\/dev\/zero/), 'one shmem object before');
  const at = await crossDumpPair(c, s, 6);
  assert.equal(sharedInode(s.pid, /\/dev\/zero/), sharedInode(s.child, /\/dev\/zero/), 'one shmem object after restore');
  await checkPeers(s, 'peer', at);
  assert.equal(kcmp(s.pid, s.child, KCMP.FILE, 3, 3), 0, 'one open file description');
  killAndReap(s.pid);
  checkSharedFile(s.file);
});

e2e('a parent and a child keep sharing a memfd mapping', async (c) => {
  const s = await startSharer(c, ['-M']);
  assert.equal(sharedInode(s.pid, /memfd:sharer/), sharedInode(s.child, /memfd:sharer/), 'one memfd before');
  const at = await crossDumpPair(c, s, 6);
  assert.equal(sharedInode(s.pid, /memfd:sharer/), sharedInode(s.child, /memfd:sharer/), 'one memfd after restore');
  await checkPeers(s, 'mpeer', at);
  killAndReap(s.pid);
  checkSharedFile(s.file);
});

e2e('clone(CLONE_FILES | CLONE_FS): parent and child still share the fd table and fs after restore', async (c) => {
  const t = startTarget([workload('cloneshare'), '-f'], { logFile: join(c.dir, 'clone.log') });
  const child = Number(parseKV((await waitForLine(t.log, /^child pid=/, 5000)).line).pid);
  await waitForLine(t.log, /^c=3$/, 5000);
  assert.equal(kcmp(t.pid, child, KCMP.FILES, 0, 0), 0, 'shared fd table before');
  assert.equal(kcmp(t.pid, child, KCMP.FS, 0, 0), 0, 'shared fs before');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.equal(kcmp(t.pid, child, KCMP.FILES, 0, 0), 0, 'shared fd table after restore');
  assert.equal(kcmp(t.pid, child, KCMP.FS, 0, 0), 0, 'shared fs after restore');
  const mark = readLines(t.log).length;
  signal(t.pid, SIGUSR1); // the parent opens fd 100; the child sees it in the shared table
  await waitForLine(t.log, /^c=\d+ fd=100$/, 5000, mark);
  killAndReap(t.pid);
});

e2e(
  'a grandchild cloned with CLONE_FILES by a child that shares the fd table of its parent: one table for all three after restore',
  async (c) => {
    const t = startTarget([workload('cloneshare'), '-g'], { logFile: join(c.dir, 'clone.log') });
    const grand = Number(parseKV((await waitForLine(t.log, /^grandchild pid=/, 5000)).line).pid);
    await waitForLine(t.log, /^g=3$/, 5000);
    assert.equal(kcmp(t.pid, grand, KCMP.FILES, 0, 0), 0, 'shared fd table before');
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    restoreDetached(img, t.pid);
    assert.equal(kcmp(t.pid, grand, KCMP.FILES, 0, 0), 0, 'shared fd table after restore');
    const mark = readLines(t.log).length;
    signal(t.pid, SIGUSR1); // the parent opens fd 100; the grandchild sees it in the shared table
    await waitForLine(t.log, /^g=\d+ fd=100$/, 5000, mark);
    killAndReap(t.pid);
  },
);

e2e('clone(CLONE_VM | CLONE_SIGHAND | CLONE_FILES | CLONE_FS): parent and child still share them after restore', async (c) => {
  const t = startTarget([workload('cloneshare'), '-s'], { logFile: join(c.dir, 'clone.log') });
  const child = Number(parseKV((await waitForLine(t.log, /^child pid=/, 5000)).line).pid);
  await waitForLine(t.log, /^c=3$/, 5000);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const atP = readLines(t.log).filter((l) => l.startsWith('p=')).length;
  const atC = readLines(t.log).filter((l) => l.startsWith('c=')).length;
  restoreDetached(img, t.pid);
  for (const [kind, name] of [
    [KCMP.VM, 'vm'],
    [KCMP.SIGHAND, 'sighand'],
    [KCMP.FILES, 'files'],
    [KCMP.FS, 'fs'],
  ] as const) {
    assert.equal(kcmp(t.pid, child, kind, 0, 0), 0, `shared ${name} after restore`);
  }
  await waitFor(
    () =>
      readLines(t.log).filter((l) => l.startsWith('p=')).length > atP + 3 &&
      readLines(t.log).filter((l) => l.startsWith('c=')).length > atC + 3,
    10_000,
    'both to go on',
  );
  killAndReap(t.pid);
});

// ---------------------------------------------------------------- sessions and groups without their leader

/**
 * A subreaper root; a group whose leader exited (its two members are now
 * the root's); a session whose leader exited (likewise); and a zombie.
 */
const LEADERLESS = 'r(gx(p*2) sx(p*2) z)';

e2e('a process group and a session whose leaders are dead come back as they were', async (c) => {
  const t = startTarget([workload('tree'), LEADERLESS], { logFile: join(c.dir, 'tree.log') });
  await waitForLine(t.log, /^ready n=8$/, 5000);
  await waitFor(() => descendants(t.pid).length === 5, 5000, 'the two leaders to be reaped');
  const before = treeSnapshot(t.pid);
  const pgids = new Set(before.map((x) => x.pgid)),
    sids = new Set(before.map((x) => x.sid));
  const pids = new Set(before.map((x) => x.pid));
  assert.ok(
    [...pgids].some((g) => !pids.has(g)),
    `a group without its leader:\n${renderTree(before).join('\n')}`,
  );
  assert.ok(
    [...sids].some((s) => !pids.has(s)),
    'a session without its leader',
  );
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(renderTree(treeSnapshot(t.pid)), renderTree(before), 'the restored tree');
  killAndReap(t.pid);
});

// ---------------------------------------------------------------- --freeze-cgroup

// The v1 freezer where the machine has one (Debian 12 with systemd), else cgroup v2 (the lab).
const V2_ROOT = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) => existsSync(join(d, 'cgroup.controllers')));
const FREEZER = existsSync('/sys/fs/cgroup/freezer') ? { root: '/sys/fs/cgroup/freezer', v1: true } : { root: V2_ROOT, v1: false };
const thawed = (cg: string): boolean =>
  FREEZER.v1
    ? readFileSync(join(cg, 'freezer.state'), 'utf8').trim() === 'THAWED'
    : readFileSync(join(cg, 'cgroup.events'), 'utf8').includes('frozen 0');

e2e('dump --freeze-cgroup freezes the tree through a freezer cgroup', async (c) => {
  assert.ok(FREEZER.root, 'a cgroup v1 freezer or a cgroup v2 hierarchy');
  const cg = join(FREEZER.root, `criu-ts-test-${process.pid}-${Date.now()}`);
  mkdirSync(cg);
  try {
    const t = startTarget([workload('tree'), 'p(p*3 g(p*2))'], { logFile: join(c.dir, 'tree.log') });
    await waitForLine(t.log, /^ready n=7$/, 5000);
    for (const p of [t.pid, ...descendants(t.pid)]) writeFileSync(join(cg, 'cgroup.procs'), `${p}\n`);
    const before = treeSnapshot(t.pid);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img, ['--freeze-cgroup', cg]);
    assert.ok(thawed(cg), 'the cgroup is left thawed');
    restoreDetached(img, t.pid);
    assert.deepEqual(renderTree(treeSnapshot(t.pid)), renderTree(before), 'the restored tree');
    killAndReap(t.pid);
  } finally {
    for (let k = 0; k < 50; k++) {
      try {
        rmdirSync(cg);
        break;
      } catch {
        await sleep(20);
      }
    }
  }
});
