// The checksum manifest criu-ts writes next to the images (criu-ts-manifest.json). CRIU's
// images carry no checksum; the manifest adds one per file without touching any image, so
// CRIU still reads them. It also records how pages-N.img were encoded, if they were.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ImageError } from './image.ts';
import { ParallelHash } from './hashworker.ts';

export const MANIFEST = 'criu-ts-manifest.json';
const DIGEST = 'sha256';

export interface ManifestFile { size: number; sha256: string }
export interface PagesEncoding { compress?: 'zstd'; encrypt?: 'aes-256-gcm'; keyId?: string }
export interface Manifest { format: 'criu-ts-manifest'; version: 1; digest: typeof DIGEST; pages?: PagesEncoding; files: Record<string, ManifestFile> }

/** Checksums of files as they are written: hand the tap to ImageWriter, call done() after close. */
export class ManifestBuilder {
  private readonly files: Record<string, ManifestFile> = {};
  private parallel?: ParallelHash;
  pages?: PagesEncoding;

  /** Hash big files on another thread from now on (worth it for page data of many MiB). */
  useWorker(): void { this.parallel ??= new ParallelHash(); }

  tap(name: string, big = false): { tap: (d: Uint8Array) => void; done: () => void } {
    let size = 0;
    if (big && this.parallel) {
      const h = this.parallel.open();
      return {
        tap: (d) => { h.update(d); size += d.length; },
        done: () => { this.files[name] = { size, sha256: h.digest() }; },
      };
    }
    const h = crypto.createHash(DIGEST);
    return {
      tap: (d) => { h.update(d); size += d.length; },
      done: () => { this.files[name] = { size, sha256: h.digest('hex') }; },
    };
  }

  close(): void { this.parallel?.close(); }

  /** A file written some other way: hash it from disk. */
  addFromDisk(dir: string, name: string): void { this.files[name] = hashFile(path.join(dir, name)); }

  write(dir: string): void {
    const m: Manifest = { format: 'criu-ts-manifest', version: 1, digest: DIGEST, ...(this.pages ? { pages: this.pages } : {}), files: this.files };
    const tmp = path.join(dir, `.${MANIFEST}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(m, null, 1) + '\n');
    fs.renameSync(tmp, path.join(dir, MANIFEST));
  }
}

function hashFile(file: string, expectSize?: number): ManifestFile {
  const fd = fs.openSync(file, 'r');
  try {
    const h = crypto.createHash(DIGEST);
    const buf = Buffer.allocUnsafe(4 << 20);
    let size = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, size);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
      if (expectSize !== undefined && size > expectSize) break;
    }
    return { size, sha256: h.digest('hex') };
  } finally { fs.closeSync(fd); }
}

export function readManifest(dir: string): Manifest | undefined {
  const file = path.join(dir, MANIFEST);
  if (!fs.existsSync(file)) return undefined;
  let m: Manifest;
  try { m = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest; } catch (e) {
    throw new ImageError(file, `unreadable manifest: ${(e as Error).message.split('\n')[0]}`);
  }
  if (m.format !== 'criu-ts-manifest' || m.version !== 1 || typeof m.files !== 'object') throw new ImageError(file, 'not a criu-ts manifest of version 1');
  return m;
}

/** Check every file the manifest lists, streaming; throws ImageError naming the first bad one. */
export function verifyManifest(dir: string, m: Manifest, only?: (name: string) => boolean): void {
  for (const [name, want] of Object.entries(m.files)) {
    if (only && !only(name)) continue;
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new ImageError(file, 'missing (listed in the checksum manifest)');
    const st = fs.statSync(file);
    if (st.size !== want.size) throw new ImageError(file, `size ${st.size} differs from the ${want.size} bytes the checksum manifest records (the file is damaged)`);
    const got = hashFile(file, want.size);
    if (got.sha256 !== want.sha256) throw new ImageError(file, 'checksum mismatch: the file is damaged');
  }
}

export function keyId(key: Buffer): string {
  return crypto.createHash('sha256').update('criu-ts key id').update(key).digest('hex').slice(0, 16);
}

const VERIFY_WORKER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs'), path = require('node:path'), crypto = require('node:crypto');
const { dir, files, result } = workerData;
const flag = new Int32Array(result, 0, 1);
let err = '';
try {
  const buf = Buffer.allocUnsafe(4 << 20);
  for (const [name, want] of files) {
    const file = path.join(dir, name);
    let fd;
    try { fd = fs.openSync(file, 'r'); } catch { err = name + ': missing (listed in the checksum manifest)'; break; }
    const h = crypto.createHash('sha256');
    let size = 0;
    for (;;) { const n = fs.readSync(fd, buf, 0, buf.length, size); if (n === 0) break; h.update(buf.subarray(0, n)); size += n; }
    fs.closeSync(fd);
    if (size !== want.size) { err = name + ': size ' + size + ' differs from the ' + want.size + ' bytes the checksum manifest records (the file is damaged)'; break; }
    if (h.digest('hex') !== want.sha256) { err = name + ': checksum mismatch: the file is damaged'; break; }
  }
} catch (e) { err = 'checksum verification failed: ' + String(e && e.message || e).split('\\n')[0]; }
Buffer.from(result, 8).write(err.slice(0, 4000), 'utf8');
Atomics.store(flag, 0, err ? 2 : 1);
Atomics.notify(flag, 0);
`;

/**
 * Verify the listed files on another thread while the restore goes on; join() waits for
 * the verdict and throws ImageError for the first damaged file. Page data is most of a
 * dump's bytes, and checking it in parallel keeps the restore at disk speed.
 */
export class BackgroundVerify {
  private readonly result = new SharedArrayBuffer(8 + 4096);
  private readonly worker: Worker;
  private readonly dir: string;

  constructor(dir: string, m: Manifest, only: (name: string) => boolean) {
    this.dir = dir;
    const files = Object.entries(m.files).filter(([n]) => only(n));
    this.worker = new Worker(VERIFY_WORKER, { eval: true, workerData: { dir, files, result: this.result } });
    this.worker.unref();
  }

  join(): void {
    const flag = new Int32Array(this.result, 0, 1);
    while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0, 1000);
    if (Atomics.load(flag, 0) === 2) {
      const text = Buffer.from(this.result, 8).toString('utf8').replace(/\0+$/, '');
      const i = text.indexOf(': ');
      throw new ImageError(path.join(this.dir, text.slice(0, i)), text.slice(i + 2));
    }
  }

  cancel(): void { void this.worker.terminate(); }
}

/** If `file` sits in a dump with a checksum manifest that lists it, check it (crit does this). */
export function verifyListedFile(file: string): void {
  const dir = path.dirname(file);
  const m = readManifest(dir);
  const name = path.basename(file);
  if (m?.files[name]) verifyManifest(dir, m, (n) => n === name);
}
