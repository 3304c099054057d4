// File locks held through the tree's fds (`--file-locks`, as in CRIU): flock, POSIX (fcntl)
// and OFD locks and active leases, in CRIU's filelocks.img (file_lock_entry). A lock is read
// from the fdinfo `lock:` lines of the fd it was taken through, and taken again after restore
// through the same fd, in the task that held it. A lease being broken, and locks no fd of the
// tree shows, stay refused.
import { readFdinfo } from '../../proc/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import { CriuError } from '../../errors.ts';
import type { Logger, Message, MessageInput } from '../types.ts';

/** file_lock_entry.flag, as CRIU numbers the kinds. */
export const FL = { POSIX: 1, FLOCK: 2, OFD: 4, LEASE: 8 } as const;
const KIND: Readonly<Record<string, number>> = { POSIX: FL.POSIX, FLOCK: FL.FLOCK, OFDLCK: FL.OFD, LEASE: FL.LEASE };
const F_RDLCK = 0,
  F_WRLCK = 1;
const LOCK_SH = 1,
  LOCK_EX = 2,
  LOCK_NB = 4;
const F_SETLK = 6,
  F_OFD_SETLK = 37,
  F_SETLEASE = 1024;
const FLOCK_SIZE = 32; // struct flock: l_type, l_whence, l_start@8, l_len@16, l_pid@24

/** `pid`: who took it (-1 for an OFD lock, which belongs to the open file alone). */
export interface HeldLock {
  flag: number;
  type: number;
  start: bigint;
  len: bigint;
  pid: number;
  key: string;
}

/**
 * One `lock:` line ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"), or why it cannot be
 * saved. `key` is the line without its ordinal, as /proc/locks shows the same lock.
 */
export function parseLockLine(line: string): HeldLock | string {
  const f = line.trim().split(/\s+/);
  const key = f.slice(1).join(' ');
  if (f[1] === '->') return `it waits for a lock (${key})`;
  const flag = KIND[f[1]];
  if (f[1] === 'LEASE' && f[2] !== 'ACTIVE') return `it holds a lease being broken (${key})`;
  if (flag === undefined) return `it holds a ${f[1] === 'DELEG' ? 'delegation' : `${f[1]} lock`} (${key})`;
  if (f[2] !== 'ADVISORY' && f[1] !== 'LEASE') return `it holds a ${f[2].toLowerCase()} lock (${key})`;
  if (f[3] !== 'READ' && f[3] !== 'WRITE') return `it holds a lock of type ${f[3]} (${key})`;
  const start = BigInt(f[6]);
  const len = f[7] === 'EOF' ? 0n : BigInt(f[7]) + 1n - start;
  return { flag, type: f[3] === 'WRITE' ? F_WRLCK : F_RDLCK, start, len, pid: Number(f[4]), key };
}

/**
 * Why a lock an fd of the tree shows cannot be saved: one taken by a process outside the tree
 * on an open file it shares would still be held there, and the restored one would clash.
 */
export function checkLockOwner(l: HeldLock, treeIds: ReadonlySet<number>): string | undefined {
  if (l.pid > 0 && !treeIds.has(l.pid)) return `its lock was taken by ${l.pid}, outside the tree (${l.key})`;
  return undefined;
}

/** The key of a /proc/locks line, to match it with the fdinfo line of the same lock. */
export const procLocksKey = (line: string): string => line.trim().split(/\s+/).slice(1).join(' ');

/**
 * The locks task `pid` holds through its fds (`ids`: fd -> files.img id). A flock or OFD
 * lock belongs to the open file, which fds of several tasks may share: it is saved once
 * (`seen`, across the dump), in the first task that shows it.
 */
export function dumpFileLocks(pid: number, ids: ReadonlyMap<number, number>, seen: Set<string>): MessageInput<'file_lock_entry'>[] {
  const out: MessageInput<'file_lock_entry'>[] = [];
  for (const [fd, id] of ids) {
    let lines: string[];
    try {
      lines = readFdinfo(pid, fd).locks;
    } catch {
      continue;
    }
    for (const line of lines) {
      const l = parseLockLine(line);
      if (typeof l === 'string') throw new Error(`task ${pid}: fd ${fd}: ${l}`); // the claims check refused it already
      const once = l.flag === FL.POSIX ? `${pid}:${l.key}` : `${id}:${l.flag}:${l.type}:${l.start}:${l.len}`;
      if (seen.has(once)) continue;
      seen.add(once);
      out.push({ flag: l.flag, type: l.type, pid, fd, start: l.start, len: l.len });
    }
  }
  return out;
}

const NAMES: Readonly<Record<number, string>> = {
  [FL.POSIX]: 'POSIX lock',
  [FL.FLOCK]: 'flock',
  [FL.OFD]: 'OFD lock',
  [FL.LEASE]: 'lease',
};

/**
 * The task's locks (or with `leases`, its leases) taken again through its fds, without
 * waiting: a lock someone outside the tree took meanwhile fails the restore with what it is.
 * A lease comes once criu-ts holds the file open no more: a write lease needs it open nowhere else.
 */
export function restoreFileLocks(
  t: Tracee,
  area: InjectionArea,
  all: readonly Message<'file_lock_entry'>[],
  log: Logger,
  leases = false,
): void {
  for (const l of all.filter((x) => (x.flag === FL.LEASE) === leases)) {
    const what = `${NAMES[l.flag] ?? `lock of kind ${l.flag}`} on fd ${l.fd}`;
    let r: bigint;
    if (l.flag === FL.LEASE) {
      r = t.syscallRaw('fcntl', l.fd, F_SETLEASE, l.type);
    } else if (l.flag === FL.FLOCK) {
      r = t.syscallRaw('flock', l.fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
    } else if (l.flag === FL.POSIX || l.flag === FL.OFD) {
      area.reset();
      const b = Buffer.alloc(FLOCK_SIZE);
      b.writeInt16LE(l.type, 0);
      b.writeBigInt64LE(l.start, 8);
      b.writeBigInt64LE(l.len, 16);
      r = t.syscallRaw('fcntl', l.fd, l.flag === FL.OFD ? F_OFD_SETLK : F_SETLK, area.put(b));
    } else {
      throw new CriuError(`task ${l.pid}: filelocks.img: lock kind ${l.flag} on fd ${l.fd} is not one criu-ts restores`);
    }
    if (r < 0n)
      throw new CriuError(`task ${l.pid}: the ${what} cannot be taken again (errno ${-r}): another process holds a conflicting lock`);
    log.debug(
      `task ${l.pid}: ${what} taken again (${l.type === F_WRLCK ? 'write' : 'read'}, from ${l.start}, length ${l.len || 'to EOF'})`,
    );
  }
}
