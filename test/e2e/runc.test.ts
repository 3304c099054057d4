/**
 * runc (Debian's 1.1.5) checkpoints and restores a busybox container with criu-ts as its criu
 * (`runc --criu bin/criu-ts`): the container counts into a file on a tmpfs and into one in a
 * bind-mounted host directory, and after the restore it goes on counting with both counts
 * intact, its init PID 1 inside, the same hostname, the same mounts and its loopback up. Also
 * with --leave-running, twice from one checkpoint into two containers, in a container limited
 * to 64 MiB (criu-ts runs inside the container's cgroups during the restore), CRIU 4.2's
 * checkpoint restored by criu-ts and the reverse, and through podman.
 * CRIU_TS_RUNC_CRIU=PATH runs the same tests with another criu (CRIU 4.2: the tests' own check).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PagemapReader, PE_PARENT } from '../../src/images/index.ts';
import { e2e, adopt, isAlive, reap, waitFor, CRIU_BIN } from '../lib/proc.ts';
import {
  RUNC,
  BUSYBOX,
  CRIU42,
  HOSTNAME,
  LOOP,
  type Bundle,
  makeBundle,
  runContainer,
  runcQuiet,
  runcOk,
  state,
  deleteAll,
  counts,
  assertCountsIntact,
  inside,
  type Inside,
} from '../lib/runc.ts';

const CRIU = process.env.CRIU_TS_RUNC_CRIU ?? CRIU_BIN;
const skip = !RUNC || !BUSYBOX ? 'runc and busybox-static are needed (scripts/setup.sh)' : false;
const skip42 = skip || (existsSync(CRIU42) ? false : `CRIU 4.2 is not built at ${CRIU42}`);
let seq = 0;
const newId = () => `criu-ts-${process.pid}-${++seq}`;

/** The tmpfs count file as the container sees it. */
const tmpfsCount = (pid: number) => `/proc/${pid}/root/run/count`;

async function started(b: Bundle, id: string): Promise<{ pid: number; before: Inside }> {
  const pid = runContainer(b, id);
  adopt(pid);
  await waitFor(() => counts(tmpfsCount(pid)).length >= 5, 10_000, `container ${id} counting`);
  return { pid, before: inside(pid) };
}

function checkpoint(b: Bundle, id: string, images: string, work: string, extra: string[] = [], criu = CRIU): void {
  runcOk(runcQuiet(b, ['checkpoint', ...extra, '--image-path', images, '--work-path', work, id], criu), `runc checkpoint ${id}`, work);
}

/** `runc restore -d` and the new init, adopted (it passes to us once runc exits). */
function restore(b: Bundle, id: string, images: string, work: string, criu = CRIU, env: Record<string, string> = {}): number {
  runcOk(runcQuiet(b, ['restore', '-d', '--image-path', images, '--work-path', work, id], criu, env), `runc restore ${id}`, work);
  const s = state(b, id);
  assert.ok(s, `runc does not know ${id} after its restore`);
  adopt(s.pid);
  assert.equal(s.status, 'running', `container ${id} after restore`);
  return s.pid;
}

/** The restored container is the one dumped, and goes on counting from where it was. */
async function goesOn(
  b: Bundle,
  pid: number,
  before: Inside,
  countsAtDump: number,
  sharedHost = false,
  loopback = CRIU !== CRIU42,
): Promise<void> {
  const now = inside(pid);
  assert.equal(now.nspid.at(-1), '1', `the restored init is PID 1 in its namespace (NSpid ${now.nspid.join(' ')})`);
  assert.equal(now.nspid.length, 2, 'one PID namespace below the host');
  assert.equal(now.hostname, HOSTNAME);
  assert.deepEqual(now.mounts, before.mounts, 'mounts seen by the init');
  // runc 1.1.5 asks CRIU for an empty netns (empty_ns): CRIU 4.2 saves nothing of it and its
  // restore leaves lo down in a new one; criu-ts saves the loopback's state.
  if (loopback) assert.ok(now.loopbackUp, 'loopback is up in the container');
  const n = counts(tmpfsCount(pid)).length;
  assert.ok(n >= countsAtDump, `the tmpfs count came back (${n} lines, ${countsAtDump} before the checkpoint)`);
  await waitFor(() => counts(tmpfsCount(pid)).length >= n + 3, 10_000, 'the restored container counting on');
  assertCountsIntact(tmpfsCount(pid), 'tmpfs count');
  if (!sharedHost) assertCountsIntact(join(b.host, 'count'), 'host count');
}

