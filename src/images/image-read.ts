// Reading images: header check, u32-size-prefixed entries, and the raw payloads that follow some
// entries. Sync fs calls: images are read in bulk by one thread.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError, errnoText, hex, kindOf } from './image-common.ts';
import { openImage, openImageRead } from './open.ts';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, MAGIC, imageKind, imageKindForFile, imageKindsForMagic } from './magic.ts';
import type { ImageKind, ImageKindId } from './magic.ts';
import { ProtoError } from './proto.ts';
import type { ProtoObject, ProtoRegistry } from './proto.ts';
import { registry as defaultRegistry } from './registry.ts';
import type { Message, MessageName } from './types.ts';

export interface ImageEntry {
  /** Message type of this entry. */
  readonly type: MessageName;
  readonly msg: ProtoObject;
  /** File offset of the entry's size word. */
  readonly offset: number;
  /**
   * Raw payload after the entry: pipe/fifo data, a socket packet, ghost file contents or chunk,
   * ipc shm contents or semaphore values (u16, padding dropped), bpf map keys+values.
   * Undefined when loadExtra is false; extraOffset/extraLength still say where it is.
   */
  readonly extra?: Buffer;
  readonly extraOffset?: number;
  readonly extraLength?: number;
  /** tcp-stream: receive and send queues. */
  readonly inq?: Buffer;
  readonly outq?: Buffer;
  /** ipcns-msg: the queued messages of this queue. */
  readonly ipcMsgs?: readonly { readonly msg: Message<'ipc_msg'>; readonly data: Buffer }[];
}

export interface ReadOptions {
  /** Kind to expect; default from the file name, else detected from the header. */
  readonly kind?: ImageKind | ImageKindId;
  /** Missing file is an error instead of an empty image. */
  readonly required?: boolean;
  /** Load extra payloads into memory (default true); false only records their offsets. */
  readonly loadExtra?: boolean;
  readonly registry?: ProtoRegistry;
}

const WINDOW = 1 << 20;

/**
 * Whole image files that were read already, to check them against the checksum manifest:
 * the next reader of such a file takes its bytes instead of reading it again. A restore of
 * a 100-task tree reads ~600 small images, and each read is an open, fstat, read and close.
 */
const preloaded = new Map<string, Buffer>();
/**
 * Directories of encrypted dumps: their images are read only as the restore decrypted and
 * preloaded them (kept for every read), never from disk, where a file that was not in the
 * authenticated manifest could have been put.
 */
const sealedDirs = new Set<string>();
export function preloadImage(file: string, bytes: Buffer): void {
  preloaded.set(file, bytes);
}
export function sealDir(dir: string): void {
  sealedDirs.add(dir);
}
/** Forget what was preloaded from `dir` and not read since. */
export function dropPreloaded(dir: string): void {
  for (const f of preloaded.keys()) if (path.dirname(f) === dir) preloaded.delete(f);
  sealedDirs.delete(dir);
}

export class ImageReader implements Iterable<ImageEntry> {
  readonly path: string;
  readonly kind: ImageKind;
  /** Missing or zero-length file: no entries (CRIU's "empty image"). */
  readonly empty: boolean;
  /** 2 = with IMG_COMMON/IMG_SERVICE head magic, 1 = old images without it. */
  readonly version: 1 | 2;
  readonly size: number;
  private fd: number | undefined;
  private pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  private bufLen = 0;
  private index = 0;
  private done = false;
  private ghostChunks = false;
  private readonly loadExtra: boolean;
  private readonly reg: ProtoRegistry;

