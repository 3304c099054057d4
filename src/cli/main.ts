// criu-ts command line, in CRIU's syntax: `criu-ts dump -t PID -D DIR`, `restore -D DIR -d`,
// `check`. Errors are one line on stderr and exit code 1.
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { setChildSubreaper, openBeneath } from '../kernel/index.ts';
import { LevelLogger } from '../log.ts';
import { CriuError } from '../errors.ts';
import { ImageError, readKeyFile, setImageOpener } from '../images/index.ts';
import { armInterrupts, dieOfInterrupt } from '../interrupt.ts';
// Each command loads only its own modules: start-up time is most of a small dump.
const loadDump = () => import('../dump/dump.ts');
const loadRestore = () => import('../restore/restore.ts');
const loadCheck = () => import('./check.ts');
const loadCrit = () => import('./crit.ts');
const loadJournal = () => import('../dump/journal.ts');
import { NOT_SUPPORTED, ACCEPTED_INTERNAL, INTERNAL_WITH_VALUE } from './options.ts';

const UNSUPPORTED_COMMANDS = new Set(['pre-dump', 'page-server', 'lazy-pages', 'swrk', 'service', 'dedup', 'cpuinfo', 'exec', 'show']);

interface Opts {
  tree?: string; imagesDir: string; workDir?: string; logFile?: string; verbosity?: string | boolean;
  pidfile?: string; restoreDetached?: boolean; leaveRunning?: boolean; shellJob?: boolean;
  timeout?: string; feature?: string; defaultConfig?: boolean;
  compress?: string; encrypt?: string; skipVerify?: boolean; freezeCgroup?: string;
}

function fail(msg: string): never { throw new CriuError(msg); }

/** Refuse unimplemented CRIU options by name; drop internal tuning options. */
function screen(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { out.push(...argv.slice(i)); break; }
    const name = a.startsWith('--') ? a.split('=')[0] : a;
    if (NOT_SUPPORTED.has(name) || NOT_SUPPORTED.has(name.replace(/^--no-/, '--'))) fail(`not supported yet: ${name}`);
    if (ACCEPTED_INTERNAL.has(name)) {
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : INTERNAL_WITH_VALUE.has(name) ? argv[++i] : undefined;
      if (name === '--pre-dump-mode' && value !== 'splice' && value !== 'read') fail(`bad --pre-dump-mode ${value ?? ''}: use splice or read`);
      continue;
    }
    out.push(a);
  }
  return out;
}

function verbosityOf(v: string | boolean | undefined): number {
  if (v === undefined) return 2;
  if (v === true) return 3;
  if (typeof v === 'string') {
    if (/^v*$/.test(v)) return Math.min(4, 3 + v.length);
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) fail(`bad verbosity level ${v}`);
    return Math.min(n, 4);
  }
  return 2;
}

function program(run: (cmd: string, o: Opts) => Promise<number>): Command {
  const p = new Command('criu-ts');
  p.exitOverride();
  p.configureOutput({ writeErr: () => {}, writeOut: (s) => process.stdout.write(s) });
  p.helpOption('-h, --help');
  p.version('criu-ts 0.1.0 (CRIU images v1.1)', '-V, --version');
  const common = (c: Command) => c
    .addOption(new Option('-D, --images-dir <dir>', 'directory with the images').default('.'))
    .option('-W, --work-dir <dir>', 'directory for logs and stats (default: images dir)')
    .option('-o, --log-file <file>', 'log file, relative to the work dir')
    .option('-v, --verbosity [level]', 'log level 0..4, or -v/-vv...')
    .option('--pidfile <file>', 'write the pid of the restored root here')
    .option('-j, --shell-job', 'the tree is a shell job (its session is outside)')
    .option('--no-default-config', 'do not read the default config files')
    .option('--timeout <sec>', 'freezing time limit in seconds', '10');
  common(p.command('dump').description('checkpoint a process tree'))
    .option('-t, --tree <pid>', 'root of the tree to dump')
    .option('-R, --leave-running', 'leave the tasks running after the dump')
    .option('--compress <algo>', 'compress the page data (zstd)')
    .option('--freeze-cgroup <path>', 'freeze the tree with this cgroup freezer')
    .option('--encrypt <keyfile>', 'encrypt the page data with AES-256-GCM (32-byte key, raw or hex)')
    .action(async (o: Opts) => { process.exitCode = await run('dump', o); });
  common(p.command('restore').description('restore a process tree'))
    .option('-t, --tree <pid>', 'ignored (as in CRIU)')
    .option('-d, --restore-detached', 'return once the tree runs')
    .option('--encrypt <keyfile>', 'key of encrypted page data')
    .option('--skip-verify', 'do not check the checksum manifest')
    .action(async (o: Opts) => { process.exitCode = await run('restore', o); });
  common(p.command('check').description('check the kernel features criu-ts relies on'))
    .option('--feature <name>', 'check one feature; "list" names them')
    .option('--extra', 'also optional features (always shown)')
    .option('--experimental', 'same as --extra')
    .option('--all', 'same as --extra')
    .action(async (o: Opts) => { process.exitCode = await run('check', o); });
  return p;
}

