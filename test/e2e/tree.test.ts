/**
 * Process trees through dump and restore: a 50-process tree with sessions,
 * groups and a zombie; crit on a tree's images; a shell pipeline of real
 * programs; pipes that hold data.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
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
  imageFiles,
  procStat,
  parseKV,
  assertConsecutive,
  procStatus,
  SIGUSR1,
  SIGUSR2,
} from '../lib/proc.ts';
import { dumpAndReap, restoreDetached } from '../lib/cr.ts';
import { workload } from '../lib/workloads.ts';
import { CRIT, critDecodeAll, haveCrit } from '../lib/crit.ts';
import { treeSnapshot, renderTree, mmFields, taskTids, fdTargets, pipeFill, syscallOf, NR, type TaskStat } from '../lib/tree.ts';

/**
 * 50 processes: the root; a zombie (exit 42); a plain child with 9 children;
 * a group with two sub-groups of 4 and two members; a second session holding
 * a group of 7 (with grandchildren) and 4 more; another group with two
 * sub-groups and 4 members; a plain child with 3 children.
 */
const TREE50 = 'p(z p(p*9) g(g(p*3) g(p*3) p p) s(g(p(p*2) p*3) p*4) g(g(p*2) g(p*2) p*4) p(p*3))';

/** SIGUSR2 every live task of the tree; each must answer with its own ids. */
async function pingTree(log: string, tasks: ReturnType<typeof treeSnapshot>): Promise<void> {
  const mark = readLines(log).length;
  const live = tasks.filter((t) => t.state !== 'Z');
  for (const t of live) signal(t.pid, SIGUSR2);
  const want = live.map((t) => `alive pid=${t.pid} ppid=${t.ppid} pgid=${t.pgid} sid=${t.sid}`).sort();
  await waitFor(
    () =>
      readLines(log)
        .slice(mark)
        .filter((l) => l.startsWith('alive ')).length >= want.length,
    10_000,
    `${want.length} "alive" answers`,
  );
  await sleep(100);
  const got = readLines(log)
    .slice(mark)
    .filter((l) => l.startsWith('alive '))
    .sort();
  assert.deepEqual(got, want, 'every live task answers once, with the ids it had');
}

e2e(
  'a 50-process tree comes back with the same PID, PPID, SID, PGID and state for every process',
  async (c) => {
    const t = startTarget([workload('tree'), TREE50], { logFile: join(c.dir, 'tree.log') });
    await waitForLine(t.log, /^ready n=50$/, 10_000);
    await waitFor(() => treeSnapshot(t.pid).every((x) => x.state === 'S' || x.state === 'Z'), 5000, 'the tree to settle');
    const before = treeSnapshot(t.pid);
    assert.equal(before.length, 50, 'tree size');
    // The tree is what the test means it to be.
    assert.equal(new Set(before.map((x) => x.sid)).size, 2, 'two sessions');
    assert.ok(new Set(before.map((x) => x.pgid)).size >= 7, 'several process groups');
    const zombies = before.filter((x) => x.state === 'Z');
    assert.equal(zombies.length, 1, 'one zombie');
    assert.equal(zombies[0].exitCode, 42 << 8, 'the zombie exited with 42');
    assert.ok(
      before.some((x) => x.ppid !== t.pid && x.ppid !== process.pid && procStat(x.ppid)?.ppid !== t.pid),
      'great-grandchildren',
    );
    // Children inherit these from their restored parent, and criu-ts sets them only where they differ.
    const mm = () => new Map(before.filter((x) => x.state !== 'Z').map((x) => [x.pid, mmFields(x.pid)]));
    const mm0 = mm();

    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    for (const x of before) assert.equal(procStat(x.pid), null, `PID ${x.pid} is free after the dump`);

    restoreDetached(img, t.pid);
    assert.deepEqual(mm(), mm0, "every task's mm fields, auxv and exe");
    const after = treeSnapshot(t.pid);
    // (a zombie's comm is checked on its own, below in this file)
    const noZombieComm = (x: TaskStat) => (x.state === 'Z' ? { ...x, comm: '-' } : x);
    assert.deepEqual(renderTree(after.map(noZombieComm)), renderTree(before.map(noZombieComm)), 'the restored tree');
    for (const x of after) if (x.state !== 'Z') assertRunningFree(x.pid);
    await pingTree(t.log, after);
    // And once more: nothing changed by running.
    assert.deepEqual(
      renderTree(treeSnapshot(t.pid).map(noZombieComm)),
      renderTree(before.map(noZombieComm)),
      'the restored tree a moment later',
    );
    killAndReap(t.pid);
  },
  { timeout: 60_000 },
);

/** 100 processes in three levels. */
const TREE100 = 'p(p(p*9)*9 p*9)';

