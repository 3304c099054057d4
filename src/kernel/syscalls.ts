// Typed wrappers over the syscalls criu-ts makes itself. Each throws SysError on failure.
import fs from 'node:fs';
import { addressOf, syscall, syscallErr, type Arg } from './ffi.ts';
import { sysnr } from './arch/index.ts';
import { SysError } from './errors.ts';
import { PTRACE, PR, KCMP } from './constants.ts';

const NR = {
  ptrace: sysnr('ptrace'),
  wait4: sysnr('wait4'),
  kill: sysnr('kill'),
  tgkill: sysnr('tgkill'),
  pvr: sysnr('process_vm_readv'),
  pvw: sysnr('process_vm_writev'),
  pidfd_open: sysnr('pidfd_open'),
  pidfd_getfd: sysnr('pidfd_getfd'),
  kcmp: sysnr('kcmp'),
  tee: sysnr('tee'),
  prctl: sysnr('prctl'),
  prlimit64: sysnr('prlimit64'),
  get_robust_list: sysnr('get_robust_list'),
  getpid: sysnr('getpid'),
  gettid: sysnr('gettid'),
  close: sysnr('close'),
  pidfd_send_signal: sysnr('pidfd_send_signal'),
  ioctl: sysnr('ioctl'),
  fcntl: sysnr('fcntl'),
  lseek: sysnr('lseek'),
  pipe2: sysnr('pipe2'),
  splice: sysnr('splice'),
  getpriority: sysnr('getpriority'),
  ioprio_get: sysnr('ioprio_get'),
  sched_getscheduler: sysnr('sched_getscheduler'),
  sched_getparam: sysnr('sched_getparam'),
  sched_getattr: sysnr('sched_getattr'),
  keyctl: sysnr('keyctl'),
  madvise: sysnr('madvise'),
  userfaultfd: sysnr('userfaultfd'),
  clock_gettime: sysnr('clock_gettime'),
  mmap: sysnr('mmap'),
  munmap: sysnr('munmap'),
  memfd_create: sysnr('memfd_create'),
  eventfd2: sysnr('eventfd2'),
  epoll_create1: sysnr('epoll_create1'),
  signalfd4: sysnr('signalfd4'),
  timerfd_create: sysnr('timerfd_create'),
  timerfd_settime: sysnr('timerfd_settime'),
  timerfd_gettime: sysnr('timerfd_gettime'),
  openat2: sysnr('openat2'),
  unlinkat: sysnr('unlinkat'),
  mknodat: sysnr('mknodat'),
  linkat: sysnr('linkat'),
  readlinkat: sysnr('readlinkat'),
  inotify_init1: sysnr('inotify_init1'),
  inotify_add_watch: sysnr('inotify_add_watch'),
  inotify_rm_watch: sysnr('inotify_rm_watch'),
  open_by_handle_at: sysnr('open_by_handle_at'),
  fanotify_init: sysnr('fanotify_init'),
  fanotify_mark: sysnr('fanotify_mark'),
  mount: sysnr('mount'),
  setresuid: sysnr('setresuid'),
  setresgid: sysnr('setresgid'),
  umount2: sysnr('umount2'),
  move_mount: sysnr('move_mount'),
  sched_getaffinity: sysnr('sched_getaffinity'),
  sched_setaffinity: sysnr('sched_setaffinity'),
  getcpu: sysnr('getcpu'),
  setns: sysnr('setns'),
  unshare: sysnr('unshare'),
  fchdir: sysnr('fchdir'),
  chroot: sysnr('chroot'),
};

type PtraceData = Arg | Buffer;
const dataArg = (d: PtraceData): Arg => (typeof d === 'object' ? addressOf(d) : d);

export function ptrace(req: number, pid: number, addr: PtraceData = 0, data: PtraceData = 0, what?: string): number {
  const r = syscallErr(NR.ptrace, req, pid, dataArg(addr), dataArg(data));
  if (r < 0) throw new SysError(what ?? `ptrace(${ptraceName(req)}, ${pid})`, -r);
  return r;
}

function ptraceName(req: number): string {
  for (const [k, v] of Object.entries(PTRACE)) if (v === req) return `PTRACE_${k}`;
  return String(req);
}

