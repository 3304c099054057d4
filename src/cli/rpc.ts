// `criu-ts swrk FD` and `criu-ts service`: CRIU's RPC (src/rpc) from the command line.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fcntl, socketType, SOCK } from '../kernel/index.ts';
import { CriuError } from '../errors.ts';
import { LevelLogger } from '../log.ts';
import { RpcConn } from '../rpc/conn.ts';
import { serveConnection } from '../rpc/server.ts';
import { runService } from '../rpc/service.ts';
import { shellActions } from './scripts.ts';
import type { Argv } from './argv.ts';

const F_SETFD = 2,
  FD_CLOEXEC = 1;
/** A service client must send each request within this time (others wait meanwhile). */
const SERVICE_REQUEST_TIMEOUT_MS = 10_000;

interface RpcArgs {
  words: string[];
  address?: string;
  pidfile?: string;
  statusFd?: number;
  daemon: boolean;
  scripts: string[];
  logFile?: string;
  workDir?: string;
}

const WITH_VALUE = new Set([
  '--address',
  '--pidfile',
  '--status-fd',
  '--action-script',
  '-o',
  '--log-file',
  '-W',
  '--work-dir',
  '-D',
  '--images-dir',
]);

function parse(args: string[]): RpcArgs {
  const o: RpcArgs = { words: [], daemon: false, scripts: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!name.startsWith('-')) {
      o.words.push(a);
      continue;
    }
    if (name === '-d' || name === '--daemon') {
      o.daemon = true;
      continue;
    }
    if (!WITH_VALUE.has(name)) throw new CriuError(`not supported yet with ${o.words[0] ?? 'swrk'}: ${name}`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new CriuError(`${name} needs a value`);
    switch (name) {
      case '--address':
        o.address = value;
        break;
      case '--pidfile':
        o.pidfile = value;
        break;
      case '--status-fd':
        o.statusFd = fdNumber(value, name);
        break;
      case '--action-script':
        o.scripts.push(value);
        break;
      case '-o':
      case '--log-file':
        o.logFile = value;
        break;
      case '-W':
      case '--work-dir':
        o.workDir = value;
        break;
      default:
        break; // -D: each request names its own images dir
    }
  }
  return o;
}

function fdNumber(s: string, what: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n)) throw new CriuError(`bad ${what} ${s}`);
  return n;
}

/**
 * service -d: the same command again without -d, in a session of its own with its stdio on
 * /dev/null (CRIU calls daemon(3)); this one returns once the service listens, after passing
 * the news on to the caller's --status-fd.
 */
async function daemonize(args: string[], statusFd: number | undefined): Promise<number> {
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-d' || a === '--daemon' || a.startsWith('--status-fd=')) continue;
    if (a === '--status-fd') {
      i++;
      continue;
    }
    rest.push(a);
  }
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...rest, '--status-fd', '3'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  const ready = await new Promise<boolean>((resolve) => {
    (child.stdio[3] as NodeJS.ReadableStream).once('data', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
  if (!ready) throw new CriuError('service -d: the service did not start (run it without -d to see why)');
  child.unref();
  (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
  if (statusFd !== undefined) {
    fs.writeSync(statusFd, Buffer.alloc(1));
    fs.closeSync(statusFd);
  }
  return 0;
}

/**
 * What bin/criu-ts hands a swrk over (see there): the first request, which it read to see
 * whether it was a version probe, and where the probe's replay goes. Neither reaches children.
 */
function launcherHandoff(): { first?: Buffer; versionReplay?: string } {
  const firstFile = process.env.CRIU_TS_SWRK_FIRST;
  const versionReplay = process.env.CRIU_TS_SWRK_REPLAY || undefined;
  delete process.env.CRIU_TS_SWRK_FIRST;
  delete process.env.CRIU_TS_SWRK_REPLAY;
  if (!firstFile) return { versionReplay };
  try {
    return { first: fs.readFileSync(firstFile), versionReplay };
  } finally {
    fs.rmSync(firstFile, { force: true });
  }
}

/** swrk: serve the inherited socket, then exit with the result (0, 1, or 255 for a protocol error). */
export async function runRpc(argv: Argv): Promise<number> {
  const o = parse(argv.args);
  const cmd = o.words[0];
  const scripts = (dir: string) =>
    shellActions(
      o.scripts.map((s) => path.resolve(s)),
      dir,
    );
  if (cmd === 'swrk') {
    if (o.words.length !== 2) throw new CriuError('Usage: criu-ts swrk <fd>');
    const fd = fdNumber(o.words[1], 'swrk fd');
    let type: number;
    try {
      type = socketType(fd);
    } catch {
      throw new CriuError(`swrk: fd ${fd} is not a socket`);
    }
    if (type !== SOCK.SEQPACKET) throw new CriuError(`swrk: fd ${fd} is not a SOCK_SEQPACKET socket`);
    // Restored trees and action scripts must not hold the client's socket open.
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    const { first, versionReplay } = launcherHandoff();
    return serveConnection(new RpcConn(fd, first), { mode: 'swrk', scripts, versionReplay });
  }
  if (o.words.length !== 1) throw new CriuError('Usage: criu-ts service [--address PATH] [--pidfile FILE] [--status-fd FD]');
  if (o.daemon) return daemonize(argv.args, o.statusFd);
  const workDir = path.resolve(o.workDir ?? '.');
  const logFile = o.logFile && o.logFile !== '-' ? path.resolve(workDir, o.logFile) : undefined;
  const log = new LevelLogger(argv.level, logFile);
  if (o.statusFd !== undefined && !fs.existsSync(`/proc/self/fd/${o.statusFd}`))
    throw new CriuError(`--status-fd ${o.statusFd} is not open`);
  try {
    runService({
      address: path.resolve(workDir, o.address ?? 'criu_service.socket'),
      pidfile: o.pidfile && path.resolve(workDir, o.pidfile),
      statusFd: o.statusFd,
      log,
      serve: { mode: 'service', scripts, requestTimeoutMs: SERVICE_REQUEST_TIMEOUT_MS },
    });
  } finally {
    log.close();
  }
  return 0;
}