e2e(
  'a 100-process tree comes back whole, every image file listed and checksummed in the manifest',
  async (c) => {
    const t = startTarget([workload('tree'), TREE100], { logFile: join(c.dir, 'tree.log') });
    await waitForLine(t.log, /^ready n=100$/, 20_000);
    await waitFor(() => treeSnapshot(t.pid).every((x) => x.state === 'S'), 5000, 'the tree to settle');
    const before = treeSnapshot(t.pid);
    assert.equal(before.length, 100, 'tree size');
    const img = c.subdir('img');
    dumpAndReap(t.pid, img);
    const m = JSON.parse(readFileSync(join(img, 'criu-ts-manifest.json'), 'utf8')) as {
      files: Record<string, { size: number; crc32: string }>;
    };
    const files = imageFiles(img);
    assert.ok(files.length >= 100 * 5, `${files.length} image files`);
    assert.deepEqual(Object.keys(m.files).sort(), files, 'the manifest lists every image file');
    for (const f of files) {
      const b = readFileSync(join(img, f));
      assert.equal(m.files[f].crc32, crc32(b).toString(16).padStart(8, '0'), `${f}: crc32`);
    }
    restoreDetached(img, t.pid);
    const after = treeSnapshot(t.pid);
    assert.deepEqual(renderTree(after), renderTree(before), 'the restored tree');
    await pingTree(t.log, after);
    killAndReap(t.pid);
  },
  { timeout: 90_000 },
);

/** Parent and child that went separate ways after the fork: different fds, cwd, umask, signal actions. */
const PY_DIVERGED = `
import os, signal, sys, time
out = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.close(0)
    a = os.open("/etc/group", os.O_RDONLY)
    b = os.open("/etc/passwd", os.O_RDONLY | os.O_CLOEXEC)
    os.chdir("/usr")
    os.umask(0o027)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, lambda *a: None)
    os.write(1, ("child ready %d %d %d\\n" % (os.getpid(), a, b)).encode())
else:
    f = open(out, "w")
    os.chdir("/var")
    os.umask(0o077)
    signal.signal(signal.SIGUSR1, lambda *a: None)
    os.write(1, ("parent ready %d %d\\n" % (os.getpid(), f.fileno())).encode())
while True:
    time.sleep(0.05)
`;

function fdState(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const target = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/^(pipe|socket|anon_inode):.*/, '$1');
    const flags = /^flags:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1];
    out[fd] = `${target} flags=${flags}`;
  }
  const st = procStatus(pid)!;
  out.cwd = readlinkSync(`/proc/${pid}/cwd`);
  for (const k of ['Umask', 'SigIgn', 'SigCgt']) out[k] = st[k];
  return out;
}

e2e("a child forked from its restored parent ends up with its own fds, cwd, umask and signal actions, not its parent's", async (c) => {
  const script = join(c.dir, 'diverged.py');
  writeFileSync(script, PY_DIVERGED);
  const t = startTarget(['/usr/bin/python3', '-u', script, join(c.dir, 'parent.out')], { logFile: join(c.dir, 'py.log') });
  // One write(2) per line: python -u would write the parts of a print() one by one, and the two processes' lines would mix.
  await waitFor(() => readLines(t.log).filter((l) => /^(parent|child) ready /.test(l)).length >= 2, 10_000, 'both ready');
  const child = descendants(t.pid)[0];
  const before = { parent: fdState(t.pid), child: fdState(child) };
  assert.notDeepEqual(before.parent, before.child, 'the two differ to begin with');
  assert.equal(before.child.cwd, '/usr');
  assert.equal(before.child.Umask, '0027');
  dumpAndReap(t.pid, c.subdir('img'));
  restoreDetached(join(c.dir, readdirSync(c.dir).find((d) => d.startsWith('img-'))!), t.pid);
  assert.deepEqual({ parent: fdState(t.pid), child: fdState(child) }, before);
  killAndReap(t.pid);
});

e2e('siblings with large memory of their own each read half of their pages into themselves and come back intact', async (c) => {
  const hog = workload('memhog');
  const t = startTarget(['bash', '-c', `${hog} 24 & ${hog} 24 & ${hog} 24 & wait`], { logFile: join(c.dir, 'hogs.log') });
  await waitFor(() => readLines(t.log).filter((l) => l.startsWith('ready')).length === 3, 20_000, 'three memhogs ready');
  const before = treeSnapshot(t.pid);
  const hogs = before.filter((x) => x.pid !== t.pid).map((x) => x.pid);
  assert.equal(hogs.length, 3, 'bash and its three memhogs');
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  assert.deepEqual(renderTree(treeSnapshot(t.pid)), renderTree(before), 'the same tree');
  // Each memhog read half of its pages into itself while criu-ts wrote the other half and
  // went on to its siblings (src/resources/mm/fill.ts).
  const log = readFileSync(join(img, 'restore.log'), 'utf8');
  for (const pid of hogs)
    assert.match(log, new RegExp(`task ${pid}: page data 1[0-9.]+ MiB read by the task itself, 1[0-9.]+ MiB by criu-ts`));
  const mark = readLines(t.log).length;
  for (const pid of hogs) signal(pid, SIGUSR1);
  await waitFor(
    () =>
      readLines(t.log)
        .slice(mark)
        .filter((l) => l.startsWith('verify=')).length === 3,
    20_000,
    'three verify lines',
  );
  assert.deepEqual(readLines(t.log).slice(mark), ['verify=1 ok', 'verify=1 ok', 'verify=1 ok'], 'every memhog finds its 24 MiB intact');
  killAndReap(t.pid);
});