const iov = Buffer.alloc(16);
/** PTRACE_GETREGSET into `buf`; returns the number of bytes the kernel filled. */
export function getRegset(pid: number, note: number, buf: Buffer): number {
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  ptrace(PTRACE.GETREGSET, pid, note, iov, `PTRACE_GETREGSET(${pid}, 0x${note.toString(16)})`);
  return Number(iov.readBigUInt64LE(8));
}

export function setRegset(pid: number, note: number, buf: Buffer): void {
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  ptrace(PTRACE.SETREGSET, pid, note, iov, `PTRACE_SETREGSET(${pid}, 0x${note.toString(16)})`);
}

const u64buf = Buffer.alloc(8);
export function getSigmask(pid: number): bigint {
  ptrace(PTRACE.GETSIGMASK, pid, 8, u64buf);
  return u64buf.readBigUInt64LE(0);
}
export function setSigmask(pid: number, mask: bigint): void {
  u64buf.writeBigUInt64LE(mask, 0);
  ptrace(PTRACE.SETSIGMASK, pid, 8, u64buf);
}
export function getEventMsg(pid: number): number {
  ptrace(PTRACE.GETEVENTMSG, pid, 0, u64buf);
  return Number(u64buf.readBigUInt64LE(0));
}

export interface RseqConfig {
  ptr: bigint;
  size: number;
  signature: number;
  flags: number;
}
export function getRseqConfig(pid: number): RseqConfig {
  const b = Buffer.alloc(24);
  ptrace(PTRACE.GET_RSEQ_CONFIGURATION, pid, 24, b);
  return { ptr: b.readBigUInt64LE(0), size: b.readUInt32LE(8), signature: b.readUInt32LE(12), flags: b.readUInt32LE(16) };
}

export const SIGINFO_SIZE = 128;
export function getSiginfo(pid: number): Buffer {
  const b = Buffer.alloc(SIGINFO_SIZE);
  ptrace(PTRACE.GETSIGINFO, pid, 0, b);
  return b;
}

/** Pending signals of a thread (or of its process with `shared`), without dequeuing them. */
export function peekSiginfo(pid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const batch = 32;
  const args = Buffer.alloc(16);
  const buf = Buffer.alloc(SIGINFO_SIZE * batch);
  for (;;) {
    args.writeBigUInt64LE(BigInt(out.length), 0);
    args.writeUInt32LE(shared ? 1 : 0, 8);
    args.writeInt32LE(batch, 12);
    const n = ptrace(PTRACE.PEEKSIGINFO, pid, args, buf);
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < batch) return out;
  }
}

/**
 * The classic BPF programs of a thread's seccomp filters, oldest first, each with its
 * SECCOMP_FILTER_FLAG_* from PTRACE_SECCOMP_GET_METADATA (LOG, ...).
 */
export function seccompFilters(tid: number): Array<{ insns: Buffer; flags: number }> {
  const out: Array<{ insns: Buffer; flags: number }> = [];
  const buf = Buffer.alloc(8 * 4096); // BPF_MAXINSNS instructions of 8 bytes
  const meta = Buffer.alloc(16);
  for (let i = 0; ; i++) {
    let n: number;
    try {
      n = ptrace(PTRACE.SECCOMP_GET_FILTER, tid, i, buf);
    } catch (e) {
      if (e instanceof SysError && e.code === 'ENOENT') return out;
      throw e;
    }
    meta.writeBigUInt64LE(BigInt(i), 0);
    meta.writeBigUInt64LE(0n, 8);
    ptrace(PTRACE.SECCOMP_GET_METADATA, tid, meta.length, meta);
    out.push({ insns: Buffer.from(buf.subarray(0, n * 8)), flags: Number(meta.readBigUInt64LE(8)) });
  }
}

const statusBuf = Buffer.alloc(4);
export interface WaitResult {
  pid: number;
  status: number;
}
/** wait4 on one pid (never -1: other code owns other children). pid 0 = nothing yet (WNOHANG). */
export function waitpid(pid: number, flags: number): WaitResult {
  for (;;) {
    const r = syscallErr(NR.wait4, pid, addressOf(statusBuf), flags, 0);
    if (r === -4) continue; // EINTR
    if (r < 0) throw new SysError(`waitpid(${pid})`, -r);
    return { pid: r, status: statusBuf.readInt32LE(0) };
  }
}

