// pagemap-<id>.img (which pages were saved) + pages-<pages_id>.img (their bytes, raw, in pagemap order).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError, ImageReader, ImageWriter, isMessage } from './image.ts';
import { imageFileName } from './magic.ts';
import { openImage } from './open.ts';
import { readVarint, u64, varintHi, varintLo } from './proto-read.ts';
import type { Message } from './types.ts';
import type { PagesWriteStream } from './writer-thread.ts';

/** Data is in the parent image set (incremental dumps). */
export const PE_PARENT = 1;
/** May be restored lazily (CRIU sets it for private anonymous memory even in normal dumps). */
export const PE_LAZY = 2;
/** Data is in this image set's pages file. */
export const PE_PRESENT = 4;
/**
 * criu-ts extension: the pages are shared copy-on-write with the same pages of the parent
 * process (same physical page at dump time); restore keeps them inherited. No data here.
 */
export const PE_COW_PARENT = 1 << 16;

export const DEFAULT_PAGE_SIZE = 4096;

export interface PagemapOptions {
  /** Host page size; aarch64 kernels may use 16K or 64K. */
  readonly pageSize?: number;
  /** pagemap-shmem-<id>.img (shared memory object) instead of pagemap-<pid>.img. */
  readonly shmem?: boolean;
}

/** A transformation of the page data stream (compression, encryption) on its way to disk. */
export interface PagesTransform {
  header(): Uint8Array;
  push(data: Uint8Array): Uint8Array[];
  end(): Uint8Array[];
}

export interface PagemapWriterOptions extends PagemapOptions {
  /** Join a run with the previous one when contiguous with equal flags (default true). */
  readonly merge?: boolean;
  /** Taps on the bytes written to the pagemap and the pages file (checksums). */
  readonly pagemapTap?: (data: Uint8Array) => void;
  readonly pagesTap?: (data: Uint8Array) => void;
  /** Seal the pagemap image (an encrypted dump; seal.ts). */
  readonly pagemapSeal?: (plain: Buffer) => Buffer;
  readonly pagesTransform?: PagesTransform;
  /** Write the pages file through this stream (another thread) instead of directly. */
  readonly pagesStream?: (file: string) => PagesWriteStream;
}

function pagemapName(id: number | bigint, shmem: boolean | undefined): string {
  return shmem ? imageFileName('SHMEM_PAGEMAP', id) : imageFileName('PAGEMAP', id);
}

export class PagemapWriter {
  readonly pagemapPath: string;
  readonly pagesPath: string;
  readonly pagesId: number;
  readonly pageSize: number;
  private readonly pagemap: ImageWriter;
  private readonly pages: ImageWriter | PagesWriteStream;
  private readonly merge: boolean;
  private readonly transform?: PagesTransform;
  // the run not yet written, so a contiguous next run can extend it
  private runStart = 0n;
  private runPages = 0;
  private runFlags = 0;
  private end = 0n;
  private expectedBytes = 0;
  private writtenBytes = 0;
  private nrEntries = 0;
  private closed = false;

  constructor(dir: string, id: number | bigint, pagesId: number, opts: PagemapWriterOptions = {}) {
    this.pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
    this.merge = opts.merge ?? true;
    this.pagesId = pagesId;
    this.pagemapPath = path.join(dir, pagemapName(id, opts.shmem));
    this.pagesPath = path.join(dir, imageFileName('PAGES', pagesId));
    this.pagemap = new ImageWriter(this.pagemapPath, {
      kind: opts.shmem ? 'SHMEM_PAGEMAP' : 'PAGEMAP',
      tap: opts.pagemapTap,
      seal: opts.pagemapSeal,
    });
    this.transform = opts.pagesTransform;
    try {
      if (opts.pagesStream && !this.transform) {
        this.pages = opts.pagesStream(this.pagesPath);
      } else {
        const w = new ImageWriter(this.pagesPath, { kind: 'PAGES', tap: opts.pagesTap });
        if (this.transform) w.writeRaw(this.transform.header());
        this.pages = w;
      }
    } catch (e) {
      this.pagemap.close();
      throw e;
    }
    this.pagemap.write('pagemap_head', { pages_id: pagesId });
  }

  private fail(problem: string): never {
    throw new ImageError(this.pagemapPath, problem);
  }