e2e('a restored zombie keeps its comm and exit status', async (c) => {
  const t = startTarget([workload('tree'), 'p(z p)'], { logFile: join(c.dir, 'tree.log') });
  await waitForLine(t.log, /^ready n=3$/, 10_000);
  const before = treeSnapshot(t.pid);
  assert.deepEqual(before.map((x) => x.state).sort(), ['S', 'S', 'Z']);
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  const after = treeSnapshot(t.pid);
  killAndReap(t.pid);
  assert.deepEqual(renderTree(after), renderTree(before), 'the restored tree, zombie included');
});

e2e('crit decode reads every image of a tree with threads and a zombie, and crit x ps lists the whole tree', async (c) => {
  assert.ok(haveCrit(), `${CRIT} is required (Debian package criu)`);
  const script = `"$1" -n 4 -i 50 & "$2" 'p(z g(p*2) s(p p))' & echo started; wait`;
  const t = startTarget(['/usr/bin/bash', '-c', script, 'bash', workload('threads'), workload('tree')], {
    logFile: join(c.dir, 'mix.log'),
  });
  await waitForLine(t.log, /^ready n=8$/, 10_000);
  await waitForLine(t.log, /^ready threads=4$/, 10_000);
  const before = treeSnapshot(t.pid);
  assert.equal(before.length, 10, `bash + threads + 8 tree processes:\n${renderTree(before).join('\n')}`);
  const threaded = before.find((x) => x.comm === 'threads')!;
  const tids = taskTids(threaded.pid);
  assert.equal(tids.length, 4);

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const files = imageFiles(img);
  for (const x of before) {
    assert.ok(files.includes(`core-${x.pid}.img`), `core-${x.pid}.img is missing`);
    if (x.state !== 'Z') assert.ok(files.includes(`mm-${x.pid}.img`), `mm-${x.pid}.img is missing`);
  }
  for (const tid of tids) assert.ok(files.includes(`core-${tid}.img`), `core-${tid}.img (thread) is missing`);
  const decodable = files.filter((n) => !/^pages-\d+\.img$/.test(n)); // raw page data: crit cannot decode it by design
  const decoded = critDecodeAll(img, decodable, join(c.dir, 'json'));
  for (const [name, j] of decoded) assert.ok(j.magic && Array.isArray(j.entries), `crit decode ${name}: no magic/entries`);
  const entries = decoded.get('pstree.img')!.entries as { pid: number; ppid: number; pgid: number; sid: number; threads: number[] }[];
  const byPid = new Map(entries.map((e) => [e.pid, e]));
  for (const x of before) {
    const e = byPid.get(x.pid);
    assert.ok(e, `pstree.img has no entry for ${x.pid}`);
    assert.deepEqual([e.ppid, e.pgid, e.sid], [x.pid === t.pid ? 0 : x.ppid, x.pgid, x.sid], `pstree entry of ${x.pid}`);
  }
  assert.deepEqual(byPid.get(threaded.pid)!.threads, tids, 'threads of the multi-threaded task');
  assert.equal(entries.length, before.length, 'pstree.img entries');

  const x = spawnSync(CRIT, ['x', img, 'ps'], { encoding: 'utf8' });
  assert.equal(x.status, 0, `crit x ps failed: ${x.stderr}`);
  const rows = new Map(
    x.stdout
      .split('\n')
      .slice(1)
      .filter((l) => l.trim())
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return [Number(f[0]), f];
      }),
  );
  for (const p of before) {
    const row = rows.get(p.pid);
    assert.ok(row, `crit x ps does not list PID ${p.pid}:\n${x.stdout}`);
    assert.equal(row.at(-1), p.comm, `comm of ${p.pid} in crit x ps`);
  }
  assert.equal(rows.size, before.length, `crit x ps lists exactly the tree:\n${x.stdout}`);
});

