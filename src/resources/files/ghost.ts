// Deleted files still open, mapped or used as a working directory (CRIU's ghost files): the
// inode's content goes to ghost-file-N.img and remap-fpath.img points the file's entry at it.
// A restore makes the ghost again under a temporary name next to the old one, every user
// opens or maps it there, and the name is removed once the tasks hold it.
import fs from 'node:fs';
import { mknodat, AT_FDCWD, O } from '../../kernel/index.ts';
import { IMG, type AddArgs } from '../../images/index.ts';
import { S_IFMT, S_IFREG, S_IFDIR, S_IFIFO } from './types.ts';
import type { Message, MessageInput } from '../types.ts';

/** CRIU's default --ghost-limit: 1 MiB of the file's blocks. */
export const GHOST_LIMIT = 1 << 20;
const REMAP_GHOST = 1;
const DELETED = ' (deleted)';

/** The name a deleted file had: the link without the kernel's " (deleted)". */
export function deletedName(link: string): string | undefined {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : undefined;
}

export type AddImageEntry = <K extends typeof IMG.GHOST_FILE | typeof IMG.REMAP_FPATH>(kind: K, ...a: AddArgs<K>) => void;

/** The ghost files of one dump: each inode saved once, whatever number of entries use it. */
export class GhostDump {
  private byInode = new Map<string, number>();
  private next = 1;
  private readonly add: AddImageEntry;
  private readonly limit: number;
  constructor(add: AddImageEntry, limit = GHOST_LIMIT) { this.add = add; this.limit = limit; }

  /**
   * Save the deleted file that `source` (/proc/PID/fd/N, map_files or cwd) leads to, and
   * remap the file entry `id` to it. `name` is the file's old path, for messages.
   */
  remap(id: number, source: string, name: string): void {
    const st = fs.statSync(source, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    let ghostId = this.byInode.get(key);
    if (ghostId === undefined) {
      ghostId = this.next++;
      this.save(ghostId, source, name, st);
      this.byInode.set(key, ghostId);
    }
    this.add(IMG.REMAP_FPATH, { orig_id: id, remap_id: ghostId, remap_type: REMAP_GHOST });
  }

  private save(ghostId: number, source: string, name: string, st: fs.BigIntStats): void {
    const fmt = Number(st.mode) & S_IFMT;
    if (fmt !== S_IFREG && fmt !== S_IFDIR && fmt !== S_IFIFO) {
      throw new Error(`the deleted file ${name} is of a kind that cannot be saved (mode 0${st.mode.toString(8)}); not supported yet`);
    }
    const usage = Number(st.blocks) * 512;
    if (fmt === S_IFREG && (usage > this.limit || Number(st.size) > Math.max(this.limit, 64 << 20))) {
      throw new Error(`the deleted file ${name} holds ${Math.max(usage, Number(st.size))} bytes, more than the ghost limit of ${this.limit} (--ghost-limit)`);
    }
    const tv = (ns: bigint): MessageInput<'timeval'> => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });
    const entry: MessageInput<'ghost_file_entry'> = {
      uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode), dev: Number(st.dev), ino: st.ino,
      atim: tv(st.atimeNs), mtim: tv(st.mtimeNs), size: st.size,
    };
    this.add(IMG.GHOST_FILE, ghostId, entry, fmt === S_IFREG ? readWhole(source, Number(st.size)) : undefined);
  }
}

function readWhole(source: string, size: number): Buffer {
  const fd = fs.openSync(source, O.RDONLY | O.CLOEXEC);
  try {
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally { fs.closeSync(fd); }
}

/** A ghost file as read back: its entry, and its content as (offset, bytes) pieces. */
export interface GhostImage {
  entry: Message<'ghost_file_entry'>;
  pieces: Array<{ off: number; data: Buffer }>;
}

/** The ghost files of one restore, made on first use and unlinked by `unlinkAll`. */
export class GhostRestore {
  private remaps = new Map<number, number>();
  private made = new Map<number, string>();
  private readonly image: (ghostId: number) => GhostImage;
  constructor(remaps: Array<Message<'remap_file_path_entry'>>, image: (ghostId: number) => GhostImage) {
    this.image = image;
    for (const r of remaps) {
      if ((r.remap_type ?? 0) !== REMAP_GHOST) throw new Error(`remap-fpath.img: file ${r.orig_id} is remapped by type ${r.remap_type ?? 0}; not supported yet`);
      this.remaps.set(r.orig_id, r.remap_id);
    }
  }

  /** The path to open for the file entry `id` whose path was `name`. */
  path(id: number, name: string): string {
    const ghostId = this.remaps.get(id);
    if (ghostId === undefined) return name;
    let p = this.made.get(ghostId);
    if (p === undefined) {
      p = `${name}.cr.${ghostId.toString(16)}.ghost`;
      this.create(p, this.image(ghostId));
      this.made.set(ghostId, p);
    }
    return p;
  }

  private create(p: string, g: GhostImage): void {
    const e = g.entry;
    const fmt = e.mode & S_IFMT;
    if (fmt === S_IFDIR) fs.mkdirSync(p, e.mode & 0o7777);
    else if (fmt === S_IFIFO) mknodat(AT_FDCWD, p, e.mode);
    else if (fmt === S_IFREG) {
      const fd = fs.openSync(p, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, e.mode & 0o7777);
      try {
        for (const { off, data } of g.pieces) fs.writeSync(fd, data, 0, data.length, off);
        if (e.size !== undefined) fs.ftruncateSync(fd, Number(e.size));
      } finally { fs.closeSync(fd); }
    } else throw new Error(`ghost file for ${p}: mode 0${e.mode.toString(8)} is not supported yet`);
    fs.chmodSync(p, e.mode & 0o7777);
    fs.lchownSync(p, e.uid, e.gid);
    const sec = (t: Message<'timeval'> | undefined): number | undefined => t === undefined ? undefined : Number(t.tv_sec) + Number(t.tv_usec) / 1e6;
    const at = sec(e.atim), mt = sec(e.mtim);
    if (at !== undefined && mt !== undefined) fs.utimesSync(p, at, mt);
  }

  /** Remove every ghost's name: the tasks that use them keep them open or mapped. */
  unlinkAll(): void {
    for (const p of this.made.values()) {
      try { fs.statSync(p).isDirectory() ? fs.rmdirSync(p) : fs.unlinkSync(p); } catch { /* gone already */ }
    }
    this.made.clear();
  }
}
