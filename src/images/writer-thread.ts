// Page data written on another thread. A large dump reads the target's memory straight
// into shared slots (process_vm_readv) and checksums it there, and a worker writes each
// slot to pages-N.img while the main thread goes on with the next one: reading and writing
// overlap on the two cores, and no byte is copied in user space. (The checksum ran on the
// worker at first, which then wrote and summed while this thread only read: slower.)
// One worker serves the whole dump, in order.
import fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { newWorker } from '../lazy.ts';
import { ImageError } from './image-common.ts';
import { createImage } from './open.ts';
import { startChecksum, type Checksum, type ChecksumKind } from './checksum.ts';
import type { Message, WorkerData } from './writer-worker.ts';

const ALIGN = 4096;

/** How long the main thread waits for the worker before calling it stuck. */
const STUCK_MS = 60_000;

export class PagesWriterThread {
  private readonly slotSize: number;
  private readonly slots: number;
  private readonly worker: Worker;
  private readonly ring: SharedArrayBuffer;
  private readonly flags: Int32Array;
  private readonly result = new SharedArrayBuffer(8 + 4096);
  private next = 0;
  private nextFile = 1;
  private readonly open = new Set<PagesWriteStream>();

  readonly digest: ChecksumKind | undefined;

  /** Offset of slot 0 in the ring: the first page boundary, which O_DIRECT needs. */
  private readonly base: number;
  private readonly direct: boolean;

