// Reading a dump for restore: every image the plan needs, with one-line errors that name
// the file. Optional images that are absent read as empty, as in CRIU.
import fs from 'node:fs';
import path from 'node:path';
import {
  readImage, readOne, messageOf, PagemapReader, ImageError, readManifest, verifyManifest, BackgroundVerify, keyId, pagesInfo,
  preloadImage, dropPreloaded, IMG, entryMessage, imageFileName, type EntryKind, type EntryOf, type ImageArgs, type ImageEntry,
  type Message, type MessageName,
} from '../images/index.ts';
import { CriuError } from '../errors.ts';
import type { PageSource } from '../resources/types.ts';

/** An image entry with the raw payload that follows it (pipe data...). */
export interface Entry<N extends MessageName> { entry: Message<N>; extra?: Buffer }

export interface DumpImagesOptions {
  /** Do not check the checksum manifest. */
  skipVerify?: boolean;
  /** Key for encrypted page data. */
  key?: Buffer;
}

/** Page data up to this size is verified before the restore starts, on this thread. */
const BACKGROUND_VERIFY_FROM = 32 << 20;

export class DumpImages {
  readonly dir: string;
  readonly key?: Buffer;
  /** Page data still being verified on another thread; join() before the tasks run. */
  readonly verifying?: BackgroundVerify;
  private cache = new Map<string, ImageEntry[]>();

  constructor(dir: string, opts: DumpImagesOptions = {}) {
    if (!fs.existsSync(dir)) throw new CriuError(`images directory ${dir} does not exist`);
    if (!fs.statSync(dir).isDirectory()) throw new CriuError(`${dir} is not a directory`);
    this.dir = dir;
    this.key = opts.key;
    const m = readManifest(dir);
    if (m?.pages?.encrypt) {
      if (!opts.key) throw new CriuError('the page data of this dump is encrypted; restore with --encrypt KEYFILE holding its key');
      if (m.pages.keyId && keyId(opts.key) !== m.pages.keyId) throw new CriuError('the key given with --encrypt is not the key this dump was encrypted with');
    }
    // Before anything else reads the images, so that damage is reported by file, not as odd
    // behaviour. Page data, the bulk, is checked on another thread during the restore when
    // there is enough of it to pay for starting a thread.
    if (m && !opts.skipVerify) {
      const isPages = (n: string) => /^pages-\d+\.img$/.test(n);
      const pageBytes = Object.entries(m.files).reduce((s, [n, f]) => s + (isPages(n) ? f.size : 0), 0);
      // The images read for the check are kept for the readers that follow.
      const keep = (name: string, bytes: Buffer) => { if (!isPages(name)) preloadImage(this.file(name), bytes); };
      if (pageBytes <= BACKGROUND_VERIFY_FROM) verifyManifest(dir, m, undefined, keep);
      else {
        verifyManifest(dir, m, (n) => !isPages(n), keep);
        this.verifying = new BackgroundVerify(dir, m, isPages);
      }
    }
  }

  file(name: string): string { return path.join(this.dir, name); }

  /** Forget images read for the checksum check and not read since. */
  close(): void { dropPreloaded(this.dir); }

  /** The single entry of an image that must be there: one(IMG.CORE, tid). */
  one<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Message<EntryOf<K>> {
    const file = this.file(imageFileName(kind, ...args));
    const m = readOne(file, entryMessage(kind), { required: true, kind });
    if (!m) throw new ImageError(file, 'empty image');
    return m;
  }

  /** Every entry of an image, none when it is absent. */
  all<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Entry<EntryOf<K>>[] {
    const name = imageFileName(kind, ...args);
    let l = this.cache.get(name);
    if (!l) {
      l = readImage(this.file(name), { kind });
      this.cache.set(name, l);
    }
    const msg = entryMessage(kind);
    return l.map((e) => ({ entry: messageOf(e, msg, this.file(name)), extra: e.extra }));
  }

  required<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Entry<EntryOf<K>>[] {
    const file = this.file(imageFileName(kind, ...args));
    if (!fs.existsSync(file)) throw new ImageError(file, 'missing');
    return this.all(kind, ...args);
  }

  /** Content of a shared memory object, or undefined when nothing of it was saved. */
  shmemPagemap(shmid: number | bigint): { runs: PageSource[]; pagesPath: string } | undefined {
    if (!fs.existsSync(this.file(imageFileName(IMG.SHMEM_PAGEMAP, shmid)))) return undefined;
    return this.pagemap(shmid, true);
  }

  /** Pagemap runs with their offsets in pages-N.img, checked against its size. */
  pagemap(pid: number | bigint, shmem = false): { runs: PageSource[]; pagesPath: string } {
    const name = shmem ? imageFileName(IMG.SHMEM_PAGEMAP, pid) : imageFileName(IMG.PAGEMAP, pid);
    if (!fs.existsSync(this.file(name))) throw new ImageError(this.file(name), 'missing');
    const r = new PagemapReader(this.dir, pid, { shmem });
    const runs = r.runs.map((x) => ({ vaddr: x.vaddr, nrPages: x.nrPages, flags: x.flags, offset: x.pagesOffset >= 0 ? x.pagesOffset : undefined }));
    if (r.pagesBytes > 0 && !(fs.existsSync(r.pagesPath) && pagesInfo(r.pagesPath).encoded)) {
      let size = -1;
      try { size = fs.statSync(r.pagesPath).size; } catch { /* missing */ }
      if (size < 0) throw new ImageError(r.pagesPath, 'missing');
      if (size < r.pagesBytes) throw new ImageError(r.pagesPath, `truncated: ${size} bytes, the pagemap needs ${r.pagesBytes}`);
    }
    return { runs, pagesPath: r.pagesPath };
  }
}
