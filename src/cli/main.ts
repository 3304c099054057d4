// criu-ts command line, in CRIU's syntax: `criu-ts dump -t PID -D DIR`, `restore -D DIR -d`,
// `check`, `crit`. Errors are one line on stderr (and in the log, with -o) and exit code 1.
// CRIU_TS_DEBUG=1 adds the JavaScript stack of an unexpected error to the log.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { setChildSubreaper, openBeneath } from '../kernel/index.ts';
import { LevelLogger, writeLogLine } from '../log.ts';
import { CriuError, NotSupportedError } from '../errors.ts';
import { ImageError, readKeyFile, setImageOpener, checkDumpDir, checkRestoreDir, UntrustedDirError } from '../images/index.ts';
import { armInterrupts, dieOfInterrupt } from '../interrupt.ts';
// Each command loads only its own modules: start-up time is most of a small dump.
const loadDump = () => import('../dump/dump.ts');
const loadRestore = () => import('../restore/restore.ts');
const loadCheck = () => import('./check.ts');
const loadCrit = () => import('./crit.ts');
const loadRpc = () => import('./rpc.ts');
const loadScripts = () => import('./scripts.ts');
const loadPageServer = () => import('./page-server.ts');
const loadCpuinfo = () => import('./cpuinfo.ts');
const loadJournal = () => import('../dump/journal.ts');
const loadUnlock = () => import('./network-unlock.ts');
import { NOT_SUPPORTED, ACCEPTED_INTERNAL, INTERNAL_WITH_VALUE } from './options.ts';
import { joinNetPath } from '../resources/ns/types.ts';
import { normalize, type Argv } from './argv.ts';
import { CG_MODE, parseCgMode, parseCgroupRoot, type CgMode } from '../resources/cgroups.ts';
import type { MountOptions } from '../resources/ns/mnt-tree.ts';
import type { NetOptions } from '../resources/ns/types.ts';
import { isLockMethod } from '../resources/net/netlock.ts';
import type { TcpMode } from '../resources/files/types.ts';
import { now } from '../lazy.ts';

const VERSION = 'criu-ts 0.1.0 (CRIU images v1.1)';
const UNSUPPORTED_COMMANDS = new Set(['lazy-pages', 'dedup', 'exec', 'show']);
const RPC_COMMANDS = new Set(['swrk', 'service']);
const COMMANDS = new Set([
  'dump',
  'pre-dump',
  'restore',
  'check',
  'network-unlock',
  'crit',
  'page-server',
  'cpuinfo',
  ...RPC_COMMANDS,
  ...UNSUPPORTED_COMMANDS,
]);

interface Opts {
  tree?: string;
  prevImagesDir?: string;
  trackMem?: boolean;
  imagesDir: string;
  workDir?: string;
  logFile?: string;
  pidfile?: string;
  restoreDetached?: boolean;
  leaveRunning?: boolean;
  shellJob?: boolean;
  timeout?: string;
  feature?: string;
  defaultConfig?: boolean;
  compress?: string;
  encrypt?: string;
  ghostLimit?: string;
  linkRemap?: boolean;
  forceIrmap?: boolean;
  irmapScanPath?: string[];
  skipVerify?: boolean;
  freezeCgroup?: string;
  force?: boolean;
  trustImages?: boolean;
  fileLocks?: boolean;
  extUnixSk?: boolean | string;
  actionScript?: string[];
  tcpEstablished?: boolean;
  tcpClose?: boolean;
  skipInFlight?: boolean;
  manageCgroups?: boolean | string;
  cgroupRoot?: string[];
  cgroupYard?: string;
  inheritFd?: string[];
  joinNs?: string[];
  root?: string;
  external?: string[];
  vethPair?: string[];
  extMountMap?: string[];
  enableExternalSharing?: boolean;
  enableExternalMasters?: boolean;
  emptyNs?: string;
  networkLock?: string;
  pageServer?: boolean;
  address?: string;
  port?: string;
}

function fail(msg: string): never {
  throw new CriuError(msg);
}

