/**
 * What CRIU's test suite (ZDTM) reads of criu-ts, and what a person reads: -v4 logs that
 * tell each task's steps, truncated when opened, with the failing step named and no stack
 * trace; stats-dump and stats-restore with CRIU's fields; one-line errors for bad images
 * directories and refused options, in the log as well (ZDTM greps the log whatever happens).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  e2e,
  startTarget,
  killAndReap,
  waitForLine,
  waitFor,
  runCriu,
  assertCleanError,
  describeRun,
  imageFiles,
  adopt,
} from '../lib/proc.ts';
import { dump, dumpAndReap, restore, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { critDecodeAll, haveCrit } from '../lib/crit.ts';
import { treeSnapshot } from '../lib/tree.ts';
import { readMessages } from '../../src/images/index.ts';

const lines = (f: string) => readFileSync(f, 'utf8').split('\n');
/** Lines ZDTM's grep_errors picks up. */
const errorLines = (f: string) => lines(f).filter((l) => l.includes('Error') || l.includes('Warn'));
const stackLines = (s: string) => s.split('\n').filter((l) => /^\s+at /.test(l));

/** 10 processes: the root, two children with 3 and 2 children, two more children. */
const TREE10 = 'p(p(p*3) p(p*2) p*2)';

e2e(
  "-v4 logs of a 10-process tree name every task's steps, VMAs, fds and images; the stats add up",
  async (c) => {
    const t = startTarget([workload('tree'), TREE10], { logFile: join(c.dir, 'tree.log') });
    await waitForLine(t.log, /^ready n=10$/, 10_000);
    await waitFor(() => treeSnapshot(t.pid).every((x) => x.state === 'S'), 5000, 'the tree to settle');
    const pids = treeSnapshot(t.pid).map((x) => x.pid);
    assert.equal(pids.length, 10);
    const img = c.subdir('img');
    // -o truncates: nothing of an older log survives.
    writeFileSync(join(img, 'dump.log'), 'STALE LINE FROM AN OLDER RUN\n'.repeat(100));
    writeFileSync(join(img, 'restore.log'), 'STALE LINE FROM AN OLDER RUN\n'.repeat(100));
    dumpAndReap(t.pid, img);

    const dlog = join(img, 'dump.log');
    const d = readFileSync(dlog, 'utf8');
    assert.ok(!d.includes('STALE'), 'dump.log was truncated');
    assert.deepEqual(errorLines(dlog), [], "no Error/Warn line in a good dump's log");
    assert.match(d, /^\(\d\d\.\d{6}\) /m, 'lines carry the time since start');
    assert.match(d, /frozen 10 task\(s\)/);
    for (const pid of pids) {
      for (const re of [
        `task ${pid}: parent \\d+, 1 thread`,
        `task ${pid}: memory, \\d+ VMAs, to mm-${pid}.img`,
        `task ${pid}: \\d+ pages scanned, \\d+ written`,
        `task ${pid}: (files to fdinfo-\\d+.img|its fd table is shared)`,
        `task ${pid}: cwd, root and umask to fs-${pid}.img`,
        `task ${pid}: signal actions, .* to core-\\*.img`,
        `  image core-${pid}.img: \\d+ bytes`,
      ])
        assert.match(d, new RegExp(re), `dump.log: ${re}`);
    }
    assert.match(d, /^\(.*\) {3}vma [0-9a-f]+-[0-9a-f]+ r-xp \d+ kB .*tree$/m, 'a VMA line: the program text');
    assert.match(d, new RegExp(`^\\(.*\\)   fd 1: reg ${t.log}`, 'm'), 'an fd line: stdout to the log');
    assert.match(d, /killing the tree/);

    // stats-dump: ZDTM adds shpages_written and pages_written and compares with pages-*.img.
    const stats = readMessages(join(img, 'stats-dump'), 'stats_entry')[0].dump as Record<string, unknown>;
    for (const k of [
      'freezing_time',
      'frozen_time',
      'memdump_time',
      'memwrite_time',
      'pages_scanned',
      'pages_skipped_parent',
      'pages_written',
      'pages_lazy',
      'shpages_scanned',
      'shpages_skipped_parent',
      'shpages_written',
    ])
      assert.ok(k in stats, `stats-dump has ${k}`);
    const pagesBytes = readdirSync(img)
      .filter((n) => /^pages-\d+\.img$/.test(n))
      .reduce((a, n) => a + statSync(join(img, n)).size, 0);
    assert.equal(Number(stats.pages_written) + Number(stats.shpages_written), pagesBytes / 4096, 'stats count every page in pages-*.img');
    if (haveCrit()) {
      const crit = critDecodeAll(img, ['stats-dump'], c.subdir('crit')).get('stats-dump')!;
      const e = (crit.entries[0] as { dump: Record<string, number> }).dump;
      assert.equal(Number(e.shpages_written) + Number(e.pages_written), pagesBytes / 4096, 'crit reads the same counts');
    }

    restoreDetached(img, t.pid);
    const rlog = join(img, 'restore.log');
    const r = readFileSync(rlog, 'utf8');
    assert.ok(!r.includes('STALE'), 'restore.log was truncated');
    assert.deepEqual(errorLines(rlog), [], "no Error/Warn line in a good restore's log");
    assert.match(r, /10 task\(s\) to restore/);
    for (const pid of pids) {
      for (const re of [
        `task ${pid}: parent \\d+, group \\d+, session \\d+`,
        `task ${pid}: created at its pid by (the helper|its parent \\d+)`,
        `task ${pid}: \\d+ fd\\(s\\) from fdinfo-\\d+.img`,
        `task ${pid}: cwd, root and umask from fs-${pid}.img`,
        `task ${pid}: memory from mm-${pid}.img, pagemap-${pid}.img and pages-\\d+.img: \\d+ VMAs`,
        `task ${pid}: credentials of 1 thread`,
        `task ${pid}: registers and signal masks of 1 thread`,
        `task ${pid}: let go`,
      ])
        assert.match(r, new RegExp(re), `restore.log: ${re}`);
    }
    const rs = readMessages(join(img, 'stats-restore'), 'stats_entry')[0].restore as Record<string, unknown>;
    for (const k of ['pages_compared', 'pages_skipped_cow', 'forking_time', 'restore_time', 'pages_restored'])
      assert.ok(k in rs, `stats-restore has ${k}`);
    assert.ok(
      Number(rs.pages_restored) > 0 && Number(rs.pages_restored) <= Number(stats.pages_written),
      `pages_restored ${rs.pages_restored}`,
    );
    assert.ok(Number(rs.restore_time) >= Number(rs.forking_time) && Number(rs.forking_time) > 0, 'restore and forking times');
    if (haveCrit()) critDecodeAll(img, ['stats-restore'], c.subdir('crit2'));
    killAndReap(t.pid);
  },
  { timeout: 60_000 },
);