  constructor(file: string, opts: ReadOptions = {}) {
    this.path = file;
    this.loadExtra = opts.loadExtra ?? true;
    this.reg = opts.registry ?? defaultRegistry;
    let kind = kindOf(opts.kind) ?? imageKindForFile(path.basename(file));
    const pre = preloaded.get(file);
    const sealed = sealedDirs.has(path.dirname(file));
    let fd: number | undefined;
    if (pre) {
      if (!sealed) preloaded.delete(file);
    } else if (sealed) {
      if (fs.existsSync(file)) this.fail("not in the encrypted dump's authenticated manifest; refused");
      if (opts.required) this.fail('missing');
    } else fd = openImageRead(file, !opts.required);
    if (!pre && fd === undefined) {
      if (!kind) this.fail('unknown image name and no kind given');
      this.kind = kind;
      this.empty = true;
      this.version = 2;
      this.size = 0;
      this.done = true;
      return;
    }
    this.fd = fd;
    try {
      this.size = pre ? pre.length : fs.fstatSync(fd!).size;
      if (pre) {
        this.buf = pre;
        this.bufLen = pre.length;
      }
      if (this.size === 0) {
        if (!kind) this.fail('unknown image name and no kind given');
        this.kind = kind;
        this.empty = true;
        this.version = 2;
        this.done = true;
        this.close();
        return;
      }
      this.empty = false;
      const head = this.peekHeader();
      if (!kind) kind = this.detectKind(head);
      // pages-N.img is raw now but held a pagemap in old images
      if (kind.id === 'PAGES' && head[0] === IMG_COMMON_MAGIC && head[1] === MAGIC.PAGES_OLD) kind = imageKind('PAGES_OLD');
      this.kind = kind;
      this.version = this.checkHeader(head);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private fail(problem: string): never {
    throw new ImageError(this.path, problem);
  }

  private peekHeader(): [number | undefined, number | undefined] {
    const n = Math.min(8, this.size);
    const i = this.window(n);
    return [n >= 4 ? this.buf.readUInt32LE(i) : undefined, n >= 8 ? this.buf.readUInt32LE(i + 4) : undefined];
  }

  private detectKind([w0, w1]: [number | undefined, number | undefined]): ImageKind {
    if (w0 === MAGIC.INVENTORY) return imageKind('INVENTORY');
    const head = w0 === IMG_COMMON_MAGIC ? 'common' : w0 === IMG_SERVICE_MAGIC ? 'service' : undefined;
    const k = head && w1 !== undefined ? imageKindsForMagic(w1, head)[0] : undefined;
    if (!k) this.fail(`unknown image name and unknown magic ${w0 === undefined ? '(none)' : hex(w0)}`);
    return k;
  }

  private checkHeader([w0, w1]: [number | undefined, number | undefined]): 1 | 2 {
    const k = this.kind;
    const want = k.id.toLowerCase();
    const have = this.size;
    if (k.head === 'raw') this.fail(`raw ${want} image has no entries to read`);
    if (w0 === undefined) this.fail(`truncated header (need ${k.head === 'inventory' ? 4 : 8} bytes, have ${have})`);
    if (k.head === 'inventory') {
      if (w0 !== k.magic) this.badMagic(w0, k);
      this.pos = 4;
      return 2;
    }
    const headMagic = k.head === 'service' ? IMG_SERVICE_MAGIC : IMG_COMMON_MAGIC;
    if (w0 === headMagic) {
      if (w1 === undefined) this.fail(`truncated header (need 8 bytes, have ${have})`);
      if (w1 !== k.magic) this.badMagic(w1, k);
      this.pos = 8;
      return 2;
    }
    if (w0 === k.magic) {
      this.pos = 4;
      return 1;
    }
    if (w0 === IMG_COMMON_MAGIC || w0 === IMG_SERVICE_MAGIC) {
      this.fail(`bad head magic ${hex(w0)} (expected ${k.head === 'service' ? 'IMG_SERVICE' : 'IMG_COMMON'} ${hex(headMagic)})`);
    }
    this.badMagic(w0, k);
  }

  private badMagic(got: number, k: ImageKind): never {
    // "CRTS" of "CRTSSEAL": an image of an encrypted dump (seal.ts).
    if (got === 0x53545243) this.fail('sealed: the dump was made with --encrypt, and only a restore given its key reads it');
    const other =
      got === MAGIC.INVENTORY ? imageKind('INVENTORY') : (imageKindsForMagic(got, 'common')[0] ?? imageKindsForMagic(got, 'service')[0]);
    const hint = other ? `, a ${other.id.toLowerCase()} image` : '';
    this.fail(`bad magic ${hex(got)}${hint} (expected ${k.id.toLowerCase()} ${hex(k.magic)})`);
  }

  /** Makes [pos, pos+n) readable in this.buf and returns its index there. Caller checks n fits the file. */
  private window(n: number): number {
    const pos = this.pos;
    if (pos >= this.bufStart && pos + n <= this.bufStart + this.bufLen) return pos - this.bufStart;
    // small images (most of them) get a buffer of their own size, big ones a 1 MiB window
    if (this.buf.length < n || this.buf.length === 0) this.buf = Buffer.allocUnsafe(Math.max(n, Math.min(WINDOW, this.size)));
    const want = Math.min(this.buf.length, this.size - pos);
    const got = this.readAt(this.buf, 0, want, pos);
    this.bufStart = pos;
    this.bufLen = got;
    if (got < n) this.fail(`file shrank while reading at offset ${pos}`);
    return 0;
  }

  private readAt(buf: Buffer, off: number, len: number, filePos: number): number {
    let got = 0;
    try {
      while (got < len) {
        const n = fs.readSync(this.fd!, buf, off + got, len - got, filePos + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      this.fail(`read error at offset ${filePos + got}: ${errnoText(e)}`);
    }
    return got;
  }

  private need(n: number, what: string): void {
    const have = this.size - this.pos;
    if (n > have) this.fail(`truncated ${what} at offset ${this.pos} (need ${n} bytes, have ${have})`);
  }

  /** Reads one size-prefixed message at the current position. */
  private readMessage(type: MessageName): { msg: ProtoObject; offset: number } {
    const offset = this.pos;
    this.need(4, 'entry size');
    const len = this.buf.readUInt32LE(this.window(4));
    this.pos += 4;
    this.need(len, 'entry');
    const i = this.window(len);
    let msg: ProtoObject;
    try {
      msg = this.reg.decode(type, this.buf, i, i + len);
    } catch (e) {
      if (e instanceof ProtoError) this.fail(`${e.message} in entry at offset ${offset}`);
      throw e;
    }
    this.pos += len;
    return { msg, offset };
  }

  private takeBytes(n: number, what: string, load = this.loadExtra): Buffer | undefined {
    this.need(n, what);
    let out: Buffer | undefined;
    if (load) {
      if (n <= WINDOW) {
        const i = this.window(n);
        out = Buffer.from(this.buf.subarray(i, i + n));
      } else {
        out = Buffer.allocUnsafe(n);
        if (this.readAt(out, 0, n, this.pos) < n) this.fail(`file shrank while reading at offset ${this.pos}`);
      }
    }
    this.pos += n;
    return out;
  }

  private skipPadding(len: number, align: number, what: string): void {
    const pad = (align - (len % align)) % align;
    if (pad) {
      this.need(pad, `${what} padding`);
      this.pos += pad;
    }
  }

  private num(msg: ProtoObject, field: string): number {
    const v = msg[field];
    const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : 0;
    return n;
  }

  /** Next entry, or undefined at the end of the image. */
  next(): ImageEntry | undefined {
    if (this.done) {
      this.close();
      return undefined;
    }
    if (this.pos >= this.size) {
      this.done = true;
      this.close();
      return undefined;
    }
    const k = this.kind;
    let type = k.entries[0];
    if ((k.id === 'PAGEMAP' || k.id === 'SHMEM_PAGEMAP' || k.id === 'PAGES_OLD' || k.id === 'SHM_PAGES_OLD') && this.index > 0)
      type = k.entries[1];
    if (k.extra === 'ghost' && this.index > 0) type = k.entries[1];
    try {
      const { msg, offset } = this.readMessage(type);
      this.index++;
      return this.readExtra(type, msg, offset);
    } catch (e) {
      this.done = true;
      this.close();
      throw e;
    }
  }

  private readExtra(type: MessageName, msg: ProtoObject, offset: number): ImageEntry {
    const extraOffset = this.pos;
    const plain = (n: number, what: string): ImageEntry => {
      const extra = this.takeBytes(n, what);
      return { type, msg, offset, extra, extraOffset, extraLength: n };
    };
    switch (this.kind.extra) {
      case undefined:
        return { type, msg, offset };
      case 'pipe-data':
        return plain(this.num(msg, 'bytes'), 'pipe data');
      case 'sk-queue':
        return plain(this.num(msg, 'length'), 'socket packet');
      case 'bpfmap-data':
        return plain(this.num(msg, 'keys_bytes') + this.num(msg, 'values_bytes'), 'bpf map data');
      case 'tcp-stream': {
        const inLen = this.num(msg, 'inq_len');
        const outLen = this.num(msg, 'outq_len');
        const inq = this.takeBytes(inLen, 'tcp receive queue');
        const outq = this.takeBytes(outLen, 'tcp send queue');
        return { type, msg, offset, inq, outq, extraOffset, extraLength: inLen + outLen };
      }
      case 'ghost': {
        if (this.index === 1) {
          this.ghostChunks = msg.chunks === true;
          if (this.ghostChunks) return { type, msg, offset };
          const e = plain(this.size - this.pos, 'ghost file contents');
          this.done = true;
          return e;
        }
        if (!this.ghostChunks) this.fail(`unexpected entry at offset ${offset} after ghost file contents`);
        return plain(this.num(msg, 'len'), 'ghost file chunk');
      }
      case 'ipc-shm': {
        if (msg.in_pagemaps === true) return { type, msg, offset };
        const n = this.num(msg, 'size');
        const e = plain(n, 'ipc shm contents');
        this.skipPadding(n, 4, 'ipc shm contents');
        return e;
      }
      case 'ipc-sem': {
        const n = this.num(msg, 'nsems') * 2;
        const e = plain(n, 'ipc semaphore values');
        this.skipPadding(n, 8, 'ipc semaphore values');
        return e;
      }
      case 'ipc-msg': {
        const qnum = this.num(msg, 'qnum');
        const ipcMsgs: { msg: Message<'ipc_msg'>; data: Buffer }[] = [];
        for (let q = 0; q < qnum; q++) {
          const m = this.readMessage('ipc_msg').msg as Message<'ipc_msg'>;
          const data = this.takeBytes(m.msize, 'ipc message', true)!;
          this.skipPadding(m.msize, 8, 'ipc message');
          ipcMsgs.push({ msg: m, data });
        }
        return { type, msg, offset, ipcMsgs, extraOffset, extraLength: this.pos - extraOffset };
      }
    }
  }

  /**
   * Calls fn with each remaining entry's undecoded payload buf[start, end) (valid only during the
   * call), for hand-written hot loops such as pagemap parsing. Only for kinds without extras.
   */
  eachRaw(fn: (buf: Buffer, start: number, end: number, offset: number) => void): void {
    if (this.kind.extra !== undefined) this.fail('eachRaw on an image with extra payloads');
    try {
      while (!this.done && this.pos < this.size) {
        const offset = this.pos;
        this.need(4, 'entry size');
        const len = this.buf.readUInt32LE(this.window(4));
        this.pos += 4;
        this.need(len, 'entry');
        const i = this.window(len);
        this.pos += len;
        this.index++;
        fn(this.buf, i, i + len, offset);
      }
    } finally {
      this.done = true;
      this.close();
    }
  }

  /** Decodes a payload handed out by eachRaw, with this reader's error wording. */
  decodeRaw(type: MessageName, buf: Buffer, start: number, end: number, offset: number): ProtoObject {
    try {
      return this.reg.decode(type, buf, start, end);
    } catch (e) {
      if (e instanceof ProtoError) this.fail(`${e.message} in entry at offset ${offset}`);
      throw e;
    }
  }

  /** Reads `length` bytes at a file offset, e.g. an extra skipped with loadExtra: false. */
  readAtOffset(offset: number, length: number): Buffer {
    if (this.fd === undefined) {
      const fd = openImage(this.path);
      try {
        const b = Buffer.allocUnsafe(length);
        const n = fs.readSync(fd, b, 0, length, offset);
        if (n < length) this.fail(`truncated read at offset ${offset} (need ${length} bytes, have ${n})`);
        return b;
      } finally {
        fs.closeSync(fd);
      }
    }
    if (offset < 0 || offset + length > this.size)
      this.fail(`read past end at offset ${offset} (need ${length} bytes, have ${Math.max(0, this.size - offset)})`);
    const b = Buffer.allocUnsafe(length);
    this.readAt(b, 0, length, offset);
    return b;
  }

  /** Iterates the remaining entries; leaving the loop early closes the file. */
  *[Symbol.iterator](): Iterator<ImageEntry> {
    try {
      for (let e = this.next(); e !== undefined; e = this.next()) yield e;
    } finally {
      this.close();
    }
  }

  /** Releases the file; a closed reader yields no more entries. */
  close(): void {
    this.done = true;
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/** All entries of an image; missing/empty images give []. */
export function readImage(file: string, opts: ReadOptions = {}): ImageEntry[] {
  const r = new ImageReader(file, opts);
  try {
    return [...r];
  } finally {
    r.close();
  }
}

/**
 * Whether an entry holds a `name` message, and so has its static type: the decoder built it
 * field by field from that message's schema, which is what Message<N> is derived from.
 */
export function isMessage<N extends MessageName>(e: ImageEntry, name: N): e is ImageEntry & { readonly type: N; readonly msg: Message<N> } {
  return e.type === name;
}

/** The entry's message, which must be a `name`. */
export function messageOf<N extends MessageName>(e: ImageEntry, name: N, file: string): Message<N> {
  if (!isMessage(e, name)) throw new ImageError(file, `holds ${e.type}, not ${name}`);
  return e.msg;
}

/** The `name` messages of an image, typed; e.g. readMessages(p, 'pagemap_entry'). */
export function readMessages<N extends MessageName>(file: string, name: N, opts: ReadOptions = {}): Message<N>[] {
  const out: Message<N>[] = [];
  for (const e of readImage(file, opts)) if (isMessage(e, name)) out.push(e.msg);
  return out;
}

/** The single entry of a one-entry image (inventory, core, mm, ids, fs...); undefined if empty. */
export function readOne<N extends MessageName>(file: string, name: N, opts: ReadOptions = {}): Message<N> | undefined {
  const r = new ImageReader(file, { ...opts, loadExtra: false });
  try {
    const e = r.next();
    if (e === undefined) return undefined;
    return messageOf(e, name, file);
  } finally {
    r.close();
  }
}
