// The checksum manifest criu-ts writes next to the images (criu-ts-manifest.json). CRIU's
// images carry no checksum; the manifest adds one per file without touching any image, so
// CRIU still reads them. It also records how pages-N.img were encoded, if they were.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { ImageError } from './image.ts';

export const MANIFEST = 'criu-ts-manifest.json';
const DIGEST = 'sha256';

export interface ManifestFile { size: number; sha256: string }
export interface PagesEncoding { compress?: 'zstd'; encrypt?: 'aes-256-gcm'; keyId?: string }
export interface Manifest { format: 'criu-ts-manifest'; version: 1; digest: typeof DIGEST; pages?: PagesEncoding; files: Record<string, ManifestFile> }

/** Checksums of files as they are written: hand the tap to ImageWriter, call done() after close. */
export class ManifestBuilder {
  private readonly files: Record<string, ManifestFile> = {};
  pages?: PagesEncoding;

  tap(name: string): { tap: (d: Uint8Array) => void; done: () => void } {
    const h = crypto.createHash(DIGEST);
    let size = 0;
    return {
      tap: (d) => { h.update(d); size += d.length; },
      done: () => { this.files[name] = { size, sha256: h.digest('hex') }; },
    };
  }

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
export function verifyManifest(dir: string, m: Manifest): void {
  for (const [name, want] of Object.entries(m.files)) {
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
