// Reading a dump for restore: every image the plan needs, with one-line errors that name
// the file. Optional images that are absent read as empty, as in CRIU.
import fs from 'node:fs';
import path from 'node:path';
import {
  readImage,
  readOne,
  messageOf,
  PagemapReader,
  ImageError,
  readManifest,
  verifyManifest,
  BackgroundVerify,
  keyId,
  pagesInfo,
  preloadImage,
  dropPreloaded,
  authenticateManifest,
  openSealed,
  readImageFile,
  sealDir,
  MANIFEST,
  PAGE_SERVER_MANIFEST,
  PE_PARENT,
  IMG,
  entryMessage,
  imageFileName,
  type Manifest,
  type EntryKind,
  type EntryOf,
  type ImageArgs,
  type ImageKindId,
  type ImageEntry,
  type Message,
  type MessageName,
} from '../images/index.ts';
import { nodeCrypto } from '../lazy.ts';
import { CriuError } from '../errors.ts';
import type { PageSource } from '../resources/types.ts';
import { parentLayers, type PageLayer } from './parent-pages.ts';
import type { GhostImage } from '../resources/files/ghost.ts';

/** An image entry with the raw payload that follows it (pipe data...). */
export interface Entry<N extends MessageName> {
  entry: Message<N>;
  extra?: Buffer;
  /** The messages of a SysV message queue (ipcns-msg-N.img). */
  ipcMsgs?: ReadonlyArray<{ msg: Message<'ipc_msg'>; data: Buffer }>;
}

export interface DumpImagesOptions {
  /** Do not check the checksum manifest. */
  skipVerify?: boolean;
  /** Key of an encrypted dump (--encrypt). */
  key?: Buffer;
  /** Where warnings go (a check that is skipped). */
  warn?: (msg: string) => void;
}

const isPages = (n: string) => /^pages-\d+\.img$/.test(n);
const sha256 = (b: Buffer) => nodeCrypto().createHash('sha256').update(b).digest('hex');

/** Page data up to this size is verified before the restore starts, on this thread. */
const BACKGROUND_VERIFY_FROM = 32 << 20;

/**
 * A dump whose page data went to a page server lists those images in `pageServer`; the page
 * server's own manifest, next to the dump's, must list them too and is checked with it. With
 * --skip-verify (which warns) or --encrypt (refused at dump) nothing is merged.
 */
function withPageServerManifest(dir: string, m: Manifest | undefined, skip: boolean): Manifest | undefined {
  if (!m?.pageServer || skip) return m;
  const file = path.join(dir, PAGE_SERVER_MANIFEST);
  const ps = readManifest(dir, PAGE_SERVER_MANIFEST);
  if (!ps)
    throw new ImageError(
      file,
      "missing: the page data came from a page server that wrote no criu-ts manifest (CRIU's?), so it cannot be checked; restore with --skip-verify",
    );
  for (const name of m.pageServer.files)
    if (!ps.files[name]) throw new ImageError(file, `does not list ${name}, which the dump sent to the page server`);
  if (ps.digest !== m.digest) {
    verifyManifest(dir, ps);
    return m;
  }
  return { ...m, files: { ...ps.files, ...m.files } };
}

export class DumpImages {
  readonly dir: string;
  readonly key?: Buffer;
  /** Page data still being verified on another thread; join() before the tasks run. */
  verifying?: BackgroundVerify;
  /** Every image but the page data is sealed (an encrypted dump). */
  sealed = false;
  private cache = new Map<string, ImageEntry[]>();
  private mapped = new Map<string, Entry<MessageName>[]>();
  /**
   * A tree in a user namespace of its own: the ids criu-ts applies from outside, back from
   * the namespace's to criu-ts's (set before anything but the namespace plan is read).
   */
  ids?: <T>(message: string, entry: T, file: string) => T;

  private readonly opts: DumpImagesOptions;
  private readonly parents = new Map<string, DumpImages>();