async function execute(cmd: string, o: Opts): Promise<number> {
  const imagesDir = path.resolve(o.imagesDir);
  const workDir = path.resolve(imagesDir, o.workDir ?? '.');
  const level = verbosityOf(o.verbosity);
  const logFile = o.logFile ? path.resolve(workDir, o.logFile) : undefined;
  if (cmd === 'restore' && !fs.existsSync(imagesDir)) fail(`images directory ${imagesDir} does not exist`);
  if (logFile) fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const log = new LevelLogger(level, logFile);
  try {
    // SIGINT, SIGTERM, SIGHUP and SIGQUIT abort a dump or restore cleanly (interrupt.ts).
    if (cmd === 'dump' || cmd === 'restore') armInterrupts();
    // What a criu-ts killed in the middle of a dump left behind is undone first.
    (await loadJournal()).cleanStale(log);
    switch (cmd) {
      case 'check':
        return (await loadCheck()).runCheck(o.feature, (s) => process.stdout.write(s + '\n'), (s) => process.stderr.write(s + '\n'));
      case 'dump': {
        if (o.tree === undefined) fail('pid not specified: dump needs -t PID');
        const pid = Number(o.tree);
        if (!Number.isInteger(pid) || pid <= 0) fail(`bad pid ${o.tree}`);
        const timeout = Number(o.timeout ?? 10);
        if (o.compress !== undefined && o.compress !== 'zstd') fail(`unknown compression ${o.compress}: use zstd`);
        const pages = { compress: o.compress as 'zstd' | undefined, key: o.encrypt ? readKeyFile(path.resolve(o.encrypt)) : undefined };
        const { dump } = await loadDump();
        const r = dump({ pid, dir: imagesDir, workDir, leaveRunning: !!o.leaveRunning, shellJob: !!o.shellJob, timeoutSec: timeout, log, pages, freezeCgroup: o.freezeCgroup });
        log.info(`Dumped ${pid}: ${r.pagesWritten} pages in ${r.frozenMs.toFixed(1)} ms`);
        return 0;
      }
      case 'restore': {
        if (o.tree !== undefined) log.warn('-t is ignored on restore');
        const key = o.encrypt ? readKeyFile(path.resolve(o.encrypt)) : undefined;
        const { restore } = await loadRestore();
        const r = restore({
          dir: imagesDir, detach: !!o.restoreDetached, shellJob: !!o.shellJob, log, key, skipVerify: !!o.skipVerify,
          pidfile: o.pidfile ? path.resolve(workDir, o.pidfile) : undefined,
        });
        log.info(`Restored ${r.pid} in ${r.ms.toFixed(1)} ms`);
        return r.exitCode ?? 0;
      }
    }
    fail(`unknown command ${cmd}`);
  } catch (e) {
    log.error(messageOf(e));
    if (logFile || level < 1) process.stderr.write(`${messageOf(e)}\n`);
    if (level >= 4 && e instanceof Error && !(e instanceof CriuError) && e.stack) log.debug(e.stack);
    return 1;
  } finally {
    log.close();
  }
}

function messageOf(e: unknown): string {
  if (e instanceof CriuError || e instanceof ImageError) return e.message;
  if (e instanceof Error) return e.message.split('\n')[0];
  return String(e);
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv.find((a) => !a.startsWith('-'));
  if (argv[0] === 'crit') return (await loadCrit()).runCrit(argv.slice(1));
  try {
    if (cmd && UNSUPPORTED_COMMANDS.has(cmd)) fail(`not supported yet: ${cmd}`);
    const args = screen(argv);
    setChildSubreaper();
    setImageOpener(openBeneath);
    await program(execute).parseAsync(args, { from: 'user' });
    dieOfInterrupt();
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0;
      process.stderr.write(`${e.message.replace(/^error: /, '')}\n`);
      return 1;
    }
    process.stderr.write(`${messageOf(e)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