/** The container (not restored) goes on counting into its tmpfs. */
async function countsOn(pid: number, what: string): Promise<void> {
  const n = counts(tmpfsCount(pid)).length;
  await waitFor(() => counts(tmpfsCount(pid)).length >= n + 3, 10_000, `${what} counting on`);
}

/** A fresh container of the bundle, checkpointed (`extra`: runc checkpoint flags) into a new images dir. */
async function checkpointed(c: { subdir(n: string): string }, b: Bundle, extra: string[] = [], dumper = CRIU) {
  const id = newId();
  const { pid, before } = await started(b, id);
  const images = c.subdir('img');
  checkpoint(b, id, images, c.subdir('work'), extra, dumper);
  return { id, pid, before, images };
}

/** The dumped container is gone: runc destroyed it and its init is reaped. */
function gone(b: Bundle, id: string, pid: number): void {
  assert.equal(state(b, id), undefined, `runc still knows ${id} after its checkpoint`);
  reap(pid, 10_000);
  assert.ok(!isAlive(pid), `the checkpointed init ${pid} still runs`);
}

async function withBundle(dir: string, fn: (b: Bundle) => Promise<void>, memoryLimit?: number): Promise<void> {
  const b = makeBundle(dir, { memoryLimit });
  try {
    await fn(b);
  } finally {
    deleteAll(b);
  }
}

e2e(
  'runc checkpoint and restore -d: the container counts on, both counts intact, same pid layout, hostname, mounts, loopback',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const { id, pid, before, images } = await checkpointed(c, b);
      const atDump = counts(join(b.host, 'count')).length;
      gone(b, id, pid);
      assert.ok(existsSync(join(images, 'descriptors.json')), 'runc wrote descriptors.json');
      rmSync(b.hookOut);
      const restored = restore(b, id, images, c.subdir('work'));
      // runc runs its prestart hooks at the setup-namespaces notification, with the pid it carries.
      assert.equal(JSON.parse(readFileSync(b.hookOut, 'utf8')).pid, restored, 'the prestart hook got the restored init');
      await goesOn(b, restored, before, atDump);
    });
  },
  { skip },
);

e2e(
  'runc checkpoint --pre-dump, then --parent-path: the checkpoint saves only what changed since, and the container counts on',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const id = newId();
      const { pid, before } = await started(b, id);
      const pre = c.subdir('pre');
      checkpoint(b, id, pre, c.subdir('work-pre'), ['--pre-dump']);
      assert.equal(state(b, id)?.status, 'running', 'the container runs on after its pre-dump');
      await countsOn(pid, 'the pre-dumped container');
      const images = c.subdir('img');
      checkpoint(b, id, images, c.subdir('work'), ['--parent-path', `../${basename(pre)}`]);
      const atDump = counts(join(b.host, 'count')).length;
      gone(b, id, pid);
      // The checkpoint ended the tracking the pre-dump armed: its holder is gone (ours to reap).
      const holder = (JSON.parse(readFileSync(join(pre, 'criu-ts-track.json'), 'utf8')) as { holder: number }).holder;
      assert.ok(reap(holder, 5000), 'the tracking holder ended');
      let inParent = 0;
      for (const r of new PagemapReader(images, 1)) if (r.flags & PE_PARENT) inParent += r.nrPages;
      assert.ok(inParent > 0, 'pages of the pre-dump are not saved again');
      const restored = restore(b, id, images, c.subdir('work-restore'));
      await goesOn(b, restored, before, atDump);
    });
  },
  { skip },
);

e2e(
  'runc checkpoint --leave-running: the container runs on, and the checkpoint restores once it is deleted',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const { id, pid, before, images } = await checkpointed(c, b, ['--leave-running']);
      assert.equal(state(b, id)?.status, 'running', 'the container runs on');
      await countsOn(pid, 'the left-running container');
      assertCountsIntact(tmpfsCount(pid), 'tmpfs count after --leave-running');
      runcOk(runcQuiet(b, ['delete', '-f', id]), 'runc delete');
      reap(pid);
      // The host count ran on after the checkpoint: the restored loop continues from its own j.
      const restored = restore(b, id, images, c.subdir('work'));
      await goesOn(b, restored, before, 0, true);
    });
  },
  { skip },
);

e2e(
  'one checkpoint restored twice into two containers',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const { id, pid, before, images } = await checkpointed(c, b);
      gone(b, id, pid);
      const first = restore(b, `${id}-a`, images, c.subdir('work'));
      const second = restore(b, `${id}-b`, images, c.subdir('work'));
      assert.notEqual(first, second);
      await goesOn(b, first, before, 0, true);
      await goesOn(b, second, before, 0, true);
    });
  },
  { skip },
);