  /** Announces nrPages pages at vaddr; with PE_PRESENT their bytes must follow via writePages. */
  addRun(vaddr: bigint, nrPages: number, flags: number): void {
    if (this.closed) this.fail('addRun after close');
    if (vaddr < 0n || vaddr % BigInt(this.pageSize) !== 0n) this.fail(`run at 0x${vaddr.toString(16)} is not page aligned`);
    if (!Number.isSafeInteger(nrPages) || nrPages <= 0) this.fail(`run at 0x${vaddr.toString(16)} has bad page count ${nrPages}`);
    if (!Number.isInteger(flags) || flags < 0 || (flags & ~(PE_PARENT | PE_LAZY | PE_PRESENT | PE_COW_PARENT)) !== 0)
      this.fail(`bad pagemap flags ${flags}`);
    if (vaddr < this.end)
      this.fail(`run at 0x${vaddr.toString(16)} overlaps or precedes the previous run ending at 0x${this.end.toString(16)}`);
    if (this.runPages > 0 && this.merge && vaddr === this.end && flags === this.runFlags) {
      this.runPages += nrPages;
    } else {
      this.flushRun();
      this.runStart = vaddr;
      this.runPages = nrPages;
      this.runFlags = flags;
    }
    this.end = vaddr + BigInt(nrPages) * BigInt(this.pageSize);
    if (flags & PE_PRESENT) this.expectedBytes += nrPages * this.pageSize;
  }

  /** Appends page bytes for the PE_PRESENT runs, in run order; may be split across calls. */
  writePages(data: Uint8Array): void {
    if (this.closed) this.fail('writePages after close');
    if (this.writtenBytes + data.length > this.expectedBytes) {
      this.fail(`${this.writtenBytes + data.length} bytes of page data but runs announce only ${this.expectedBytes}`);
    }
    this.writeOut(data);
    this.writtenBytes += data.length;
  }

  private writeOut(data: Uint8Array): void {
    const p = this.pages;
    if (!(p instanceof ImageWriter)) p.write(data);
    else if (this.transform) for (const c of this.transform.push(data)) p.writeRaw(c);
    else p.writeRaw(data);
  }

  /**
   * With a stream, the slot for the caller to fill with the next page data and pass to
   * writePages: the data goes to disk from where it was read, without a copy.
   */
  pageBuffer(): Buffer | undefined {
    const p = this.pages;
    return p instanceof ImageWriter ? undefined : p.buffer();
  }

  /** addRun + writePages for data that is a whole number of pages. */
  addPages(vaddr: bigint, data: Uint8Array, flags: number = PE_PRESENT): void {
    if (data.length === 0 || data.length % this.pageSize !== 0)
      this.fail(`${data.length} bytes at 0x${vaddr.toString(16)} are not whole pages`);
    if (!(flags & PE_PRESENT)) this.fail('addPages needs PE_PRESENT');
    this.addRun(vaddr, data.length / this.pageSize, flags);
    this.writePages(data);
  }

  /** Page-data bytes written so far = offset of the next page in the pages file. */
  get pagesBytes(): number {
    return this.writtenBytes;
  }

  /** pagemap_entry records written so far (a pending run is not counted until flushed). */
  get entries(): number {
    return this.nrEntries;
  }

  private flushRun(): void {
    if (this.runPages === 0) return;
    this.pagemap.write('pagemap_entry', {
      vaddr: this.runStart,
      compat_nr_pages: 0,
      flags: this.runFlags,
      nr_pages: this.runPages,
    });
    this.nrEntries++;
    this.runPages = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.flushRun();
      if (this.transform && this.pages instanceof ImageWriter) for (const c of this.transform.end()) this.pages.writeRaw(c);
    } finally {
      // Pages first: when the disk is full, their error is the one to report.
      closing(this.pagemap, () => this.pages.close());
    }
    if (this.writtenBytes !== this.expectedBytes) {
      this.fail(`runs announce ${this.expectedBytes} bytes of page data but ${this.writtenBytes} were written`);
    }
  }
}

/** fn(w), then close w; when fn fails, its error wins over any from closing (a full disk fails both). */
export function closing<W extends { close(): void }, T>(w: W, fn: (w: W) => T): T {
  let r: T;
  try {
    r = fn(w);
  } catch (e) {
    try {
      w.close();
    } catch {
      /* the first error says more */
    }
    throw e;
  }
  w.close();
  return r;
}

