// runc containers for the container tests and bench/runc.ts: a busybox bundle with two
// counting loops (one into a tmpfs, one into a bind-mounted host directory), runc driven with
// `--criu BIN`, and what is compared inside a container before and after a checkpoint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RUNC = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => existsSync(p));
export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
export const CRIU42 = '/var/cache/criu-zdtm/v4.2/criu/criu';
export const HOSTNAME = 'criu-ts-box';

export interface Bundle {
  dir: string;
  /** Where the prestart hook writes the container state it gets (runc runs it at run and at restore). */
  hookOut: string;
  /** The bind-mounted host directory (/host inside). */
  host: string;
  /** runc's state root for this bundle's containers (--root). */
  state: string;
}

export interface BundleOptions {
  /** linux.resources.memory.limit in bytes. */
  memoryLimit?: number;
}

/** Counts into /run/count (a tmpfs) and /host/count (a bind of the host's directory). */
export const LOOP = 'i=0; j=0; while :; do i=$((i+1)); echo $i >> /run/count; j=$((j+1)); echo $j >> /host/count; sleep 0.05; done';

/** A bundle: busybox rootfs, `runc spec` edited (no terminal, a hostname, a tmpfs /run, a bind /host). */
export function makeBundle(dir: string, o: BundleOptions = {}): Bundle {
  if (!RUNC || !BUSYBOX) throw new Error('runc and busybox-static are needed (scripts/setup.sh)');
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'run', 'host', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const a of ['sh', 'sleep', 'echo', 'cat', 'hostname']) symlinkSync('busybox', join(rootfs, 'bin', a));
  const host = join(dir, 'host');
  mkdirSync(host);
  const state = join(dir, 'runc-state');
  mkdirSync(state);
  must(spawnSync(RUNC, ['spec'], { cwd: dir, encoding: 'utf8' }), 'runc spec');
  const cfgPath = join(dir, 'config.json');
  // biome-ignore lint/suspicious/noExplicitAny: the OCI config, edited field by field
  const cfg: any = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.process.terminal = false;
  cfg.process.args = ['/bin/sh', '-c', LOOP];
  cfg.root.readonly = false;
  cfg.hostname = HOSTNAME;
  cfg.mounts.push({ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755', 'size=4m'] });
  cfg.mounts.push({ destination: '/host', type: 'bind', source: host, options: ['rbind', 'rw'] });
  const hookOut = join(dir, 'prestart.json');
  cfg.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', `cat > ${hookOut}`] }] };
  if (o.memoryLimit) cfg.linux.resources = { ...cfg.linux.resources, memory: { limit: o.memoryLimit } };
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
  return { dir, host, state, hookOut };
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function must(r: { status: number | null; stderr: string }, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr.trim()}`);
}

/** runc with the bundle's state root; stdio of the container is /dev/null (runc passes its own). */
export function runc(b: Bundle, args: string[], criu?: string, env: Record<string, string> = {}): Run {
  const argv = ['--root', b.state, ...(criu ? ['--criu', criu] : []), ...args];
  const t0 = performance.now();
  const r = spawnSync(RUNC!, argv, {
    cwd: b.dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: performance.now() - t0 };
}

/**
 * runc with stdio on /dev/null but stderr in a file: a detached runc must not hold our pipes.
 * `runc run` gets /dev/null for stderr too: the container inherits it, and a file outside the
 * container's mounts could not be checkpointed.
 */
export function runcQuiet(b: Bundle, args: string[], criu?: string, env: Record<string, string> = {}): Run {
  const argv = ['--root', b.state, ...(criu ? ['--criu', criu] : []), ...args];
  const t0 = performance.now();
  const err = args[0] === 'run' ? '/dev/null' : join(b.dir, 'runc.err');
  rmSync(join(b.dir, 'runc.err'), { force: true });
  const r = spawnSync('sh', ['-c', `exec "$@" </dev/null >/dev/null 2>"${err}"`, 'sh', RUNC!, ...argv], {
    cwd: b.dir,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
  const stderr = existsSync(join(b.dir, 'runc.err')) ? readFileSync(join(b.dir, 'runc.err'), 'utf8') : '';
  return { status: r.status, stdout: '', stderr, ms: performance.now() - t0 };
}

export function runcOk(r: Run, what: string, logDir?: string): void {
  if (r.status === 0) return;
  let log = '';
  for (const f of ['dump.log', 'restore.log'])
    if (logDir && existsSync(join(logDir, f)))
      log += `\n--- ${f}\n${readFileSync(join(logDir, f), 'utf8').split('\n').slice(-30).join('\n')}`;
  assert.fail(`${what} failed (${r.status}): ${r.stderr.trim()}${log}`);
}

/** The container's init pid and status (`runc state`), or undefined if runc does not know it. */
export function state(b: Bundle, id: string): { pid: number; status: string } | undefined {
  const r = runc(b, ['state', id]);
  if (r.status !== 0) return undefined;
  const s = JSON.parse(r.stdout) as { pid: number; status: string };
  return { pid: s.pid, status: s.status };
}

export function runContainer(b: Bundle, id: string): number {
  runcOk(runcQuiet(b, ['run', '-d', id]), `runc run ${id}`);
  const s = state(b, id);
  assert.ok(s && s.status === 'running', `container ${id} is not running: ${JSON.stringify(s)}`);
  return s.pid;
}

/** Every container of the bundle's state root, killed and deleted. */
export function deleteAll(b: Bundle): void {
  const r = runc(b, ['list', '-q']);
  for (const id of r.stdout.split('\n').filter(Boolean)) runc(b, ['delete', '-f', id]);
}

/** The numbers of a count file: they must run 1..n with no gap or repeat. */
export function counts(path: string): number[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  // The last line may be half written.
  return text
    .split('\n')
    .slice(0, -1)
    .map((l) => Number(l));
}

export function assertCountsIntact(path: string, what: string): number {
  const c = counts(path);
  assert.ok(c.length > 0, `${what}: ${path} is empty`);
  for (let k = 0; k < c.length; k++) if (c[k] !== k + 1) assert.fail(`${what}: line ${k + 1} of ${path} is ${c[k]}, not ${k + 1}`);
  return c.length;
}

/** Inside view of a container's init: what must be the same after a restore. */
export interface Inside {
  nspid: string[];
  hostname: string;
  mounts: string[];
  loopbackUp: boolean;
}

function nsenter(pid: number, ns: string, argv: string[]): string {
  const r = spawnSync('nsenter', ['-t', String(pid), ns, ...argv], { encoding: 'utf8' });
  must(r, `nsenter ${ns} ${argv.join(' ')}`);
  return r.stdout.trim();
}

/**
 * Mounts as the init sees them, sorted, without what a restore may renumber (mount ids, device
 * numbers, peer group numbers): root, mount point, options, optional-field kinds, type, source,
 * superblock options. The mounts runc hands over as external ones on restore are compared by
 * their mount point only: runc 1.1.5 binds its own cgroup (not the container's) on each v1
 * cgroup mount and the host's /dev/null on masked files, whatever criu restores them with; the
 * root is the runtime's too.
 */
export function mountsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [pre, post] = l.split(' - ');
      const f = pre.split(' ');
      if (post.startsWith('cgroup ') || f[3] === '/null') return `${f[4]} (external)`;
      // The root is the runtime's mount too (podman mounts its overlay again on restore).
      if (f[4] === '/') return `/ (root) ${post.split(' ')[0]}`;
      const optional = f
        .slice(6)
        .map((o) => o.replace(/:\d+$/, ''))
        .join(',');
      return [f[4], f[3], f[5], optional, post].join(' ');
    })
    .sort();
}

export function inside(pid: number): Inside {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const nspid = (/^NSpid:\s+(.*)$/m.exec(status)?.[1] ?? '').split(/\s+/);
  const lo = nsenter(pid, '-n', ['ip', '-o', 'link', 'show', 'lo']);
  return {
    nspid,
    hostname: nsenter(pid, '-u', ['cat', '/proc/sys/kernel/hostname']),
    mounts: mountsOf(pid),
    loopbackUp: /<[^>]*\bUP\b[^>]*>/.test(lo),
  };
}
