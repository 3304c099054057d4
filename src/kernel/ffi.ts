// The only module that loads native code. Everything else reaches the kernel through
// the typed wrappers in syscalls.ts.
import koffi from 'koffi';
import { SysError } from './errors.ts';

const libc = koffi.load('libc.so.6');

// A fixed 7-argument prototype is ABI-compatible with variadic syscall(2) on x86_64 and
// AArch64 Linux, and avoids koffi's slower variadic path.
const rawSyscall = libc.func('long syscall(long nr, long a, long b, long c, long d, long e, long f)') as (
  nr: number,
  a: Arg,
  b: Arg,
  c: Arg,
  d: Arg,
  e: Arg,
  f: Arg,
) => number;

export type Arg = number | bigint;

/** Native address of a Buffer's first byte (valid while the Buffer is referenced). */
export function addressOf(buf: Uint8Array): bigint {
  return koffi.address(buf);
}

/** Raw syscall: returns the result, or throws SysError named `call`. */
export function syscall(call: string, nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const r = rawSyscall(nr, a, b, c, d, e, f);
  if (r === -1) throw new SysError(call, koffi.errno());
  return r;
}

/** Raw syscall returning -errno instead of throwing, for callers that branch on errno. */
export function syscallErr(nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const r = rawSyscall(nr, a, b, c, d, e, f);
  return r === -1 ? -koffi.errno() : r;
}

const cPosixSpawn = libc.func(
  'int posix_spawn(_Out_ int *pid, const char *path, void *file_actions, void *attrp, const char **argv, const char **envp)',
);
const cFileActionsInit = libc.func('int posix_spawn_file_actions_init(void *fa)');
const cFileActionsAddOpen = libc.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, int mode)');
const cFileActionsAddDup2 = libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)');
const cFileActionsDestroy = libc.func('int posix_spawn_file_actions_destroy(void *fa)');
const cAttrInit = libc.func('int posix_spawnattr_init(void *attr)');
const cAttrSetFlags = libc.func('int posix_spawnattr_setflags(void *attr, short flags)');
const cAttrSetSigDefault = libc.func('int posix_spawnattr_setsigdefault(void *attr, void *set)');
const cAttrSetSigMask = libc.func('int posix_spawnattr_setsigmask(void *attr, void *set)');
const cAttrDestroy = libc.func('int posix_spawnattr_destroy(void *attr)');
const POSIX_SPAWN_SETSIGMASK = 0x08,
  POSIX_SPAWN_SETSIGDEF = 0x04,
  POSIX_SPAWN_SETSID = 0x80;

export interface SpawnFd {
  fd: number;
  path?: string;
  flags?: number;
  dupFrom?: number;
}

/**
 * posix_spawn from native code: the child is unknown to libuv, so libuv's SIGCHLD
 * handler never reaps it or steals its ptrace stops. Every signal starts with its default
 * action and unblocked (Node ignores some), so that what the child inherits is known.
 */
export function posixSpawn(path: string, argv: string[], envp: string[], fds: SpawnFd[] = [], setsid = false): number {
  const fa = Buffer.alloc(256); // sizeof(posix_spawn_file_actions_t) is 80 on glibc; leave room
  const attr = Buffer.alloc(512); // sizeof(posix_spawnattr_t) is 336 on glibc
  cFileActionsInit(fa);
  cAttrInit(attr);
  try {
    const all = Buffer.alloc(128, 0xff),
      none = Buffer.alloc(128);
    cAttrSetSigDefault(attr, all);
    cAttrSetSigMask(attr, none);
    cAttrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (setsid ? POSIX_SPAWN_SETSID : 0));
    for (const f of fds) {
      if (f.path !== undefined) cFileActionsAddOpen(fa, f.fd, f.path, f.flags ?? 0, 0o644);
      else if (f.dupFrom !== undefined) cFileActionsAddDup2(fa, f.dupFrom, f.fd);
    }
    const out = [0];
    const rc = cPosixSpawn(out, path, fds.length ? fa : null, attr, [...argv, null], [...envp, null]) as number;
    if (rc !== 0) throw new SysError(`posix_spawn ${path}`, rc);
    return out[0];
  } finally {
    cFileActionsDestroy(fa);
    cAttrDestroy(attr);
  }
}

// glibc's struct sigaction (x86_64 and AArch64): handler, 1024-bit mask, flags, restorer.
// glibc's sigaction() supplies the signal-return trampoline the kernel needs on x86_64.
const SIGACTION_SIZE = 152,
  SA_FLAGS_AT = 136;
const SA_RESTART = 0x10000000,
  SA_RESETHAND = 0x80000000;
type SigactionFn = (sig: number, act: Buffer | null, oact: Buffer | null) => number;
const cSigaction = libc.func('int sigaction(int sig, const void *act, _Out_ void *oact)') as SigactionFn;
const cDlsym = libc.func('void *dlsym(void *handle, const char *name)');
let noopHandler: bigint | undefined;
const oldAction = Buffer.alloc(SIGACTION_SIZE);

/**
 * Catch `sig` once with a handler that does nothing: the kernel puts the default action back
 * as it delivers it (SA_RESETHAND), which signalCaught() sees. The handler is libc's getpid,
 * native code that is safe in a signal handler on any thread, so that a signal arriving while
 * JavaScript runs or a synchronous call is in progress only leaves its trace.
 */
export function catchSignalOnce(sig: number): void {
  noopHandler ??= koffi.address(cDlsym(null, 'getpid'));
  const act = Buffer.alloc(SIGACTION_SIZE);
  act.writeBigUInt64LE(noopHandler, 0);
  act.writeUInt32LE((SA_RESTART | SA_RESETHAND) >>> 0, SA_FLAGS_AT);
  if (cSigaction(sig, act, null) !== 0) throw new SysError(`sigaction(${sig})`, koffi.errno());
}

/** Whether a signal caught by catchSignalOnce has come (its action is the default again). */
export function signalCaught(sig: number): boolean {
  if (cSigaction(sig, null, oldAction) !== 0) throw new SysError(`sigaction(${sig})`, koffi.errno());
  return oldAction.readBigUInt64LE(0) === 0n;
}

/** Give `sig` its default action. */
export function defaultSignal(sig: number): void {
  if (cSigaction(sig, Buffer.alloc(SIGACTION_SIZE), null) !== 0) throw new SysError(`sigaction(${sig})`, koffi.errno());
}
