/**
 * criu_opts of RPC requests: every field of rpc.proto is either honoured or refused by name,
 * with EBADRQC as CRIU's reply has it; what runc sends for a dump is accepted, so that the
 * refusal that follows names the namespace.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { messages, type Message } from '../../src/images/index.ts';
import { CriuError } from '../../src/errors.ts';
import { EBADRQC, OPTS_FIELDS, mountsOf, resolvePaths, screenOpts, tcpOf, noOpts } from '../../src/rpc/options.ts';

const empty = noOpts;

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CriuError, String(e));
    assert.equal(e.crErrno, EBADRQC);
    return e.message;
  }
  assert.fail('accepted');
}

test('every criu_opts field of rpc.proto is honoured or refused, once', () => {
  const fields = messages.criu_opts.fields.map((f) => f.name);
  assert.deepEqual([...OPTS_FIELDS].sort(), [...fields].sort());
  assert.equal(new Set(OPTS_FIELDS).size, OPTS_FIELDS.length);
});

test('fields criu-ts does not implement are refused by name', () => {
  const cases: [Partial<Message<'criu_opts'>>, string][] = [
    [{ auto_dedup: true }, 'auto_dedup'],
    [{ lazy_pages: true }, 'lazy_pages'],
    [{ inherit_fd: [{ key: 'socket:[1]', fd: 4 }] }, 'inherit_fd socket:[1]'],
    [{ unprivileged: true }, 'unprivileged'],
    [{ ps: { port: 27, fd: 3 } }, 'ps.fd'],
    [{ cpu_cap: 1 }, 'cpu_cap'],
    [{ network_lock: 7 }, 'network_lock 7'],
    [{ manage_cgroups_mode: 9 }, 'manage_cgroups_mode 9'],
    [{ status_fd: 5 }, 'status_fd'],
    [{ join_ns: [{ ns: 'uts', ns_file: '/run/uts' }] }, 'join_ns uts'],
    [{ join_ns: [{ ns: 'net', ns_file: '/run/netns/x' }] }, 'join_ns net'],
  ];
  for (const [o, name] of cases)
    assert.equal(
      refusal(() => screenOpts({ ...empty(), ...o }, 'dump', 'swrk')),
      `not supported yet: ${name}`,
    );
  assert.match(
    refusal(() => screenOpts({ ...empty(), rst_sibling: true }, 'restore', 'service')),
    /not allowed in standalone service/,
  );
  assert.match(
    refusal(() => screenOpts({ ...empty(), empty_ns: 0x20000 }, 'dump', 'swrk')),
    /only CLONE_NEWNET/,
  );
  // join_ns of a network namespace is honoured at restore (--join-ns net:PATH).
  screenOpts({ ...empty(), join_ns: [{ ns: 'net', ns_file: '/run/netns/x' }] }, 'restore', 'swrk');
  // root and ext_mnt are honoured: --root and --ext-mount-map of the mount namespace.
  screenOpts({ ...empty(), root: '/tmp/rootfs', ext_mnt: [{ key: '/a', val: '/b' }] }, 'restore', 'swrk');
  const m = mountsOf({ ...empty(), root: '/tmp/rootfs/', ext_mnt: [{ key: 'K', val: '/host/p' }] });
  assert.equal(m.root, '/tmp/rootfs');
  assert.deepEqual([...m.external], [['K', '/host/p']]);
});

test("tcp_established, tcp_close, tcp_skip_in_flight and network_lock (rpc.proto's 1-based methods) are honoured", () => {
  assert.deepEqual(tcpOf(empty()), { established: false, close: false, skipInFlight: false });
  assert.deepEqual(tcpOf({ ...empty(), tcp_established: true, tcp_skip_in_flight: true, network_lock: 2 }), {
    established: true,
    close: false,
    skipInFlight: true,
    networkLock: 'nftables',
  });
  assert.equal(tcpOf({ ...empty(), tcp_close: true, network_lock: 1 }).networkLock, 'iptables');
  assert.equal(tcpOf({ ...empty(), network_lock: 3 }).networkLock, 'skip');
  screenOpts({ ...empty(), tcp_established: true, tcp_close: true, network_lock: 3 }, 'dump', 'swrk');
});

test("runc 1.1.5's restore options are accepted; manage_cgroups gives the mode; config_file's settings", () => {
  const restoreOpts = {
    ...empty(),
    images_dir_fd: 8,
    evasive_devices: true,
    log_level: 4,
    log_file: 'restore.log',
    notify_scripts: true,
    manage_cgroups: true,
    cg_root: [{ ctrl: 'pids', path: '/x' }],
    rst_sibling: true,
    inherit_fd: [{ key: 'pipe:[1791019]', fd: 1 }],
    empty_ns: 0x40000000,
    orphan_pts_master: true,
    config_file: '/nonexistent/runc.conf',
  };
  assert.deepEqual(screenOpts(restoreOpts, 'restore', 'swrk'), { cgMode: 3, skipVerify: false, trustImages: false });
  assert.equal(screenOpts({ ...restoreOpts, manage_cgroups: false }, 'restore', 'swrk').cgMode, 0);
  assert.equal(screenOpts({ ...restoreOpts, manage_cgroups_mode: 5 }, 'restore', 'swrk').cgMode, 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-conf-'));
  try {
    const conf = path.join(dir, 'runc.conf');
    fs.writeFileSync(conf, '# CRIU images have no manifest\nskip-verify\n--trust-images\n');
    assert.deepEqual(screenOpts({ ...restoreOpts, config_file: conf }, 'restore', 'swrk'), {
      cgMode: 3,
      skipVerify: true,
      trustImages: true,
    });
    fs.writeFileSync(conf, 'tcp-close\n');
    assert.equal(
      refusal(() => screenOpts({ ...restoreOpts, config_file: conf }, 'restore', 'swrk')),
      `not supported yet: config_file ${conf}: tcp-close`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test("runc 1.1.5's dump options are accepted", () => {
  screenOpts(
    {
      ...empty(),
      images_dir_fd: 8,
      pid: 1234,
      leave_running: false,
      ext_unix_sk: false,
      log_level: 4,
      log_file: 'dump.log',
      notify_scripts: true,
      root: '/run/bundle/rootfs',
      work_dir_fd: 9,
      ext_mnt: [{ key: '/dev/null', val: '/dev/null' }],
      manage_cgroups: true,
      empty_ns: 0x40000000,
      freeze_cgroup: '/sys/fs/cgroup/freezer/x',
      orphan_pts_master: true,
      config_file: '/nonexistent/runc.conf',
    },
    'dump',
    'swrk',
  );
  screenOpts({ ...empty(), evasive_devices: true, manage_cgroups: true, manage_cgroups_mode: 6, root: '/' }, 'restore', 'swrk');
});

test("directories come from the client's fds; the log stays in the work dir", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpc-opts-'));
  const fd = fs.openSync(dir, 'r');
  try {
    const p = resolvePaths({ ...empty(), images_dir_fd: fd, log_file: 'x.log', log_level: 9 }, process.pid, true);
    assert.deepEqual(p, {
      imagesDir: fs.realpathSync(dir),
      workDir: fs.realpathSync(dir),
      logFile: path.join(fs.realpathSync(dir), 'x.log'),
      level: 4,
    });
    assert.match(
      refusal(() => resolvePaths({ ...empty(), images_dir_fd: fd, log_file: '../x.log' }, process.pid, true)),
      /No subdirs/,
    );
    assert.match(
      refusal(() => resolvePaths(empty(), process.pid, true)),
      /Neither images_dir_fd nor images_dir/,
    );
    // A CHECK without directories: no log file, none in the server's cwd.
    assert.deepEqual(resolvePaths(empty(), process.pid, false), { imagesDir: process.cwd(), workDir: process.cwd(), level: 0 });
    assert.match(
      refusal(() => resolvePaths({ ...empty(), log_file: 'c.log' }, process.pid, false)),
      /images-dir or work-dir is required/,
    );
    assert.match(
      refusal(() => resolvePaths({ ...empty(), images_dir_fd: 999 }, process.pid, true)),
      /cannot open images_dir fd 999/,
    );
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true });
  }
});
