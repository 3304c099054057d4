// Established TCP connections: dump and restore of a server (test/workloads/tcpfan.c) holding
// 1, 100 and 1000 connections to a peer process outside the dumped tree, with
// --tcp-established, criu-ts and CRIU 4.2 taking turns in the same run. Prints the median
// of `runs` for each: ms in all and per connection, for dump and for restore, and how long
// the connections were network-locked. After each restore the peer sends a byte on every
// connection and must get it echoed, or the run counts as failed.
//
// Locked time, from the first packet that can be dropped to the lock's removal: criu-ts's
// from its log lines "network lock kept (locked for X ms in the dump)" and "network locked
// for Y ms of the restore"; CRIU's from the -v4 log timestamps of its first "Locked" line
// (iptables, its default) or lock element (nftables) at dump to its last "Unlocked" line or
// "Unlock network" at restore. Each log's timestamps count from a moment found from its last
// line, written as its process exits (criu-ts's log starts once Node is up, well after the
// spawn). "n/a (no lock)" when a tool took none.
//
//   node bench/tcp-conns.ts [runs] [N...]   (runs default 3; N default 1 100 1000)
//   CRIU_REF=/path/to/criu (default /var/cache/criu-zdtm/v4.2/criu/criu)
//   CRIU_LOCK=iptables,nftables (the default): CRIU 4.2 once with each --network-lock named
//   (iptables is its default; skip takes none). criu-ts takes its default (nftables where nft works).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir, killAndReap } from './common.ts';
import { waitpid, WALL } from '../src/kernel/index.ts';

const nums = process.argv
  .slice(2)
  .filter((a) => /^\d+$/.test(a))
  .map(Number);
const runs = nums[0] ?? 3;
const sizes = nums.length > 1 ? nums.slice(1) : [1, 100, 1000];
const CRIU = process.env.CRIU_REF ?? '/var/cache/criu-zdtm/v4.2/criu/criu';
const locks = (process.env.CRIU_LOCK ?? 'iptables,nftables').split(',');
const tools = [{ name: 'criu-ts', bin: path.join(root, 'bin', 'criu-ts'), dump: [] as string[] }];
if (fs.existsSync(CRIU)) for (const l of locks) tools.push({ name: `CRIU ${l}`, bin: CRIU, dump: ['--network-lock', l] });
const tcpfan = workload('tcpfan');

/** Runs a tool; returns when it started (epoch ms) and how long it took. */
function run(bin: string, args: string[]): { start: number; ms: number } {
  const start = performance.timeOrigin + performance.now();
  const t = performance.now();
  const r = spawnSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - t;
  if (r.status !== 0)
    throw new Error(`${path.basename(bin)} ${args[0]} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return { start, ms };
}

/** A tool's run: when it started (epoch ms), how long it took, its log. */
interface Ran {
  start: number;
  ms: number;
  log: string;
}

/** The log's lines as [seconds since its start, text]. */
function logLines(file: string): Array<[number, string]> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l): [number, string] | null => {
      const m = /^\((\d+\.\d+)\)\s*(.*)$/.exec(l);
      return m ? [Number(m[1]), m[2]] : null;
    })
    .filter((x): x is [number, string] => x !== null);
}

/** The locked time in ms, or null when the tool took no lock. */
function lockedMs(tool: string, d: Ran, r: Ran): number | null {
  const dl = logLines(d.log);
  const rl = logLines(r.log);
  // The moment each log counts from: its last line is written as its process ends.
  const d0 = d.start + d.ms - (dl.at(-1)?.[0] ?? 0) * 1000;
  const r0 = r.start + r.ms - (rl.at(-1)?.[0] ?? 0) * 1000;
  if (tool === 'criu-ts') {
    // The dump says how long the lock had held when it left it for the restore, and the
    // restore when it removed it.
    const kept = dl.map(([t, l]) => [t, /network lock kept \(locked for ([\d.]+) ms/.exec(l)] as const).find(([, m]) => m);
    const gone = rl.find(([, l]) => /network locked for [\d.]+ ms of the restore/.test(l));
    if (!kept?.[1] || !gone) return null;
    return r0 + gone[0] * 1000 - (d0 + kept[0] * 1000 - Number(kept[1][1]));
  }
  // iptables: a "Locked"/"Unlocked" line per connection; nftables: an element added per
  // connection, and the table deleted right after "Unlock network".
  const first = dl.find(([, t]) => /^Locked .* connection$|^\s*Running nftables \[add element/.test(t));
  const unlock = rl.findIndex(([, t]) => /^(net: )?Unlock network$/.test(t));
  const last = rl.findLast(([, t]) => /^Unlocked .* connection$/.test(t)) ?? (unlock >= 0 ? rl[unlock + 1] : undefined);
  if (!first || !last) return null;
  return r0 + last[0] * 1000 - (d0 + first[0] * 1000);
}

let nextPort = 20000 + ((process.pid * 64) % 10000);

interface Once {
  dump: number;
  restore: number;
  locked: number | null;
}

/** One dump + restore of a server holding n connections, with one tool. */
async function once(tool: (typeof tools)[number], n: number): Promise<Once> {
  const dir = tmpdir('tcp-conns');
  const port = nextPort++;
  const srvLog = path.join(dir, 'server.log');
  const peerLog = path.join(dir, 'peer.log');
  const srv = startDetached([tcpfan, 'server', String(port), String(n)], srvLog);
  let peer = 0;
  try {
    for (let k = 0; k < 100 && !peer; k++) {
      await new Promise((r) => setTimeout(r, 20));
      const ss = spawnSync('ss', ['-Htln', `sport = :${port}`], { encoding: 'utf8' }).stdout;
      if (ss.trim()) peer = startDetached([tcpfan, 'peer', String(port), String(n)], peerLog);
    }
    if (!peer) throw new Error('the server does not listen');
    await waitFor(srvLog, new RegExp(`^ready n=${n}$`, 'm'));
    await waitFor(peerLog, new RegExp(`^connected n=${n}$`, 'm'));
    const img = path.join(dir, 'img');
    fs.mkdirSync(img);
    const d = run(tool.bin, ['dump', '-t', String(srv), '-D', img, '-v4', '-o', 'dump.log', '--tcp-established', ...tool.dump]);
    waitpid(srv, WALL);
    const r = run(tool.bin, ['restore', '-D', img, '-d', '-v4', '-o', 'restore.log', '--tcp-established']);
    process.kill(peer, 'SIGUSR1');
    await waitFor(peerLog, /^verify ok=\d+/m, 30_000);
    const v = /^verify ok=(\d+)/m.exec(fs.readFileSync(peerLog, 'utf8'))!;
    if (Number(v[1]) !== n) throw new Error(`${v[1]} of ${n} connections echo after the restore`);
    if (/BAD|ERR/.test(fs.readFileSync(srvLog, 'utf8'))) throw new Error(`the server says: ${fs.readFileSync(srvLog, 'utf8').trim()}`);
    const locked = lockedMs(tool.name, { ...d, log: path.join(img, 'dump.log') }, { ...r, log: path.join(img, 'restore.log') });
    if (process.env.BENCH_KEEP) console.log(`  kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
    return { dump: d.ms, restore: r.ms, locked };
  } catch (e) {
    dropLockRules(port, path.join(dir, 'img', 'dump.log'));
    throw e;
  } finally {
    killAndReap(srv);
    if (peer) killAndReap(peer);
  }
}

