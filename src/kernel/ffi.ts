// The only module that loads native code. Everything else reaches the kernel through
// the typed wrappers in syscalls.ts. Native code is loaded on the first call, not when the
// module is evaluated: a command that never calls the kernel does not pay for it.
import type koffiModule from 'koffi';
import { SysError } from './errors.ts';

export type Arg = number | bigint;
type Fn = ReturnType<ReturnType<typeof koffiModule.load>['func']>;

/** koffi and the libc functions bound through it, made on first use. */
interface Native {
  koffi: typeof koffiModule;
  rawSyscall: (nr: number, a: Arg, b: Arg, c: Arg, d: Arg, e: Arg, f: Arg) => number;
  posixSpawn: Fn;
  faInit: Fn;
  faAddOpen: Fn;
  faAddDup2: Fn;
  faDestroy: Fn;
  attrInit: Fn;
  attrSetFlags: Fn;
  attrSetSigDefault: Fn;
  attrSetSigMask: Fn;
  attrDestroy: Fn;
  sigaction: SigactionFn;
  dlsym: Fn;
}
let nat: Native | undefined;

function native(): Native {
  if (nat) return nat;
  const koffi = loadKoffi();
  const libc = koffi.load('libc.so.6');
  const f = (proto: string): Fn => libc.func(proto);
  nat = {
    koffi,
    // A fixed 7-argument prototype is ABI-compatible with variadic syscall(2) on x86_64 and
    // AArch64 Linux, and avoids koffi's slower variadic path.
    rawSyscall: libc.func('long syscall(long nr, long a, long b, long c, long d, long e, long f)') as Native['rawSyscall'],
    posixSpawn: f(
      'int posix_spawn(_Out_ int *pid, const char *path, void *file_actions, void *attrp, const char **argv, const char **envp)',
    ),
    faInit: f('int posix_spawn_file_actions_init(void *fa)'),
    faAddOpen: f('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, int mode)'),
    faAddDup2: f('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
    faDestroy: f('int posix_spawn_file_actions_destroy(void *fa)'),
    attrInit: f('int posix_spawnattr_init(void *attr)'),
    attrSetFlags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
    attrSetSigDefault: f('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
    attrSetSigMask: f('int posix_spawnattr_setsigmask(void *attr, void *set)'),
    attrDestroy: f('int posix_spawnattr_destroy(void *attr)'),
    sigaction: libc.func('int sigaction(int sig, const void *act, _Out_ void *oact)') as SigactionFn,
    dlsym: f('void *dlsym(void *handle, const char *name)'),
  };
  return nat;
}

/**
 * koffi's native module, required directly from its per-platform package: koffi's own loader
 * (`require('koffi')`) probes paths and copies node:util's exports, which loads a dozen builtins
 * into every command's start-up. The loader only adds deprecated aliases, so it is the
 * fallback, for layouts where the platform package is elsewhere. createRequire: loaded
 * synchronously, resolved from wherever this code runs (sources or bundle).
 */
function loadKoffi(): typeof koffiModule {
  const { createRequire } = process.getBuiltinModule('node:module');
  const req = createRequire(import.meta.url);
  const triplet = `${process.platform}_${process.arch}`;
  try {
    const n = req(`@koromix/koffi-${process.platform}-${process.arch}/${triplet}/koffi.node`) as typeof koffiModule;
    if (typeof n.load === 'function' && typeof n.errno === 'function') return n;
  } catch {
    // not installed that way: koffi's loader finds it
  }
  return req('koffi') as typeof koffiModule;
}

/** Native address of a Buffer's first byte (valid while the Buffer is referenced). */
export function addressOf(buf: Uint8Array): bigint {
  return native().koffi.address(buf);
}

/** Raw syscall: returns the result, or throws SysError named `call`. */
export function syscall(call: string, nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const n = nat ?? native();
  const r = n.rawSyscall(nr, a, b, c, d, e, f);
  if (r === -1) throw new SysError(call, n.koffi.errno());
  return r;
}

/** Raw syscall returning -errno instead of throwing, for callers that branch on errno. */
export function syscallErr(nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const n = nat ?? native();
  const r = n.rawSyscall(nr, a, b, c, d, e, f);
  return r === -1 ? -n.koffi.errno() : r;
}

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
  const n = native();
  const fa = Buffer.alloc(256); // sizeof(posix_spawn_file_actions_t) is 80 on glibc; leave room
  const attr = Buffer.alloc(512); // sizeof(posix_spawnattr_t) is 336 on glibc
  n.faInit(fa);
  n.attrInit(attr);
  try {
    const all = Buffer.alloc(128, 0xff),
      none = Buffer.alloc(128);
    n.attrSetSigDefault(attr, all);
    n.attrSetSigMask(attr, none);
    n.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (setsid ? POSIX_SPAWN_SETSID : 0));
    for (const f of fds) {
      if (f.path !== undefined) n.faAddOpen(fa, f.fd, f.path, f.flags ?? 0, 0o644);
      else if (f.dupFrom !== undefined) n.faAddDup2(fa, f.dupFrom, f.fd);
    }
    const out = [0];
    const rc = n.posixSpawn(out, path, fds.length ? fa : null, attr, [...argv, null], [...envp, null]) as number;
    if (rc !== 0) throw new SysError(`posix_spawn ${path}`, rc);
    return out[0];
  } finally {
    n.faDestroy(fa);
    n.attrDestroy(attr);
  }
}

// glibc's struct sigaction (x86_64 and AArch64): handler, 1024-bit mask, flags, restorer.
// glibc's sigaction() supplies the signal-return trampoline the kernel needs on x86_64.
const SIGACTION_SIZE = 152,
  SA_FLAGS_AT = 136;
const SA_RESTART = 0x10000000,
  SA_RESETHAND = 0x80000000;
type SigactionFn = (sig: number, act: Buffer | null, oact: Buffer | null) => number;
let noopHandler: bigint | undefined;
const oldAction = Buffer.alloc(SIGACTION_SIZE);

/**
 * Catch `sig` once with a handler that does nothing: the kernel puts the default action back
 * as it delivers it (SA_RESETHAND), which signalCaught() sees. The handler is libc's getpid,
 * native code that is safe in a signal handler on any thread, so that a signal arriving while
 * JavaScript runs or a synchronous call is in progress only leaves its trace.
 */
export function catchSignalOnce(sig: number): void {
  const n = native();
  noopHandler ??= n.koffi.address(n.dlsym(null, 'getpid'));
  const act = Buffer.alloc(SIGACTION_SIZE);
  act.writeBigUInt64LE(noopHandler, 0);
  act.writeUInt32LE((SA_RESTART | SA_RESETHAND) >>> 0, SA_FLAGS_AT);
  if (n.sigaction(sig, act, null) !== 0) throw new SysError(`sigaction(${sig})`, n.koffi.errno());
}

/** Whether a signal caught by catchSignalOnce has come (its action is the default again). */
export function signalCaught(sig: number): boolean {
  const n = native();
  if (n.sigaction(sig, null, oldAction) !== 0) throw new SysError(`sigaction(${sig})`, n.koffi.errno());
  return oldAction.readBigUInt64LE(0) === 0n;
}

/** Give `sig` its default action. */
export function defaultSignal(sig: number): void {
  const n = native();
  if (n.sigaction(sig, Buffer.alloc(SIGACTION_SIZE), null) !== 0) throw new SysError(`sigaction(${sig})`, n.koffi.errno());
}