export const W = {
  exited: (s: number) => (s & 0x7f) === 0,
  exitStatus: (s: number) => (s >> 8) & 0xff,
  signaled: (s: number) => (s & 0x7f) !== 0 && (s & 0x7f) !== 0x7f,
  termSig: (s: number) => s & 0x7f,
  stopped: (s: number) => (s & 0xff) === 0x7f,
  stopSig: (s: number) => (s >> 8) & 0xff,
  /** PTRACE_EVENT_* carried in a stop status. */
  event: (s: number) => (s >> 16) & 0xff,
};

export function kill(pid: number, sig: number): void {
  syscall(`kill(${pid}, ${sig})`, NR.kill, pid, sig);
}
export function tgkill(tgid: number, tid: number, sig: number): void {
  syscall(`tgkill(${tid})`, NR.tgkill, tgid, tid, sig);
}
export function getpid(): number {
  return syscall('getpid', NR.getpid);
}
export function gettid(): number {
  return syscall('gettid', NR.gettid);
}
export function close(fd: number): void {
  syscall(`close(${fd})`, NR.close, fd);
}

export interface RemoteRange {
  addr: bigint;
  len: number;
}

function vmIo(nr: number, name: string, pid: number, local: Buffer, remote: RemoteRange[]): number {
  const liov = Buffer.alloc(16);
  liov.writeBigUInt64LE(addressOf(local), 0);
  liov.writeBigUInt64LE(BigInt(local.length), 8);
  const riov = Buffer.alloc(16 * remote.length);
  remote.forEach((r, i) => {
    riov.writeBigUInt64LE(r.addr, i * 16);
    riov.writeBigUInt64LE(BigInt(r.len), i * 16 + 8);
  });
  return syscall(`${name}(${pid})`, nr, pid, addressOf(liov), 1, addressOf(riov), remote.length, 0);
}

/** Read from a process's memory into `local` (bytes read; short on an unmapped hole). */
export function processVmReadv(pid: number, local: Buffer, remote: RemoteRange[]): number {
  return vmIo(NR.pvr, 'process_vm_readv', pid, local, remote);
}
export function processVmWritev(pid: number, local: Buffer, remote: RemoteRange[]): number {
  return vmIo(NR.pvw, 'process_vm_writev', pid, local, remote);
}