/** Refuse unimplemented CRIU options by name; drop internal tuning options. */
function screen(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = a.startsWith('--') ? a.split('=')[0] : a;
    if (NOT_SUPPORTED.has(name) || NOT_SUPPORTED.has(name.replace(/^--no-/, '--'))) throw NotSupportedError.option(name);
    if (ACCEPTED_INTERNAL.has(name)) {
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : INTERNAL_WITH_VALUE.has(name) ? argv[++i] : undefined;
      if (name === '--pre-dump-mode' && value !== 'splice' && value !== 'read')
        fail(`bad --pre-dump-mode ${value ?? ''}: use splice or read`);
      continue;
    }
    out.push(a);
  }
  return out;
}

type Cmd = 'dump' | 'pre-dump' | 'restore' | 'check' | 'network-unlock';
/**
 * Every option, with the commands it is for. As in CRIU, a command accepts the others'
 * options too (ZDTM passes --pidfile to dump) and ignores them; its help lists only its own.
 */
const OPTIONS: { flags: string; desc: string; cmds: Cmd[]; dflt?: string }[] = [
  { flags: '-t, --tree <pid>', desc: 'root of the tree to dump', cmds: ['dump'] },
  { flags: '-D, --images-dir <dir>', desc: 'directory with the images', cmds: ['dump', 'restore', 'check', 'network-unlock'], dflt: '.' },
  { flags: '-W, --work-dir <dir>', desc: 'directory for the log and stats (default: the images dir)', cmds: ['dump', 'restore', 'check'] },
  { flags: '-o, --log-file <file>', desc: 'log file, relative to the work dir (truncated)', cmds: ['dump', 'restore', 'check'] },
  {
    flags: '-v, --verbosity [level]',
    desc: 'log level 0..4 (default 2), or -v, -vv...: 1 errors, 2 warnings, 3 steps, 4 every task, VMA, fd and image',
    cmds: ['dump', 'restore', 'check'],
  },
  { flags: '--no-default-config', desc: 'read no configuration file (none is read anyway)', cmds: ['dump', 'restore', 'check'] },
  { flags: '-R, --leave-running', desc: 'leave the tasks running after the dump', cmds: ['dump'] },
  {
    flags: '--prev-images-dir <dir>',
    desc: 'the previous (pre-)dump, relative to -D: pages not written since are not saved again',
    cmds: ['dump'],
  },
  { flags: '--track-mem', desc: 'track memory changes for the next dump (with -R; pre-dump always does)', cmds: ['dump'] },
  { flags: '-j, --shell-job', desc: 'the tree is a shell job (its session is outside)', cmds: ['dump', 'restore'] },
  { flags: '-l, --file-locks', desc: 'dump and restore file locks (flock, POSIX and OFD locks)', cmds: ['dump', 'restore'] },
  {
    flags: '-x, --ext-unix-sk',
    desc: 'allow datagram unix sockets connected to a named socket outside the tree',
    cmds: ['dump', 'restore'],
  },
  { flags: '--timeout <sec>', desc: 'freezing time limit in seconds', cmds: ['dump'], dflt: '10' },
  { flags: '--link-remap', desc: 'save a deleted file that has other names by a temporary link to it', cmds: ['dump'] },
  {
    flags: '--force-irmap',
    desc: 'find a path for each watched inode (inotify, fanotify), searching --irmap-scan-path when its handle gives none',
    cmds: ['dump'],
  },
  {
    flags: '--irmap-scan-path <dir>',
    desc: 'where --force-irmap searches (default: /etc, /var/spool, /var/log...); repeatable',
    cmds: ['dump'],
  },
  { flags: '--ghost-limit <size>', desc: 'largest deleted file to save, in bytes (K, M, G suffixes; default 1M)', cmds: ['dump'] },
  { flags: '--freeze-cgroup <path>', desc: 'freeze the tree with this cgroup freezer', cmds: ['dump'] },
  {
    flags: '--manage-cgroups [mode]',
    desc: 'cgroups: save their dirs and properties (dump); ignore, none, props, soft (default), full or strict (restore)',
    cmds: ['dump', 'restore'],
  },
  {
    flags: '--cgroup-yard <path>',
    desc: 'the cgroup hierarchies are mounted here (by controller, name, unified)',
    cmds: ['dump', 'restore'],
  },
  {
    flags: '--cgroup-root <[ctrl:]path>',
    desc: "restore the tree's cgroups under this path (of one controller), repeatable",
    cmds: ['restore'],
  },
  {
    flags: '--inherit-fd <fd[N]:KEY>',
    desc: "criu-ts's fd N stands for KEY of the images: a file (pipe:[INO], a path) or an external network namespace; repeatable",
    cmds: ['restore'],
  },
  {
    flags: '--join-ns <net:PATH|PID>',
    desc: 'restore the tree into this existing network namespace (a file, or the one of PID) instead of a new one',
    cmds: ['restore'],
  },
  { flags: '--compress <algo>', desc: 'compress the page data (zstd)', cmds: ['dump'] },
  {
    flags: '--encrypt <keyfile>',
    desc: 'seal every image with AES-256-GCM and authenticate the manifest (dump), or require that (restore); 32-byte key, raw or hex',
    cmds: ['dump', 'restore'],
  },
  { flags: '--force', desc: 'dump into a directory that another user owns or can write', cmds: ['dump'] },
  { flags: '--trust-images', desc: 'restore as root images that another user owns or can write', cmds: ['restore'] },
  { flags: '--tcp-established', desc: 'dump and restore established TCP connections (TCP repair mode)', cmds: ['dump', 'restore'] },
  { flags: '--tcp-close', desc: 'do not dump established TCP connections: they come back closed', cmds: ['dump', 'restore'] },
  {
    flags: '--network-lock <method>',
    desc: 'how connections are kept from their peers between dump and restore: nftables (default where nft works), iptables or skip',
    cmds: ['dump'],
  },
  { flags: '--page-server', desc: 'send the page data to a page server (--address, --port); the other images stay here', cmds: ['dump'] },
  { flags: '--address <addr>', desc: "the page server's numeric address", cmds: ['dump'] },
  { flags: '--port <port>', desc: "the page server's TCP port", cmds: ['dump'] },
  { flags: '--skip-in-flight', desc: 'drop TCP connections not accepted yet by a listening socket', cmds: ['dump'] },
  { flags: '-r, --root <path>', desc: "the host directory the restored mount namespace's root is a bind of", cmds: ['restore'] },
  {
    flags: '--external <res>',
    desc: 'an external mount: mnt[MOUNTPOINT]:KEY at dump, mnt[KEY]:PATH at restore; an external network namespace: net[INODE]:KEY at dump; at restore the outer end of a veth, veth[IFNAME]:OUTNAME[@BRIDGE], a device made beforehand to move in as IFNAME, netdev[IFNAME]:NAME, and the parent of a macvlan, macvlan[IFNAME]:PARENT; repeatable',
    cmds: ['dump', 'restore'],
  },
  {
    flags: '--veth-pair <pair>',
    desc: 'IFNAME=OUTNAME[@BRIDGE]: old form of --external veth[IFNAME]:OUTNAME[@BRIDGE]; repeatable',
    cmds: ['restore'],
  },
  { flags: '--empty-ns <ns>', desc: 'net: do not save the network namespace, restore an empty one', cmds: ['dump', 'restore'] },
  {
    flags: '-M, --ext-mount-map <map>',
    desc: 'MOUNTPOINT:KEY at dump, KEY:PATH at restore (old form of --external mnt[]); "auto": --external mnt[]; repeatable',
    cmds: ['dump', 'restore'],
  },
  {
    flags: '--enable-external-sharing',
    desc: 'with --external mnt[]: shared mounts may be found external too',
    cmds: ['dump', 'restore'],
  },
  {
    flags: '--enable-external-masters',
    desc: 'with --external mnt[]: slave mounts of a host mount may be found external too',
    cmds: ['dump', 'restore'],
  },
  { flags: '-d, --restore-detached', desc: 'return once the tree runs', cmds: ['restore'] },
  { flags: '--pidfile <file>', desc: 'write the pid of the restored root here', cmds: ['restore'] },
  { flags: '--skip-verify', desc: 'do not check the checksum manifest', cmds: ['restore'] },
  {
    flags: '--action-script <file>',
    desc: 'run this program at each action (pre-dump, post-dump, pre-restore, post-restore...), repeatable',
    cmds: ['dump', 'restore'],
  },
  { flags: '--feature <name>', desc: 'check one feature (CRIU\'s names); "list" names them', cmds: ['check'] },
  { flags: '--extra', desc: 'also the optional features (always shown)', cmds: ['check'] },
  { flags: '--experimental', desc: 'same as --extra', cmds: ['check'] },
  { flags: '--all', desc: 'same as --extra', cmds: ['check'] },
];