e2e(
  'a container limited to 64 MiB of memory checkpoints and restores (criu-ts runs in its cgroups)',
  async (c) => {
    await withBundle(
      c.subdir('bundle'),
      async (b) => {
        const { id, pid, before, images } = await checkpointed(c, b);
        const atDump = counts(join(b.host, 'count')).length;
        gone(b, id, pid);
        const restored = restore(b, id, images, c.subdir('work'));
        const limit = readFileSync(`/sys/fs/cgroup/memory${cgroupOf(restored, 'memory')}/memory.limit_in_bytes`, 'utf8');
        assert.equal(Number(limit), 64 << 20, 'the restored container has its limit');
        await goesOn(b, restored, before, atDump);
      },
      64 << 20,
    );
  },
  { skip },
);

function cgroupOf(pid: number, ctrl: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1].split(',').includes(ctrl));
  assert.ok(line, `no ${ctrl} cgroup for ${pid}`);
  return line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
}

/** The container's CRIU config file (annotation org.criu.config), or none. */
function criuConfig(b: Bundle, text: string | undefined): void {
  const cfgPath = join(b.dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  const file = join(b.dir, 'criu.conf');
  cfg.annotations = { ...cfg.annotations, 'org.criu.config': text === undefined ? '' : file };
  if (text !== undefined) writeFileSync(file, text);
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
}

e2e(
  "CRIU 4.2's checkpoint of a runc container restores with criu-ts, and criu-ts's with CRIU 4.2",
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      for (const [dumper, restorer] of [
        [CRIU42, CRIU],
        [CRIU, CRIU42],
      ]) {
        const { id, pid, before, images } = await checkpointed(c, b, [], dumper);
        gone(b, id, pid);
        // CRIU's images have no checksum manifest: criu-ts restores them with skip-verify, set in
        // the CRIU config file runc names (its org.criu.config annotation); CRIU reads none.
        criuConfig(b, restorer === CRIU42 ? undefined : 'skip-verify\n');
        const restored = restore(b, id, images, c.subdir('work'), restorer);
        await goesOn(b, restored, before, 0, true, restorer !== CRIU42);
        runcOk(runcQuiet(b, ['delete', '-f', id]), 'runc delete');
        reap(restored);
      }
    });
  },
  { skip: skip42 },
);

e2e(
  'a restore that fails halfway leaves no process, cgroup or mount of the container behind',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const { id, pid, images } = await checkpointed(c, b);
      gone(b, id, pid);
      const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout;
      const r = runcQuiet(b, ['restore', '-d', '--image-path', images, '--work-path', c.subdir('work'), id], CRIU, {
        CRIU_TS_FAULT: 'restore-files',
      });
      assert.notEqual(r.status, 0, 'the restore should fail');
      assert.equal(state(b, id), undefined, 'runc keeps no container');
      const inCgroup = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${id}\n`);
          } catch {
            return false;
          }
        });
      assert.deepEqual(inCgroup, [], 'no process is left in the container cgroups');
      for (const ctrl of ['pids', 'memory', 'freezer'])
        assert.ok(!existsSync(`/sys/fs/cgroup/${ctrl}/${id}`), `cgroup ${ctrl}/${id} is left`);
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(!mounts.includes(b.dir), `a mount of the bundle is left:\n${mounts}`);
      assert.equal(spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout, links, 'host links unchanged');
    });
  },
  // CRIU has no fault switch: only criu-ts can be made to fail halfway.
  { skip: skip || (CRIU !== CRIU_BIN ? 'criu-ts only' : false) },
);

e2e(
  'a container with a user namespace of its own and its own sysfs is refused at checkpoint, naming both, and runs on',
  async (c) => {
    await withBundle(c.subdir('bundle'), async (b) => {
      const cfgPath = join(b.dir, 'config.json');
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
      cfg.linux.namespaces.push({ type: 'user' });
      cfg.linux.uidMappings = [{ containerID: 0, hostID: 0, size: 65536 }];
      cfg.linux.gidMappings = [{ containerID: 0, hostID: 0, size: 65536 }];
      writeFileSync(cfgPath, JSON.stringify(cfg));
      const id = newId();
      const { pid } = await started(b, id);
      assert.notEqual(
        readlinkSync(`/proc/${pid}/ns/user`),
        readlinkSync('/proc/self/ns/user'),
        'the container has a user namespace of its own',
      );
      const work = c.subdir('work');
      const r = runcQuiet(b, ['checkpoint', '--image-path', c.subdir('img'), '--work-path', work, id], CRIU);
      assert.notEqual(r.status, 0, 'the checkpoint should be refused');
      // Its restore would have to mount the container's sysfs anew inside the user namespace.
      assert.match(readFileSync(join(work, 'dump.log'), 'utf8'), /namespaces: user: the sysfs at \/sys would have to be mounted anew/);
      assert.equal(state(b, id)?.status, 'running');
      await countsOn(pid, 'the refused container');
    });
  },
  { skip: skip || (CRIU !== CRIU_BIN ? 'criu-ts only' : false) },
);

// ---------------------------------------------------------------- podman

const PODMAN = ['/usr/bin/podman'].find((p) => existsSync(p));
const IMAGE = 'localhost/criu-ts-busybox';

function podman(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(PODMAN!, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

function podmanOk(args: string[], env: Record<string, string> = {}): string {
  const r = podman(args, env);
  assert.equal(r.status, 0, `podman ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Container pid and conmon pid (conmon is reparented to us, the subreaper: adopted). */
function podmanPids(name: string): { pid: number; conmon: number } {
  const [pid, conmon] = podmanOk(['inspect', '-f', '{{.State.Pid}} {{.State.ConmonPid}}', name]).split(' ').map(Number);
  adopt(conmon);
  return { pid, conmon };
}

const fdLinks = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));

