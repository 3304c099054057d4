// Shared memory objects: MAP_SHARED anonymous regions and memfds. Their content is saved
// once per object (pagemap-shmem-<shmid>.img + pages), whichever tasks map it, and on
// restore the object is made once in criu-ts and pulled into every task that maps it,
// so that a write by one is seen by the others.
import fs from 'node:fs';
import { lseek, SEEK, SysError, mmapSharedAnon, mmapSharedFd, munmap, memfdCreate, MFD, fcntl, F, O } from '../../kernel/index.ts';
import type { Message, PageSink, PageSource } from '../types.ts';
import { PE, VMA, hugePageBytes } from './layout.ts';
import { PagesStream } from '../../images/index.ts';

const PAGE = 4096;
const CHUNK = 4 << 20;

/** Data ranges of a shmem file (SEEK_DATA/SEEK_HOLE), page aligned. */
function dataRanges(fd: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let off = 0;
  while (off < size) {
    let d: number;
    try {
      d = lseek(fd, off, SEEK.DATA);
    } catch (e) {
      if (e instanceof SysError && e.code === 'ENXIO') break;
      throw e;
    }
    let h: number;
    try {
      h = lseek(fd, d, SEEK.HOLE);
    } catch {
      h = size;
    }
    const start = Math.floor(d / PAGE) * PAGE,
      end = Math.min(Math.ceil(h / PAGE) * PAGE, Math.ceil(size / PAGE) * PAGE);
    if (end > start) out.push([start, end]);
    off = h > d ? h : d + PAGE;
  }
  return out;
}

/** Save the content of the shmem object reachable at `path` (a map_files or fd link). */
export function dumpShmemContent(path: string, sink: PageSink): number {
  const fd = fs.openSync(path, O.RDONLY);
  let pages = 0;
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const [start, end] of dataRanges(fd, size)) {
      sink.addRun(BigInt(start), (end - start) / PAGE, PE.PRESENT);
      pages += (end - start) / PAGE;
      for (let off = start; off < end; off += CHUNK) {
        const n = Math.min(CHUNK, end - off);
        const b = buf.subarray(0, n);
        b.fill(0); // past EOF inside the last page
        fs.readSync(fd, b, 0, n, off);
        sink.writePages(b);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return pages;
}

export interface ShmemSource {
  runs: PageSource[];
  pagesPath: string;
  key?: Buffer;
}

/**
 * Write the saved pages into the object `fd`. hugetlbfs has no write(): a hugetlb object is
 * mapped in criu-ts (`mapped`: its size) and written through /proc/self/mem instead.
 */
function fill(fd: number, src: ShmemSource | undefined, mapped?: bigint): void {
  if (!src) return;
  const pages = new PagesStream(src.pagesPath, src.key);
  const addr = mapped !== undefined ? mmapSharedFd(fd, mapped) : undefined;
  const mem = addr !== undefined ? fs.openSync('/proc/self/mem', 'r+') : undefined;
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const r of src.runs) {
      if (r.offset === undefined) continue;
      pages.skipTo(r.offset, buf);
      const total = r.nrPages * PAGE;
      for (let done = 0; done < total; done += CHUNK) {
        const n = Math.min(CHUNK, total - done);
        pages.readInto(buf.subarray(0, n));
        const off = Number(r.vaddr) + done;
        if (addr !== undefined && mapped !== undefined) {
          if (BigInt(off + n) > mapped) throw new Error(`shared memory pages at ${off} are past its size ${mapped}`);
          fs.writeSync(mem!, buf, 0, n, Number(addr) + off);
        } else fs.writeSync(fd, buf, 0, n, off);
      }
    }
  } finally {
    pages.close();
    if (mem !== undefined) fs.closeSync(mem);
    if (addr !== undefined && mapped !== undefined) munmap(addr, mapped);
  }
}

/** The saved content of a shared memory object of `size` bytes (zeros where nothing was saved). */
export function shmemContent(src: ShmemSource | undefined, size: number): Buffer {
  const fd = memfdCreate('criu-ts-content', MFD.CLOEXEC);
  try {
    fs.ftruncateSync(fd, size);
    fill(fd, src);
    const b = Buffer.alloc(size);
    if (size) fs.readSync(fd, b, 0, size, 0);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

const roundUp = (n: bigint, to: number): bigint => ((n + BigInt(to) - 1n) / BigInt(to)) * BigInt(to);

/** The shmem objects of a restore, made in criu-ts on first use and kept open until the end. */
export class ShmemObjects {
  private fds = new Map<string, number>();
  private seals: Array<[number, number]> = [];

  /**
   * A MAP_SHARED anonymous object (shows as /dev/zero (deleted), like the original), or with
   * `huge` (MAP_HUGETLB and its size bits) a hugetlb one (/anon_hugepage (deleted)).
   */
  anon(shmid: bigint, size: bigint, content: () => ShmemSource | undefined, huge = 0): number {
    const key = `anon:${shmid}`;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      const hugeBytes = hugePageBytes(huge);
      const len = hugeBytes ? roundUp(size, hugeBytes) : size;
      const addr = mmapSharedAnon(len, huge);
      try {
        fd = fs.openSync(`/proc/self/map_files/${addr.toString(16)}-${(addr + len).toString(16)}`, O.RDWR | O.CLOEXEC);
      } finally {
        munmap(addr, len);
      }
      fill(fd, content(), hugeBytes ? len : undefined);
      this.fds.set(key, fd);
    }
    return fd;
  }

  /** A memfd with its name, size, mode, owner and content; seals are applied by sealAll, after every mapping exists. */
  memfd(
    inodeId: bigint,
    name: string,
    size: bigint,
    seals: number,
    content: () => ShmemSource | undefined,
    attrs?: { mode?: number; uid?: number; gid?: number; hugetlb?: number },
  ): number {
    const key = `memfd:${inodeId}`;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      const hugetlb = attrs?.hugetlb ?? 0;
      fd = memfdCreate(name.replace(/^memfd:/, ''), MFD.CLOEXEC | (seals ? MFD.ALLOW_SEALING : 0) | hugetlb);
      fs.ftruncateSync(fd, Number(size));
      if (attrs?.mode !== undefined) fs.fchmodSync(fd, attrs.mode);
      if (attrs?.uid !== undefined && attrs.gid !== undefined) fs.fchownSync(fd, attrs.uid, attrs.gid);
      fill(fd, content(), attrs?.hugetlb ? size : undefined);
      // Pages are written whole: a size within the last one is set again.
      if (!hugetlb) fs.ftruncateSync(fd, Number(size));
      this.fds.set(key, fd);
      if (seals) this.seals.push([fd, seals]);
    }
    return fd;
  }

  sealAll(): void {
    for (const [fd, seals] of this.seals) fcntl(fd, F.ADD_SEALS, seals);
    this.seals = [];
  }

  close(): void {
    for (const fd of this.fds.values()) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
    this.fds.clear();
  }
}

/** The size of each shared anonymous object: the furthest any of the tasks maps it. */
export function shmemSizes(mms: Message<'mm_entry'>[]): Map<bigint, bigint> {
  const sizes = new Map<bigint, bigint>();
  for (const mm of mms)
    for (const v of mm.vmas) {
      if (!(v.status & VMA.ANON_SHARED)) continue;
      const end = v.pgoff + v.end - v.start;
      if ((sizes.get(v.shmid) ?? 0n) < end) sizes.set(v.shmid, end);
    }
  return sizes;
}

export { pullFd, openPulled } from '../../compel/open.ts';
