// The image files of one dump being written: every writer goes through here so that a
// failed dump can remove exactly the files it created, and so that each file is
// checksummed for the manifest as it is written.
import fs from 'node:fs';
import path from 'node:path';
import {
  ImageWriter,
  PagemapWriter,
  ManifestBuilder,
  PagesEncoder,
  PagesWriterThread,
  MANIFEST,
  PAGE_SERVER_RUNS,
  writeImageFile,
  keyId,
  IMG,
  entryMessage,
  imageFileName,
  splitImageArgs,
  sealImage,
  type AddArgs,
  type EntryKind,
  type EntryOf,
  type ImageArgs,
  type ImageKindId,
  type MessageInput,
  type PagesCodecOptions,
} from '../images/index.ts';
import { addressOf } from '../kernel/index.ts';
import type { PageServerClient } from '../migrate/page-client.ts';
import type { PageSink } from '../resources/types.ts';

/** Where a pagemap's runs and page data go: pagemap-N.img + pages-N.img here, or a page server. */
export type PagemapOut = PageSink & { close(): void };

export interface ImageSetOptions {
  /** Write criu-ts-manifest.json with a checksum of every file (default on). */
  manifest?: boolean;
  /** Compress and/or encrypt pages-N.img. */
  pages?: PagesCodecOptions;
  /** Send the page data to this page server: no pagemap or pages image is written here. */
  pageServer?: PageServerClient;
}

/** Page data from this size on is streamed (see pagemapWriter). */
const STREAM_FROM = 4 << 20;

export class ImageSet {
  readonly dir: string;
  private readonly created: string[] = [];
  private readonly open = new Map<string, ImageWriter>();
  private readonly manifest: ManifestBuilder;
  private readonly dones: Array<() => void> = [];
  private readonly opts: ImageSetOptions;
  private readonly encoders: PagesEncoder[] = [];
  private pagesId = 0;
  private writer?: PagesWriterThread;
  private readonly existing: Set<string>;
  /** A tree in a user namespace of its own: every entry's ids as the namespace sees them. */
  ids?: <T>(message: string, entry: T) => T;

  constructor(dir: string, opts: ImageSetOptions = {}) {
    this.dir = dir;
    // What was there before: a failed dump removes only what it created.
    this.existing = new Set(fs.readdirSync(dir));
    this.opts = opts;
    this.manifest = new ManifestBuilder(opts.pages?.key);
    if (opts.pages?.compress || opts.pages?.key) {
      this.manifest.pages = {
        ...(opts.pages.compress ? { compress: opts.pages.compress } : {}),
        ...(opts.pages.key ? { encrypt: 'aes-256-gcm' as const, keyId: keyId(opts.pages.key) } : {}),
      };
    }
  }

  /**
   * Expect this many bytes of page data. Above 32 MiB, page data is written on another
   * thread while this one reads and checksums the next pages (see PagesWriterThread). A Node
   * worker takes 50-100 ms to start here, so below that the thread costs more than it saves.
   * (Handing small images to it as well was tried for trees of many tasks and measured
   * slower: 100 processes dumped in 1120-1200 ms with it, 1050-1150 ms without.)
   */
  expect(pagesBytes: number): void {
    if (pagesBytes > 32 << 20 && !this.writer) {
      this.writer = new PagesWriterThread(this.opts.manifest !== false ? this.manifest.digest : undefined, { addressOf });
    }
  }

  private noteCreated(name: string): void {
    if (!this.existing.has(name)) this.created.push(path.join(this.dir, name));
  }

  /** With --encrypt, every image is sealed whole (seal.ts). */
  private seal(name: string): ((plain: Buffer) => Buffer) | undefined {
    const key = this.opts.pages?.key;
    return key ? (plain) => sealImage(key, name, plain) : undefined;
  }

  private track(name: string): (d: Uint8Array) => void {
    this.noteCreated(name);
    const t = this.manifest.tap(name);
    this.dones.push(t.done);
    return t.tap;
  }

  /**
   * Append an entry (and its extra payload) to an image of kind K, opening it on first use:
   * add(IMG.CORE, tid, entry). The kind fixes the file name and the entry's message.
   */
  add<K extends EntryKind>(kind: K, ...a: AddArgs<K>): void {
    const {
      name,
      rest: [entry, extra],
    } = splitImageArgs<K, [MessageInput<EntryOf<K>>, Buffer?]>(kind, a);
    let w = this.open.get(name);
    if (!w) {
      w = new ImageWriter(path.join(this.dir, name), { kind, tap: this.track(name), seal: this.seal(name) });
      this.open.set(name, w);
    }
    const msg = entryMessage(kind);
    w.write(msg, this.ids ? this.ids(msg, entry) : entry);
    if (extra) w.writeRaw(extra);
  }

  /**
   * A ghost file image: its entry, then each piece of content as a ghost_chunk_entry and its
   * bytes (CRIU's chunked form, which keeps the file's holes).
   */
  ghostFile(id: number, entry: MessageInput<'ghost_file_entry'>, chunks: Iterable<{ off: bigint; data: Buffer }>): void {
    const name = imageFileName(IMG.GHOST_FILE, id);
    const w = new ImageWriter(path.join(this.dir, name), { kind: IMG.GHOST_FILE, tap: this.track(name), seal: this.seal(name) });
    try {
      const e = { ...entry, chunks: true };
      w.write('ghost_file_entry', this.ids ? this.ids('ghost_file_entry', e) : e);
      for (const c of chunks) {
        w.write('ghost_chunk_entry', { len: BigInt(c.data.length), off: c.off });
        w.writeRaw(c.data);
      }
    } finally {
      w.close();
    }
  }

