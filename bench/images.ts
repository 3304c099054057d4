// Image throughput: encode and decode of page data (synthetic pagemap + pages, 1 GiB by
// default), of protobuf images (core entries, pagemap entries) and of crit's JSON, each next to
// `cp` of the same bytes in the same run, on the same file system: cp to a new file for the
// write side, cp to /dev/null for the read side. Files are hot in the page cache, as after a dump.
//
//   node bench/images.ts [--pages-mib 1024] [--dir DIR]
import { ManifestBuilder, readManifest, verifyManifest } from '../src/images/index.ts';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dumpImage, loadImage, parseJson, toJson } from '../src/crit/index.ts';
import { ImageReader, ImageWriter, PE_LAZY, PE_PRESENT, PagemapReader, PagemapWriter, readOne } from '../src/images/index.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const PAGES_MIB = Number(arg('--pages-mib', '1024'));
const base = fs.mkdtempSync(path.join(arg('--dir', os.tmpdir()), 'criu-ts-bench-images-'));
const PAGE = 4096;
const MB = 1e6;

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

/** cp of the file to a new file (the write side), or to /dev/null (the read side). */
function cp(file: string, dst = `${file}.cp`): number {
  const s = time(() => {
    const r = spawnSync('cp', [file, dst]);
    if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
  });
  if (dst !== '/dev/null') fs.rmSync(dst);
  return s;
}

const rows: [string, string, string][] = [];
function report(what: string, bytes: number, secs: number, extra = ''): void {
  rows.push([
    what,
    `${(bytes / MB / secs).toFixed(0).padStart(6)} MB/s`,
    `${(bytes / MB).toFixed(1)} MB in ${(secs * 1000).toFixed(0)} ms${extra}`,
  ]);
}

// 1. Page data: runs of 1..512 pages with holes, like a real address space.
function pagesBench(): void {
  const dir = path.join(base, 'pages');
  fs.mkdirSync(dir);
  const total = (PAGES_MIB * 1024 * 1024) / PAGE;
  const src = Buffer.alloc(512 * PAGE);
  for (let i = 0; i < src.length; i += 8) src.writeUInt32LE((i * 2654435761) >>> 0, i);
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const runs: [bigint, number][] = [];
  let vaddr = 0x7f0000000000n;
  for (let done = 0; done < total; ) {
    const n = Math.min(total - done, 1 + Math.floor(rnd() * 512));
    runs.push([vaddr, n]);
    vaddr += BigInt((n + 1 + Math.floor(rnd() * 16)) * PAGE);
    done += n;
  }
  const bytes = total * PAGE;
  const enc = time(() => {
    const w = new PagemapWriter(dir, 1, 1);
    for (const [va, n] of runs) w.addPages(va, src.subarray(0, n * PAGE), PE_PRESENT | PE_LAZY);
    w.close();
  });
  report(`pages: encode (PagemapWriter, ${runs.length} runs)`, bytes, enc);
  const into = Buffer.alloc(512 * PAGE);
  let sum = 0;
  const dec = time(() => {
    const r = new PagemapReader(dir, 1);
    for (let i = 0; i < r.length; i++) sum += r.readPages(i, 0, r.nrPages(i), into)[0];
    r.close();
  });
  if (sum < 0) throw new Error('unreachable');
  report('pages: decode (PagemapReader + readPages)', bytes, dec);
  // Checksums: the manifest of the same files, written then verified (restore's check).
  const mb = new ManifestBuilder();
  for (const f of fs.readdirSync(dir)) mb.addFromDisk(dir, f);
  mb.write(dir);
  const m = readManifest(dir)!;
  report(
    'pages: verify checksum manifest (sha256, streaming)',
    bytes,
    time(() => verifyManifest(dir, m)),
  );
  report('pages: cp pages-1.img to a file', bytes, cp(path.join(dir, 'pages-1.img')));
  report('pages: cp pages-1.img to /dev/null', bytes, cp(path.join(dir, 'pages-1.img'), '/dev/null'));
  fs.rmSync(dir, { recursive: true });
}