  constructor(dir: string, opts: DumpImagesOptions = {}) {
    if (!fs.existsSync(dir)) throw new CriuError(`images directory ${dir} does not exist`);
    if (!fs.statSync(dir).isDirectory()) throw new CriuError(`${dir} is not a directory`);
    this.dir = dir;
    this.key = opts.key;
    this.opts = opts;
    const warn = opts.warn ?? (() => {});
    const m = withPageServerManifest(dir, readManifest(dir), !!opts.skipVerify || !!opts.key);
    if (!m) {
      // Only --skip-verify turns the check off: deleting the manifest must not.
      if (opts.key) throw new ImageError(this.file(MANIFEST), 'missing, in a restore with --encrypt; refused');
      if (!opts.skipVerify)
        throw new ImageError(
          this.file(MANIFEST),
          'missing: the images cannot be checked (a dump made by CRIU has none: restore it with --skip-verify)',
        );
      warn(`--skip-verify: the images are not checked (no ${MANIFEST})`);
      return;
    }
    if (m.sealed || m.pages?.encrypt) {
      if (!opts.key) throw new CriuError('this dump is encrypted; restore with --encrypt KEYFILE holding its key');
      if (m.pages?.keyId && keyId(opts.key) !== m.pages.keyId)
        throw new CriuError('the key given with --encrypt is not the key this dump was encrypted with');
    }
    if (opts.key) {
      authenticateManifest(dir, m, opts.key);
      if (opts.skipVerify) warn('--skip-verify does not apply to an encrypted dump: every image is checked');
      this.sealed = true;
      this.openSealed(m, opts.key);
      return;
    }
    if (opts.skipVerify) {
      warn(`--skip-verify: the images are not checked against ${MANIFEST}`);
      return;
    }
    // Before anything else reads the images, so that damage is reported by file, not as odd
    // behaviour. Page data, the bulk, is checked on another thread during the restore when
    // there is enough of it to pay for starting a thread.
    const pageBytes = Object.entries(m.files).reduce((s, [n, f]) => s + (isPages(n) ? f.size : 0), 0);
    // The images read for the check are kept for the readers that follow.
    const keep = (name: string, bytes: Buffer) => {
      if (!isPages(name)) preloadImage(this.file(name), bytes);
    };
    if (pageBytes <= BACKGROUND_VERIFY_FROM) verifyManifest(dir, m, undefined, keep);
    else {
      verifyManifest(dir, m, (n) => !isPages(n), keep);
      this.verifying = new BackgroundVerify(dir, m, isPages);
    }
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * An encrypted dump: each image is read once, its hash checked against the authenticated
   * manifest, decrypted and kept for the readers, which read nothing else from the directory
   * (sealDir). Page data stays on disk, checked here or on another thread, decrypted as read.
   */
  private openSealed(m: Manifest, key: Buffer): void {
    const pageBytes = Object.entries(m.files).reduce((s, [n, f]) => s + (isPages(n) ? f.size : 0), 0);
    for (const [name, want] of Object.entries(m.files)) {
      if (isPages(name)) continue;
      const file = this.file(name);
      let bytes: Buffer;
      try {
        bytes = readImageFile(file);
      } catch (e) {
        if (e instanceof ImageError && /missing/.test(e.message)) throw new ImageError(file, 'missing (listed in the checksum manifest)');
        throw e;
      }
      if (bytes.length !== want.size || sha256(bytes) !== want.sha256)
        throw new ImageError(file, 'does not match the authenticated manifest; refused');
      preloadImage(file, openSealed(key, file, bytes));
    }
    sealDir(this.dir);
    for (const name of Object.keys(m.files)) {
      if (isPages(name) && !pagesInfo(this.file(name)).encrypted)
        throw new ImageError(this.file(name), 'not encrypted, in a dump that is; refused');
    }
    if (pageBytes <= BACKGROUND_VERIFY_FROM) verifyManifest(this.dir, m, isPages);
    else this.verifying = new BackgroundVerify(this.dir, m, isPages);
  }

  /** Forget images read for the checksum check and not read since. */
  close(): void {
    dropPreloaded(this.dir);
  }

  /** The single entry of an image that must be there: one(IMG.CORE, tid). */
  one<K extends EntryKind>(kind: K, ...args: ImageArgs<K>): Message<EntryOf<K>> {
    const file = this.file(imageFileName(kind, ...args));
    const msg = entryMessage(kind);
    const m = readOne(file, msg, { required: true, kind });
    if (!m) throw new ImageError(file, 'empty image');
    return this.ids ? this.ids(msg, m, file) : m;
  }

  /** A ghost file (ghost-file-N.img): its entry and content, whole or in chunks. */
  ghost(id: number): GhostImage {
    const file = this.file(imageFileName(IMG.GHOST_FILE, id));
    const [head, ...rest] = readImage(file, { kind: IMG.GHOST_FILE, required: true });
    if (!head) throw new ImageError(file, 'empty image');
    const read = messageOf(head, 'ghost_file_entry', file);
    const entry = this.ids ? this.ids('ghost_file_entry', read, file) : read;
    if (!entry.chunks) return { entry, pieces: head.extra ? [{ off: 0, data: head.extra }] : [] };
    const pieces = rest.map((e) => ({ off: Number(messageOf(e, 'ghost_chunk_entry', file).off), data: e.extra ?? Buffer.alloc(0) }));
    return { entry, pieces };
  }

  /** A raw image's bytes (no magic: `ip addr save` output...), undefined when absent. */
  raw<K extends ImageKindId>(kind: K, ...args: ImageArgs<K>): Buffer | undefined {
    const file = this.file(imageFileName(kind, ...args));
    return fs.existsSync(file) ? readImageFile(file) : undefined;
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
    const done = this.mapped.get(name);
    if (done) return done as Entry<EntryOf<K>>[];
    const ids = this.ids;
    // A tcp-stream's two queues come back as one payload, in image order.
    const r = l.map((e) => {
      const entry = messageOf(e, msg, this.file(name));
      return {
        entry: ids ? ids(msg, entry, this.file(name)) : entry,
        extra: e.extra ?? (e.inq && e.outq ? Buffer.concat([e.inq, e.outq]) : undefined),
        ...(e.ipcMsgs ? { ipcMsgs: e.ipcMsgs } : {}),
      };
    });
    // Translated entries are kept: what a reader changes in them stays, as in the cache.
    if (ids) this.mapped.set(name, r as Entry<MessageName>[]);
    return r;
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

  /**
   * Task `vpid`'s pagemap, and where its PE_PARENT pages are in the parent dumps (checked,
   * as this dump is, with the same key and --skip-verify).
   */
  pagemapWithParents(vpid: number): { runs: PageSource[]; pagesPath: string; parents: PageLayer[] } {
    const pm = this.pagemap(vpid);
    const parents = pm.runs.some((r) => r.flags & PE_PARENT)
      ? parentLayers(this.dir, vpid, pm.runs, (d) => {
          let p = this.parents.get(d);
          if (!p) {
            try {
              p = new DumpImages(d, this.opts);
              p.verifying?.join();
            } catch (e) {
              // Its files have the same names as this dump's: the message says which dump.
              if (e instanceof ImageError) throw new ImageError(d, e.message);
              throw e;
            }
            this.parents.set(d, p);
          }
          return p;
        })
      : [];
    return { ...pm, parents };
  }

  /** Pagemap runs with their offsets in pages-N.img, checked against its size. */
  pagemap(pid: number | bigint, shmem = false): { runs: PageSource[]; pagesPath: string } {
    const name = shmem ? imageFileName(IMG.SHMEM_PAGEMAP, pid) : imageFileName(IMG.PAGEMAP, pid);
    if (!fs.existsSync(this.file(name))) throw new ImageError(this.file(name), 'missing');
    const r = new PagemapReader(this.dir, pid, { shmem });
    const runs = r.runs.map((x) => ({
      vaddr: x.vaddr,
      nrPages: x.nrPages,
      flags: x.flags,
      offset: x.pagesOffset >= 0 ? x.pagesOffset : undefined,
    }));
    if (r.pagesBytes > 0 && !(fs.existsSync(r.pagesPath) && pagesInfo(r.pagesPath).encoded)) {
      let size = -1;
      try {
        size = fs.statSync(r.pagesPath).size;
      } catch {
        /* missing */
      }
      if (size < 0) throw new ImageError(r.pagesPath, 'missing');
      if (size < r.pagesBytes) throw new ImageError(r.pagesPath, `truncated: ${size} bytes, the pagemap needs ${r.pagesBytes}`);
    }
    return { runs, pagesPath: r.pagesPath };
  }
}
