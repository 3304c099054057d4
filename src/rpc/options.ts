// criu_opts of an RPC request, mapped to what the command line gives a dump or restore.
// Every field is either honoured or refused by name with EBADRQC, as CRIU refuses options
// it cannot set up; none is dropped silently.
import fs from 'node:fs';
import path from 'node:path';
import { CriuError } from '../errors.ts';
import type { Message } from '../images/index.ts';
import { CG_MODE, type CgMode } from '../resources/cgroups.ts';
import type { MountOptions } from '../resources/ns/index.ts';
import type { LockMethod } from '../resources/net/netlock.ts';
import type { TcpMode } from '../resources/files/types.ts';

export type CriuOpts = Message<'criu_opts'>;
export const EBADRQC = 56;

/** The mode a request is served in: swrk has one client that may pass fds at exec time. */
export type RpcMode = 'swrk' | 'service';

/** Paths and logging common to every request that carries opts. */
export interface RpcPaths {
  imagesDir: string;
  workDir: string;
  logFile?: string;
  level: number;
}

const refuse = (what: string): never => {
  throw new CriuError(`not supported yet: ${what}`, EBADRQC);
};

/**
 * Fields criu-ts does not implement: refused when set to anything but their default. A dump's
 * root, ext_mnt, external and empty_ns only concern namespaces and external resources, which
 * the dump refuses anyway: they are accepted so that the refusal names what is really missing
 * (runc sends them all).
 */
const REFUSED_BOOL = [
  'auto_dedup',
  'force_irmap',
  'weak_sysctls',
  'lazy_pages',
  'tls',
  'tls_no_cn_verify',
  'mntns_compat_mode',
  'skip_file_rwx_check',
  'unprivileged',
  'leave_stopped',
] as const satisfies readonly (keyof CriuOpts)[];
const REFUSED_LIST = [
  'veths',
  'exec_cmd',
  'skip_mnt',
  'enable_fs',
  'unix_sk_ino',
  'irmap_scan_paths',
  'cgroup_dump_controller',
] as const satisfies readonly (keyof CriuOpts)[];
const REFUSED_SET = [
  'cgroup_props',
  'cgroup_props_file',
  'lsm_profile',
  'tls_cacert',
  'tls_cacrl',
  'tls_cert',
  'tls_key',
  'pidfd_store_sk',
  'lsm_mount_context',
  'status_fd',
] as const satisfies readonly (keyof CriuOpts)[];
/** Fields checked for their value below, or honoured by the dump and restore. */
const CHECKED = [
  'ps',
  'cpu_cap',
  'network_lock',
  'empty_ns',
  'root',
  'ext_mnt',
  'external',
  'manage_cgroups',
  'manage_cgroups_mode',
  'config_file',
  'rst_sibling',
  'inherit_fd',
  'join_ns',
] as const satisfies readonly (keyof CriuOpts)[];
const HONOURED = [
  'images_dir_fd',
  'images_dir',
  'work_dir_fd',
  'pid',
  'leave_running',
  'shell_job',
  'log_level',
  'log_file',
  'log_to_stderr',
  'notify_scripts',
  'timeout',
  'freeze_cgroup',
  'ext_unix_sk',
  'file_locks',
  'ghost_limit',
  'link_remap',
  'cg_root',
  'cgroup_yard',
  'tcp_established',
  'tcp_skip_in_flight',
  'tcp_close',
  'parent_img',
  'track_mem',
  'auto_ext_mnt',
  'ext_sharing',
  'ext_masters',
] as const satisfies readonly (keyof CriuOpts)[];
/**
 * Accepted with no effect, each for a reason: evasive_devices (device files are reopened by
 * path anyway), orphan_pts_master (no pty is restored but a shell job's, which has a
 * master: a tree holding another pty is refused at dump), pre_dump_mode and display_stats
 * (how CRIU works inside).
 */
const NO_EFFECT = ['evasive_devices', 'orphan_pts_master', 'pre_dump_mode', 'display_stats'] as const satisfies readonly (keyof CriuOpts)[];