/** Long options taking a value: their value is never taken for an option or the command. */
const LONG_WITH_VALUE = new Set([
  ...OPTIONS.filter((o) => o.flags.includes('<')).map((o) => /--[\w-]+/.exec(o.flags)![0]),
  ...INTERNAL_WITH_VALUE,
  '--address',
  '--port',
  '--ready-fd',
  '--status-fd',
]);

/** A size as CRIU reads one: a number with an optional K, M or G suffix. */
function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) fail(`bad size ${s}: a number with an optional K, M or G suffix`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}

function program(run: (cmd: Cmd, o: Opts) => Promise<number>): Command {
  const p = new Command('criu-ts');
  p.exitOverride();
  p.configureOutput({ writeErr: () => {}, writeOut: (s) => process.stdout.write(s) });
  p.helpOption('-h, --help');
  p.version(VERSION, '-V, --version');
  const command = (name: Cmd, desc: string) => {
    const c = p.command(name).description(desc);
    for (const o of OPTIONS) {
      const opt = new Option(o.flags, o.desc);
      if (o.dflt !== undefined) opt.default(o.dflt);
      if (/^(--action-script|--cgroup-root|--inherit-fd|--join-ns|--external|--veth-pair|-M|--irmap-scan-path)/.test(o.flags))
        opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
      if (!o.cmds.includes(name === 'pre-dump' ? 'dump' : name)) opt.hideHelp();
      c.addOption(opt);
    }
    c.action(async (o: Opts) => {
      process.exitCode = await run(name, o);
    });
  };
  command('dump', 'checkpoint a process tree');
  command('pre-dump', "save a tree's memory and let it run on, its changes tracked for the next dump");
  command('restore', 'restore a process tree');
  command('check', 'check the kernel features criu-ts relies on');
  command('network-unlock', "remove the network lock a dump kept for its restore (-D: the dump's images)");
  // Run by main() before the parsing here; listed for --help.
  p.command('crit').description('decode, encode and explore images (criu-ts crit --help)').helpOption(false).allowUnknownOption();
  return p;
}