// 2. Protobuf images: many core entries (registers, sigactions, rlimits...) and many pagemap entries.
function protoBench(): void {
  const dir = path.join(base, 'proto');
  fs.mkdirSync(dir);
  const fixtures = path.join(import.meta.dirname, '..', 'test', 'fixtures', 'dump');
  const coreName = fs.readdirSync(fixtures).find((f) => /^core-\d+\.img$/.test(f))!;
  const core = readOne(path.join(fixtures, coreName), 'core_entry')!;
  const coreFile = path.join(dir, 'core-1.img');
  const N = 20_000;
  const encCore = time(() => {
    const w = new ImageWriter(coreFile);
    for (let i = 0; i < N; i++) w.write('core_entry', core as never);
    w.close();
  });
  const coreBytes = fs.statSync(coreFile).size;
  report(`core_entry x${N}: encode (ImageWriter)`, coreBytes, encCore);
  report(
    `core_entry x${N}: decode (ImageReader)`,
    coreBytes,
    time(() => {
      for (const _ of new ImageReader(coreFile)) void _;
    }),
  );
  report(`core_entry x${N}: cp to a file`, coreBytes, cp(coreFile));
  report(`core_entry x${N}: cp to /dev/null`, coreBytes, cp(coreFile, '/dev/null'));

  const pmFile = path.join(dir, 'pagemap-1.img');
  const M = 1_000_000;
  const encPm = time(() => {
    const w = new ImageWriter(pmFile);
    w.write('pagemap_head', { pages_id: 1 });
    for (let i = 0; i < M; i++)
      w.write('pagemap_entry', { vaddr: 0x7f0000000000n + BigInt(i) * 0x3000n, compat_nr_pages: 0, flags: 6, nr_pages: 1 + (i & 7) });
    w.close();
  });
  const pmBytes = fs.statSync(pmFile).size;
  report(`pagemap_entry x${M}: encode (ImageWriter)`, pmBytes, encPm);
  report(
    `pagemap_entry x${M}: decode (ImageReader)`,
    pmBytes,
    time(() => {
      for (const _ of new ImageReader(pmFile)) void _;
    }),
  );
  report(
    `pagemap_entry x${M}: decode (PagemapReader)`,
    pmBytes,
    time(() => new PagemapReader(dir, 1).close()),
  );
  report(`pagemap_entry x${M}: cp to a file`, pmBytes, cp(pmFile));
  report(`pagemap_entry x${M}: cp to /dev/null`, pmBytes, cp(pmFile, '/dev/null'));

  // 3. crit: image <-> JSON text, per image byte; smaller images, as JSON is ~10x their size
  const critCore = path.join(dir, 'core-2.img');
  const critPm = path.join(dir, 'pagemap-2.img');
  fs.writeFileSync(critCore, fs.readFileSync(coreFile).subarray(0, 8 + (coreBytes - 8) / 20));
  const pmr = new ImageReader(pmFile);
  const pmw = new ImageWriter(critPm);
  let k = 0;
  for (const e of pmr) {
    pmw.write(e.type, e.msg as never);
    if (++k > 100_000) break;
  }
  pmr.close();
  pmw.close();
  for (const [name, file] of [
    [`core_entry x${N / 20}`, critCore],
    ['pagemap_entry x100000', critPm],
  ] as const) {
    const bytes = fs.statSync(file).size;
    for (const pretty of [false, true]) {
      let text = '';
      const dec = time(() => {
        text = toJson(loadImage(file, { pretty }), pretty);
      });
      report(`crit decode${pretty ? ' --pretty' : ''}: ${name}`, bytes, dec, `, ${(text.length / MB).toFixed(0)} MB of JSON`);
      let img: Buffer = Buffer.alloc(0);
      const enc = time(() => {
        img = dumpImage(parseJson(text));
      });
      if (img.length !== bytes) throw new Error(`crit round trip of ${name} changed the size`);
      report(`crit encode${pretty ? ' (pretty JSON)' : ''}: ${name}`, bytes, enc);
    }
  }
  fs.rmSync(dir, { recursive: true });
}

try {
  console.log(`images bench in ${base} (${os.cpus().length} CPUs, node ${process.version})`);
  pagesBench();
  protoBench();
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [what, rate, detail] of rows) console.log(`${what.padEnd(w)}  ${rate}  ${detail}`);
} finally {
  fs.rmSync(base, { recursive: true, force: true });
}
