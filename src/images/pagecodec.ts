// Compressed and/or encrypted page data (criu-ts extension, only on request). pages-N.img
// then holds a header and a sequence of chunks instead of raw pages:
//   header: "CRTSPAGE" | u32 version | u32 flags (1 zstd, 2 aes-256-gcm) | u32 chunk size | 8-byte nonce base
//   chunk:  u32 plain length | u32 stored length | stored bytes (+16-byte GCM tag when encrypted)
// Each chunk is sealed with its own nonce (base + index) and authenticates its index and
// length, so chunks cannot be reordered, dropped or cut without the key noticing.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { nodeCrypto } from '../lazy.ts';
import { ImageError } from './image.ts';
import { openImage } from './open.ts';
import type { PagesTransform } from './pages.ts';

export const PAGES_MAGIC = Buffer.from('CRTSPAGE');
const HEADER = 8 + 4 + 4 + 4 + 8;
const FLAG_ZSTD = 1,
  FLAG_AES = 2;
const CHUNK = 1 << 20;
const TAG = 16;

export interface PagesCodecOptions {
  compress?: 'zstd';
  key?: Buffer;
}

function nonce(base: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  base.copy(n, 0);
  n.writeUInt32BE(index, 8);
  return n;
}

function aad(index: number, plainLen: number): Buffer {
  const a = Buffer.alloc(8);
  a.writeUInt32LE(index, 0);
  a.writeUInt32LE(plainLen, 4);
  return a;
}

/** Reads a key file: 32 raw bytes, or 64 hex digits. */
export function readKeyFile(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new ImageError(file, `cannot read key: ${(e as Error).message}`);
  }
  const hex = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return Buffer.from(hex, 'hex');
  if (raw.length === 32) return raw;
  throw new ImageError(file, 'a key file holds 32 bytes, raw or as 64 hex digits');
}

/** The transform for PagemapWriter: buffers 1 MiB chunks, compresses and seals each. */
export class PagesEncoder implements PagesTransform {
  private readonly opts: PagesCodecOptions;
  private readonly base = nodeCrypto().randomBytes(8);
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private index = 0;
  plainBytes = 0;
  storedBytes = 0;

  constructor(opts: PagesCodecOptions) {
    if (opts.key && opts.key.length !== 32) throw new Error('AES-256-GCM needs a 32-byte key');
    this.opts = opts;
  }

  header(): Uint8Array {
    const h = Buffer.alloc(HEADER);
    PAGES_MAGIC.copy(h, 0);
    h.writeUInt32LE(1, 8);
    h.writeUInt32LE((this.opts.compress ? FLAG_ZSTD : 0) | (this.opts.key ? FLAG_AES : 0), 12);
    h.writeUInt32LE(CHUNK, 16);
    this.base.copy(h, 20);
    return h;
  }

  push(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let off = 0;
    while (off < data.length) {
      const n = Math.min(CHUNK - this.used, data.length - off);
      this.buf.set(data.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
      if (this.used === CHUNK) out.push(...this.seal());
    }
    return out;
  }

  end(): Uint8Array[] {
    return this.used ? this.seal() : [];
  }

  private seal(): Uint8Array[] {
    const plain = this.buf.subarray(0, this.used);
    let body: Buffer = this.opts.compress
      ? zlib.zstdCompressSync(plain, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } })
      : Buffer.from(plain);
    if (this.opts.key) {
      const c = nodeCrypto().createCipheriv('aes-256-gcm', this.opts.key, nonce(this.base, this.index));
      c.setAAD(aad(this.index, plain.length));
      body = Buffer.concat([c.update(body), c.final(), c.getAuthTag()]);
    }
    const head = Buffer.alloc(8);
    head.writeUInt32LE(plain.length, 0);
    head.writeUInt32LE(body.length, 4);
    this.plainBytes += plain.length;
    this.storedBytes += body.length + 8;
    this.index++;
    this.used = 0;
    return [head, body];
  }
}

export interface PagesInfo {
  encoded: boolean;
  compressed: boolean;
  encrypted: boolean;
}

export function pagesInfo(file: string): PagesInfo {
  const fd = openImage(file);
  try {
    const h = Buffer.alloc(HEADER);
    const n = fs.readSync(fd, h, 0, HEADER, 0);
    if (n < HEADER || !h.subarray(0, 8).equals(PAGES_MAGIC)) return { encoded: false, compressed: false, encrypted: false };
    const flags = h.readUInt32LE(12);
    return { encoded: true, compressed: !!(flags & FLAG_ZSTD), encrypted: !!(flags & FLAG_AES) };
  } finally {
    fs.closeSync(fd);
  }
}