e2e('stats-dump counts shared memory pages (MAP_SHARED anonymous and memfd) in shpages_written, as ZDTM checks', async (c) => {
  const t = startTarget([workload('sharer'), '-f', join(c.dir, 'shared.txt'), '-m', '-M'], { logFile: join(c.dir, 'sharer.log') });
  await waitForLine(t.log, /^C n=3 /);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const stats = readMessages(join(img, 'stats-dump'), 'stats_entry')[0].dump as Record<string, unknown>;
  const pagesBytes = readdirSync(img)
    .filter((n) => /^pages-\d+\.img$/.test(n))
    .reduce((a, n) => a + statSync(join(img, n)).size, 0);
  assert.ok(Number(stats.shpages_written) >= 2, `a shared anonymous page and a memfd page: ${stats.shpages_written}`);
  assert.equal(Number(stats.pages_written) + Number(stats.shpages_written), pagesBytes / 4096, 'stats count every page in pages-*.img');
  assert.match(readFileSync(join(img, 'dump.log'), 'utf8'), /Dumped 2 task\(s\) of \d+: \d+ pages, [1-9]\d* shared pages/);
});

e2e(
  'a failing restore: one line on stderr, the log names the step, the task and the image, no stack trace unless CRIU_TS_DEBUG',
  async (c) => {
    const out = join(c.dir, 'counter.out');
    const t = startTarget([workload('counter'), '50'], { logFile: out });
    await waitForLine(t.log, /^i=2$/);
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    // The file its stdout was open on is gone: its fds cannot come back.
    rmSync(out);
    for (const debug of [false, true]) {
      const r = restore(img, ['-d'], { env: debug ? { CRIU_TS_DEBUG: '1' } : {} });
      adopt(t.pid);
      const line = assertCleanError(r);
      assert.deepEqual(stackLines(r.stderr), [], 'no stack on stderr');
      const log = readFileSync(join(img, 'restore.log'), 'utf8');
      const err = log.split('\n').filter((l) => l.includes('Error: '));
      assert.equal(err.length, 1, `one Error line:\n${log}`);
      assert.ok(err[0].includes(line.trim()), `the log has stderr's line: ${err[0]}`);
      assert.match(err[0], new RegExp(`while: task ${t.pid}: \\d+ fd\\(s\\) from fdinfo-\\d+\\.img`), 'the step, the task, the image');
      assert.equal(stackLines(log).length > 0, debug, debug ? 'CRIU_TS_DEBUG=1 adds the stack' : 'no stack trace in the log');
      assert.ok(!existsSync(`/proc/${t.pid}`), 'the failed restore left nothing behind');
    }
  },
  { timeout: 60_000 },
);