/** The log file of this run (absolute), from the options before they are parsed. */
function logPathOf(a: Argv): string | undefined {
  if (a.logFile === undefined || a.logFile === '-') return undefined;
  const imagesDir = path.resolve(a.imagesDir ?? '.');
  return path.resolve(path.resolve(imagesDir, a.workDir ?? '.'), a.logFile);
}

async function execute(cmd: Cmd, o: Opts, argv: Argv): Promise<number> {
  const imagesDir = path.resolve(o.imagesDir);
  const workDir = path.resolve(imagesDir, o.workDir ?? '.');
  const level = argv.level;
  const logFile = o.logFile && o.logFile !== '-' ? path.resolve(workDir, o.logFile) : undefined;
  // The log goes into the images dir by default: a restore from a missing one creates nothing.
  if (cmd === 'restore' && !fs.existsSync(imagesDir)) fail(`images directory ${imagesDir} does not exist`);
  // Before anything is written there (the log): a directory someone else controls is refused.
  if (cmd === 'dump' || cmd === 'pre-dump') for (const d of new Set([imagesDir, workDir])) checkDumpDir(d, !!o.force);
  if (cmd === 'restore') checkRestoreDir(imagesDir, fs.readdirSync(imagesDir), !!o.trustImages);
  if (logFile) fs.mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o700 });
  const log = new LevelLogger(level, logFile);
  try {
    log.info(`${VERSION}, Linux ${os.release()} ${os.machine()}, pid ${process.pid} (up ${now().toFixed(1)} ms)`);
    log.info(`command line: ${process.argv.slice(2).join(' ')}`);
    // SIGINT, SIGTERM, SIGHUP and SIGQUIT abort a dump or restore cleanly (interrupt.ts).
    if (cmd === 'dump' || cmd === 'pre-dump' || cmd === 'restore') armInterrupts();
    // What a criu-ts killed in the middle of a dump left behind is undone first.
    (await loadJournal()).cleanStale(log);
    switch (cmd) {
      case 'check':
        return (await loadCheck()).runCheck(o.feature, (s) => process.stdout.write(s + '\n'), log);
      case 'network-unlock':
        return (await loadUnlock()).networkUnlock(imagesDir, (s) => process.stdout.write(s + '\n'), log);
      case 'pre-dump':
      case 'dump': {
        if (o.tree === undefined) fail('pid not specified: dump needs -t PID');
        const pid = Number(o.tree);
        if (!Number.isInteger(pid) || pid <= 0) fail(`bad pid ${o.tree}`);
        const timeout = Number(o.timeout ?? 10);
        if (o.compress !== undefined && o.compress !== 'zstd') fail(`unknown compression ${o.compress}: use zstd`);
        const pages = { compress: o.compress as 'zstd' | undefined, key: o.encrypt ? readKeyFile(path.resolve(o.encrypt)) : undefined };
        const { dump } = await loadDump();
        const actions = (await loadScripts()).shellActions(
          (o.actionScript ?? []).map((s) => path.resolve(s)),
          imagesDir,
        );
        const r = dump({
          pid,
          dir: imagesDir,
          workDir,
          leaveRunning: !!o.leaveRunning,
          shellJob: !!o.shellJob,
          timeoutSec: timeout,
          log,
          pages,
          freezeCgroup: o.freezeCgroup,
          extUnixSk: !!o.extUnixSk,
          fileLocks: !!o.fileLocks,
          actions,
          tcp: tcpMode(o),
          ghostLimit: o.ghostLimit === undefined ? undefined : parseSize(o.ghostLimit),
          linkRemap: !!o.linkRemap,
          irmap: o.forceIrmap ? (o.irmapScanPath ?? []) : undefined,
          manageCgroups: cgMode(o) !== CG_MODE.IGNORE,
          cgroupYard: cgroupYard(o, workDir),
          mounts: mountOptions(o),
          net: netOptions(o),
          pre: cmd === 'pre-dump',
          prevImagesDir: o.prevImagesDir,
          trackMem: !!o.trackMem,
          pageServer: pageServerOf(o),
        });
        log.info(
          `${cmd === 'pre-dump' ? 'Pre-dumped' : 'Dumped'} ${r.tasks} task(s) of ${pid}: ${r.pagesWritten} pages${r.pagesSkippedParent ? ` (${r.pagesSkippedParent} in the parent dump)` : ''}, ${r.shpagesWritten} shared pages, frozen ${r.frozenMs.toFixed(1)} ms`,
        );
        return 0;
      }
      case 'restore': {
        if (!fs.existsSync(path.join(imagesDir, 'inventory.img'))) fail(`no dump in ${imagesDir}: it has no inventory.img`);
        const key = o.encrypt ? readKeyFile(path.resolve(o.encrypt)) : undefined;
        const { restore } = await loadRestore();
        const actions = (await loadScripts()).shellActions(
          (o.actionScript ?? []).map((s) => path.resolve(s)),
          imagesDir,
        );
        const r = restore({
          dir: imagesDir,
          workDir,
          detach: !!o.restoreDetached,
          shellJob: !!o.shellJob,
          log,
          key,
          skipVerify: !!o.skipVerify,
          actions,
          tcp: tcpMode(o),
          pidfile: o.pidfile ? path.resolve(workDir, o.pidfile) : undefined,
          cgroups: { mode: cgMode(o), roots: (o.cgroupRoot ?? []).map(parseCgroupRoot), yard: cgroupYard(o, workDir) },
          inheritFds: (o.inheritFd ?? []).map(parseInheritFd),
          mounts: mountOptions(o),
          net: netOptions(o),
        });
        log.info(`Restored ${r.pid} in ${r.ms.toFixed(1)} ms`);
        return r.exitCode ?? 0;
      }
    }
  } catch (e) {
    log.failed(messageOf(e), debugStack(e));
    if (logFile || level < 1) process.stderr.write(`${messageOf(e)}\n`);
    return 1;
  } finally {
    log.close();
  }
}

