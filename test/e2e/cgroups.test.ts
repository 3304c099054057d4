/**
 * cgroups as CRIU keeps them: a tree in cgroups other than criu-ts's is saved with its sets
 * (cgroup.img) and, with --manage-cgroups, the directories below and the controllers'
 * properties; the restore puts it back into them, making the directories the mode allows
 * (soft: missing ones, with their properties; full: properties everywhere; strict: refuses an
 * existing one; ignore: nothing), under --cgroup-root if given. CRIU 4.2 reads our cgroup.img.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, assertCleanError, reap, isAlive, adopt } from '../lib/proc.ts';
import { dumpAndReap, restore, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIU42 } from '../lib/runc.ts';
import { spawnSync } from 'node:child_process';

const PIDS = '/sys/fs/cgroup/pids';
const CPU = '/sys/fs/cgroup/cpu';
const V2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find(
  (d) => existsSync(join(d, 'cgroup.procs')) && existsSync(join(d, 'cgroup.subtree_control')),
);
const skip = existsSync(join(PIDS, 'pids.max')) || existsSync(join(PIDS, 'cgroup.procs')) ? false : 'no cgroup v1 pids hierarchy here';
let seq = 0;

/** A test's cgroups: pids NAME (pids.max 77) with an empty child, cpu NAME (cpu.shares 512), cgroup2 NAME. */
function makeCgroups(): { name: string; dirs: string[] } {
  const name = `criu-ts-cg-${process.pid}-${++seq}`;
  const dirs = [join(PIDS, name), join(PIDS, name, 'sub'), join(CPU, name), ...(V2 ? [join(V2, name)] : [])];
  for (const d of dirs) mkdirSync(d);
  writeFileSync(join(PIDS, name, 'pids.max'), '77');
  writeFileSync(join(CPU, name, 'cpu.shares'), '512');
  return { name, dirs };
}

function removeCgroups(dirs: string[]): void {
  for (const d of [...dirs].reverse())
    try {
      rmdirSync(d);
    } catch {
      /* gone, or a test failed with a task inside: reaped by then */
    }
}

function cgroupOf(pid: number, ctrl: string): string | undefined {
  for (const l of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, c, p] = l.split(':');
    if (c === ctrl) return p;
  }
  return undefined;
}

async function counterIn(c: { dir: string }, name: string) {
  const t = startTarget([workload('counter'), '50'], { logFile: join(c.dir, 'counter.log') });
  for (const d of [join(PIDS, name), join(CPU, name), ...(V2 ? [join(V2, name)] : [])]) writeFileSync(join(d, 'cgroup.procs'), `${t.pid}`);
  await waitForCounter(t.log, 2);
  return t;
}

/** A counter in the test's cgroups, dumped with --manage-cgroups. */
async function dumpedIn(c: { dir: string; subdir(n: string): string }, name: string) {
  const t = await counterIn(c, name);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img, ['--manage-cgroups']);
  return { t, img };
}

e2e(
  'a task in its own cgroups: dumped, the cgroups removed, restored into them again with their properties (soft)',
  async (c) => {
    const { name, dirs } = makeCgroups();
    try {
      const { t, img } = await dumpedIn(c, name);
      assert.ok(existsSync(join(img, 'cgroup.img')), 'cgroup.img written');
      removeCgroups(dirs);
      restoreDetached(img, t.pid);
      assert.equal(cgroupOf(t.pid, 'pids'), `/${name}`);
      assert.equal(cgroupOf(t.pid, 'cpu'), `/${name}`);
      if (V2) assert.equal(cgroupOf(t.pid, ''), `/${name}`);
      assert.equal(readFileSync(join(PIDS, name, 'pids.max'), 'utf8').trim(), '77', 'pids.max restored');
      assert.equal(readFileSync(join(CPU, name, 'cpu.shares'), 'utf8').trim(), '512', 'cpu.shares restored');
      assert.ok(existsSync(join(PIDS, name, 'sub')), 'the empty child cgroup is made again');
      await waitForCounter(t.log, -1, 5000);
    } finally {
      cleanupAfter(dirs);
    }
  },
  { skip },
);

/** Kill what the test restored before its cgroups go (the e2e sweep kills it too, after). */
function cleanupAfter(dirs: string[]): void {
  for (const d of dirs) {
    const procs = existsSync(join(d, 'cgroup.procs'))
      ? readFileSync(join(d, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean)
      : [];
    for (const p of procs) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
      reap(Number(p), 5000);
    }
  }
  removeCgroups(dirs);
}

e2e(
  "existing cgroups: soft leaves their properties, full sets them, strict refuses and leaves nothing, ignore stays in criu-ts's",
  async (c) => {
    const { name, dirs } = makeCgroups();
    try {
      const { t, img } = await dumpedIn(c, name);
      writeFileSync(join(PIDS, name, 'pids.max'), '99');

      const strict = restore(img, ['-d', '--manage-cgroups=strict']);
      assert.match(assertCleanError(strict), new RegExp(`cgroup dir /sys/fs/cgroup/\\S+/${name} exists already`));
      assert.ok(!isAlive(t.pid), 'a refused restore leaves no task');

      restoreDetached(img, t.pid, ['--manage-cgroups=soft']);
      assert.equal(cgroupOf(t.pid, 'pids'), `/${name}`);
      assert.equal(readFileSync(join(PIDS, name, 'pids.max'), 'utf8').trim(), '99', 'soft: an existing cgroup keeps its properties');
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);

      restoreDetached(img, t.pid, ['--manage-cgroups=full']);
      assert.equal(readFileSync(join(PIDS, name, 'pids.max'), 'utf8').trim(), '77', 'full: properties everywhere');
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);

      restoreDetached(img, t.pid, ['--manage-cgroups=ignore']);
      assert.equal(cgroupOf(t.pid, 'pids'), cgroupOf(process.pid, 'pids'), "ignore: the task stays in criu-ts's cgroups");
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);
    } finally {
      cleanupAfter(dirs);
    }
  },
  { skip },
);