/**
 * A failed run may leave CRIU's lock: its per-connection iptables rules (those of `port`) or
 * its nftables table (named in its log).
 */
function dropLockRules(port: number, log: string): void {
  for (const chain of ['INPUT', 'OUTPUT']) {
    const rules = spawnSync('iptables', ['-w', '-S', chain], { encoding: 'utf8' }).stdout.split('\n');
    for (const r of rules)
      if (/0xc114/.test(r) && new RegExp(`--[sd]port ${port} `).test(r)) spawnSync('iptables', ['-w', '-D', ...r.split(' ').slice(1)]);
  }
  const table = fs.existsSync(log) ? /inet (CRIU-[0-9a-f-]+)/.exec(fs.readFileSync(log, 'utf8'))?.[1] : undefined;
  if (table) spawnSync('nft', ['delete', 'table', 'inet', table]);
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const f0 = (x: number) => x.toFixed(0).padStart(7);
const f2 = (x: number) => x.toFixed(2).padStart(7);

console.log(`established TCP connections (--tcp-established), median of ${runs} run(s); criu-ts and CRIU 4.2 take turns`);
console.log(
  `${'conns'.padStart(5)}  ${'tool'.padEnd(13)} ${'dump ms'.padStart(7)} ${'/conn'.padStart(7)}  ${'restore'.padStart(7)} ${'/conn'.padStart(7)}  locked ms`,
);
for (const n of sizes) {
  const got = new Map<string, Once[]>(tools.map((t) => [t.name, []]));
  const failed = new Map<string, string>();
  for (let k = 0; k < runs; k++)
    for (const tool of tools) {
      if (failed.has(tool.name)) continue;
      try {
        got.get(tool.name)!.push(await once(tool, n));
      } catch (e) {
        failed.set(tool.name, (e as Error).message.slice(0, 160));
      }
    }
  for (const tool of tools) {
    const xs = got.get(tool.name)!;
    const head = `${String(n).padStart(5)}  ${tool.name.padEnd(13)}`;
    if (failed.has(tool.name)) {
      console.log(`${head} failed: ${failed.get(tool.name)}`);
      continue;
    }
    const d = median(xs.map((x) => x.dump));
    const r = median(xs.map((x) => x.restore));
    const locks = xs.map((x) => x.locked).filter((x) => x !== null);
    const locked = locks.length ? f0(median(locks)) : 'n/a (no lock)';
    console.log(`${head} ${f0(d)} ${f2(d / n)}  ${f0(r)} ${f2(r / n)}  ${locked}`);
  }
}
if (tools.length === 1) console.log(`CRIU not available at ${CRIU} (set CRIU_REF)`);
