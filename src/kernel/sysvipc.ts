// System V IPC calls criu-ts makes itself, in the IPC namespace its main thread has joined
// (kernel/ns.ts): objects are listed from /proc/sysvipc, read with IPC_STAT, GETALL, MSG_COPY
// and shmat, and made again at their ids. Layouts are the 64-bit kernel's (*64_ds).
import { sysnr } from './arch/index.ts';
import { syscall, addressOf } from './ffi.ts';
import { processVmReadv, processVmWritev, getpid } from './syscalls.ts';

export const IPC = { CREAT: 0o1000, EXCL: 0o2000, NOWAIT: 0o4000, RMID: 0, SET: 1, STAT: 2 } as const;
const MSG_COPY = 0o40000;
const SEM = { GETALL: 13, SETALL: 17 } as const;
const SHM_RDONLY = 0o10000;

/** struct ipc64_perm: uid at 4, gid at 8, mode at 20; then the object's fields from 48. */
export const PERM = { uid: 4, gid: 8, mode: 20 } as const;
/** msqid64_ds.msg_qbytes */
export const MSG_QBYTES = 88;
/** sizeof(struct msqid64_ds / semid64_ds / shmid64_ds), at most. */
const DS_SIZE = 128;

export function msgget(key: number, flags: number): number {
  return syscall('msgget', sysnr('msgget'), key, flags);
}
export function semget(key: number, nsems: number, flags: number): number {
  return syscall('semget', sysnr('semget'), key, nsems, flags);
}
export function shmget(key: number, size: bigint, flags: number): number {
  return syscall('shmget', sysnr('shmget'), key, size, flags);
}

/** IPC_STAT of a message queue, semaphore set or shared memory segment. */
export function ipcStat(kind: 'msg' | 'sem' | 'shm', id: number): Buffer {
  const b = Buffer.alloc(DS_SIZE);
  if (kind === 'sem') syscall('semctl', sysnr('semctl'), id, 0, IPC.STAT, addressOf(b));
  else syscall(`${kind}ctl`, sysnr(kind === 'msg' ? 'msgctl' : 'shmctl'), id, IPC.STAT, addressOf(b));
  return b;
}

/** IPC_SET with a buffer IPC_STAT gave (its uid, gid, mode, and qbytes for a queue). */
export function ipcSet(kind: 'msg' | 'sem' | 'shm', id: number, ds: Buffer): void {
  if (kind === 'sem') syscall('semctl', sysnr('semctl'), id, 0, IPC.SET, addressOf(ds));
  else syscall(`${kind}ctl`, sysnr(kind === 'msg' ? 'msgctl' : 'shmctl'), id, IPC.SET, addressOf(ds));
}

export function ipcRemove(kind: 'msg' | 'sem' | 'shm', id: number): void {
  if (kind === 'sem') syscall('semctl', sysnr('semctl'), id, 0, IPC.RMID, 0);
  else syscall(`${kind}ctl`, sysnr(kind === 'msg' ? 'msgctl' : 'shmctl'), id, IPC.RMID, 0);
}

export function semGetAll(id: number, nsems: number): Buffer {
  const b = Buffer.alloc(nsems * 2);
  syscall('semctl(GETALL)', sysnr('semctl'), id, 0, SEM.GETALL, addressOf(b));
  return b;
}
export function semSetAll(id: number, values: Buffer): void {
  syscall('semctl(SETALL)', sysnr('semctl'), id, 0, SEM.SETALL, addressOf(values));
}

/** The message at `index` of a queue, left in it (MSG_COPY): its type and text. */
export function msgCopy(id: number, index: number, maxSize: number): { mtype: bigint; text: Buffer } {
  const b = Buffer.alloc(8 + maxSize);
  const n = syscall('msgrcv(MSG_COPY)', sysnr('msgrcv'), id, addressOf(b), maxSize, index, IPC.NOWAIT | MSG_COPY);
  return { mtype: b.readBigInt64LE(0), text: Buffer.from(b.subarray(8, 8 + n)) };
}
export function msgSend(id: number, mtype: bigint, text: Buffer): void {
  const b = Buffer.alloc(8 + text.length);
  b.writeBigInt64LE(mtype, 0);
  text.copy(b, 8);
  syscall('msgsnd', sysnr('msgsnd'), id, addressOf(b), text.length, IPC.NOWAIT);
}

export const SHM_HUGETLB = 0o4000;

/**
 * A segment's contents, read through an attach of criu-ts's own (read-only, detached after),
 * and its page size in KiB, which `pageKbAt` tells from the attach's address (KernelPageSize
 * in smaps: above 4 for a SHM_HUGETLB one).
 */
export function shmReadWithPage(id: number, size: number, pageKbAt: (addr: bigint) => number): { data: Buffer; pageKb: number } {
  const at = BigInt(syscall('shmat', sysnr('shmat'), id, 0, SHM_RDONLY));
  try {
    const data = Buffer.alloc(size);
    if (size) processVmReadv(getpid(), data, [{ addr: at, len: size }]);
    return { data, pageKb: pageKbAt(at) };
  } finally {
    syscall('shmdt', sysnr('shmdt'), at);
  }
}

export function shmWrite(id: number, data: Buffer): void {
  const at = BigInt(syscall('shmat', sysnr('shmat'), id, 0, 0));
  try {
    if (data.length) processVmWritev(getpid(), data, [{ addr: at, len: data.length }]);
  } finally {
    syscall('shmdt', sysnr('shmdt'), at);
  }
}