/** Sequential reader of page data, raw or encoded: read(n) returns the next n plain bytes. */
export class PagesStream {
  readonly file: string;
  private fd: number;
  private pos = 0;
  private readonly encoded: boolean;
  private key?: Buffer;
  private base = Buffer.alloc(8);
  private flags = 0;
  private index = 0;
  private pending: Buffer = Buffer.alloc(0);
  private pendingOff = 0;

  constructor(file: string, key?: Buffer) {
    this.file = file;
    this.fd = openImage(file);
    const info = pagesInfo(file);
    this.encoded = info.encoded;
    if (info.encoded) {
      const h = this.readExact(HEADER);
      if (h.readUInt32LE(8) !== 1) this.fail(`unsupported page encoding version ${h.readUInt32LE(8)}`);
      this.flags = h.readUInt32LE(12);
      h.copy(this.base, 0, 20, 28);
      if (this.flags & FLAG_AES) {
        if (!key) this.fail('the pages are encrypted; restore with --encrypt KEYFILE holding their key');
        this.key = key;
      }
    }
  }

  private fail(problem: string): never {
    throw new ImageError(this.file, problem);
  }

  private readExact(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(this.fd, b, got, n - got, this.pos + got);
      if (r === 0) this.fail(`truncated at offset ${this.pos + got} (need ${n - got} more bytes)`);
      got += r;
    }
    this.pos += n;
    return b;
  }

  private nextChunk(): void {
    const head = this.readExact(8);
    const plainLen = head.readUInt32LE(0),
      storedLen = head.readUInt32LE(4);
    if (plainLen > CHUNK * 4 || storedLen > CHUNK * 8) this.fail(`bad chunk ${this.index} header`);
    let body = this.readExact(storedLen);
    if (this.key) {
      if (storedLen < TAG) this.fail(`chunk ${this.index} too short`);
      const d = nodeCrypto().createDecipheriv('aes-256-gcm', this.key, nonce(this.base, this.index));
      d.setAAD(aad(this.index, plainLen));
      d.setAuthTag(body.subarray(storedLen - TAG));
      try {
        body = Buffer.concat([d.update(body.subarray(0, storedLen - TAG)), d.final()]);
      } catch {
        this.fail(`chunk ${this.index} fails authentication (wrong key, or the file is damaged)`);
      }
    }
    if (this.flags & FLAG_ZSTD) {
      try {
        body = zlib.zstdDecompressSync(body);
      } catch {
        this.fail(`chunk ${this.index} does not decompress`);
      }
    }
    if (body.length !== plainLen) this.fail(`chunk ${this.index} holds ${body.length} bytes, expected ${plainLen}`);
    this.pending = body;
    this.pendingOff = 0;
    this.index++;
  }

  /** Plain bytes consumed so far. */
  private plainPos = 0;

  /** Fill `into` with the next plain bytes. */
  readInto(into: Buffer): void {
    this.plainPos += into.length;
    if (!this.encoded) {
      let got = 0;
      while (got < into.length) {
        const r = fs.readSync(this.fd, into, got, into.length - got, this.pos + got);
        if (r === 0) this.fail(`truncated page data at offset ${this.pos + got}`);
        got += r;
      }
      this.pos += into.length;
      return;
    }
    let got = 0;
    while (got < into.length) {
      if (this.pendingOff === this.pending.length) this.nextChunk();
      const n = Math.min(into.length - got, this.pending.length - this.pendingOff);
      this.pending.copy(into, got, this.pendingOff, this.pendingOff + n);
      this.pendingOff += n;
      got += n;
    }
  }

  /** Move to plain offset `off` (forward only for encoded data). */
  skipTo(off: number, scratch: Buffer): void {
    if (!this.encoded) {
      this.pos = off;
      this.plainPos = off;
      return;
    }
    if (off < this.plainPos) this.fail('page data read out of order');
    while (this.plainPos < off) this.readInto(scratch.subarray(0, Math.min(scratch.length, off - this.plainPos)));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
  get isEncoded(): boolean {
    return this.encoded;
  }
  get name(): string {
    return path.basename(this.file);
  }
}