/** Podman's own network (a netns it makes and runc gets by path: external) or none (runc's empty one). */
const podmanTest = (network: 'none' | 'podman') =>
  e2e(
    `podman container checkpoint and restore with criu-ts as criu, network ${network}: the container counts on`,
    async (c) => {
      const b = makeBundle(c.subdir('bundle'));
      // Podman runs runc without --criu: criu-ts is `criu` first on its PATH.
      const bin = c.subdir('bin');
      symlinkSync(CRIU, join(bin, 'criu'));
      const env = { PATH: `${bin}:${process.env.PATH}` };
      if (podman(['image', 'exists', IMAGE]).status !== 0) {
        const tar = join(c.dir, 'rootfs.tar');
        assert.equal(spawnSync('tar', ['-C', join(b.dir, 'rootfs'), '-cf', tar, '.']).status, 0);
        podmanOk(['import', tar, IMAGE]);
      }
      const name = newId();
      try {
        // The machine lets no process raise RLIMIT_NPROC/NOFILE to podman's defaults: lower ones.
        podmanOk([
          'run',
          '-d',
          '--name',
          name,
          '--network',
          network,
          '--hostname',
          HOSTNAME,
          '--ulimit',
          'nofile=1024:1024',
          '--ulimit',
          'nproc=4096:4096',
          '--tmpfs',
          '/run',
          '-v',
          `${b.host}:/host`,
          IMAGE,
          '/bin/sh',
          '-c',
          LOOP,
        ]);
        const { pid } = podmanPids(name);
        await waitFor(() => counts(tmpfsCount(pid)).length >= 5, 10_000, 'podman container counting');
        const before = inside(pid);
        podmanOk(['container', 'checkpoint', name], env);
        const atDump = counts(join(b.host, 'count')).length;
        podmanOk(['container', 'restore', name], env);
        const { pid: restored, conmon } = podmanPids(name);
        // The container's stdout is a pipe of the new conmon: runc handed it over with inherit_fd.
        const out = readlinkSync(`/proc/${restored}/fd/1`);
        assert.match(out, /^pipe:/);
        assert.ok(fdLinks(conmon).includes(out), `conmon ${conmon} holds the restored init's stdout ${out}`);
        await goesOn(b, restored, before, atDump);
        if (network === 'none') {
          // Through a checkpoint archive (--export / --import) into a container made anew.
          const archive = join(c.dir, 'checkpoint.tar.gz');
          podmanOk(['container', 'checkpoint', '--export', archive, name], env);
          podmanOk(['rm', '-f', '-t', '0', name]);
          podmanOk(['container', 'restore', '--import', archive], env);
          const { pid: imported } = podmanPids(name);
          await goesOn(b, imported, before, atDump);
        }
        // Podman's network namespace is external to the container: runc hands it over (inherit_fd).
        if (network === 'podman')
          assert.match(
            spawnSync('nsenter', ['-t', `${restored}`, '-n', 'ip', '-o', '-4', 'addr', 'show', 'eth0'], { encoding: 'utf8' }).stdout,
            /inet \d/,
            "the restored container is in podman's network namespace, with its eth0",
          );
      } finally {
        podman(['rm', '-f', '-t', '0', name]);
      }
    },
    { skip: skip || (PODMAN ? false : 'podman is not installed (scripts/setup.sh)') },
  );
podmanTest('none');
podmanTest('podman');
