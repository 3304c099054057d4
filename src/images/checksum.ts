// File checksums for the manifest. New dumps use CRC-32: it catches the damage a checksum
// is for (bit flips, torn and truncated writes) at ~5 GiB/s, where sha256 ran at 1.4 GiB/s
// and capped a large dump. A digest in a manifest next to the files cannot stop tampering
// anyway; encrypted page data is authenticated by AES-GCM. Manifests with sha256, which
// criu-ts wrote before, are still verified.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { nodeCrypto } from '../lazy.ts';
import { openImage } from './open.ts';

export type ChecksumKind = 'crc32' | 'sha256';
export const CHECKSUM_KINDS: readonly ChecksumKind[] = ['crc32', 'sha256'];
/** What new dumps write. */
export const DEFAULT_CHECKSUM: ChecksumKind = 'crc32';

export interface Checksum {
  update(data: Uint8Array): void;
  /** Lower-case hex. */
  digest(): string;
}

export function startChecksum(kind: ChecksumKind): Checksum {
  if (kind === 'sha256') {
    const h = nodeCrypto().createHash('sha256');
    return {
      update: (d) => {
        h.update(d);
      },
      digest: () => h.digest('hex'),
    };
  }
  let crc = 0;
  return {
    update: (d) => {
      crc = zlib.crc32(d, crc);
    },
    digest: () => crc.toString(16).padStart(8, '0'),
  };
}

/** size, and the digest under the name of the manifest's `digest` (crc32, or sha256 in older dumps). */
export type ManifestFile = { size: number } & Partial<Record<ChecksumKind, string>>;

/** Streams a file through a checksum; stops reading once past expectSize (it is wrong anyway). */
export function checksumFile(
  file: string,
  kind: ChecksumKind,
  expectSize?: number,
  buf: Buffer = Buffer.allocUnsafe(4 << 20),
): { size: number; digest: string } {
  const fd = openImage(file);
  try {
    const sum = startChecksum(kind);
    let size = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, size);
      if (n === 0) break;
      sum.update(buf.subarray(0, n));
      size += n;
      if (expectSize !== undefined && size > expectSize) break;
    }
    return { size, digest: sum.digest() };
  } finally {
    fs.closeSync(fd);
  }
}

/** Listed files up to this size are read whole when their bytes are wanted afterwards. */
const WHOLE_FILE_MAX = 1 << 20;

/**
 * The first problem with one listed file, or '' if it matches. With `keep`, a file of at most
 * WHOLE_FILE_MAX bytes is read whole and, when it matches, handed to keep.
 */
export function checkListedFile(
  dir: string,
  name: string,
  want: ManifestFile,
  kind: ChecksumKind,
  buf?: Buffer,
  keep?: (bytes: Buffer) => void,
): string {
  const file = path.join(dir, name);
  if (keep && want.size <= WHOLE_FILE_MAX) {
    let fd: number;
    try {
      fd = openImage(file);
    } catch (e) {
      return (e as Error).message.endsWith('missing (ENOENT)') ? MISSING : (e as Error).message.replace(/^[^:]*: /, '');
    }
    const bytes = Buffer.allocUnsafe(want.size);
    try {
      const size = fs.fstatSync(fd).size;
      if (size !== want.size) return sizeProblem(size, want.size);
      for (let got = 0, n = 1; got < size; got += n) {
        n = fs.readSync(fd, bytes, got, size - got, got);
        if (n === 0) return sizeProblem(got, want.size);
      }
    } finally {
      fs.closeSync(fd);
    }
    const sum = startChecksum(kind);
    sum.update(bytes);
    if (sum.digest() !== want[kind]) return CHECKSUM_PROBLEM;
    keep(bytes);
    return '';
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return MISSING;
  }
  if (st.size !== want.size) return sizeProblem(st.size, want.size);
  if (checksumFile(file, kind, want.size, buf).digest !== want[kind]) return CHECKSUM_PROBLEM;
  return '';
}

const MISSING = 'missing (listed in the checksum manifest)';
const CHECKSUM_PROBLEM = 'checksum mismatch: the file is damaged';
const sizeProblem = (have: number, want: number) =>
  `size ${have} differs from the ${want} bytes the checksum manifest records (the file is damaged)`;
