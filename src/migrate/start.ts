// Starting a page server in a process of its own (`page-server -d`, RPC PAGE_SERVER): the
// same program with `page-server ... --ready-fd 3`, which reports its port on that pipe once it
// listens, or why it could not.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { CriuError } from '../errors.ts';
import { close, pipe2 } from '../kernel/index.ts';

const O_CLOEXEC = 0o2000000;

export interface PageServerStart {
  dir: string;
  port: number;
  address?: string;
  prevImagesDir?: string;
  logFile?: string;
  level: number;
  /** Detached (its own session, not a child to wait for), as CRIU's -d and RPC PAGE_SERVER. */
  detached: boolean;
}

/**
 * Start a page server in a process of its own; returns once it listens, with its pid and port
 * (the kernel's pick for port 0). Synchronous, for the RPC service.
 */
export function startPageServer(s: PageServerStart): { pid: number; port: number } {
  const [r, w] = pipe2(O_CLOEXEC);
  const args = ['page-server', '-D', s.dir, '--port', String(s.port), `-v${s.level}`, '--ready-fd', '3'];
  if (s.address !== undefined) args.push('--address', s.address);
  if (s.prevImagesDir !== undefined) args.push('--prev-images-dir', s.prevImagesDir);
  if (s.logFile !== undefined) args.push('-o', s.logFile);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
      detached: s.detached,
      stdio: ['ignore', 'ignore', s.detached ? 'ignore' : 'inherit', w],
    });
  } finally {
    close(w);
  }
  let text = '';
  try {
    const b = Buffer.alloc(64);
    for (;;) {
      const n = fs.readSync(r, b, 0, b.length, null);
      if (n === 0) break;
      text += b.toString('latin1', 0, n);
      if (text.includes('\n')) break;
    }
  } finally {
    close(r);
  }
  const m = /^(\d+)\n/.exec(text);
  if (!m || child.pid === undefined)
    throw new CriuError(`page server did not start${text ? `: ${text.trim()}` : ' (run it without -d to see why)'}`);
  child.unref();
  return { pid: child.pid, port: Number(m[1]) };
}
