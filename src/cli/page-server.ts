// `criu-ts page-server -D DIR --port P [--address A] [-d] [--pidfile F] [--prev-images-dir D]`:
// CRIU's page server. It listens, serves one dump's page data into DIR, and exits. With -d it
// runs on in the background once it listens (the command returns then, as CRIU's does), and
// the RPC PAGE_SERVER request starts it the same way.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { CriuError } from '../errors.ts';
import { checkDumpDir, writeImageFile } from '../images/index.ts';
import { LevelLogger } from '../log.ts';
import type { Argv } from './argv.ts';
import { startPageServer } from '../migrate/start.ts';

interface PsOpts {
  imagesDir: string;
  workDir?: string;
  logFile?: string;
  port?: string;
  address?: string;
  daemon?: boolean;
  pidfile?: string;
  prevImagesDir?: string;
  readyFd?: string;
}

function program(): Command {
  const c = new Command('page-server')
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .option('-D, --images-dir <dir>', 'where the page data goes', '.')
    .option('-W, --work-dir <dir>', 'directory for the log')
    .option('-o, --log-file <file>', 'log file, relative to the work dir')
    .option('--port <port>', 'TCP port to listen on (0: any free one, printed)')
    .option('--address <addr>', 'numeric address to listen on (default: all)')
    .option('-d, --daemon', 'run in the background once listening')
    .option('--pidfile <file>', "write the page server's pid here (with -d)")
    .option('--prev-images-dir <dir>', 'the previous dump (relative to -D): PE_PARENT pages are there')
    .option('--ready-fd <fd>', 'internal: report the port here once listening');
  c.allowExcessArguments(false);
  return c;
}

export async function runPageServer(argv: Argv): Promise<number> {
  const words = argv.args.slice(1).filter((a) => !/^-v\d*$/.test(a));
  const o = program().parse(words, { from: 'user' }).opts<PsOpts>();
  if (o.port === undefined) throw new CriuError('page-server needs --port');
  const port = Number(o.port);
  if (!/^\d+$/.test(o.port) || port > 65535) throw new CriuError(`bad port ${o.port}`);
  const dir = path.resolve(o.imagesDir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CriuError(`images directory ${dir} does not exist`);
  const workDir = path.resolve(dir, o.workDir ?? '.');
  const logFile = o.logFile && o.logFile !== '-' ? path.resolve(workDir, o.logFile) : undefined;
  if (o.daemon) {
    const r = startPageServer({
      dir,
      port,
      address: o.address,
      prevImagesDir: o.prevImagesDir,
      logFile,
      level: argv.level,
      detached: true,
    });
    if (o.pidfile) writeImageFile(path.resolve(workDir, o.pidfile), `${r.pid}\n`);
    if (port === 0) process.stdout.write(`${r.port}\n`);
    return 0;
  }
  checkDumpDir(dir, false);
  const log = new LevelLogger(argv.level, logFile);
  const { listenPageServer, servePageServer } = await import('../migrate/page-server.ts');
  try {
    if (o.prevImagesDir !== undefined) linkParent(dir, o.prevImagesDir);
    const l = listenPageServer(o.address, port);
    log.info(`page server listening on port ${l.port}`);
    if (o.readyFd !== undefined) {
      const fd = Number(o.readyFd);
      fs.writeSync(fd, `${l.port}\n`);
      fs.closeSync(fd);
    } else if (port === 0) process.stdout.write(`${l.port}\n`);
    if (o.pidfile) writeImageFile(path.resolve(workDir, o.pidfile), `${process.pid}\n`);
    servePageServer(l.fd, dir, log);
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    // The caller prints the one line; the log file gets it too.
    if (logFile) log.error(msg);
    if (o.readyFd !== undefined) {
      try {
        fs.writeSync(Number(o.readyFd), `error: ${msg}\n`);
      } catch {
        /* reported already */
      }
    }
    throw e;
  } finally {
    log.close();
  }
}

/** The `parent` link to the previous images, as CRIU makes it for --prev-images-dir. */
function linkParent(dir: string, prev: string): void {
  const link = path.join(dir, 'parent');
  if (!fs.existsSync(path.resolve(dir, prev))) throw new CriuError(`--prev-images-dir ${prev}: no such directory (relative to ${dir})`);
  try {
    fs.symlinkSync(prev, link);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}