/** --page-server --address A --port P of a dump. */
function pageServerOf(o: Opts): { address: string; port: number } | undefined {
  if (!o.pageServer) {
    if (o.port !== undefined) fail('--port without --page-server');
    return undefined;
  }
  if (o.address === undefined) fail('--page-server needs --address');
  const port = Number(o.port);
  if (o.port === undefined || !/^\d+$/.test(o.port) || port === 0 || port > 65535) fail(`--page-server needs --port (1..65535)`);
  if (o.compress !== undefined || o.encrypt !== undefined) throw NotSupportedError.option('--page-server with --compress or --encrypt');
  return { address: o.address, port };
}

/** CRIU's default is soft, with or without --manage-cgroups. */
function cgMode(o: Opts): CgMode {
  return parseCgMode(typeof o.manageCgroups === 'string' ? o.manageCgroups : undefined);
}

/** --cgroup-yard, relative to the work dir as CRIU, which works from there. */
function cgroupYard(o: Opts, workDir: string): string | undefined {
  return o.cgroupYard === undefined ? undefined : path.resolve(workDir, o.cgroupYard);
}

/** `fd[N]:KEY` of --inherit-fd. */
function parseInheritFd(v: string): { key: string; fd: number } {
  const m = /^fd\[(\d+)\]:(.+)$/.exec(v);
  if (!m) fail(`bad --inherit-fd ${v}: fd[N]:KEY`);
  return { fd: Number(m[1]), key: m[2] };
}

