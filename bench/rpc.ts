// Dump + restore of a tiny process through CRIU's RPC: criu-ts as a running `service`, and
// through `swrk` with a new criu-ts per request (as runc uses it), next to CRIU 4.2's command
// line, swrk and service in the same run, the runners taking turns. Times are the client's:
// from the request to the answer, and for swrk until the worker has exited (runc waits for it).
// Issue 13's targets: service <= CRIU's command line, swrk <= 1.3x it. Then the VERSION probe
// runc sends to a `swrk` of its own, criu-ts's answered by its launcher (bin/criu-ts).
//
//   node bench/rpc.ts [runs]        (CRIU_BIN, default /var/cache/criu-zdtm/v4.2/criu/criu)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { close, recvDatagram, sendDatagram, seqpacketConnect, seqpacketPair } from '../src/kernel/index.ts';
import { decodeMessage, encodeMessage, enums, type MessageInput } from '../src/images/index.ts';
import { workload } from '../test/lib/workloads.ts';
import { root, startDetached, waitFor, tmpdir, reap, killAndReap, timeMs } from './common.ts';

const runs = Math.max(3, Number(process.argv[2] ?? 5));
const counter = workload('counter');
const CRIU = process.env.CRIU_BIN ?? '/var/cache/criu-zdtm/v4.2/criu/criu';
const CRIU_TS = path.join(root, 'bin', 'criu-ts');
const REQ = enums.criu_req_type.values;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
type Req = MessageInput<'criu_req'>;

/** One request on a connected socket; notifications (none are asked for) would be acknowledged. */
function call(fd: number, req: Req): void {
  sendDatagram(fd, encodeMessage('criu_req', req));
  for (;;) {
    const d = recvDatagram(fd, 1 << 20);
    if (!d) throw new Error('the server closed the connection');
    const resp = decodeMessage('criu_resp', d.bytes);
    if (resp.type === REQ.NOTIFY) {
      sendDatagram(fd, encodeMessage('criu_req', { type: REQ.NOTIFY, notify_success: true }));
      continue;
    }
    if (!resp.success) throw new Error(`request ${req.type} failed: ${resp.cr_errmsg ?? `errno ${resp.cr_errno}`}`);
    return;
  }
}

const exited = (c: ChildProcess) =>
  new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

type Runner = { name: string; dump: (pid: number, img: string) => Promise<number>; restore: (img: string) => Promise<number> };