/** pidfd_open(2) with flags (PIDFD_NONBLOCK is O_NONBLOCK); the result is close-on-exec. */
export function pidfdOpen2(pid: number, flags: number): number {
  return syscall(`pidfd_open(${pid})`, NR.pidfd_open, pid, flags);
}
export function pidfdOpen(pid: number): number {
  return syscall(`pidfd_open(${pid})`, NR.pidfd_open, pid, 0);
}
/** setns(2) of the calling thread (Node's main thread): fd is a pidfd or a /proc/PID/ns/X file. */
export function setns(fd: number, nstype: number): void {
  syscall('setns', NR.setns, fd, nstype);
}
/** unshare(2) of the calling thread (Node's main thread). */
export function unshare(flags: number): void {
  syscall('unshare', NR.unshare, flags);
}
export function pidfdGetfd(pidfd: number, fd: number): number {
  return syscall(`pidfd_getfd(${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
}
/** A copy in criu-ts of fd `fd` of task `pid`: the same open file description. */
export function copyTaskFd(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, fd);
  } finally {
    close(pidfd);
  }
}
export function pidfdSendSignal(pidfd: number, sig: number): void {
  syscall('pidfd_send_signal', NR.pidfd_send_signal, pidfd, sig, 0, 0);
}

export function kcmp(pid1: number, pid2: number, type: number, idx1: Arg, idx2: Arg): number {
  return syscall('kcmp', NR.kcmp, pid1, pid2, type, idx1, idx2);
}

/**
 * Whether fd `fd` of `pid` is the file that epoll `epfd` of `pid` watches as target `tfd`
 * (KCMP_EPOLL_TFD with struct kcmp_epoll_slot; toff: which registration of that number).
 */
/** Is fd `fd` of `pid` the target `tfd` of epoll `epfd` of `epPid` (by default `pid` too)? */
export function kcmpEpollTfd(pid: number, fd: number, epfd: number, tfd: number, toff = 0, epPid = pid): boolean {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(epfd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return syscallErr(NR.kcmp, pid, epPid, KCMP.EPOLL_TFD, fd, addressOf(slot)) === 0;
}

/** Duplicate up to `len` bytes from one pipe into another without consuming them. */
export function tee(fdIn: number, fdOut: number, len: number, flags: number): number {
  const r = syscallErr(NR.tee, fdIn, fdOut, len, flags);
  if (r === -11) return 0; // EAGAIN: empty pipe with SPLICE_F_NONBLOCK
  if (r < 0) throw new SysError('tee', -r);
  return r;
}

export function splice(fdIn: number, fdOut: number, len: number, flags: number): number {
  return syscall('splice', NR.splice, fdIn, 0, fdOut, 0, len, flags);
}

export function pipe2(flags: number): [number, number] {
  const b = Buffer.alloc(8);
  syscall('pipe2', NR.pipe2, addressOf(b), flags);
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

export function fcntl(fd: number, cmd: number, arg: Arg | Buffer = 0): number {
  return syscall(`fcntl(${fd}, ${cmd})`, NR.fcntl, fd, cmd, typeof arg === 'object' ? addressOf(arg) : arg);
}
export function ioctl(fd: number, req: number, arg: Arg | Buffer = 0): number {
  return syscall(`ioctl(${fd}, 0x${req.toString(16)})`, NR.ioctl, fd, req, typeof arg === 'object' ? addressOf(arg) : arg);
}
export function lseek(fd: number, off: Arg, whence: number): number {
  return syscall(`lseek(${fd})`, NR.lseek, fd, off, whence);
}

export function prctl(option: number, a2: Arg = 0, a3: Arg = 0, a4: Arg = 0, a5: Arg = 0): number {
  return syscall(`prctl(${option})`, NR.prctl, option, a2, a3, a4, a5);
}

export function setChildSubreaper(): void {
  prctl(PR.SET_CHILD_SUBREAPER, 1);
}

/** prlimit64 read of another process's limit: [soft, hard]. */
export function getRlimit(pid: number, resource: number): [bigint, bigint] {
  const b = Buffer.alloc(16);
  syscall('prlimit64', NR.prlimit64, pid, resource, 0, addressOf(b));
  return [b.readBigUInt64LE(0), b.readBigUInt64LE(8)];
}
export function setRlimit(pid: number, resource: number, soft: bigint, hard: bigint): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(soft, 0);
  b.writeBigUInt64LE(hard, 8);
  syscall(`prlimit64(${pid}, ${resource})`, NR.prlimit64, pid, resource, addressOf(b), 0);
}

export function getRobustList(tid: number): { head: bigint; len: number } {
  const head = Buffer.alloc(8),
    len = Buffer.alloc(8);
  syscall(`get_robust_list(${tid})`, NR.get_robust_list, tid, addressOf(head), addressOf(len));
  return { head: head.readBigUInt64LE(0), len: Number(len.readBigUInt64LE(0)) };
}

export function getPriority(which: number, who: number): number {
  // The raw syscall returns 20 - nice to stay non-negative.
  return 20 - syscall('getpriority', NR.getpriority, which, who);
}
/** The I/O priority of thread `tid` (0: the calling thread), as ioprio_get(IOPRIO_WHO_PROCESS) gives it. */
export function ioprioGet(tid: number): number {
  return syscall('ioprio_get', NR.ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, tid);
}
export function schedGetScheduler(tid: number): number {
  return syscall('sched_getscheduler', NR.sched_getscheduler, tid);
}
export function schedGetPriority(tid: number): number {
  const b = Buffer.alloc(4);
  syscall('sched_getparam', NR.sched_getparam, tid, addressOf(b));
  return b.readInt32LE(0);
}

/** sched_getattr's sched_runtime: a fair thread's time slice (settable since Linux 6.12). */
export function schedGetRuntime(tid: number): bigint {
  const b = Buffer.alloc(56);
  syscall('sched_getattr', NR.sched_getattr, tid, addressOf(b), b.length, 0);
  return b.readBigUInt64LE(24);
}

/** keyctl(KEYCTL_GET_KEYRING_ID, spec, 0): criu-ts's own keyring of that kind; undefined without one or without keyrings. */
export function ownKeyringId(spec: number): number | undefined {
  const r = syscallErr(NR.keyctl, 0, spec, 0);
  return r < 0 ? undefined : r;
}

const PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG = 0x4211;
/** The syscall user dispatch mode of a stopped tracee (PR_SYS_DISPATCH_*); undefined before Linux 5.19. */
export function syscallUserDispatchMode(tid: number): bigint | undefined {
  const b = Buffer.alloc(32);
  const r = syscallErr(NR.ptrace, PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG, tid, b.length, addressOf(b));
  return r < 0 ? undefined : b.readBigUInt64LE(0);
}

export function clockGettime(clock: number): { sec: bigint; nsec: bigint } {
  const b = Buffer.alloc(16);
  syscall('clock_gettime', NR.clock_gettime, clock, addressOf(b));
  return { sec: b.readBigInt64LE(0), nsec: b.readBigInt64LE(8) };
}

/** A MAP_SHARED|MAP_ANONYMOUS object in criu-ts itself; returns its address. */
/** MAP_SHARED|MAP_ANONYMOUS memory in criu-ts (`extra`: MAP_HUGETLB and its size bits). */
export function mmapSharedAnon(size: bigint, extra = 0): bigint {
  return BigInt(syscall('mmap(shared anon)', NR.mmap, 0, size, 3, 0x21 | extra, -1, 0));
}
/** A shared read-write mapping of `fd` in criu-ts. */
export function mmapSharedFd(fd: number, size: bigint): bigint {
  return BigInt(syscall('mmap(shared)', NR.mmap, 0, size, 3, 0x01, fd, 0));
}
/** MAP_PRIVATE|MAP_ANONYMOUS memory in criu-ts, readable and writable. */
export function mmapPrivateAnon(size: bigint): bigint {
  return BigInt(syscall('mmap(private anon)', NR.mmap, 0, size, 3, 0x22, -1, 0));
}
export function madvise(addr: bigint, size: bigint, advice: number): void {
  syscall('madvise', NR.madvise, addr, size, advice);
}
export function munmap(addr: bigint, size: bigint): void {
  syscall('munmap', NR.munmap, addr, size);
}

export function memfdCreate(name: string, flags: number): number {
  const b = Buffer.from(name + '\0');
  return syscall(`memfd_create(${name})`, NR.memfd_create, addressOf(b), flags);
}
export const MFD = { CLOEXEC: 1, ALLOW_SEALING: 2, HUGETLB: 4 } as const;

let shmemDev: number | undefined;
/**
 * st_dev of the kernel's internal shmem mount, the file system of memfds, of MAP_SHARED
 * anonymous memory (/dev/zero (deleted)) and of SysV segments (CRIU's kdat.shmem_dev).
 */
export function internalShmemDev(): number {
  if (shmemDev === undefined) {
    const fd = memfdCreate('criu-ts', MFD.CLOEXEC);
    try {
      shmemDev = fs.fstatSync(fd).dev;
    } finally {
      fs.closeSync(fd);
    }
  }
  return shmemDev;
}
export const SEEK = { SET: 0, CUR: 1, END: 2, DATA: 3, HOLE: 4 } as const;

export function eventfd(initval: number, flags: number): number {
  return syscall('eventfd2', NR.eventfd2, initval, flags);
}
/**
 * Run `fn` with the calling thread's real and effective uids set to `uid` and `euid`, its
 * saved uid kept (root), then back to root. The raw syscall changes this thread only, where
 * glibc's setresuid() would change every thread of criu-ts.
 */
export function withThreadUids<T>(uid: number, euid: number, fn: () => T): T {
  syscall(`setresuid(${uid}, ${euid})`, NR.setresuid, uid, euid, 0xffffffff);
  try {
    return fn();
  } finally {
    syscall('setresuid(0, 0)', NR.setresuid, 0, 0, 0xffffffff);
  }
}

/**
 * Run `fn` with the calling thread's effective gid set to `egid`, then back to `back` (criu-ts
 * runs as root: its gids are 0). This thread only, as withThreadUids.
 */
export function withThreadEgid<T>(egid: number, fn: () => T, back = 0): T {
  syscall(`setresgid(-1, ${egid})`, NR.setresgid, 0xffffffff, egid, 0xffffffff);
  try {
    return fn();
  } finally {
    syscall(`setresgid(-1, ${back})`, NR.setresgid, 0xffffffff, back, 0xffffffff);
  }
}

/** mount(2) of a file system with its options (no source device). */
export function mountFs(fstype: string, target: string, options: string): void {
  const src = Buffer.from('none\0'),
    t = Buffer.from(`${target}\0`),
    ty = Buffer.from(`${fstype}\0`),
    o = Buffer.from(`${options}\0`);
  syscall(`mount(${fstype}, ${target}, ${options})`, NR.mount, addressOf(src), addressOf(t), addressOf(ty), 0, addressOf(o));
}
export function umount2(target: string, flags: number): void {
  const t = Buffer.from(`${target}\0`);
  syscall(`umount2(${target})`, NR.umount2, addressOf(t), flags);
}
/**
 * MOVE_MOUNT_SET_GROUP between two mounts held by fds (roots of their mounts): `to` joins the
 * peer group and takes the master of `from`. The caller needs CAP_SYS_ADMIN over the user
 * namespaces of both mounts' namespaces, not to be in either.
 */
export function moveMountSetGroup(from: number, to: number): void {
  const empty = Buffer.from('\0');
  syscall('move_mount(MOVE_MOUNT_SET_GROUP)', NR.move_mount, from, addressOf(empty), to, addressOf(empty), 0x100 | 0x4 | 0x40);
}
/** fchdir(2) of the whole process (Node's cached process.cwd() is not told). */
export function fchdir(fd: number): void {
  syscall('fchdir', NR.fchdir, fd);
}
/** chroot(2) of the whole process, every thread included. */
export function chroot(path: string): void {
  const p = Buffer.from(`${path}\0`);
  syscall(`chroot(${path})`, NR.chroot, addressOf(p));
}
export function inotifyInit(flags: number): number {
  return syscall('inotify_init1', NR.inotify_init1, flags);
}
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  const b = Buffer.from(path + '\0');
  return syscall(`inotify_add_watch(${path})`, NR.inotify_add_watch, fd, addressOf(b), mask);
}
export function inotifyRmWatch(fd: number, wd: number): void {
  syscall('inotify_rm_watch', NR.inotify_rm_watch, fd, wd);
}
/** open_by_handle_at(2): `handle` is struct file_handle's f_handle bytes, of handle type `type`. */
export function openByHandleAt(mountFd: number, type: number, handle: Buffer, flags: number): number {
  const fh = Buffer.alloc(8 + handle.length);
  fh.writeUInt32LE(handle.length, 0);
  fh.writeInt32LE(type, 4);
  handle.copy(fh, 8);
  return syscall('open_by_handle_at', NR.open_by_handle_at, mountFd, addressOf(fh), flags);
}
export function fanotifyInit(flags: number, eventFlags: number): number {
  return syscall('fanotify_init', NR.fanotify_init, flags, eventFlags);
}
export function fanotifyMark(fd: number, flags: number, mask: bigint, dirfd: number, path: string | null): void {
  const b = path === null ? null : Buffer.from(path + '\0');
  syscall('fanotify_mark', NR.fanotify_mark, fd, flags, mask, dirfd, b ? addressOf(b) : 0);
}
export function epollCreate(flags: number): number {
  return syscall('epoll_create1', NR.epoll_create1, flags);
}
export function signalfd(mask: bigint, flags: number): number {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(mask, 0);
  return syscall('signalfd4', NR.signalfd4, -1, addressOf(b), 8, flags);
}
export function timerfdCreate(clock: number, flags: number): number {
  return syscall('timerfd_create', NR.timerfd_create, clock, flags);
}
/** timerfd_settime with a relative (or absolute, per flags) itimerspec {interval, value}. */
export function timerfdSettime(
  fd: number,
  flags: number,
  interval: { sec: bigint; nsec: bigint },
  value: { sec: bigint; nsec: bigint },
): void {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(interval.sec, 0);
  b.writeBigInt64LE(interval.nsec, 8);
  b.writeBigInt64LE(value.sec, 16);
  b.writeBigInt64LE(value.nsec, 24);
  syscall('timerfd_settime', NR.timerfd_settime, fd, flags, addressOf(b), 0);
}
/**
 * timerfd_gettime, for what it does besides answering: a periodic timer that expired and
 * was not read since is moved on to its next expiry, its missed periods added to its ticks.
 */
export function timerfdGettime(fd: number): void {
  const b = Buffer.alloc(32);
  syscall('timerfd_gettime', NR.timerfd_gettime, fd, addressOf(b));
}
export const TFD_IOC_SET_TICKS = 0x40085400;

/** A thread's CPU affinity mask (tid 0: the calling thread), as many bytes as the kernel's cpumask. */
export function schedGetaffinity(tid: number): Buffer {
  const mask = Buffer.alloc(128);
  const n = syscall(`sched_getaffinity(${tid})`, NR.sched_getaffinity, tid, mask.length, addressOf(mask));
  return mask.subarray(0, n);
}

/** -errno instead of throwing: a cpuset may not allow the mask (EINVAL), and callers then go on without it. */
export function schedSetaffinity(tid: number, mask: Buffer): number {
  return syscallErr(NR.sched_setaffinity, tid, mask.length, addressOf(mask));
}

const cpuBuf = Buffer.alloc(4);
/** The CPU the calling thread runs on. */
export function getcpu(): number {
  syscall('getcpu', NR.getcpu, addressOf(cpuBuf), 0, 0);
  return cpuBuf.readUInt32LE(0);
}

/** openat2's resolve flags (linux/openat2.h). */
export const RESOLVE = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08 } as const;
const openHow = Buffer.alloc(24);
/** openat2(2): `name` resolved under `dirfd` as `resolve` allows (struct open_how). */
export function openat2(dirfd: number, name: string, flags: number, mode: number, resolve: number): number {
  const b = Buffer.from(name + '\0');
  openHow.writeBigUInt64LE(BigInt(flags), 0);
  openHow.writeBigUInt64LE(BigInt(mode), 8);
  openHow.writeBigUInt64LE(BigInt(resolve), 16);
  return syscall(`openat2(${name})`, NR.openat2, dirfd, addressOf(b), addressOf(openHow), 24);
}
/** linkat(2) with AT_SYMLINK_FOLLOW: a new name for the file `from` leads to (/proc/PID/fd/N included). */
export function linkFollow(from: string, to: string): void {
  const a = Buffer.from(from + '\0'),
    b = Buffer.from(to + '\0');
  syscall(`linkat(${to})`, NR.linkat, AT_FDCWD_NR, addressOf(a), AT_FDCWD_NR, addressOf(b), 0x400 /* AT_SYMLINK_FOLLOW */);
}
const AT_FDCWD_NR = -100;
const linkBuf = Buffer.alloc(4096);
/** readlinkat(fd, ""): the target of the symlink an O_PATH fd holds (deleted or not). */
export function readlinkFd(fd: number): string {
  const n = syscall('readlinkat', NR.readlinkat, fd, addressOf(Buffer.from('\0')), addressOf(linkBuf), linkBuf.length);
  return linkBuf.toString('utf8', 0, n);
}
/** mknodat(2): a FIFO, device or empty regular file at `name`. */
export function mknodat(dirfd: number, name: string, mode: number, dev = 0): void {
  const b = Buffer.from(name + '\0');
  syscall(`mknodat(${name})`, NR.mknodat, dirfd, addressOf(b), mode, dev);
}
export function unlinkat(dirfd: number, name: string, flags = 0): void {
  const b = Buffer.from(name + '\0');
  syscall(`unlinkat(${name})`, NR.unlinkat, dirfd, addressOf(b), flags);
}