export interface PagemapRun {
  readonly vaddr: bigint;
  readonly nrPages: number;
  /** PE_* after CRIU's compat rules (in_parent -> PE_PARENT, no flags -> PE_PRESENT). */
  readonly flags: number;
  /** Byte offset of the run's data in the pages file; -1 without PE_PRESENT. */
  readonly pagesOffset: number;
}

/** Applies CRIU's compat rules for entries written by older versions. */
export function pagemapRunFlags(pe: Message<'pagemap_entry'>): { flags: number; nrPages: number } {
  let flags = pe.flags ?? 0;
  if (pe.in_parent === true) flags |= PE_PARENT;
  else if (pe.flags === undefined) flags = PE_PRESENT;
  const nr = pe.nr_pages ?? BigInt(pe.compat_nr_pages);
  return { flags, nrPages: Number(nr) };
}

/**
 * Loads a pagemap. Runs are kept in typed arrays, not objects: a big dump has millions of them
 * and per-run objects (with a bigint each) cost more than the parsing. Use the accessors, or
 * `runs` / iteration to get PagemapRun objects.
 */
export class PagemapReader implements Iterable<PagemapRun> {
  readonly pagemapPath: string;
  readonly pagesPath: string;
  /** pages_id from the head; 0 for an empty pagemap. */
  readonly pagesId: number;
  readonly pageSize: number;
  /** Number of runs (pagemap entries). */
  readonly length: number;
  /** Total bytes of PE_PRESENT data, i.e. the expected size of the pages file. */
  readonly pagesBytes: number;
  private lo: Uint32Array;
  private hi: Uint32Array;
  private nr: Float64Array;
  private fl: Uint32Array;
  private off: Float64Array;
  private cached: PagemapRun[] | undefined;
  private fd: number | undefined;

  constructor(dir: string, id: number | bigint, opts: PagemapOptions = {}) {
    this.pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
    this.pagemapPath = path.join(dir, pagemapName(id, opts.shmem));
    const r = new ImageReader(this.pagemapPath, { kind: opts.shmem ? 'SHMEM_PAGEMAP' : 'PAGEMAP' });
    let cap = Math.max(16, Math.ceil(r.size / 14));
    let lo = new Uint32Array(cap);
    let hi = new Uint32Array(cap);
    let nrs = new Float64Array(cap);
    let fls = new Uint32Array(cap);
    let offs = new Float64Array(cap);
    let n = 0;
    let off = 0;
    let pagesId = 0;
    const pageSize = this.pageSize;
    const bad = (what: string): never => {
      throw new ImageError(this.pagemapPath, `pagemap entry ${n}: ${what}`);
    };
    try {
      const head = r.next();
      if (head && isMessage(head, 'pagemap_head')) pagesId = head.msg.pages_id;
      r.eachRaw((buf, start, end, offset) => {
        if (n === cap) {
          cap *= 2;
          lo = grow(lo, new Uint32Array(cap));
          hi = grow(hi, new Uint32Array(cap));
          nrs = grow(nrs, new Float64Array(cap));
          fls = grow(fls, new Uint32Array(cap));
          offs = grow(offs, new Float64Array(cap));
        }
        // hand-decoded canonical pagemap_entry; anything unusual goes through the generic codec
        let vlo = 0,
          vhi = 0,
          compat = -1,
          flags = -1,
          nr = -1,
          inParent = false,
          simple = true;
        let pos = start;
        try {
          while (pos < end) {
            const tag = buf[pos++];
            pos = readVarint(buf, pos, end);
            const l = varintLo();
            const h = varintHi();
            if (tag === 0x08) {
              vlo = l;
              vhi = h;
            } else if (tag === 0x10) compat = l;
            else if (tag === 0x18) inParent = (l | h) !== 0;
            else if (tag === 0x20) flags = l;
            else if (tag === 0x28) nr = h * 4294967296 + l;
            else {
              simple = false;
              break;
            }
          }
        } catch {
          simple = false;
        }
        if (!simple || compat < 0 || pos === start) {
          const pe = r.decodeRaw('pagemap_entry', buf, start, end, offset) as Message<'pagemap_entry'>;
          const c = pagemapRunFlags(pe);
          vlo = Number(pe.vaddr & 0xffffffffn);
          vhi = Number(pe.vaddr >> 32n);
          flags = c.flags;
          nr = c.nrPages;
        } else {
          if (inParent) flags = (flags < 0 ? 0 : flags) | PE_PARENT;
          else if (flags < 0) flags = PE_PRESENT;
          if (nr < 0) nr = compat;
        }
        if (!Number.isSafeInteger(nr)) bad(`bad page count ${nr}`);
        if (flags & ~(0xff | PE_COW_PARENT)) bad(`unknown flags 0x${flags.toString(16)}`);
        lo[n] = vlo;
        hi[n] = vhi;
        nrs[n] = nr;
        fls[n] = flags;
        offs[n] = flags & PE_PRESENT ? off : -1;
        if (flags & PE_PRESENT) off += nr * pageSize;
        n++;
      });
    } finally {
      r.close();
    }
    this.pagesId = pagesId;
    this.pagesPath = path.join(dir, imageFileName('PAGES', pagesId));
    this.length = n;
    this.pagesBytes = off;
    this.lo = lo;
    this.hi = hi;
    this.nr = nrs;
    this.fl = fls;
    this.off = offs;
  }

