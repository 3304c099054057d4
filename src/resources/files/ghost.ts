// Deleted files still open, mapped or used as a working directory (CRIU's ghost files): the
// inode's content goes to ghost-file-N.img and remap-fpath.img points the file's entry at it.
// A restore makes the ghost again under a temporary name next to the old one, every user
// opens or maps it there, and the name is removed once the tasks hold it.
import fs from 'node:fs';
import path from 'node:path';
import { mknodat, linkFollow, lseek, readlinkFd, withMappedOwner, AT_FDCWD, O, SEEK, SysError } from '../../kernel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import { S_IFMT, S_IFREG, S_IFDIR, S_IFIFO, S_IFCHR, S_IFBLK } from './types.ts';

const S_IFLNK = 0o120000;
import type { Message, MessageInput } from '../types.ts';

/** CRIU's default --ghost-limit: 1 MiB of the file's blocks. */
export const GHOST_LIMIT = 1 << 20;
const REMAP_LINKED = 0,
  REMAP_GHOST = 1,
  REMAP_PROCFS = 2;
const PROC_SUPER_MAGIC = 0x9fa0;
const DELETED = ' (deleted)';

/** The name a deleted file had: the link without the kernel's " (deleted)". */
export function deletedName(link: string): string | undefined {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : undefined;
}

/**
 * The pid of a process gone since whose /proc/PID (or a file under it) `source` leads to, by
 * the name `name` in its task's namespaces: the kernel called it deleted (`deleted`), or the
 * name leads nowhere from the task's root (`root`, /proc/TASK/root), where its own procfs shows
 * its PID namespace's pids. As CRIU, any file under /proc/PID is remapped so.
 */
export function deadProcPid(source: string, name: string, deleted: boolean, root = ''): number | undefined {
  const m = /^\/proc\/(\d+)(\/|$)/.exec(name);
  if (!m || fs.statfsSync(source).type !== PROC_SUPER_MAGIC) return undefined;
  return deleted || !fs.existsSync(root + name) ? Number(m[1]) : undefined;
}

/** The root of the task behind `source` (/proc/PID/...) as criu-ts reaches it: '' when it is in criu-ts's mount namespace. */
function taskRoot(source: string): string {
  const m = /^\/proc\/(\d+)\//.exec(source);
  if (!m || fs.readlinkSync(`/proc/${m[1]}/ns/mnt`) === fs.readlinkSync('/proc/self/ns/mnt')) return '';
  return `/proc/${m[1]}/root`;
}

/** Where a dump's ghost files go: remap-fpath.img entries, and ghost-file-N.img in chunks. */
export interface GhostSink {
  remap(entry: MessageInput<'remap_file_path_entry'>): void;
  /**
   * A REG entry for the link made for a file with other names (--link-remap), `path` in the
   * task's mount namespace, `at` as criu-ts reaches it: removed there if the dump fails.
   */
  linked(path: string, at: string, flags: number, mntId?: number): number;
  /**
   * The mount the file at `source` is on, and the root (/proc/T/root, "" for criu-ts's own)
   * of a task whose mount namespace has it, which may not be the holder's (an fd inherited
   * across unshare): the link must be made on that mount.
   */
  mountOf?(source: string): { root: string; mntId: number } | undefined;
  ghost(id: number, entry: MessageInput<'ghost_file_entry'>, chunks: Iterable<{ off: bigint; data: Buffer }>): void;
}

/** The ghost files of one dump: each inode saved once, whatever number of entries use it. */
export class GhostDump {
  private byInode = new Map<string, number>();
  private next = 1;
  private readonly sink: GhostSink;
  private readonly limit: number;
  private readonly linkRemap: boolean;
  private links = new Map<string, number>();
  constructor(sink: GhostSink, opts: { limit?: number; linkRemap?: boolean } = {}) {
    this.sink = sink;
    this.limit = opts.limit ?? GHOST_LIMIT;
    this.linkRemap = opts.linkRemap ?? false;
  }

