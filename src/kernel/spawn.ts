// Run a program to its end through posix_spawn (a vfork: nothing of criu-ts's memory is
// copied, where child_process forks the whole process, milliseconds per program), its input
// given, its output and errors kept in memfds (no pipe to fill up and wait on).
import fs from 'node:fs';
import { posixSpawn, type SpawnFd } from './ffi.ts';
import { close, memfdCreate, MFD, pipe2, waitpid, W } from './syscalls.ts';
import { O, WALL } from './constants.ts';

export interface ProgramResult {
  /** The exit status, or 128 + the signal that killed it. */
  status: number;
  stdout: Buffer;
  stderr: string;
}

const DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** A program's path: PATH's, then the usual places (a caller may have an empty PATH). */
export function programPath(name: string): string | undefined {
  if (name.includes('/')) return name;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...DIRS];
  for (const d of dirs) {
    const p = `${d}/${name}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not there */
    }
  }
  return undefined;
}

function drain(fd: number): Buffer {
  const size = fs.fstatSync(fd).size;
  const b = Buffer.allocUnsafe(size);
  let at = 0;
  while (at < size) {
    const n = fs.readSync(fd, b, at, size - at, at);
    if (n <= 0) break;
    at += n;
  }
  return b.subarray(0, at);
}

/**
 * Run `argv` (argv[0] looked up in PATH) with `input` on its stdin (else /dev/null) and `fds`
 * given to it at the numbers named. Throws only when it cannot be started.
 */
export function runProgram(
  argv: string[],
  o: { input?: Buffer; fds?: Record<number, number>; env?: NodeJS.ProcessEnv } = {},
): ProgramResult {
  const path = programPath(argv[0]);
  if (!path) throw new Error(`${argv[0]}: not found`);
  const out = memfdCreate('criu-ts-stdout', MFD.CLOEXEC);
  const err = memfdCreate('criu-ts-stderr', MFD.CLOEXEC);
  const [inR, inW] = o.input ? pipe2(O.CLOEXEC) : [-1, -1];
  let pid: number;
  try {
    const actions: SpawnFd[] = [
      inR >= 0 ? { fd: 0, dupFrom: inR } : { fd: 0, path: '/dev/null', flags: O.RDONLY },
      { fd: 1, dupFrom: out },
      { fd: 2, dupFrom: err },
      ...Object.entries(o.fds ?? {}).map(([at, from]) => ({ fd: Number(at), dupFrom: from })),
    ];
    const env = Object.entries(o.env ?? process.env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    pid = posixSpawn(path, argv, env, actions);
  } finally {
    if (inR >= 0) close(inR);
  }
  try {
    if (o.input) {
      // A program that stops reading (it failed) leaves the rest unwritten: EPIPE.
      try {
        for (let at = 0; at < o.input.length; ) at += fs.writeSync(inW, o.input, at);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
      } finally {
        close(inW);
      }
    }
    const st = waitpid(pid, WALL).status;
    return {
      status: W.exited(st) ? W.exitStatus(st) : 128 + W.termSig(st),
      stdout: drain(out),
      stderr: drain(err).toString('utf8'),
    };
  } finally {
    close(out);
    close(err);
  }
}
