// zstd on the pages of a real program: python3 holding a large dict. Prints the compression
// ratio and the dump throughput with and without --compress, in the same run.
import fs from 'node:fs';
import path from 'node:path';
import { criuTs, startDetached, waitFor, tmpdir, reap, killAndReap } from './common.ts';

const dir = tmpdir('zstd');
const script = path.join(dir, 'dict.py');
fs.writeFileSync(
  script,
  [
    'import time',
    'd = {i: "value-%d-" % i + "x" * (i % 50) for i in range(2_000_000)}',
    'print("ready", flush=True)',
    'while True: time.sleep(1)',
  ].join('\n'),
);
const log = path.join(dir, 'py.log');
const pid = startDetached(['python3', script], log);
await waitFor(log, /^ready/m, 120_000);
const pagesOf = (d: string) =>
  fs
    .readdirSync(d)
    .filter((f) => /^pages-\d+\.img$/.test(f))
    .reduce((s, f) => s + fs.statSync(path.join(d, f)).size, 0);
const plain = criuTs(['dump', '-t', String(pid), '-D', path.join(dir, 'plain'), '-R']);
const packed = criuTs(['dump', '-t', String(pid), '-D', path.join(dir, 'zstd'), '-R', '--compress', 'zstd']);
reap(pid);
killAndReap(pid);
const a = pagesOf(path.join(dir, 'plain')),
  b = pagesOf(path.join(dir, 'zstd'));
const mib = (x: number) => (x / (1 << 20)).toFixed(1);
console.log(`python3 with a 2M-entry dict: pages ${mib(a)} MiB plain, ${mib(b)} MiB with zstd: ratio ${(a / b).toFixed(2)}`);
console.log(
  `  dump ${plain.ms.toFixed(0)} ms plain (${(a / (1 << 20) / (plain.ms / 1000)).toFixed(0)} MiB/s), ${packed.ms.toFixed(0)} ms with zstd (${(a / (1 << 20) / (packed.ms / 1000)).toFixed(0)} MiB/s of memory)`,
);
fs.rmSync(dir, { recursive: true, force: true });