/** --root, --external mnt[A]:B and --ext-mount-map A:B (A → B; what A and B are depends on the command). */
function mountOptions(o: Opts): MountOptions {
  const external = new Map<string, string>();
  // --external mnt[] (mnt[]:s, mnt[]:m) and --ext-mount-map auto: CRIU's autodetection.
  let auto: MountOptions['auto'];
  const autoOn = (flag = '') => {
    auto ??= { sharing: false, masters: false };
    if (flag === ':s') auto.sharing = true;
    else if (flag === ':m') auto.masters = true;
    else if (flag) fail(`bad --external mnt[]${flag}: use mnt[], mnt[]:s or mnt[]:m`);
  };
  for (const x of o.external ?? []) {
    if (/^(net|veth|macvlan|netdev)\[/.test(x)) continue;
    if (x.startsWith('mnt[]')) {
      autoOn(x.slice(5));
      continue;
    }
    const m = /^mnt\[([^\]]+)\]:(.+)$/.exec(x);
    if (!m) throw NotSupportedError.option(`--external ${x}`);
    external.set(m[1], m[2]);
  }
  for (const x of o.extMountMap ?? []) {
    if (x === 'auto') {
      autoOn();
      continue;
    }
    const i = x.indexOf(':');
    if (i <= 0) fail(`bad --ext-mount-map ${x}: use A:B`);
    external.set(x.slice(0, i), x.slice(i + 1));
  }
  // Without mnt[] they say nothing, as in CRIU.
  if (auto && o.enableExternalSharing) auto.sharing = true;
  if (auto && o.enableExternalMasters) auto.masters = true;
  return { root: o.root === undefined ? undefined : path.resolve(o.root), external, ...(auto ? { auto } : {}) };
}

/** --empty-ns net, --external net[INODE]:KEY, --inherit-fd fd[N]:KEY, --join-ns net:PATH. */
function netOptions(o: Opts): NetOptions {
  if (o.emptyNs !== undefined && o.emptyNs !== 'net') throw NotSupportedError.option(`--empty-ns ${o.emptyNs}`);
  const external = new Map<string, string>();
  const devices = new Map<string, string>();
  for (const x of o.external ?? []) {
    const m = /^net\[(\d+)\]:(.+)$/.exec(x);
    const d = /^((?:veth|macvlan|netdev)\[[^\]]+\]):(.+)$/.exec(x);
    if (m) external.set(m[1], m[2]);
    else if (d) devices.set(d[1], d[2]);
    else if (x.startsWith('net[')) fail(`bad --external ${x}: use net[INODE]:KEY`);
    else if (/^(veth|macvlan|netdev)\[/.test(x))
      fail(`bad --external ${x}: use veth[IFNAME]:OUTNAME[@BRIDGE], netdev[IFNAME]:NAME or macvlan[IFNAME]:PARENT`);
  }
  for (const x of o.vethPair ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(x);
    if (!m) fail(`bad --veth-pair ${x}: use IFNAME=OUTNAME[@BRIDGE]`);
    devices.set(`veth[${m[1]}]`, m[2]);
  }
  const inherit = new Map<string, number>();
  for (const x of o.inheritFd ?? []) {
    const m = /^fd\[(\d+)\]:(.+)$/.exec(x);
    if (!m) fail(`bad --inherit-fd ${x}: use fd[N]:KEY`);
    inherit.set(m[2], Number(m[1]));
  }
  let join: string | undefined;
  for (const x of o.joinNs ?? []) {
    const m = /^net:([^,]+)$/.exec(x);
    if (!m) throw NotSupportedError.option(`--join-ns ${x} (only net:PATH or net:PID is)`);
    join = joinNetPath(m[1]);
  }
  return { empty: o.emptyNs === 'net', external, inherit, devices, ...(join ? { join } : {}) };
}

