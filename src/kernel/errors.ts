import koffi from 'koffi';

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(koffi.os.errno)) {
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}
// Kernel-internal restart codes never reach userspace as errno, but they show up in
// the return register of a tracee stopped inside a syscall.
const internal: Record<number, string> = {
  512: 'ERESTARTSYS',
  513: 'ERESTARTNOINTR',
  514: 'ERESTARTNOHAND',
  516: 'ERESTART_RESTARTBLOCK',
};

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? internal[errno] ?? `E${errno}`;
}

export function errnoCode(name: string): number {
  const n = (koffi.os.errno as Record<string, number>)[name];
  if (n === undefined) throw new Error(`unknown errno name ${name}`);
  return n;
}

/** A failed system call, as seen by the caller: which call, which errno, and why. */
export class SysError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;
  constructor(call: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${call}${detail ? ` (${detail})` : ''}: ${code} (${strerror(errno)})`);
    this.name = 'SysError';
    this.call = call;
    this.errno = errno;
    this.code = code;
  }
}

const messages: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EINVAL: 'Invalid argument',
  EMFILE: 'Too many open files',
  ENOSPC: 'No space left on device',
  ENOSYS: 'Function not implemented',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
};

export function strerror(errno: number): string {
  return messages[errnoName(errno)] ?? `errno ${errno}`;
}
