// The file system ids of criu-ts's own thread. A file system mounted inside a user namespace
// refuses to create an inode whose owner it cannot map (EOVERFLOW, kernel 4.8's "don't create
// inodes with a uid or gid unknown to the vfs"): criu-ts's fsuid 0 is such an owner there.
import { addressOf, syscall } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';
import { PR } from './constants.ts';

const NR = {
  setfsuid: sysnr('setfsuid'),
  setfsgid: sysnr('setfsgid'),
  capget: sysnr('capget'),
  capset: sysnr('capset'),
  prctl: sysnr('prctl'),
};
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const EPERM = 1;

/** setfsuid/setfsgid: they report no error, so the id is read back (-1 changes nothing). */
function setFs(nr: number, what: string, id: number): void {
  syscall(what, nr, id);
  if (syscall(what, nr, 0xffffffff) !== id) throw new SysError(`${what}(${id})`, EPERM);
}

/**
 * Run `fn` with the calling thread's fsuid and fsgid set to `uid` and `gid` (host ids), then
 * back to what they were. The raw syscalls change this thread only, where Node's *Sync fs calls run. The
 * capabilities that a non-zero fsuid drops (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER...) are
 * raised again meanwhile, so that only the owner of what is made changes.
 */
export function withThreadFsIds<T>(uid: number, gid: number, fn: () => T): T {
  const hdr = Buffer.alloc(8),
    data = Buffer.alloc(24);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const oldUid = syscall('setfsuid', NR.setfsuid, 0xffffffff),
    oldGid = syscall('setfsgid', NR.setfsgid, 0xffffffff);
  try {
    setFs(NR.setfsgid, 'setfsgid', gid);
    setFs(NR.setfsuid, 'setfsuid', uid);
    syscall('capget', NR.capget, addressOf(hdr), addressOf(data));
    // __user_cap_data_struct[2]: effective, permitted, inheritable; effective = permitted.
    data.writeUInt32LE(data.readUInt32LE(4), 0);
    data.writeUInt32LE(data.readUInt32LE(16), 12);
    syscall('capset', NR.capset, addressOf(hdr), addressOf(data));
    return fn();
  } finally {
    syscall('setfsuid', NR.setfsuid, oldUid);
    syscall('setfsgid', NR.setfsgid, oldGid);
    // A change of fsuid makes the process non-dumpable: its /proc/self would be root's only.
    syscall('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, 1);
  }
}

/** Whether `e` is the EOVERFLOW of an owner the file system cannot map (SysError or Node's). */
function isUnmappedOwner(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'EOVERFLOW';
}

/** `fn`, run again as owner `uid`:`gid` when it fails for an owner the file system cannot map. */
export function withMappedOwner<T>(uid: number, gid: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!isUnmappedOwner(e)) throw e;
    return withThreadFsIds(uid, gid, fn);
  }
}