function tcpMode(o: Opts): TcpMode {
  const m = o.networkLock;
  if (m !== undefined && !isLockMethod(m)) fail(`unknown network lock method ${m}: use nftables, iptables or skip`);
  return { established: !!o.tcpEstablished, close: !!o.tcpClose, skipInFlight: !!o.skipInFlight, ...(m ? { networkLock: m } : {}) };
}

/** The stack of an unexpected error, with CRIU_TS_DEBUG=1 only: users get one line. */
function debugStack(e: unknown): string | undefined {
  if (!process.env.CRIU_TS_DEBUG || !(e instanceof Error) || e instanceof CriuError) return undefined;
  return e.stack;
}

function messageOf(e: unknown): string {
  if (e instanceof CriuError || e instanceof ImageError) return e.message;
  // Node's own system errors ("ENOENT: no such file or directory, open '/x'"): the call and path first.
  const sys = e as NodeJS.ErrnoException;
  if (e instanceof Error && sys.syscall && sys.code && sys.path !== undefined) {
    const what = /^\w+: ([^,]+)/.exec(e.message)?.[1] ?? e.message;
    return `${sys.syscall} ${sys.path}: ${what} (${sys.code})`;
  }
  if (e instanceof Error) return e.message.split('\n')[0];
  return String(e);
}

/** getopt permutes: the command may come after options (`criu -v4 dump ...`). */
function commandFirst(args: string[]): string[] {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (/^-[tDoWrJLM]$/.test(a) || LONG_WITH_VALUE.has(a)) i++;
      continue;
    }
    if (i === 0 || !COMMANDS.has(a)) return args;
    return [a, ...args.slice(0, i), ...args.slice(i + 1)];
  }
  return args;
}

export async function main(argv: string[]): Promise<number> {
  // criu-ts's own guardian of sockets it puts in TCP repair mode (src/soccr/guard.ts).
  // It removes the network lock of a dump whose criu-ts died while the tree still ran.
  if (argv[0] === '__soccr-guard') {
    const { unlock } = await import('../resources/net/netlock.ts');
    return (await import('../soccr/guard.ts')).runGuardian(0, 1, (extra) => unlock(JSON.parse(extra)));
  }
  if (argv[0] === 'crit') return (await loadCrit()).runCrit(argv.slice(1));
  const parsed = normalize(argv, LONG_WITH_VALUE);
  try {
    const args = commandFirst(parsed.args);
    const cmd = args[0];
    if (cmd === 'crit') return (await loadCrit()).runCrit(args.slice(1));
    if (cmd && UNSUPPORTED_COMMANDS.has(cmd)) throw NotSupportedError.option(cmd);
    if (cmd === 'page-server') {
      setImageOpener(openBeneath);
      return await (await loadPageServer()).runPageServer({ ...parsed, args });
    }
    if (cmd === 'cpuinfo') return await (await loadCpuinfo()).runCpuinfo({ ...parsed, args });
    if (cmd && RPC_COMMANDS.has(cmd)) {
      setChildSubreaper();
      setImageOpener(openBeneath);
      return (await loadRpc()).runRpc({ ...parsed, args });
    }
    if (cmd === undefined) fail('no command: criu-ts dump|restore|check|crit (criu-ts --help)');
    const screened = screen(args);
    setChildSubreaper();
    setImageOpener(openBeneath);
    await program((c, o) => execute(c, o, parsed)).parseAsync(screened, { from: 'user' });
    dieOfInterrupt();
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0;
    const msg = e instanceof CommanderError ? e.message.replace(/^error: /, '') : messageOf(e);
    // The harness reads the log even when the command line was refused: it must exist.
    const logFile = logPathOf(parsed);
    if (logFile && !(e instanceof UntrustedDirError)) writeLogLine(logFile, parsed.level, msg);
    process.stderr.write(`${msg}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
