// Writing images: header for the kind, then size-prefixed entries encoded straight into one buffer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError, errnoText, kindOf } from './image-common.ts';
import { createImage } from './open.ts';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, imageFileName, imageKindForFile } from './magic.ts';
import type { ImageKind, ImageKindId } from './magic.ts';
import { ProtoError, ProtoWriter } from './proto.ts';
import type { ProtoRegistry } from './proto.ts';
import { registry as defaultRegistry } from './registry.ts';
import type { MessageInput, MessageName } from './types.ts';

export interface WriteOptions {
  /** Kind to write; default from the file name. */
  readonly kind?: ImageKind | ImageKindId;
  readonly registry?: ProtoRegistry;
  /** File mode for a new file (default 0o600 like CRIU). */
  readonly mode?: number;
  /** Sees every byte written, in order (e.g. to checksum the file while it is written). */
  readonly tap?: (data: Uint8Array) => void;
  /** Encrypt the whole content at close (seal.ts): nothing reaches the file before. */
  readonly seal?: (plain: Buffer) => Buffer;
}

const FLUSH_AT = 1 << 20;

export class ImageWriter {
  readonly path: string;
  readonly kind: ImageKind;
  private fd: number | undefined;
  // Grows as needed; most images are a few hundred bytes, and a dump writes hundreds of them.
  private readonly w = new ProtoWriter(4096);
  private written = 0;
  private readonly reg: ProtoRegistry;
  private readonly tap?: (data: Uint8Array) => void;
  private readonly seal?: (plain: Buffer) => Buffer;
  private readonly held: Buffer[] = [];

  constructor(file: string, opts: WriteOptions = {}) {
    this.path = file;
    this.reg = opts.registry ?? defaultRegistry;
    this.tap = opts.tap;
    this.seal = opts.seal;
    const kind = kindOf(opts.kind) ?? imageKindForFile(path.basename(file));
    if (!kind) throw new ImageError(file, 'unknown image name and no kind given');
    this.kind = kind;
    this.fd = createImage(file);
    if (kind.head === 'inventory') this.w.u32le(kind.magic);
    else if (kind.head !== 'raw') {
      this.w.u32le(kind.head === 'service' ? IMG_SERVICE_MAGIC : IMG_COMMON_MAGIC);
      this.w.u32le(kind.magic);
    }
  }

  /** Opens dir/<name of kind id with args>, e.g. ImageWriter.create(dir, 'CORE', tid). */
  static create(dir: string, id: ImageKindId, ...args: (number | bigint | string)[]): ImageWriter {
    return new ImageWriter(path.join(dir, imageFileName(id, ...args)), { kind: id });
  }

  /** Bytes written so far, header included. */
  get offset(): number {
    return this.written + this.w.pos;
  }

  private fail(problem: string): never {
    throw new ImageError(this.path, problem);
  }

  write<N extends MessageName>(name: N, obj: MessageInput<N>): void {
    if (this.fd === undefined) this.fail('write after close');
    if (!this.kind.entries.includes(name)) {
      const what = this.kind.entries.length ? this.kind.entries.join(' / ') : 'only raw data';
      this.fail(`${this.kind.id.toLowerCase()} images hold ${what}, not ${name}`);
    }
    const w = this.w;
    const start = w.pos;
    w.u32le(0);
    try {
      this.reg.encodeTo(name, obj, w);
    } catch (e) {
      w.pos = start;
      if (e instanceof ProtoError) this.fail(e.message);
      throw e;
    }
    w.buf.writeUInt32LE(w.pos - start - 4, start);
    if (w.pos >= FLUSH_AT) this.flush();
  }

  /** Appends raw bytes (an extra payload, or page data for raw images). */
  writeRaw(data: Uint8Array): void {
    if (this.fd === undefined) this.fail('write after close');
    if (data.length >= FLUSH_AT / 4) {
      this.flush();
      this.writeOut(data);
    } else {
      this.w.raw(data);
      if (this.w.pos >= FLUSH_AT) this.flush();
    }
  }

  private writeOut(data: Uint8Array): void {
    if (this.seal) {
      this.held.push(Buffer.from(data));
      this.written += data.length;
      return;
    }
    this.writeFile(data, this.written);
    this.written += data.length;
  }

  private writeFile(data: Uint8Array, at: number): void {
    let off = 0;
    try {
      while (off < data.length) off += fs.writeSync(this.fd!, data, off, data.length - off);
    } catch (e) {
      this.fail(`write error at offset ${at + off}: ${errnoText(e)}`);
    }
    this.tap?.(data);
  }

  flush(): void {
    if (this.fd === undefined || this.w.pos === 0) return;
    this.writeOut(this.w.buf.subarray(0, this.w.pos));
    this.w.pos = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      this.flush();
      if (this.seal) this.writeFile(this.seal(Buffer.concat(this.held)), 0);
    } finally {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/** Writes a whole image of `name` entries in one go. */
export function writeImage<N extends MessageName>(
  file: string,
  name: N,
  entries: readonly MessageInput<N>[],
  opts: WriteOptions = {},
): void {
  const w = new ImageWriter(file, opts);
  try {
    for (const e of entries) w.write(name, e);
  } finally {
    w.close();
  }
}

/** An image directory: file names from kind ids. */