/** Every criu_opts field criu-ts knows what to do with (a unit test holds it to rpc.proto). */
export const OPTS_FIELDS: readonly string[] = [...REFUSED_BOOL, ...REFUSED_LIST, ...REFUSED_SET, ...CHECKED, ...HONOURED, ...NO_EFFECT];

const DEFAULT_CPU_CAP = 0xffffffff,
  CLONE_NEWNET = 0x40000000;

/** rpc.proto's criu_network_lock_method (1-based, unlike the inventory's). */
const RPC_LOCK_METHODS: Record<number, LockMethod> = { 1: 'iptables', 2: 'nftables', 3: 'skip' };

/** tcp_established, tcp_close, tcp_skip_in_flight and network_lock as the dump and restore take them. */
export function tcpOf(opts: CriuOpts): TcpMode {
  const m = opts.network_lock === undefined ? undefined : RPC_LOCK_METHODS[opts.network_lock];
  return {
    established: !!opts.tcp_established,
    close: !!opts.tcp_close,
    skipInFlight: !!opts.tcp_skip_in_flight,
    ...(m ? { networkLock: m } : {}),
  };
}

/** criu_opts as a request without any: no images fd, every repeated field empty. */
export const noOpts = (): CriuOpts => ({
  images_dir_fd: -1,
  veths: [],
  exec_cmd: [],
  ext_mnt: [],
  cg_root: [],
  inherit_fd: [],
  skip_mnt: [],
  enable_fs: [],
  unix_sk_ino: [],
  irmap_scan_paths: [],
  external: [],
  join_ns: [],
  cgroup_dump_controller: [],
});

/** What a request's options mean beyond the fields passed on as they are. */
export interface Screened {
  /** manage_cgroups_mode, or manage_cgroups true → soft, false → ignore (CRIU's cr-service.c). */
  cgMode: CgMode;
  /** Settings of config_file. */
  skipVerify: boolean;
  trustImages: boolean;
}

