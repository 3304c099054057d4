// The checksum manifest criu-ts writes next to the images (criu-ts-manifest.json). CRIU's
// images carry no checksum; the manifest adds one per file without touching any image, so
// CRIU still reads them. It also records how pages-N.img were encoded, if they were.
import fs from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { nodeCrypto, newWorker } from '../lazy.ts';
import { ImageError } from './image.ts';
import { readImageFile, writeImageFile } from './open.ts';
import { manifestMac } from './seal.ts';
import type { VerifyData } from './verify-worker.ts';
import {
  CHECKSUM_KINDS,
  DEFAULT_CHECKSUM,
  startChecksum,
  checksumFile,
  checkListedFile,
  type ChecksumKind,
  type ManifestFile,
} from './checksum.ts';

export type { ManifestFile };

export const MANIFEST = 'criu-ts-manifest.json';
/** A page server's manifest of the files it wrote (src/migrate/page-server.ts), next to the dump's. */
export const PAGE_SERVER_MANIFEST = 'criu-ts-manifest-page-server.json';
/**
 * A dump through a page server: the page ranges each pagemap it sent covers, kept with the
 * dump's own images, where a next incremental dump (--prev-images-dir) looks for them.
 */
export const PAGE_SERVER_RUNS = 'criu-ts-page-server-runs.json';

export interface PagesEncoding {
  compress?: 'zstd';
  encrypt?: 'aes-256-gcm';
  keyId?: string;
}
/**
 * `sealed`: every image but the page data is sealed (seal.ts); `mac` then authenticates the
 * manifest itself with the dump's key, and the digest is sha256.
 */
export interface Manifest {
  format: 'criu-ts-manifest';
  version: 1;
  digest: ChecksumKind;
  pages?: PagesEncoding;
  sealed?: boolean;
  files: Record<string, ManifestFile>;
  /**
   * Images written by a page server, not here: the page server's own manifest
   * (PAGE_SERVER_MANIFEST, next to this one once the images are put together) must list them.
   */
  pageServer?: { files: string[] };
  mac?: string;
}

/** Checksums of files as they are written: hand the tap to ImageWriter, call done() after close. */
export class ManifestBuilder {
  readonly digest: ChecksumKind;
  private readonly files: Record<string, ManifestFile> = {};
  pages?: PagesEncoding;
  pageServer?: { files: string[] };
  /** The key of an encrypted dump: images are sealed, the manifest authenticated. */
  private readonly key?: Buffer;

  constructor(key?: Buffer) {
    this.key = key;
    this.digest = key ? 'sha256' : DEFAULT_CHECKSUM;
  }

  tap(name: string): { tap: (d: Uint8Array) => void; done: () => void } {
    let size = 0;
    const sum = startChecksum(this.digest);
    return {
      tap: (d) => {
        sum.update(d);
        size += d.length;
      },
      done: () => this.record(name, size, sum.digest()),
    };
  }

  /** A file checksummed elsewhere (page data, by its PagesWriteStream). */
  record(name: string, size: number, digest: string): void {
    this.files[name] = { size, [this.digest]: digest };
  }

  /** A file written some other way: checksum it from disk. */
  addFromDisk(dir: string, name: string): void {
    const r = checksumFile(path.join(dir, name), this.digest);
    this.record(name, r.size, r.digest);
  }

  write(dir: string, name = MANIFEST): void {
    const m: Manifest = {
      format: 'criu-ts-manifest',
      version: 1,
      digest: this.digest,
      ...(this.pages ? { pages: this.pages } : {}),
      ...(this.key ? { sealed: true } : {}),
      files: this.files,
      ...(this.pageServer ? { pageServer: this.pageServer } : {}),
    };
    if (this.key) m.mac = manifestMac(this.key, m);
    writeImageFile(path.join(dir, name), JSON.stringify(m, null, 1) + '\n');
  }
}

export function readManifest(dir: string, name = MANIFEST): Manifest | undefined {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) return undefined;
  let m: Manifest;
  const text = readImageFile(file).toString('utf8');
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new ImageError(file, `unreadable manifest: ${(e as Error).message.split('\n')[0]}`);
  }
  if (m === null || m.format !== 'criu-ts-manifest' || m.version !== 1 || typeof m.files !== 'object' || m.files === null)
    throw new ImageError(file, 'not a criu-ts manifest of version 1');
  if (!CHECKSUM_KINDS.includes(m.digest))
    throw new ImageError(file, `unknown digest ${JSON.stringify(m.digest)} (criu-ts knows ${CHECKSUM_KINDS.join(', ')})`);
  return m;
}

/**
 * Refuse a manifest that the key did not authenticate: one without a MAC (a dump made without
 * --encrypt, or a manifest replaced by one), a wrong MAC, or one that does not seal its images.
 */
export function authenticateManifest(dir: string, m: Manifest, key: Buffer): void {
  const file = path.join(dir, MANIFEST);
  if (!m.mac)
    throw new ImageError(file, 'not authenticated (this dump was not encrypted, or its manifest was replaced); refused with --encrypt');
  const want = Buffer.from(manifestMac(key, m), 'hex');
  const got = Buffer.from(m.mac, 'hex');
  if (got.length !== want.length || !nodeCrypto().timingSafeEqual(got, want)) {
    throw new ImageError(file, 'does not authenticate with this key (altered, or another key); refused');
  }
  if (!m.sealed || m.digest !== 'sha256') throw new ImageError(file, 'authenticated but does not seal its images; refused');
}

/**
 * Check every file the manifest lists, streaming; throws ImageError naming the first bad one.
 * With `keep`, small files are read whole and their checked bytes handed to it.
 */
export function verifyManifest(
  dir: string,
  m: Manifest,
  only?: (name: string) => boolean,
  keep?: (name: string, bytes: Buffer) => void,
): void {
  const buf = Buffer.allocUnsafe(4 << 20);
  for (const [name, want] of Object.entries(m.files)) {
    if (only && !only(name)) continue;
    const problem = checkListedFile(dir, name, want, m.digest, buf, keep && ((bytes) => keep(name, bytes)));
    if (problem) throw new ImageError(path.join(dir, name), problem);
  }
}

export function keyId(key: Buffer): string {
  return nodeCrypto().createHash('sha256').update('criu-ts key id').update(key).digest('hex').slice(0, 16);
}

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
    const workerData: VerifyData = { dir, files, digest: m.digest, result: this.result };
    this.worker = newWorker(import.meta.url, 'verify-worker', { workerData });
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

  cancel(): void {
    void this.worker.terminate();
  }
}

/** If `file` sits in a dump with a checksum manifest that lists it, check it (crit does this). */
export function verifyListedFile(file: string): void {
  const dir = path.dirname(file);
  const m = readManifest(dir);
  const name = path.basename(file);
  if (m?.files[name]) verifyManifest(dir, m, (n) => n === name);
}
