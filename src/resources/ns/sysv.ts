// SysV IPC objects of an IPC namespace (ipcns-shm-, ipcns-msg-, ipcns-sem-N.img), read and
// made again by criu-ts's main thread while it is in that namespace (ipc.ts joins it).
// Each object comes back at its id (the *_next_id sysctl before its *get), with its key,
// owner, mode and contents: segment bytes, semaphore values, queued messages (MSG_COPY
// reads them without taking them).
import fs from 'node:fs';
import { sysv } from '../../kernel/index.ts';
import { parseSmaps } from '../../proc/index.ts';
import { CriuError } from '../../errors.ts';
import { IMG, encodeMessage, type Message, type MessageInput } from '../../images/index.ts';
import type { NsImagesIn, NsImagesOut } from './types.ts';
import { shmemContent } from '../mm/index.ts';

type Kind = 'shm' | 'msg' | 'sem';
type Desc = MessageInput<'ipc_desc_entry'>;

/** Rows of /proc/sysvipc/KIND as numbers (the perms column is octal). */
function rows(kind: Kind): number[][] {
  return fs
    .readFileSync(`/proc/sysvipc/${kind}`, 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) =>
      l
        .trim()
        .split(/\s+/)
        .map((w, i) => (i === 2 ? Number.parseInt(w, 8) : Number(w))),
    );
}

/** key id perms, then uid gid cuid cgid at `at`. */
const desc = (r: number[], at: number): Desc => ({
  key: r[0] >>> 0,
  id: r[1],
  mode: r[2],
  uid: r[at],
  gid: r[at + 1],
  cuid: r[at + 2],
  cgid: r[at + 3],
});

const pad = (b: Buffer, to: number): Buffer => Buffer.concat([b, Buffer.alloc((to - (b.length % to)) % to)]);

/** The page size (KiB) of criu-ts's own mapping at `addr`, from its smaps. */
function ownPageKb(addr: bigint): number {
  return parseSmaps(fs.readFileSync('/proc/self/smaps', 'latin1')).find((v) => v.start === addr)?.kernelPageSize ?? 4;
}

/** Save every object; the caller is in the namespace. */
export function dumpSysv(id: number, imgs: NsImagesOut): number {
  let n = 0;
  for (const r of rows('shm')) {
    // key shmid perms size cpid lpid nattch uid gid cuid cgid ...
    const size = r[3];
    // A SHM_HUGETLB segment keeps its flag with the page size (MAP_HUGE_SHIFT 26), as CRIU saves it.
    const { data, pageKb } = sysv.shmReadWithPage(r[1], size, ownPageKb);
    const huge = pageKb > 4 ? { hugetlb_flag: sysv.SHM_HUGETLB | (Math.log2(pageKb * 1024) << 26) } : {};
    imgs.add(IMG.IPCNS_SHM, id, { desc: desc(r, 7), size: BigInt(size), ...huge }, pad(data, 4));
    n++;
  }
  const msgmax = Number(fs.readFileSync('/proc/sys/kernel/msgmax', 'utf8'));
  for (const r of rows('msg')) {
    // key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
    const qnum = r[4];
    const qbytes = Number(sysv.ipcStat('msg', r[1]).readBigUInt64LE(sysv.MSG_QBYTES));
    const parts: Buffer[] = [];
    for (let i = 0; i < qnum; i++) {
      const m = sysv.msgCopy(r[1], i, msgmax);
      const head = encodeMessage('ipc_msg', { mtype: m.mtype, msize: m.text.length });
      const len = Buffer.alloc(4);
      len.writeUInt32LE(head.length);
      parts.push(len, head, pad(m.text, 8));
    }
    imgs.add(IMG.IPCNS_MSG, id, { desc: desc(r, 7), qbytes, qnum }, Buffer.concat(parts));
    n++;
  }
  for (const r of rows('sem')) {
    // key semid perms nsems uid gid cuid cgid ...
    const nsems = r[3];
    imgs.add(IMG.IPCNS_SEM, id, { desc: desc(r, 4), nsems }, pad(sysv.semGetAll(r[1], nsems), 8));
    n++;
  }
  return n;
}

/** Make `kind`'s object at desc.id: *_next_id, then the get that lands there. */
function create(kind: Kind, d: Message<'ipc_desc_entry'>, get: (flags: number) => number): void {
  fs.writeFileSync(`/proc/sys/kernel/${kind}_next_id`, String(d.id));
  const got = get(sysv.IPC.CREAT | sysv.IPC.EXCL | (d.mode & 0o777));
  if (got !== d.id) throw new CriuError(`SysV ${kind} ${d.id} (key ${d.key}) came back as ${got}`);
  const ds = sysv.ipcStat(kind, got);
  ds.writeUInt32LE(d.uid, sysv.PERM.uid);
  ds.writeUInt32LE(d.gid, sysv.PERM.gid);
  ds.writeUInt32LE(d.mode & 0o777, sysv.PERM.mode);
  sysv.ipcSet(kind, got, ds);
}

/** Make every object again; the caller is in the (new, empty) namespace. */
export function restoreSysv(id: number, imgs: NsImagesIn): number {
  let n = 0;
  for (const { entry, extra } of imgs.all(IMG.IPCNS_SHM, id)) {
    const d = entry.desc;
    create('shm', d, (fl) => sysv.shmget(d.key, entry.size, fl | (entry.hugetlb_flag ?? 0)));
    // CRIU 4.x keeps the content as shared memory pages (in_pagemaps), older ones after the entry.
    const size = Number(entry.size);
    const src = entry.in_pagemaps ? imgs.shmemPagemap(d.id) : undefined;
    const data = entry.in_pagemaps ? shmemContent(src && { ...src, key: imgs.key }, size) : extra?.subarray(0, size);
    if (data) sysv.shmWrite(d.id, data);
    n++;
  }
  for (const { entry, ipcMsgs } of imgs.all(IMG.IPCNS_MSG, id)) {
    const d = entry.desc;
    create('msg', d, (fl) => sysv.msgget(d.key, fl));
    const ds = sysv.ipcStat('msg', d.id);
    ds.writeBigUInt64LE(BigInt(entry.qbytes), sysv.MSG_QBYTES);
    sysv.ipcSet('msg', d.id, ds);
    for (const m of ipcMsgs ?? []) sysv.msgSend(d.id, BigInt(m.msg.mtype), m.data.subarray(0, m.msg.msize));
    n++;
  }
  for (const { entry, extra } of imgs.all(IMG.IPCNS_SEM, id)) {
    const d = entry.desc;
    create('sem', d, (fl) => sysv.semget(d.key, entry.nsems, fl));
    if (extra && entry.nsems) sysv.semSetAll(d.id, Buffer.from(extra.subarray(0, entry.nsems * 2)));
    n++;
  }
  return n;
}