  /** A raw image (its magic is none: `ip addr save` output, tarballs...), written whole. */
  raw<K extends ImageKindId>(kind: K, data: Buffer, ...args: ImageArgs<K>): void {
    const name = imageFileName(kind, ...args);
    const w = new ImageWriter(path.join(this.dir, name), { kind, tap: this.track(name), seal: this.seal(name) });
    try {
      w.writeRaw(data);
    } finally {
      w.close();
    }
  }

  /** An image with a header and no entries. */
  empty<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): void {
    const name = imageFileName(kind, ...args);
    new ImageWriter(path.join(this.dir, name), { kind, tap: this.track(name), seal: this.seal(name) }).close();
  }

  /** A whole single-entry image. */
  one<K extends EntryKind>(kind: K, ...a: [...ImageArgs<K>, entry: MessageInput<EntryOf<K>>]): void {
    const { name } = splitImageArgs<K, [MessageInput<EntryOf<K>>]>(kind, a);
    this.add<K>(kind, ...a);
    this.closeByName(name);
  }

  closeImage<K extends ImageKindId>(kind: K, ...args: ImageArgs<K>): void {
    this.closeByName(imageFileName(kind, ...args));
  }

  private closeByName(name: string): void {
    this.open.get(name)?.close();
    this.open.delete(name);
  }

  /**
   * Page data of `expect` bytes or more streams through the writer thread's slots (O_DIRECT);
   * less is written here, so that a small task's dump never waits for a disk write.
   */
  private pagemapWriter(id: number | bigint, shmem: boolean, expect: number): PagemapOut {
    if (this.opts.pageServer)
      return this.opts.pageServer.open(id, shmem, shmem ? imageFileName(IMG.SHMEM_PAGEMAP, id) : imageFileName(IMG.PAGEMAP, id));
    const pagesId = ++this.pagesId;
    const enc = this.opts.pages?.compress || this.opts.pages?.key ? new PagesEncoder(this.opts.pages) : undefined;
    if (enc) this.encoders.push(enc);
    const pagesName = imageFileName(IMG.PAGES, pagesId);
    const writer = this.writer;
    const pagemapName = shmem ? imageFileName(IMG.SHMEM_PAGEMAP, id) : imageFileName(IMG.PAGEMAP, id);
    return new PagemapWriter(this.dir, id, pagesId, {
      shmem,
      pagemapTap: this.track(pagemapName),
      pagemapSeal: this.seal(pagemapName),
      ...(writer && !enc && expect >= STREAM_FROM
        ? {
            pagesStream: (file: string) => {
              this.noteCreated(pagesName);
              const s = writer.create(file);
              this.dones.push(() => {
                const r = s.close();
                this.manifest.record(pagesName, r.size, r.digest);
              });
              return s;
            },
          }
        : { pagesTap: this.track(pagesName), pagesTransform: enc }),
    });
  }

  /** `expect`: about how many bytes of page data will follow. */
  pagemap(pid: number, expect = Infinity): PagemapOut {
    return this.pagemapWriter(pid, false, expect);
  }
  shmemPagemap(shmid: number, expect = Infinity): PagemapOut {
    return this.pagemapWriter(shmid, true, expect);
  }

  /** Plain and stored bytes of encoded pages (compression ratio), when encoding is on. */
  pagesEncoding(): { plain: number; stored: number } | undefined {
    if (!this.encoders.length) return undefined;
    return this.encoders.reduce((a, e) => ({ plain: a.plain + e.plainBytes, stored: a.stored + e.storedBytes }), { plain: 0, stored: 0 });
  }

  /** Close everything and write the checksum manifest. */
  finish(): void {
    for (const w of this.open.values()) w.close();
    this.open.clear();
    for (const d of this.dones) d();
    this.writer?.close();
    const ps = this.opts.pageServer;
    if (ps) {
      // The page server has every byte once it answers CLOSE; its own manifest lists its files.
      ps.close();
      this.manifest.pageServer = { files: ps.pagemaps };
      this.noteCreated(PAGE_SERVER_RUNS);
      writeImageFile(path.join(this.dir, PAGE_SERVER_RUNS), JSON.stringify(ps.runs));
      this.manifest.addFromDisk(this.dir, PAGE_SERVER_RUNS);
    }
    if (this.opts.manifest !== false) {
      this.created.push(path.join(this.dir, MANIFEST));
      this.manifest.write(this.dir);
    }
  }

  /** Remove what this dump wrote: a failed dump leaves no partial images behind. */
  /** A file the dump made outside the images directory (a link-remap link), removed if the dump fails. */
  madeOutside(file: string): void {
    this.created.push(file);
  }

  discard(): void {
    this.opts.pageServer?.abort();
    this.writer?.close();
    for (const w of this.open.values()) {
      try {
        w.close();
      } catch {
        /* already failing */
      }
    }
    this.open.clear();
    for (const f of this.created) {
      try {
        fs.unlinkSync(f);
      } catch {
        /* never created */
      }
    }
  }
}
