// Shared memory objects of a dump: each MAP_SHARED anonymous region and each memfd is saved
// once (pagemap-shmem-<shmid>.img), whichever tasks map it or hold it open.
import fs from 'node:fs';
import { fcntl, F, O, MFD } from '../kernel/index.ts';
import { closing, IMG } from '../images/index.ts';
import type { Vma } from '../proc/index.ts';
import { dumpShmemContent } from '../resources/mm/index.ts';
import { FD_TYPE, fown } from '../resources/files/index.ts';
import type { SharedObjects } from '../resources/types.ts';
import type { ImageSet } from './imgset.ts';
import type { DumpFileTable } from './filetable.ts';

const HUGETLBFS_MAGIC = 0x958458f6;

/** A memfd made with MFD_HUGETLB: its flag with the page size (MFD_HUGE_SHIFT 26), as CRIU saves it. */
function hugetlbOf(link: string): { hugetlb_flag?: number } {
  const sf = fs.statfsSync(link);
  if (sf.type !== HUGETLBFS_MAGIC) return {};
  return { hugetlb_flag: MFD.HUGETLB | (Math.log2(sf.bsize) << 26) };
}

export class DumpShared implements SharedObjects {
  private readonly imgs: ImageSet;
  private readonly files: DumpFileTable;
  private anonSeen = new Set<number>();
  private memfdInodes = new Map<number, number>();
  private memfdFiles = new Map<string, number>();
  private nextInode = 1;
  pages = 0;

  constructor(imgs: ImageSet, files: DumpFileTable) {
    this.imgs = imgs;
    this.files = files;
  }

  private saveContent(shmid: number, link: string): void {
    const pm = this.imgs.shmemPagemap(shmid);
    this.pages += closing(pm, () => dumpShmemContent(link, pm));
  }

  anon(pid: number, v: Vma): bigint {
    if (!this.anonSeen.has(v.inode)) {
      this.anonSeen.add(v.inode);
      this.saveContent(v.inode, `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`);
    }
    return BigInt(v.inode);
  }

  memfdInode(link: string): number {
    const st = fs.statSync(link);
    const ino = Number(st.ino);
    let id = this.memfdInodes.get(ino);
    if (id !== undefined) return id;
    id = this.nextInode++;
    this.memfdInodes.set(ino, id);
    const name = fs
      .readlinkSync(link)
      .replace(/^\//, '')
      .replace(/ \(deleted\)$/, '');
    const fd = fs.openSync(link, O.RDONLY);
    let seals = 0;
    try {
      seals = fcntl(fd, F.GET_SEALS);
    } catch {
      /* not sealable */
    } finally {
      fs.closeSync(fd);
    }
    this.imgs.add(IMG.MEMFD_INODE, {
      name,
      uid: st.uid,
      gid: st.gid,
      size: BigInt(st.size),
      shmid: ino,
      seals,
      inode_id: BigInt(id),
      mode: st.mode & 0o7777,
      ...hugetlbOf(link),
    });
    this.saveContent(ino, link);
    return id;
  }

  memfd(pid: number, link: string, flags: number, pos: bigint): number {
    void pid;
    const inodeId = this.memfdInode(link);
    const key = `${inodeId}:${flags}`;
    let id = this.memfdFiles.get(key);
    if (id === undefined) {
      id = this.files.newId();
      this.files.add({ type: FD_TYPE.MEMFD, id, memfd: { id, flags, pos, fown: fown(), inode_id: inodeId } });
      this.memfdFiles.set(key, id);
    }
    return id;
  }
}