  /**
   * Save the deleted file that `source` (/proc/PID/fd/N, map_files or cwd) leads to, and
   * remap the file entry `id` to it. `name` is the file's old path, for messages.
   */
  remap(id: number, source: string, name: string): void {
    // /proc/PID of a process gone since (a cwd or an fd): CRIU's procfs remap names the pid,
    // and the restore makes a process stand at it while the tasks open the directory.
    const dead = deadProcPid(source, name, true);
    if (dead !== undefined) {
      this.deadPid(id, dead);
      return;
    }
    const st = fs.statSync(source, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 0n && !st.isDirectory()) {
      this.remapLinked(id, source, name, key, st);
      return;
    }
    let ghostId = this.byInode.get(key);
    if (ghostId === undefined) {
      ghostId = this.next++;
      this.save(ghostId, source, name, st);
      this.byInode.set(key, ghostId);
    }
    this.sink.remap({ orig_id: id, remap_id: ghostId, remap_type: REMAP_GHOST });
  }

  /** The file entry `id` is under /proc/PID of a process gone since: a process stands at PID while the restore opens it. */
  deadPid(id: number, pid: number): void {
    this.sink.remap({ orig_id: id, remap_id: pid, remap_type: REMAP_PROCFS });
  }

  /**
   * The file lost the name it was opened by but has others (hard links): it must stay that
   * inode, so it gets a link of its own next to the old name, link_remap.N, which the
   * restore opens and removes (CRIU's linked remap, with --link-remap).
   */
  private remapLinked(id: number, source: string, name: string, key: string, st: fs.BigIntStats): void {
    if (!this.linkRemap)
      throw new NotSupportedError(`${name} was deleted but the file has other names: --link-remap saves it by a temporary link`);
    let linkId = this.links.get(key);
    if (linkId === undefined) {
      // Made in the task's mount namespace, which may not be criu-ts's; in the closest
      // directory of the old name that still exists (its own may be removed too), as CRIU.
      const on = this.sink.mountOf?.(source);
      const root = on?.root ?? taskRoot(source);
      let dir = path.dirname(name);
      let link = path.join(dir, `link_remap.${id}`);
      for (;;) {
        try {
          // On a file system of a user namespace, linked as the file's owner (CRIU's linkat_hard).
          withMappedOwner(Number(st.uid), Number(st.gid), () => linkFollow(source, root + link));
          break;
        } catch (e) {
          if (!(e instanceof SysError && e.code === 'ENOENT') || dir === '/') throw e;
          dir = path.dirname(dir);
          link = path.join(dir, `link_remap.${id}`);
        }
      }
      linkId = this.sink.linked(link, root + link, O.RDONLY, on?.mntId);
      this.links.set(key, linkId);
    }
    this.sink.remap({ orig_id: id, remap_id: linkId, remap_type: REMAP_LINKED });
  }