e2e('a missing or empty images directory, and a refused option, are one line each, in the log too', (c) => {
  const missing = join(c.dir, 'no-such-dir');
  assert.match(assertCleanError(runCriu(['restore', '-D', missing])), /images directory .*no-such-dir does not exist/);
  const empty = c.subdir('empty');
  const line = assertCleanError(runCriu(['restore', '-D', empty, '-v4', '-o', 'restore.log']));
  assert.match(line, /^no dump in .*empty-\w+: it has no inventory\.img$/);
  assert.ok(readFileSync(join(empty, 'restore.log'), 'utf8').includes(`Error: ${line}`), 'the log says it too');
  assert.match(assertCleanError(runCriu(['crit', 'x', missing, 'ps'])), /^images directory .*no-such-dir does not exist$/);
  assert.match(assertCleanError(runCriu(['crit', 'x', empty, 'ps'])), /^no dump in .*empty-\w+: it has no pstree\.img$/);
  assert.match(assertCleanError(runCriu([])), /^no command: /);
  // ZDTM reads dump.log after every dump, also one whose options were refused.
  const d = c.subdir('refused');
  writeFileSync(join(d, 'dump.log'), 'STALE\n');
  assert.equal(
    assertCleanError(runCriu(['dump', '--log-file', 'dump.log', '--images-dir', d, '--verbosity=4', '-t', '1', '--auto-dedup'])),
    'not supported yet: --auto-dedup',
  );
  const log = readFileSync(join(d, 'dump.log'), 'utf8');
  assert.match(log, /^\(\d\d\.\d{6}\) Error: not supported yet: --auto-dedup\n$/, log);
  assert.deepEqual(imageFiles(d), []);
});

