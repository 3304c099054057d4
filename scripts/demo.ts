// The demo: start a counter, checkpoint it with criu-ts, show it gone, restore it, and show
// it counting on from where it stopped. This process is a child subreaper and reaps the
// counter at the end, because PID 1 on these machines does not.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setChildSubreaper, waitpid, kill, WNOHANG } from '../src/kernel/index.ts';
import { workload } from '../test/lib/workloads.ts';

const root = path.resolve(import.meta.dirname, '..');
const criu = path.join(root, 'bin', 'criu-ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tail = (f: string, n: number) => fs.readFileSync(f, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
const say = (s: string) => console.log(`\n\x1b[1m${s}\x1b[0m`);
const run = (args: string[]) => {
  console.log(`$ criu-ts ${args.join(' ')}`);
  const r = spawnSync(criu, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`criu-ts ${args[0]} failed`);
};
const reap = (pid: number) => {
  try {
    waitpid(pid, WNOHANG);
  } catch {
    /* not ours */
  }
};

setChildSubreaper();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-demo-'));
const log = path.join(dir, 'counter.log');
const images = path.join(dir, 'images');
const counter = workload('counter');
const pid = Number(execFileSync('bash', ['-c', `setsid "$0" 200 </dev/null >"$1" 2>&1 & echo $!`, counter, log]).toString());
try {
  say(`1. A counter runs as PID ${pid}, printing a line every 200 ms:`);
  await sleep(1500);
  console.log(tail(log, 3));

  say('2. Checkpoint it (the process is killed after the dump):');
  run(['dump', '-t', String(pid), '-D', images, '-v3', '-o', 'dump.log']);
  reap(pid);
  const stopped = tail(log, 1);
  console.log(
    `images: ${fs
      .readdirSync(images)
      .filter((f) => f.endsWith('.img'))
      .join(' ')}`,
  );

  say('3. It is gone:');
  await sleep(1000);
  console.log(
    `ps -p ${pid}: ${
      spawnSync('ps', ['-o', 'pid=,stat=,comm=', '-p', String(pid)])
        .stdout.toString()
        .trim() || '(no such process)'
    }`,
  );
  console.log(`its log still ends with: ${tail(log, 1)} (it stopped at ${stopped})`);

  say('4. Restore it, at the same PID:');
  run(['restore', '-D', images, '-d', '-v3', '-o', 'restore.log']);
  await sleep(1500);
  console.log(
    `ps -p ${pid}: ${spawnSync('ps', ['-o', 'pid=,stat=,comm=', '-p', String(pid)])
      .stdout.toString()
      .trim()}`,
  );

  say('5. It counts on from where it stopped:');
  const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
  const at = lines.indexOf(stopped);
  console.log(
    lines
      .slice(Math.max(0, at - 2), at + 6)
      .map((l, i) => (Math.max(0, at - 2) + i === at ? `${l}   <- checkpoint` : l))
      .join('\n'),
  );
} finally {
  try {
    kill(pid, 9);
  } catch {
    /* gone */
  }
  await sleep(100);
  reap(pid);
  fs.rmSync(dir, { recursive: true, force: true });
}