  private save(ghostId: number, source: string, name: string, st: fs.BigIntStats): void {
    const fmt = Number(st.mode) & S_IFMT;
    if (![S_IFREG, S_IFDIR, S_IFIFO, S_IFCHR, S_IFBLK, S_IFLNK].includes(fmt)) {
      throw new NotSupportedError(`the deleted file ${name} is of a kind that cannot be saved (mode 0${st.mode.toString(8)})`);
    }
    const usage = Number(st.blocks) * 512;
    // As CRIU, what counts is the space the file takes: its holes are not saved.
    if (fmt === S_IFREG && usage > this.limit) {
      throw new CriuError(`the deleted file ${name} takes ${usage} bytes, more than the ghost limit of ${this.limit} (--ghost-limit)`);
    }
    const tv = (ns: bigint): MessageInput<'timeval'> => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });
    const entry: MessageInput<'ghost_file_entry'> = {
      uid: Number(st.uid),
      gid: Number(st.gid),
      mode: Number(st.mode),
      dev: Number(st.dev),
      ino: st.ino,
      atim: tv(st.atimeNs),
      mtim: tv(st.mtimeNs),
      size: st.size,
      ...(fmt === S_IFCHR || fmt === S_IFBLK ? { rdev: Number(st.rdev) } : {}),
      ...(fmt === S_IFLNK ? { symlnk_target: symlinkTarget(source) } : {}),
    };
    if (fmt !== S_IFREG) {
      this.sink.ghost(ghostId, entry, []);
      return;
    }
    const fd = fs.openSync(source, O.RDONLY | O.CLOEXEC);
    try {
      this.sink.ghost(ghostId, entry, dataExtents(fd, Number(st.size)));
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** What the symlink `source` leads to (an fd of it, O_PATH|O_NOFOLLOW) points at. */
function symlinkTarget(source: string): string {
  // Through the magic link, O_PATH lands on the symlink itself, not on what it points at.
  const fd = fs.openSync(source, O.PATH | O.CLOEXEC);
  try {
    return readlinkFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The kernel's s_dev (MAJOR << 20 | MINOR) of a stat's st_dev (glibc's encoding). */
export function kernelDev(dev: bigint): number {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return ((major << 20) | minor) >>> 0;
}

const PIECE = 1 << 20;

/** The file's data, skipping holes (SEEK_DATA/SEEK_HOLE), in pieces of at most PIECE bytes. */
function* dataExtents(fd: number, size: number): Generator<{ off: bigint; data: Buffer }> {
  let pos = 0;
  while (pos < size) {
    const start = seek(fd, pos, SEEK.DATA);
    if (start === undefined || start >= size) return;
    const end = Math.min(seek(fd, start, SEEK.HOLE) ?? size, size);
    for (let off = start; off < end; off += PIECE) {
      const data = Buffer.alloc(Math.min(PIECE, end - off));
      let got = 0;
      while (got < data.length) {
        const n = fs.readSync(fd, data, got, data.length - got, off + got);
        if (n === 0) break;
        got += n;
      }
      yield { off: BigInt(off), data: data.subarray(0, got) };
    }
    pos = end;
  }
}

/** lseek's answer, or undefined past the last data (ENXIO). */
function seek(fd: number, off: number, whence: number): number | undefined {
  try {
    return lseek(fd, off, whence);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENXIO') return undefined;
    throw e;
  }
}

/** A ghost file as read back: its entry, and its content as (offset, bytes) pieces. */
export interface GhostImage {
  entry: Message<'ghost_file_entry'>;
  pieces: Array<{ off: number; data: Buffer }>;
}

/** The ghost files of one restore, made on first use and unlinked by `unlinkAll`. */
export class GhostRestore {
  private remaps = new Map<number, number>();
  private linked = new Map<number, number>();
  private made = new Map<number, string>();
  /** Where each ghost was made, as criu-ts names it. */
  private placed = new Map<number, string>();
  private links = new Set<string>();
  /** The own name linked to its ghost, by file id. */
  private readonly linkOf = new Map<number, string>();
  /** The path each file id with a ghost is opened by: its own name linked to the ghost, or the ghost's. */
  private named = new Map<number, string>();
  /** Files that are /proc/PID of a dead process, by file id: the pid. */
  private procfs = new Map<number, number>();
  /** Directories made for ghosts whose parent was removed too, deepest first. */
  private parents: string[] = [];
  private readonly image: (ghostId: number) => GhostImage;
  private readonly regName: (id: number) => string;
  private readonly where: (id: number, p: string) => string;
  private readonly across: (a: number, pa: string, b: number, pb: string) => [string, string] | undefined;
  /** The file id each ghost was made for. */
  private owner = new Map<number, number>();
  /**
   * `where`: the path criu-ts makes the ghost of file `id` at, from its path in the tree (its
   * mount namespace's root joined). `across`: for files `a` and `b` on two mounts of one file
   * system, their paths through one mount that has both (a hard link cannot cross mounts).
   */
  constructor(
    remaps: Array<Message<'remap_file_path_entry'>>,
    image: (ghostId: number) => GhostImage,
    regName: (id: number) => string,
    where: (id: number, p: string) => string = (_id, p) => p,
    across: (a: number, pa: string, b: number, pb: string) => [string, string] | undefined = () => undefined,
  ) {
    this.image = image;
    this.regName = regName;
    this.where = where;
    this.across = across;
    for (const r of remaps) {
      const type = r.remap_type ?? REMAP_LINKED;
      if (type === REMAP_GHOST) this.remaps.set(r.orig_id, r.remap_id);
      else if (type === REMAP_LINKED) this.linked.set(r.orig_id, r.remap_id);
      else if (type === REMAP_PROCFS) this.procfs.set(r.orig_id, r.remap_id);
      else throw new NotSupportedError(`remap-fpath.img: file ${r.orig_id} is remapped by type ${type}`);
    }
  }

  /**
   * The file entry whose ghost is the inode (ino, on the device the kernel calls `sdev`), for
   * what names an inode rather than a file (inotify watches); undefined when no ghost is it.
   */
  fileOfInode(sdev: number, ino: bigint): number | undefined {
    for (const [id, ghostId] of this.remaps) {
      const e = this.image(ghostId).entry;
      if (BigInt(e.ino ?? 0) === ino && (e.dev === sdev || kernelDev(BigInt(e.dev ?? 0)) === sdev)) return id;
    }
    return undefined;
  }

  /** The file ids whose ghost files are made (on the mounts that must be writable for it). */
  ghostFiles(): number[] {
    return [...this.remaps.keys()];
  }

  /** Pids of dead processes whose /proc/PID a task has open: something must stand at each while it is opened. */
  deadPids(): number[] {
    return [...new Set(this.procfs.values())];
  }

  /** The path to open for the file entry `id` whose path was `name`. */
  path(id: number, name: string): string {
    const linkId = this.linked.get(id);
    if (linkId !== undefined) {
      const link = this.regName(linkId);
      // Not there in the file's namespace (made on a mount of another): linked to its own name
      // through a mount that has both, as CRIU.
      const pair = fs.existsSync(this.where(id, link)) ? undefined : this.across(linkId, link, id, name);
      if (pair && this.linkName(pair, id, name)) return name;
      this.links.add(this.where(linkId, link));
      return link;
    }
    const ghostId = this.remaps.get(id);
    if (ghostId === undefined) return name;
    const done = this.named.get(id);
    if (done !== undefined) return done;
    let p = this.made.get(ghostId);
    if (p === undefined) {
      const g = this.image(ghostId);
      // A directory comes back at its own path (as in CRIU): nothing else can be there, since
      // it was removed empty, and the task sees the same name for its cwd.
      p = (g.entry.mode & S_IFMT) === S_IFDIR ? name : `${name}.cr.${ghostId.toString(16)}.ghost`;
      this.create(this.where(id, p), g);
      this.made.set(ghostId, p);
      this.placed.set(ghostId, this.where(id, p));
      this.owner.set(ghostId, id);
    }
    // The file is opened by its own name, linked to the ghost while the restore needs it, so
    // that the tasks see the name it had ("NAME (deleted)" in /proc/PID/fd and map_files), as
    // with CRIU; by the ghost's name when something else has taken that name since. A file
    // on another mount than the ghost's is linked through one mount that has both.
    if (p !== name) {
      if (this.linkGhost(ghostId, p, id, name)) {
        this.linkOf.set(id, this.where(id, name));
        p = name;
      }
    }
    this.named.set(id, p);
    return p;
  }

  /**
   * Link the ghost (at `p` as its owner names it) to file `id`'s own name: in the file's
   * namespace, else (the ghost is not there: made on a mount of another) through one mount
   * that has both. False when the name is taken.
   */
  private linkGhost(ghostId: number, p: string, id: number, name: string): boolean {
    try {
      return this.linkName([this.where(id, p), this.where(id, name)], id, name);
    } catch (e) {
      const owner = this.owner.get(ghostId)!;
      const code = (e as NodeJS.ErrnoException).code;
      const pair = owner !== id && (code === 'ENOENT' || code === 'EXDEV') ? this.across(owner, p, id, name) : undefined;
      if (!pair) throw e;
      return this.linkName(pair, id, name);
    }
  }

  /** Link `from` to `to` (file `id`'s own name): false when the name is taken. */
  private linkName([from, to]: [string, string], id: number, name: string): boolean {
    try {
      const st = fs.lstatSync(from);
      withMappedOwner(st.uid, st.gid, () => fs.linkSync(from, to));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      return false;
    }
    this.links.add(this.where(id, name));
    return true;
  }

  /** Made as its owner where criu-ts's own ids cannot own it (a file system of a user namespace). */
  private create(p: string, g: GhostImage): void {
    withMappedOwner(g.entry.uid, g.entry.gid, () => this.make(p, g));
  }

  private make(p: string, g: GhostImage): void {
    const e = g.entry;
    // A file or directory of a directory that was removed too: the missing parents are made
    // for it, and removed with it.
    const dir = path.dirname(p);
    if (!fs.existsSync(dir)) {
      const first = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (let d = dir; first && d.length >= first.length; d = path.dirname(d)) this.parents.push(d);
    }
    const fmt = e.mode & S_IFMT;
    if (fmt === S_IFDIR) fs.mkdirSync(p, e.mode & 0o7777);
    else if (fmt === S_IFIFO) mknodat(AT_FDCWD, p, e.mode);
    else if (fmt === S_IFCHR || fmt === S_IFBLK) mknodat(AT_FDCWD, p, e.mode, e.rdev ?? 0);
    else if (fmt === S_IFREG) {
      const fd = fs.openSync(p, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, e.mode & 0o7777);
      try {
        for (const { off, data } of g.pieces) fs.writeSync(fd, data, 0, data.length, off);
        if (e.size !== undefined) fs.ftruncateSync(fd, Number(e.size));
      } finally {
        fs.closeSync(fd);
      }
    } else if (fmt === S_IFLNK) {
      if (e.symlnk_target === undefined) throw new CriuError(`ghost file for ${p}: a symlink without its target (symlnk_target)`);
      fs.symlinkSync(e.symlnk_target, p);
    } else throw new NotSupportedError(`ghost file for ${p}: mode 0${e.mode.toString(8)}`);
    // chown clears set-user-ID and set-group-ID: the mode goes on after it (a symlink has none).
    fs.lchownSync(p, e.uid, e.gid);
    if (fmt !== S_IFLNK) fs.chmodSync(p, e.mode & 0o7777);
    const sec = (t: Message<'timeval'> | undefined): number | undefined =>
      t === undefined ? undefined : Number(t.tv_sec) + Number(t.tv_usec) / 1e6;
    const at = sec(e.atim),
      mt = sec(e.mtim);
    if (at !== undefined && mt !== undefined) fs.lutimesSync(p, at, mt);
  }

  /** Remove the names of the ghosts of the files `ids` early (before their mount is made read-only). */
  unlinkFiles(ids: number[]): void {
    for (const id of ids) {
      const ghostId = this.remaps.get(id);
      const p = ghostId === undefined ? undefined : this.placed.get(ghostId);
      if (p !== undefined) {
        fs.statSync(p).isDirectory() ? fs.rmdirSync(p) : fs.unlinkSync(p);
        this.placed.delete(ghostId!);
      }
      // Then the file's own name it was opened by, last (see unlinkAll).
      const l = this.linkOf.get(id);
      if (l !== undefined && this.links.delete(l)) fs.unlinkSync(l);
    }
  }

  /** Remove every ghost's name: the tasks that use them keep them open or mapped. */
  unlinkAll(): void {
    for (const p of this.placed.values()) {
      try {
        fs.lstatSync(p).isDirectory() ? fs.rmdirSync(p) : fs.unlinkSync(p);
      } catch {
        /* gone already */
      }
    }
    this.made.clear();
    this.placed.clear();
    this.named.clear();
    // Then the names the tasks opened the files by, before the directories made for the ghosts
    // that hold them. The last name of an inode to go must be the one its open files use: a
    // last name removed from an unused dentry drops the inode's inotify watches (IN_IGNORED).
    for (const l of this.links) {
      try {
        fs.unlinkSync(l);
      } catch {
        /* gone already */
      }
    }
    this.links.clear();
    this.linkOf.clear();
    for (const d of this.parents) {
      try {
        fs.rmdirSync(d);
      } catch {
        /* gone already */
      }
    }
    this.parents = [];
  }
}