  vaddr(i: number): bigint {
    return u64(this.lo[i], this.hi[i]);
  }

  /** vaddr / pageSize as a number (exact: page numbers fit in 52 bits). */
  pageIndex(i: number): number {
    return (this.hi[i] * 4294967296 + this.lo[i]) / this.pageSize;
  }

  nrPages(i: number): number {
    return this.nr[i];
  }

  flags(i: number): number {
    return this.fl[i];
  }

  /** Byte offset of run i's data in the pages file; -1 without PE_PRESENT. */
  pagesOffset(i: number): number {
    return this.off[i];
  }

  run(i: number): PagemapRun {
    if (!(i >= 0 && i < this.length)) throw new RangeError(`run ${i} of ${this.length}`);
    return { vaddr: this.vaddr(i), nrPages: this.nr[i], flags: this.fl[i], pagesOffset: this.off[i] };
  }

  /** All runs as objects (built on first use). */
  get runs(): readonly PagemapRun[] {
    if (!this.cached) {
      const out: PagemapRun[] = new Array(this.length);
      for (let i = 0; i < this.length; i++) out[i] = this.run(i);
      this.cached = out;
    }
    return this.cached;
  }

  *[Symbol.iterator](): Iterator<PagemapRun> {
    for (let i = 0; i < this.length; i++) yield this.run(i);
  }

  /** Descriptor of the pages file (opened on first use), e.g. for preadv straight into a tracee. */
  pagesFd(): number {
    if (this.fd === undefined) {
      this.fd = openImage(this.pagesPath);
    }
    return this.fd;
  }

  /** Bytes of run i (or `count` pages of it from page `first`), read from the pages file. */
  readPages(i: number, first = 0, count = this.nrPages(i) - first, into?: Buffer): Buffer {
    const off = this.pagesOffset(i);
    if (off === undefined) throw new RangeError(`run ${i} of ${this.length}`);
    if (off < 0) throw new ImageError(this.pagesPath, `run at 0x${this.vaddr(i).toString(16)} has no data here (flags ${this.flags(i)})`);
    if (first < 0 || count < 0 || first + count > this.nrPages(i))
      throw new ImageError(this.pagesPath, `pages ${first}+${count} outside run of ${this.nrPages(i)}`);
    const len = count * this.pageSize;
    const buf = into ?? Buffer.allocUnsafe(len);
    if (buf.length < len) throw new ImageError(this.pagesPath, `buffer of ${buf.length} bytes too small for ${len}`);
    const pos = off + first * this.pageSize;
    const fd = this.pagesFd();
    let got = 0;
    while (got < len) {
      const k = fs.readSync(fd, buf, got, len - got, pos + got);
      if (k === 0) throw new ImageError(this.pagesPath, `truncated page data at offset ${pos + got} (need ${len - got} bytes, have 0)`);
      got += k;
    }
    return buf.subarray(0, len);
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

function grow<T extends Uint32Array | Float64Array | Uint8Array>(old: T, next: T): T {
  next.set(old);
  return next;
}