/** CRIU 4.2's `check --feature` names (criu/cr-check.c, feature_list). */
const CRIU_FEATURES = [
  'mnt_id',
  'mem_dirty_track',
  'aio_remap',
  'timerfd',
  'tun',
  'tun_ns',
  'userns',
  'fdinfo_lock',
  'seccomp_suspend',
  'seccomp_filters',
  'loginuid',
  'cgroupns',
  'autofs',
  'tcp_half_closed',
  'compat_cr',
  'uffd',
  'uffd-noncoop',
  'can_map_vdso',
  'sk_ns',
  'sk_unix_file',
  'net_diag_raw',
  'nsid',
  'link_nsid',
  'kcmp_epoll',
  'timens',
  'external_net_ns',
  'clone3_set_tid',
  'newifindex',
  'nftables',
  'has_ipt_legacy',
  'pidfd_store',
  'ns_pid',
  'apparmor_stacking',
  'network_lock_nftables',
  'sockopt_buf_lock',
  'memfd_hugetlb',
  'move_mount_set_group',
  'openat2',
  'get_rseq_conf',
  'ipv6_freebind',
  'pagemap_scan',
  'timer_cr_ids',
  'overlayfs_maps',
  'breakpoints',
  'pagemap_scan_guard_pages',
];

e2e('check --feature answers every name CRIU 4.2 knows, as ZDTM asks (-verbosity=0), and refuses an unknown one', () => {
  const supported: string[] = [];
  for (const f of CRIU_FEATURES) {
    // ZDTM's exact words.
    const q = runCriu(['check', '--no-default-config', '-verbosity=0', '--feature', f]);
    assert.ok(q.code === 0 || q.code === 1, describeRun(q));
    assert.equal(q.stderr, '', `-verbosity=0 is quiet: ${describeRun(q)}`);
    if (q.code === 0) {
      assert.equal(q.stdout, `${f} is supported\n`);
      supported.push(f);
      continue;
    }
    // At the default level, the reason.
    const r = runCriu(['check', '--feature', f]);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stderr, new RegExp(`^Warn: ${f} is not supported`), describeRun(r));
  }
  // Mount ids in fdinfo: criu-ts dumps mount namespaces and finds each file's mount by them.
  // Network devices: a veth across the tree's namespaces, one moved in at its ifindex, tun/tap.
  for (const f of ['clone3_set_tid', 'get_rseq_conf', 'timerfd', 'mnt_id', 'link_nsid', 'newifindex', 'tun', 'tun_ns'])
    assert.ok(supported.includes(f), `${f} is supported here`);
  const bad = runCriu(['check', '--feature', 'no_such_feature']);
  assert.match(assertCleanError(bad), /^Error: Unknown feature no_such_feature/);
  const quiet = runCriu(['check', '-verbosity=0', '--feature', 'no_such_feature']);
  assert.deepEqual([quiet.code, quiet.stdout, quiet.stderr], [1, '', '']);
});

e2e("--help lists crit, and each command's help lists only its own options", () => {
  const top = runCriu(['--help']);
  assert.equal(top.code, 0, describeRun(top));
  for (const cmd of ['dump', 'restore', 'check', 'crit']) assert.match(top.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `--help lists ${cmd}`);
  const help = (cmd: string) => {
    const r = runCriu([cmd, '--help']);
    assert.equal(r.code, 0, describeRun(r));
    return r.stdout;
  };
  const d = help('dump'),
    r = help('restore'),
    k = help('check');
  assert.match(d, /--tree/);
  assert.match(d, /--leave-running/);
  assert.doesNotMatch(d, /--feature|--restore-detached|--pidfile|--skip-verify/);
  assert.match(r, /--restore-detached/);
  assert.match(r, /--pidfile/);
  assert.doesNotMatch(r, /--feature|--leave-running|--tree|--freeze-cgroup/);
  assert.match(k, /--feature/);
  assert.doesNotMatch(k, /--tree|--pidfile|--shell-job|--timeout/);
  // As in CRIU, another command's option is accepted (ZDTM passes --pidfile to dump).
  const dumpHelpWithPidfile = runCriu(['dump', '--pidfile', '/dev/null', '--help']);
  assert.equal(dumpHelpWithPidfile.code, 0, describeRun(dumpHelpWithPidfile));
});

void dump;