/** Refuses what criu-ts cannot honour in `opts` for a request of `kind`. */
export function screenOpts(opts: CriuOpts, kind: 'dump' | 'restore' | 'check', mode: RpcMode): Screened {
  if (mode === 'service' && opts.rst_sibling) throw new CriuError('rst_sibling is not allowed in standalone service', EBADRQC);
  if (mode === 'service' && opts.inherit_fd.length) throw new CriuError('inherit_fd is not allowed in standalone service', EBADRQC);
  for (const f of REFUSED_BOOL) if (opts[f]) refuse(f);
  for (const f of REFUSED_LIST) if (opts[f].length) refuse(f);
  // Only a network namespace is joined (--join-ns net:PATH).
  for (const j of opts.join_ns) if (kind !== 'restore' || j.ns !== 'net' || j.extra_opt) refuse(`join_ns ${j.ns}`);
  for (const f of REFUSED_SET) if (opts[f] !== undefined) refuse(f);
  if (opts.cpu_cap !== undefined && opts.cpu_cap !== DEFAULT_CPU_CAP) refuse('cpu_cap');
  // A page server for the dump's page data (address and port); an inherited socket is not.
  if (opts.ps?.fd !== undefined) refuse('ps.fd');
  if (opts.ps && kind === 'dump' && (!opts.ps.address || !opts.ps.port))
    throw new CriuError('ps needs an address and a port for a dump through a page server', EBADRQC);
  if (opts.network_lock !== undefined && !RPC_LOCK_METHODS[opts.network_lock]) refuse(`network_lock ${opts.network_lock}`);
  if (opts.empty_ns !== undefined && (opts.empty_ns & ~CLONE_NEWNET) !== 0)
    throw new CriuError(`empty_ns 0x${opts.empty_ns.toString(16)}: only CLONE_NEWNET may be empty`, EBADRQC);
  if (kind === 'restore' && opts.external.length) refuse('external');
  for (const i of opts.inherit_fd) if (!/^(pipe:\[\d+\]|\/?[^:[]+)$/.test(i.key)) refuse(`inherit_fd ${i.key}`);
  const cgMode = (opts.manage_cgroups_mode ?? (opts.manage_cgroups ? CG_MODE.SOFT : CG_MODE.IGNORE)) as CgMode;
  if (!Object.values(CG_MODE).includes(cgMode)) refuse(`manage_cgroups_mode ${cgMode}`);
  return { cgMode, ...configSettings(opts.config_file) };
}

/** `root` and `ext_mnt` as --root and --ext-mount-map KEY:VAL (CRIU's ext_mount_add). */
export function mountsOf(opts: CriuOpts): MountOptions {
  return {
    root: opts.root === undefined ? undefined : path.resolve(opts.root),
    external: new Map(opts.ext_mnt.map((e) => [e.key, e.val])),
    ...(opts.auto_ext_mnt ? { auto: { sharing: !!opts.ext_sharing, masters: !!opts.ext_masters } } : {}),
  };
}

/** config_file says trust-images (read before the log is written into the images dir). */
export function trustsImages(opts: CriuOpts): boolean {
  try {
    return configSettings(opts.config_file).trustImages;
  } catch {
    return false;
  }
}

/**
 * A CRIU config file's settings (runc names /etc/criu/runc.conf, or its container's
 * org.criu.config annotation): one option a line, without or with its dashes. criu-ts reads
 * those it has for a restore whose client cannot pass them (CRIU's images carry no manifest:
 * skip-verify); any other setting is refused by name.
 */
function configSettings(file: string | undefined): { skipVerify: boolean; trustImages: boolean } {
  const out = { skipVerify: false, trustImages: false };
  if (file === undefined) return out;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const raw of text.split('\n')) {
    const l = raw.trim().replace(/^--/, '');
    if (l === '' || l.startsWith('#')) continue;
    if (l === 'skip-verify') out.skipVerify = true;
    else if (l === 'trust-images') out.trustImages = true;
    else refuse(`config_file ${file}: ${l}`);
  }
  return out;
}

/**
 * The directories of a request: fds are the client's, opened through /proc/<peer>/fd as CRIU
 * does. The log goes to `log_file` (no '/') in the work dir, criu.log by default.
 */
export function resolvePaths(opts: CriuOpts, peer: number, needsImages: boolean): RpcPaths {
  const viaFd = (fd: number, what: string): string => {
    try {
      return fs.realpathSync(`/proc/${peer}/fd/${fd}`);
    } catch {
      throw new CriuError(`cannot open ${what} fd ${fd} of the client ${peer}`, EBADRQC);
    }
  };
  let imagesDir: string | undefined;
  if (opts.images_dir_fd !== -1) imagesDir = viaFd(opts.images_dir_fd, 'images_dir');
  else if (opts.images_dir !== undefined) imagesDir = path.resolve(opts.images_dir);
  if (imagesDir === undefined && needsImages) throw new CriuError('Neither images_dir_fd nor images_dir was passed by RPC client', EBADRQC);
  const workDir = opts.work_dir_fd !== undefined ? viaFd(opts.work_dir_fd, 'work_dir') : imagesDir;
  if (opts.log_file?.includes('/')) throw new CriuError('No subdirs are allowed in log_file name', EBADRQC);
  let level = Math.max(0, Math.min(opts.log_level ?? 2, 4));
  // A CHECK with no directory at all logs nowhere rather than into the server's cwd.
  if (workDir === undefined) {
    if (opts.log_file !== undefined) throw new CriuError('images-dir or work-dir is required when using log file', EBADRQC);
    if (!opts.log_to_stderr) level = 0;
    return { imagesDir: process.cwd(), workDir: process.cwd(), level };
  }
  const logFile = opts.log_to_stderr && opts.log_file === undefined ? undefined : path.join(workDir, opts.log_file ?? 'criu.log');
  return { imagesDir: imagesDir ?? workDir, workDir, logFile, level };
}