function cli(name: string, bin: string): Runner {
  const run = (args: string[]) => {
    let r: ReturnType<typeof spawnSync> | undefined;
    const ms = timeMs(() => {
      r = spawnSync(bin, [...args, '-v0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    });
    if (r!.status !== 0) throw new Error(`${name} ${args.join(' ')}: ${String(r!.stderr).trim().split('\n').pop()}`);
    return ms;
  };
  return {
    name,
    dump: async (pid, img) => run(['dump', '-t', String(pid), '-D', img]),
    restore: async (img) => run(['restore', '-D', img, '-d']),
  };
}

const dumpReq = (dirFd: number, pid: number): Req => ({ type: REQ.DUMP, opts: { images_dir_fd: dirFd, pid, log_level: 0 } });
const restoreReq = (dirFd: number): Req => ({ type: REQ.RESTORE, opts: { images_dir_fd: dirFd, log_level: 0 } });

async function withDirFd(img: string, fn: (fd: number) => Promise<number>): Promise<number> {
  const fd = fs.openSync(img, 'r');
  try {
    return await fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** One request to a new `bin swrk`: ms from its spawn until it has exited. */
async function swrkOnce(name: string, bin: string, req: Req): Promise<number> {
  const [mine, theirs] = seqpacketPair();
  const t0 = performance.now();
  const child = spawn(bin, ['swrk', '3'], { stdio: ['ignore', 'ignore', 'inherit', theirs] });
  close(theirs);
  try {
    call(mine, req);
  } finally {
    close(mine);
  }
  await exited(child);
  if (child.exitCode !== 0) throw new Error(`${name}: swrk exited with ${child.exitCode ?? child.signalCode}`);
  return performance.now() - t0;
}

function swrk(name: string, bin: string): Runner {
  const once = (req: Req) => swrkOnce(name, bin, req);
  return {
    name,
    dump: (pid, img) => withDirFd(img, (fd) => once(dumpReq(fd, pid))),
    restore: (img) => withDirFd(img, (fd) => once(restoreReq(fd))),
  };
}

async function service(name: string, bin: string): Promise<Runner & { stop: () => Promise<void> }> {
  const dir = tmpdir('rpc-service');
  const sock = path.join(dir, 'criu_service.socket');
  const child = spawn(bin, ['service', '--address', sock, '--status-fd', '3', '-o', path.join(dir, 'service.log')], {
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    (child.stdio[3] as NodeJS.ReadableStream).once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`${name} exited with ${c}`)));
  });
  const once = async (req: Req) =>
    timeMs(() => {
      const fd = seqpacketConnect(sock);
      try {
        call(fd, req);
      } finally {
        close(fd);
      }
    });
  return {
    name,
    dump: (pid, img) => withDirFd(img, (fd) => once(dumpReq(fd, pid))),
    restore: (img) => withDirFd(img, (fd) => once(restoreReq(fd))),
    stop: async () => {
      child.kill('SIGKILL');
      await exited(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function one(r: Runner, acc: Map<string, { dump: number[]; restore: number[] }>): Promise<void> {
  const dir = tmpdir('rpc');
  const log = path.join(dir, 'counter.log');
  const pid = startDetached([counter, '100'], log);
  try {
    await waitFor(log, /^i=2$/m);
    const img = path.join(dir, 'img');
    fs.mkdirSync(img);
    const m = acc.get(r.name) ?? { dump: [], restore: [] };
    acc.set(r.name, m);
    m.dump.push(await r.dump(pid, img));
    reap(pid);
    m.restore.push(await r.restore(img));
    await waitFor(log, /^i=2$/m);
  } finally {
    killAndReap(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const haveCriu = fs.existsSync(CRIU);
const loadBefore = os.loadavg()[0];
const ours = await service('criu-ts service', CRIU_TS);
const theirsSvc = haveCriu ? await service('CRIU 4.2 service', CRIU) : undefined;
const runners: Runner[] = [
  ...(haveCriu ? [cli('CRIU 4.2 cli', CRIU), swrk('CRIU 4.2 swrk', CRIU), theirsSvc!] : []),
  cli('criu-ts cli', CRIU_TS),
  swrk('criu-ts swrk', CRIU_TS),
  ours,
];
const acc = new Map<string, { dump: number[]; restore: number[] }>();
try {
  // Warm-up (the bundle, page cache), then the runners in turn.
  for (const r of runners) await one(r, new Map());
  for (let i = 0; i < runs; i++) for (const r of runners) await one(r, acc);
} finally {
  await ours.stop();
  await theirsSvc?.stop();
}

// runc's version probe, a `criu swrk` of its own before each checkpoint and restore.
const probers = [...(haveCriu ? [{ name: 'CRIU 4.2 swrk', bin: CRIU }] : []), { name: 'criu-ts swrk', bin: CRIU_TS }];
const probes = new Map<string, number[]>(probers.map((p) => [p.name, []]));
for (let i = 0; i <= runs; i++)
  for (const p of probers) {
    const ms = await swrkOnce(p.name, p.bin, { type: REQ.VERSION });
    if (i) probes.get(p.name)!.push(ms); // the first of each warms up
  }

const total = (n: string) => {
  const m = acc.get(n)!;
  return median(m.dump) + median(m.restore);
};
console.log(
  `tiny process, dump + restore, median of ${runs} runs each, runners alternating; 1-min load average ${loadBefore.toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after`,
);
for (const r of runners) {
  const m = acc.get(r.name)!;
  console.log(
    `  ${r.name.padEnd(17)} dump ${median(m.dump).toFixed(0).padStart(4)} ms + restore ${median(m.restore).toFixed(0).padStart(4)} ms = ${total(r.name).toFixed(0).padStart(4)} ms`,
  );
}
for (const p of probers) console.log(`  ${p.name.padEnd(17)} VERSION probe ${median(probes.get(p.name)!).toFixed(1).padStart(6)} ms`);
if (haveCriu) {
  const base = total('CRIU 4.2 cli');
  console.log(`  criu-ts service / CRIU 4.2 cli = ${(total('criu-ts service') / base).toFixed(2)} (target <= 1.0)`);
  console.log(`  criu-ts swrk    / CRIU 4.2 cli = ${(total('criu-ts swrk') / base).toFixed(2)} (target <= 1.3)`);
} else console.log(`  CRIU 4.2 not found at ${CRIU}: no comparison`);