  /**
   * `addressOf` (the kernel layer's) lets slots start on a page boundary, so that the
   * pages file can be written with O_DIRECT; without it the page cache is used.
   */
  constructor(digest: ChecksumKind | undefined, opts: { addressOf?: (b: Uint8Array) => bigint; slots?: number; slotSize?: number } = {}) {
    const slots = opts.slots ?? 4,
      slotSize = opts.slotSize ?? 2 << 20;
    this.digest = digest;
    this.slots = slots;
    this.slotSize = slotSize;
    this.ring = new SharedArrayBuffer(slots * slotSize + ALIGN);
    const misalign = opts.addressOf ? Number(opts.addressOf(new Uint8Array(this.ring, 0, 1)) % BigInt(ALIGN)) : -1;
    this.direct = misalign >= 0;
    this.base = misalign > 0 ? ALIGN - misalign : 0;
    const state = new SharedArrayBuffer(4 * (slots + 1));
    this.flags = new Int32Array(state);
    const workerData: WorkerData = { ring: this.ring, base: this.base, state, result: this.result, slotSize, slots };
    this.worker = newWorker(import.meta.url, 'writer-worker', {
      workerData,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
  }

  /** Create `file` and stream page data into it. */
  create(file: string): PagesWriteStream {
    let fd: number;
    let direct = this.direct;
    try {
      fd = createImage(file, direct ? fs.constants.O_DIRECT : 0);
    } catch (e) {
      if (!direct || !/EINVAL/.test((e as Error).message)) throw e;
      direct = false; // tmpfs and some others have no O_DIRECT
      fd = createImage(file);
    }
    const s = new PagesWriteStream(this, file, fd, this.nextFile++);
    this.open.add(s);
    this.post({ op: 'open', file: s.id, fd, direct });
    return s;
  }

  /** The next free slot, waiting while the worker still writes it. */
  acquire(): { slot: number; buf: Buffer } {
    const slot = this.next;
    this.next = (this.next + 1) % this.slots;
    this.waitFree(slot);
    return { slot, buf: Buffer.from(this.ring, this.base + slot * this.slotSize, this.slotSize) };
  }

  submit(file: number, slot: number, len: number): void {
    Atomics.store(this.flags, slot, 1);
    this.post({ op: 'data', file, slot, len });
  }

  private post(m: Message): void {
    this.worker.postMessage(m);
  }

  /** A write failed on the worker; the stream's close() says which and why. */
  get failed(): boolean {
    return Atomics.load(this.flags, this.slots) === 1;
  }

  private waitFree(slot: number): void {
    const end = Date.now() + STUCK_MS;
    while (Atomics.load(this.flags, slot) === 1) {
      if (Date.now() > end) throw new Error('the image writer thread is stuck');
      Atomics.wait(this.flags, slot, 1, 1000);
    }
  }

  /** Post a request and wait for the worker's answer (everything posted before is done then). */
  private ask(m: Message): unknown {
    const done = new Int32Array(this.result, 0, 2);
    Atomics.store(done, 0, 0);
    this.post(m);
    const end = Date.now() + STUCK_MS;
    while (Atomics.load(done, 0) === 0) {
      if (Date.now() > end) throw new Error('the image writer thread is stuck');
      Atomics.wait(done, 0, 0, 1000);
    }
    return JSON.parse(Buffer.from(this.result, 8, Atomics.load(done, 1)).toString('utf8'));
  }

  /** Wait until the worker has taken every slot, then collect `file`'s result. */
  finish(s: PagesWriteStream): { size: number; err: string } {
    for (let i = 0; i < this.slots; i++) this.waitFree(i);
    const r = this.ask({ op: 'close', file: s.id }) as { size: number; err: string };
    this.open.delete(s);
    return r;
  }

  /** Close every stream still open (waiting for their writes) and stop the worker. */
  close(): void {
    for (const s of [...this.open]) s.abort();
    void this.worker.terminate();
  }
}

/** One pages-N.img being written by the worker. */
export class PagesWriteStream {
  private slot = -1;
  private buf: Buffer | undefined;
  private closed = false;
  /** Bytes and checksum once closed. */
  result?: { size: number; digest: string };

  private readonly thread: PagesWriterThread;
  private readonly fd: number;
  private readonly sum?: Checksum;
  readonly path: string;
  readonly id: number;

  constructor(thread: PagesWriterThread, path: string, fd: number, id: number) {
    this.thread = thread;
    this.path = path;
    this.fd = fd;
    this.id = id;
    if (thread.digest) this.sum = startChecksum(thread.digest);
  }

  /** A slot to fill with the next page data; hand (a prefix of) it to write() next. */
  buffer(): Buffer {
    if (!this.buf) {
      if (this.thread.failed) this.close();
      ({ slot: this.slot, buf: this.buf } = this.thread.acquire());
    }
    return this.buf;
  }

  /** Page data, in file order: a prefix of buffer() goes as it is, anything else is copied into slots. */
  write(data: Uint8Array): void {
    if (this.closed) throw new ImageError(this.path, 'write after close');
    if (this.buf && data.buffer === this.buf.buffer && data.byteOffset === this.buf.byteOffset) {
      this.commit(data.length);
      return;
    }
    for (let off = 0; off < data.length; ) {
      const b = this.buffer();
      const n = Math.min(b.length, data.length - off);
      b.set(data.subarray(off, off + n));
      this.commit(n);
      off += n;
    }
  }

  private commit(len: number): void {
    // An empty commit leaves the slot free: it was never marked busy.
    if (len > 0) {
      this.sum?.update(this.buf!.subarray(0, len));
      this.thread.submit(this.id, this.slot, len);
    }
    this.buf = undefined;
  }

  /** Wait for the worker to write everything; throws ImageError if a write failed. */
  close(): { size: number; digest: string } {
    if (this.result) return this.result;
    if (this.closed) throw new ImageError(this.path, 'closed after a failure');
    this.closed = true;
    let r: { size: number; err: string };
    try {
      r = this.thread.finish(this);
    } finally {
      fs.closeSync(this.fd);
    }
    if (r.err) throw new ImageError(this.path, r.err);
    this.result = { size: r.size, digest: this.sum?.digest() ?? '' };
    return this.result;
  }

  /** Stop without caring about the result (the dump failed; the file is about to go). */
  abort(): void {
    if (this.closed) return;
    try {
      this.close();
    } catch {
      /* already failing */
    }
  }
}
