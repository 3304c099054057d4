// Dump and restore throughput for a process with 256 MiB and 1 GiB of touched anonymous
// memory, next to the machine's own limits measured in the same run: cp of the same bytes
// on the same file system (dump) and the first touch of as much fresh memory (restore).
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { workload } from '../test/lib/workloads.ts';
import { criuTs, startDetached, waitFor, tmpdir, reap, killAndReap, timeMs } from './common.ts';

const sizes = (process.argv[2] ?? '256,1024').split(',').map(Number);
const memhog = workload('memhog');
const gib = (bytes: number, ms: number) => (bytes / (1 << 30)) / (ms / 1000);

for (const mib of sizes) {
  const dir = tmpdir(`mem${mib}`);
  const log = path.join(dir, 'memhog.log');
  const images = path.join(dir, 'img');
  const pid = startDetached([memhog, String(mib)], log);
  await waitFor(log, /^ready /m);
  const d = criuTs(['dump', '-t', String(pid), '-D', images]);
  reap(pid);
  const pagesBytes = fs.statSync(path.join(images, 'pages-1.img')).size;
  const r = criuTs(['restore', '-D', images, '-d']);
  process.kill(pid, 'SIGUSR1');
  await waitFor(log, /^verify=1 ok$/m);
  killAndReap(pid);

  // References, same run: cp of the pages file, and first touch of fresh memory.
  execFileSync('sync');
  const cpMs = timeMs(() => execFileSync('cp', [path.join(images, 'pages-1.img'), path.join(dir, 'copy.img')]));
  // cp copies in the kernel (copy_file_range); a dump has to write(2) from memory, which here is
  // bound by allocating page-cache pages: `cat` of the same bytes into a new file measures that.
  const catMs = timeMs(() => execFileSync('sh', ['-c', 'cat "$0" > "$1"', path.join(images, 'pages-1.img'), path.join(dir, 'cat.img')]));
  const touchMs = timeMs(() => Buffer.alloc(pagesBytes).fill(1));
  fs.rmSync(dir, { recursive: true, force: true });

  console.log(`${mib} MiB (${(pagesBytes / (1 << 20)).toFixed(0)} MiB of pages):`);
  console.log(`  dump    ${d.ms.toFixed(0).padStart(6)} ms  ${gib(pagesBytes, d.ms).toFixed(2)} GiB/s   cp ${cpMs.toFixed(0)} ms (${gib(pagesBytes, cpMs).toFixed(2)} GiB/s, ratio ${(d.ms / cpMs).toFixed(2)})   write(2) via cat ${catMs.toFixed(0)} ms (${gib(pagesBytes, catMs).toFixed(2)} GiB/s, ratio ${(d.ms / catMs).toFixed(2)})   peak RSS ${(d.maxRssKiB / 1024).toFixed(0)} MiB`);
  console.log(`  restore ${r.ms.toFixed(0).padStart(6)} ms  ${gib(pagesBytes, r.ms).toFixed(2)} GiB/s   first touch ${touchMs.toFixed(0)} ms ${gib(pagesBytes, touchMs).toFixed(2)} GiB/s   ratio restore/touch ${(r.ms / touchMs).toFixed(2)}   peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
}