e2e(
  '--cgroup-root pids:/X restores the pids cgroup tree under X, the others where they were',
  async (c) => {
    const { name, dirs } = makeCgroups();
    const moved = join(PIDS, `${name}-moved`);
    try {
      const { t, img } = await dumpedIn(c, name);
      restoreDetached(img, t.pid, [`--cgroup-root=pids:/${name}-moved`]);
      assert.equal(cgroupOf(t.pid, 'pids'), `/${name}-moved`);
      assert.equal(cgroupOf(t.pid, 'cpu'), `/${name}`);
      assert.equal(readFileSync(join(moved, 'pids.max'), 'utf8').trim(), '77');
      assert.ok(existsSync(join(moved, 'sub')));
    } finally {
      cleanupAfter([...dirs, moved, join(moved, 'sub')]);
    }
  },
  { skip },
);

e2e(
  "criu-ts's cgroup.img restores with CRIU 4.2, and CRIU's with criu-ts",
  async (c) => {
    const { name, dirs } = makeCgroups();
    try {
      const { t, img } = await dumpedIn(c, name);
      removeCgroups(dirs);
      const r = spawnSync(CRIU42, ['restore', '-D', img, '-d', '--manage-cgroups', '-v4', '-o', 'criu-restore.log'], { encoding: 'utf8' });
      adopt(t.pid);
      assert.equal(
        r.status,
        0,
        `CRIU restore: ${r.stderr}\n${readFileSync(join(img, 'criu-restore.log'), 'utf8').split('\n').slice(-20).join('\n')}`,
      );
      assert.equal(cgroupOf(t.pid, 'pids'), `/${name}`);
      assert.equal(readFileSync(join(PIDS, name, 'pids.max'), 'utf8').trim(), '77');
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);
      // A task CRIU restored has no [vvar] mapping: CRIU dumps a fresh one.
      const u = await counterIn(c, name);
      const img2 = c.subdir('img2');
      const d = spawnSync(CRIU42, ['dump', '-t', `${u.pid}`, '-D', img2, '--manage-cgroups', '-v4', '-o', 'dump.log'], {
        encoding: 'utf8',
      });
      assert.equal(d.status, 0, `CRIU dump: ${d.stderr}`);
      reap(u.pid);
      removeCgroups(dirs);
      restoreDetached(img2, u.pid, ['--skip-verify']);
      assert.equal(cgroupOf(u.pid, 'pids'), `/${name}`);
      assert.equal(readFileSync(join(PIDS, name, 'pids.max'), 'utf8').trim(), '77');
    } finally {
      cleanupAfter(dirs);
    }
  },
  { skip: skip || (existsSync(CRIU42) ? false : 'CRIU 4.2 is not built') },
);

/** /proc/PID/cgroup as PID sees it, from inside its cgroup namespace. */
function innerView(pid: number): string {
  const r = spawnSync('nsenter', ['-t', `${pid}`, '-C', 'cat', `/proc/${pid}/cgroup`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nsenter: ${r.stderr}`);
  return r.stdout;
}

e2e(
  'a task in a cgroup namespace of its own comes back in one rooted at the same cgroups, seeing the same paths (CRIU 4.2 too)',
  async (c) => {
    const { name, dirs } = makeCgroups();
    const subs = [join(PIDS, name, 'sub'), ...(V2 ? [join(V2, name, 'sub')] : [])];
    if (V2) mkdirSync(subs[1]);
    try {
      const t = startTarget([workload('cgns'), join(PIDS, name), ...(V2 ? [join(V2, name)] : [])], { logFile: join(c.dir, 'cgns.log') });
      await waitForCounter(t.log, 2);
      // Below the namespace's root, moved there from outside.
      for (const s of subs) writeFileSync(join(s, 'cgroup.procs'), `${t.pid}`);
      const inner = innerView(t.pid);
      assert.match(inner, /:pids:\/sub$/m, 'inside, the task is in /sub of its namespace');
      const outer = readFileSync(`/proc/${t.pid}/cgroup`, 'utf8');
      const img = c.subdir('img');
      dumpAndReap(t.pid, img, ['--manage-cgroups']);
      const logSize = statSync(t.log).size;
      const check = (who: string) => {
        assert.notEqual(
          readlinkSync(`/proc/${t.pid}/ns/cgroup`),
          readlinkSync('/proc/self/ns/cgroup'),
          `${who}: a cgroup namespace of its own`,
        );
        assert.equal(innerView(t.pid), inner, `${who}: the same paths inside its namespace`);
        assert.equal(readFileSync(`/proc/${t.pid}/cgroup`, 'utf8'), outer, `${who}: the same cgroups`);
      };
      restoreDetached(img, t.pid);
      check('criu-ts');
      await waitForCounter(t.log, -1, 5000);
      if (!existsSync(CRIU42)) return;
      process.kill(t.pid, 'SIGKILL');
      reap(t.pid);
      // CRIU checks that the log the task writes to has the size it had at the dump.
      truncateSync(t.log, logSize);
      const r = spawnSync(CRIU42, ['restore', '-D', img, '-d', '--manage-cgroups', '-v4', '-o', 'criu-restore.log'], { encoding: 'utf8' });
      adopt(t.pid);
      assert.equal(r.status, 0, `CRIU restore: ${r.stderr}`);
      check('CRIU 4.2');
    } finally {
      cleanupAfter([...dirs, ...subs.filter((s) => !dirs.includes(s))]);
    }
  },
  { skip },
);
