// The image files of one dump being written: every writer goes through here so that a
// failed dump can remove exactly the files it created.
import fs from 'node:fs';
import path from 'node:path';
import { ImageWriter, PagemapWriter, type MessageName } from '../images/index.ts';
import type { Msg } from '../resources/types.ts';

export class ImageSet {
  readonly dir: string;
  private readonly created: string[] = [];
  private readonly open = new Map<string, ImageWriter>();
  private pagesId = 0;

  constructor(dir: string) { this.dir = dir; }

  private track(file: string): void {
    if (!fs.existsSync(file)) this.created.push(file);
  }

  /** Append an entry (and its extra payload) to an image, opening it on first use. */
  add(image: string, msg: MessageName, entry: Msg, extra?: Buffer): void {
    let w = this.open.get(image);
    if (!w) {
      const file = path.join(this.dir, image);
      this.track(file);
      w = new ImageWriter(file);
      this.open.set(image, w);
    }
    w.write(msg, entry as never);
    if (extra) w.writeRaw(extra);
  }

  /** An image with a header and no entries. */
  empty(image: string): void {
    const file = path.join(this.dir, image);
    this.track(file);
    new ImageWriter(file).close();
  }

  /** A whole single-entry image. */
  one(image: string, msg: MessageName, entry: Msg): void {
    this.add(image, msg, entry);
    this.closeImage(image);
  }

  closeImage(image: string): void {
    this.open.get(image)?.close();
    this.open.delete(image);
  }

  pagemap(pid: number): PagemapWriter {
    const id = ++this.pagesId;
    this.track(path.join(this.dir, `pagemap-${pid}.img`));
    this.track(path.join(this.dir, `pages-${id}.img`));
    return new PagemapWriter(this.dir, pid, id);
  }

  shmemPagemap(shmid: number): PagemapWriter {
    const id = ++this.pagesId;
    this.track(path.join(this.dir, `pagemap-shmem-${shmid}.img`));
    this.track(path.join(this.dir, `pages-${id}.img`));
    return new PagemapWriter(this.dir, shmid, id, { shmem: true });
  }

  closeAll(): void {
    for (const w of this.open.values()) w.close();
    this.open.clear();
  }

  /** Remove what this dump wrote: a failed dump leaves no partial images behind. */
  discard(): void {
    for (const w of this.open.values()) { try { w.close(); } catch { /* already failing */ } }
    this.open.clear();
    for (const f of this.created) { try { fs.unlinkSync(f); } catch { /* never created */ } }
  }
}
