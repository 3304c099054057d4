// Dump and restore throughput for a process with 256 MiB and 1 GiB of touched anonymous
// memory, and for a tree of four processes with 128 MiB each (a bash with memhogs: their
// pages are read in concurrently, see src/resources/mm/fill.ts), next to this machine's own
// limits measured in the same run, under the same conditions:
//   dump:    write(2) of as many bytes from memory into a new file, cp of that file, and
//            dd with O_DIRECT (the disk itself; criu-ts writes large page data that way);
//   restore: the first touch of as much fresh anonymous memory (in a child process).
// This VM hands freed memory back to its host (virtio-balloon free page reporting) and
// faults it back in on the next touch, so allocating memory is slow and its speed depends
// on what was freed how recently. Each timed step therefore starts after a pause that lets
// the reporting settle, and the reference files stay until the dump is done, so that
// neither side runs on memory the other just freed.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { criuTs, startDetached, waitFor, tmpdir, killAndReap, timeMs, sleep } from './common.ts';

// "N" is one process with N MiB; "KxN" is a bash with K memhogs of N MiB each.
const cases = (process.argv[2] ?? '256,1024,4x128').split(',').map((c) => {
  const m = /^(?:(\d+)x)?(\d+)$/.exec(c);
  if (!m) throw new Error(`bad case ${c}: use MIB or COUNTxMIB`);
  return { procs: Number(m[1] ?? 1), mib: Number(m[2]) };
});
const SETTLE_MS = 3000;
const memhog = workload('memhog');
const gib = (bytes: number, ms: number) => bytes / (1 << 30) / (ms / 1000);
const rate = (bytes: number, ms: number) => `${ms.toFixed(0).padStart(5)} ms ${gib(bytes, ms).toFixed(2)} GiB/s`;

/** write(2) of `bytes` from a warm 2 MiB buffer into a new file. */
function writeFile(file: string, bytes: number): void {
  const buf = Buffer.alloc(2 << 20, 0x5a);
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; off += buf.length) fs.writeSync(fd, buf, 0, Math.min(buf.length, bytes - off));
  } finally {
    fs.closeSync(fd);
  }
}

/** First touch of `bytes` of fresh anonymous memory, timed inside a child process (ms). */
function firstTouchMs(bytes: number): number {
  const py =
    'import mmap,sys,time\nn=int(sys.argv[1])\nm=mmap.mmap(-1,n)\nt=time.perf_counter()\n' +
    'for i in range(0,n,4096): m[i]=1\nprint((time.perf_counter()-t)*1000)';
  return Number(execFileSync('python3', ['-c', py, String(bytes)], { encoding: 'utf8' }).trim());
}

const pagesOf = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => /^pages-\d+\.img$/.test(f))
    .reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);

for (const { procs, mib } of cases) {
  const dir = tmpdir(`mem${mib}`);
  const log = path.join(dir, 'memhog.log');
  const images = path.join(dir, 'img');
  const argv = procs === 1 ? [memhog, String(mib)] : ['bash', '-c', `${Array(procs).fill(`${memhog} ${mib} &`).join(' ')} wait`];
  const pid = startDetached(argv, log);
  await waitFor(log, new RegExp(`(^ready .*\n){${procs}}`, 'm'));
  const members = procs === 1 ? [pid] : fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
  const bytes = (mib << 20) * procs;

  await sleep(SETTLE_MS);
  const refWrite = path.join(dir, 'ref-write'),
    refCp = path.join(dir, 'ref-cp');
  const writeMs = timeMs(() => writeFile(refWrite, bytes));
  const cpMs = timeMs(() => execFileSync('cp', [refWrite, refCp]));
  const refDirect = path.join(dir, 'ref-direct');
  const directMs = timeMs(() =>
    execFileSync('dd', ['if=/dev/zero', `of=${refDirect}`, 'bs=2M', `count=${bytes / (2 << 20)}`, 'oflag=direct', 'status=none']),
  );
  await sleep(SETTLE_MS);
  const d = criuTs(['dump', '-t', String(pid), '-D', images]);
  for (const p of [pid, ...members]) killAndReap(p); // reaped, so that their PIDs are free again
  const pagesBytes = pagesOf(images);
  fs.rmSync(refWrite);
  fs.rmSync(refCp);
  fs.rmSync(refDirect);

  await sleep(SETTLE_MS);
  const touchMs = firstTouchMs(pagesBytes);
  await sleep(SETTLE_MS);
  const r = criuTs(['restore', '-D', images, '-d']);
  for (const p of members) process.kill(p, 'SIGUSR1');
  await waitFor(log, new RegExp(`(^verify=1 ok\n){${procs}}`, 'm'));
  for (const p of [...members.filter((p) => p !== pid), pid]) killAndReap(p);
  fs.rmSync(dir, { recursive: true, force: true });

  console.log(`${procs === 1 ? `${mib} MiB` : `${procs} processes x ${mib} MiB`} (${(pagesBytes / (1 << 20)).toFixed(0)} MiB of pages):`);
  console.log(`  dump    ${rate(pagesBytes, d.ms)}   peak RSS ${(d.maxRssKiB / 1024).toFixed(0)} MiB`);
  console.log(
    `    same bytes: write(2) ${rate(bytes, writeMs)}, cp ${rate(bytes, cpMs)}, dd O_DIRECT ${rate(bytes, directMs)}` +
      `   dump/write ${(d.ms / writeMs).toFixed(2)}, dump/cp ${(d.ms / cpMs).toFixed(2)}, dump/dd ${(d.ms / directMs).toFixed(2)}`,
  );
  console.log(
    `  restore ${rate(pagesBytes, r.ms)}   first touch ${rate(pagesBytes, touchMs)}` +
      `   restore/touch ${(r.ms / touchMs).toFixed(2)}   peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`,
  );
}