e2e('a shell pipeline of real programs continues without lost or duplicated lines', async (c) => {
  const out = join(c.dir, 'pipeline.out');
  const t = startTarget(['/usr/bin/bash', '-c', 'while :; do date +%s.%N; sleep 0.1; done | cat -n | grep --line-buffered .'], {
    logFile: out,
  });
  const numbers = () =>
    readLines(out).map((l) => {
      const m = /^\s*(\d+)\t(\d+\.\d+)$/.exec(l);
      assert.ok(m, `unexpected line ${JSON.stringify(l)}`);
      return { n: Number(m[1]), ts: Number(m[2]) };
    });
  await waitFor(() => numbers().length >= 5, 10_000, '5 lines');
  const stages = () => {
    // The loop's `date` and `sleep` come and go while the tree is read.
    const tree = treeSnapshot(t.pid, true);
    return { cat: tree.find((x) => x.comm === 'cat'), grep: tree.find((x) => x.comm === 'grep'), tree };
  };
  const s0 = stages();
  assert.ok(s0.cat && s0.grep, `cat and grep in the tree:\n${renderTree(s0.tree).join('\n')}`);
  // The loop's subshell writes into cat's stdin; cat's stdout is grep's stdin.
  const catIn = fdTargets(s0.cat.pid).get(0)!,
    catOut = fdTargets(s0.cat.pid).get(1)!;
  assert.match(catIn, /^pipe:/);
  assert.equal(fdTargets(s0.grep.pid).get(0), catOut, 'cat | grep share a pipe');

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const atDump = numbers().length;
  await sleep(300);
  assert.equal(numbers().length, atDump, 'the pipeline was killed by the dump');

  restoreDetached(img, t.pid);
  await waitFor(() => numbers().length >= atDump + 8, 10_000, '8 more lines after restore');
  const s1 = stages();
  assert.ok(s1.cat && s1.grep, 'cat and grep are back');
  assert.deepEqual(
    [s1.cat.pid, s1.cat.ppid, s1.grep.pid, s1.grep.ppid],
    [s0.cat.pid, s0.cat.ppid, s0.grep.pid, s0.grep.ppid],
    'same pids and parents',
  );
  const catIn1 = fdTargets(s1.cat.pid).get(0)!,
    catOut1 = fdTargets(s1.cat.pid).get(1)!;
  assert.match(catIn1, /^pipe:/);
  assert.notEqual(catIn1, catOut1);
  assert.equal(fdTargets(s1.grep.pid).get(0), catOut1, 'cat | grep still share a pipe');
  const writers = s1.tree.filter((x) => x.comm === 'bash' && fdTargets(x.pid).get(1) === catIn1);
  assert.ok(writers.length >= 1, 'the loop still writes into cat');

  killAndReap(t.pid);
  const all = numbers();
  assertConsecutive(
    all.map((x) => x.n),
    'cat -n numbering',
    1,
  );
  for (let k = 1; k < all.length; k++) assert.ok(all[k].ts > all[k - 1].ts, `timestamps go forward at line ${all[k].n}`);
});

e2e('pipes that hold data keep exactly their bytes, and a writer blocked on a full pipe goes on', async (c) => {
  const t = startTarget([workload('pipefill'), '-k', '1000'], { logFile: join(c.dir, 'pipefill.log') });
  const ready = parseKV((await waitForLine(t.log, /^ready /, 10_000)).line);
  const [full, partial, fa, fb] = [ready.full, ready.partial, ready.a, ready.b].map(Number);
  assert.deepEqual(
    descendants(t.pid).sort((a, b) => a - b),
    [full, partial].sort((a, b) => a - b),
  );
  await waitFor(() => syscallOf(full, full) === NR.write, 5000, 'the full writer to block in write()');
  const fill0 = { a: pipeFill(t.pid, fa), b: pipeFill(t.pid, fb) };
  assert.equal(fill0.a, 65536, 'pipe A is full');
  assert.equal(fill0.b, 37000, 'pipe B holds 1000 records of 37 bytes');

  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  restoreDetached(img, t.pid);
  const fill1 = { a: pipeFill(t.pid, fa), b: pipeFill(t.pid, fb) };
  assert.deepEqual(fill1, fill0, 'bytes buffered in each pipe, before and after');
  await sleep(200);
  assert.equal(syscallOf(full, full), NR.write, 'the full writer still waits in write()');
  assertRunningFree(full);
  assertRunningFree(partial);

  signal(t.pid, SIGUSR1);
  const d = parseKV((await waitForLine(t.log, /^drain=1 /, 10_000)).line);
  assert.deepEqual(d, { drain: '1', a: 'ok', last: '1999', b: 'ok', n: '1000' }, 'every record read back in order');
  // The reader consumed part of a page: the writer can fill all but that part again.
  await waitFor(() => pipeFill(t.pid, fa) >= 65536 - 4096 && syscallOf(full, full) === NR.write, 5000, 'the writer to fill pipe A again');
  killAndReap(t.pid);
});
