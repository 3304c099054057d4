// cgroups as CRIU keeps them (cgroup.img): each thread's set of (controller, path) pairs
// (cg_set_entry, referred to by thread_core.cg_set), and for every controller the directories
// of those paths with the ones below them and the properties CRIU saves. inventory.root_cg_set
// names the dumping tool's own set: a task in it is restored into the restoring tool's cgroups.
// Everything is file I/O on the cgroup file systems mounted in criu-ts's mount namespace.
import fs from 'node:fs';
import path from 'node:path';
import { CriuError, NotSupportedError } from '../errors.ts';
import os from 'node:os';
import { parseMountinfo } from '../proc/index.ts';
import { mountFs, umount2, MNT_DETACH, inNamespaces, CLONE } from '../kernel/index.ts';
import type { Logger, Message, MessageInput } from './types.ts';

type SetEntry = MessageInput<'cg_set_entry'>;
type DirEntry = MessageInput<'cgroup_dir_entry'>;
type PropEntry = MessageInput<'cgroup_prop_entry'>;
export type CgroupImage = Message<'cgroup_entry'>;

/** CRIU's criu_cg_mode (rpc.proto) and --manage-cgroups modes. */
export const CG_MODE = { IGNORE: 0, NONE: 1, PROPS: 2, SOFT: 3, FULL: 4, STRICT: 5, DEFAULT: 6 } as const;
export type CgMode = (typeof CG_MODE)[keyof typeof CG_MODE];
const MODE_NAMES: Record<string, CgMode> = {
  ignore: CG_MODE.IGNORE,
  none: CG_MODE.NONE,
  props: CG_MODE.PROPS,
  soft: CG_MODE.SOFT,
  full: CG_MODE.FULL,
  strict: CG_MODE.STRICT,
};

export function parseCgMode(name: string | undefined): CgMode {
  if (name === undefined || name === '') return CG_MODE.SOFT;
  const m = MODE_NAMES[name];
  if (m === undefined) throw new CriuError(`bad --manage-cgroups mode ${name}: use ignore, none, props, soft, full or strict`);
  return m;
}

/** One line of /proc/PID/cgroup: a hierarchy's controllers ('' for cgroup2, 'name=X' for named ones) and the path. */
export interface CgCtl {
  name: string;
  path: string;
  /** In a cgroup namespace: the length of `path`'s part above the namespace's root (cg_member_entry.cgns_prefix). */
  cgns_prefix?: number;
}

export function parseCgroupFile(text: string): CgCtl[] {
  const out: CgCtl[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const a = line.indexOf(':'),
      b = line.indexOf(':', a + 1);
    out.push({ name: line.slice(a + 1, b), path: line.slice(b + 1) });
  }
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

const setKey = (ctls: CgCtl[]) => ctls.map((c) => `${c.name}:${c.path}:${c.cgns_prefix ?? ''}`).join('\n');

/**
 * Each member's cgns_prefix, from the paths seen from outside (`ext`) and from inside the
 * task's cgroup namespace (`inner`, which ends `ext`): where the namespace's root is.
 */
export function cgnsPrefixes(ext: CgCtl[], inner: CgCtl[], what: string): CgCtl[] {
  return ext.map((c) => {
    const i = inner.find((x) => x.name === c.name);
    if (!i) return c;
    if (i.path === c.path) return { ...c, cgns_prefix: 0 };
    const tail = i.path.slice(1);
    const at = c.path.length - tail.length;
    if (!c.path.endsWith(tail) || (tail && c.path[at - 1] !== '/'))
      throw new NotSupportedError(
        `${what}: its cgroup ${c.name || 'cgroup2'}:${i.path} inside its cgroup namespace is not below the namespace's root (${c.path} outside); not supported`,
      );
    return { ...c, cgns_prefix: tail ? at - 1 : c.path.length };
  });
}

/** The properties CRIU saves (its cgroup-props.c built-ins), per v1 controller, in its order. */
const PROPS: Record<string, string[]> = {
  cpu: ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.rt_period_us', 'cpu.rt_runtime_us'],
  // limit_in_bytes before memsw.limit_in_bytes: the kernel wants memsw >= limit.
  memory: [
    'memory.limit_in_bytes',
    'memory.memsw.limit_in_bytes',
    'memory.swappiness',
    'memory.soft_limit_in_bytes',
    'memory.move_charge_at_immigrate',
    'memory.oom_control',
    'memory.use_hierarchy',
    'memory.kmem.limit_in_bytes',
    'memory.kmem.tcp.limit_in_bytes',
  ],
  cpuset: [
    'cpuset.cpus',
    'cpuset.mems',
    'cpuset.memory_migrate',
    'cpuset.cpu_exclusive',
    'cpuset.mem_exclusive',
    'cpuset.mem_hardwall',
    'cpuset.memory_spread_page',
    'cpuset.memory_spread_slab',
    'cpuset.sched_load_balance',
    'cpuset.sched_relax_domain_level',
  ],
  blkio: ['blkio.weight'],
  net_cls: ['net_cls.classid'],
  net_prio: ['net_prio.ifpriomap'],
  pids: ['pids.max'],
  devices: ['devices.list'],
};
const GLOBAL_V1 = ['cgroup.clone_children', 'notify_on_release', 'cgroup.procs', 'tasks'];
const GLOBAL_V2 = ['cgroup.subtree_control', 'cgroup.max.descendants', 'cgroup.max.depth', 'cgroup.freeze', 'cgroup.type'];
/** Saved for their permissions only: their values are the members. */
const MEMBER_FILES = new Set(['cgroup.procs', 'tasks']);
/**
 * Set when a directory is made, before any task or child cgroup may be in it: a cpuset without
 * cpus refuses tasks, and devices.list is rewritten by denying all, which a cgroup with children
 * refuses (EINVAL). An existing directory keeps its own, as in CRIU.
 */
const SPECIAL = ['cpuset.cpus', 'cpuset.mems', 'devices.list'];
const CPUSET_INHERIT = ['cpuset.cpus', 'cpuset.mems'];
const LLONG_MAX = 9223372036854775807n;

/**
 * Where each hierarchy is mounted in criu-ts's mount namespace (its root mount, by controller
 * name), or with `yard` (--cgroup-yard) where the caller mounted them: YARD/CTRL, YARD/NAME for
 * name=NAME, YARD/unified for cgroup2, as CRIU looks for them.
 */
export function cgroupMounts(yard?: string): Map<string, string> {
  const out = new Map<string, string>();
  if (yard) {
    for (const d of fs.readdirSync(yard)) {
      const name = d === 'unified' ? '' : fs.existsSync(path.join(yard, d, 'cgroup.clone_children')) && !isKernelCtl(d) ? `name=${d}` : d;
      out.set(name, path.join(yard, d));
    }
    return out;
  }
  for (const m of parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'))) {
    if (m.root !== '/') continue;
    if (m.fstype === 'cgroup2') {
      if (!out.has('')) out.set('', m.mountPoint);
      continue;
    }
    if (m.fstype !== 'cgroup') continue;
    const opts = m.superOptions.split(',');
    const named = opts.find((o) => o.startsWith('name='));
    const ctrls = named
      ? [named]
      : opts.filter((o) => o !== 'rw' && o !== 'ro' && !o.includes('=') && o !== 'clone_children' && o !== 'noprefix');
    const key = ctrls.join(',');
    if (!out.has(key)) out.set(key, m.mountPoint);
  }
  return out;
}

/** A v1 hierarchy named after kernel controllers (not a name=X one), by /proc/cgroups. */
function isKernelCtl(dir: string): boolean {
  const known = new Set(
    fs
      .readFileSync('/proc/cgroups', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t')[0])
      .filter(Boolean),
  );
  return dir.split(',').every((c) => known.has(c));
}

/**
 * Hierarchies mounted nowhere in criu-ts's mount namespace (ZDTM's named ones), each mounted
 * once in a temporary directory of criu-ts's, as CRIU mounts its own; unmounted by close().
 */
class CgroupYard {
  private dirs = new Map<string, string>();
  private base: string | undefined;

  dir(name: string): string {
    let d = this.dirs.get(name);
    if (d !== undefined) return d;
    this.base ??= fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cgyard-'));
    d = path.join(this.base, String(this.dirs.size));
    fs.mkdirSync(d);
    try {
      if (name === '') mountFs('cgroup2', d, '');
      else mountFs('cgroup', d, name.startsWith('name=') ? `none,${name}` : name);
    } catch (e) {
      fs.rmdirSync(d);
      throw new CriuError(`cgroup hierarchy ${name || 'cgroup2'} cannot be mounted: ${(e as Error).message}`);
    }
    this.dirs.set(name, d);
    return d;
  }

  close(): void {
    for (const d of this.dirs.values()) {
      try {
        umount2(d, MNT_DETACH);
      } catch {
        /* already gone */
      }
    }
    this.dirs.clear();
    if (this.base) fs.rmSync(this.base, { recursive: true, force: true });
    this.base = undefined;
  }
}

function mountOf(mounts: Map<string, string>, name: string, yard: CgroupYard): string {
  return mounts.get(name) ?? yard.dir(name);
}

function readProp(file: string, name: string): PropEntry {
  const st = fs.statSync(file);
  const perms = { mode: st.mode, uid: st.uid, gid: st.gid };
  if (MEMBER_FILES.has(name)) return { name, value: '', perms };
  let value = fs.readFileSync(file, 'utf8').trim();
  if (name === 'memory.oom_control') value = /oom_kill_disable (\d+)/.exec(value)?.[1] ?? '0';
  // CRIU writes "-1" for an unlimited value the kernel prints as LLONG_MAX.
  else if (/^\d+$/.test(value) && BigInt(value) >= LLONG_MAX) value = '-1';
  return { name, value, perms };
}

function dirProps(dir: string, cnames: string[]): PropEntry[] {
  const names = cnames[0] === '' ? GLOBAL_V2 : [...cnames.flatMap((c) => PROPS[c] ?? []), ...GLOBAL_V1];
  return names.filter((n) => fs.existsSync(path.join(dir, n))).map((n) => readProp(path.join(dir, n), n));
}

function dumpDir(abs: string, dirName: string, cnames: string[]): DirEntry {
  const st = fs.statSync(abs);
  const children = fs
    .readdirSync(abs, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => dumpDir(path.join(abs, d.name), d.name, cnames));
  return { dir_name: dirName, children, properties: dirProps(abs, cnames), dir_perms: { mode: st.mode, uid: st.uid, gid: st.gid } };
}

/** The dump side: sets met while walking the threads, then cgroup.img. */
export class CgroupDump {
  private sets = new Map<string, { id: number; ctls: CgCtl[] }>();
  /** criu-ts's own set (inventory.root_cg_set). */
  readonly ownSet: number;

  private readonly ownNs = fs.readlinkSync('/proc/self/ns/cgroup');

  constructor() {
    this.ownSet = this.setOf(parseCgroupFile(fs.readFileSync('/proc/thread-self/cgroup', 'utf8')));
  }

  private setOf(ctls: CgCtl[]): number {
    const key = setKey(ctls);
    let s = this.sets.get(key);
    if (!s) {
      s = { id: this.sets.size + 1, ctls };
      this.sets.set(key, s);
    }
    return s.id;
  }

  /** thread_core.cg_set of a thread. */
  threadSet(pid: number, tid: number): number {
    const file = `/proc/${pid}/task/${tid}/cgroup`;
    const ext = parseCgroupFile(fs.readFileSync(file, 'utf8'));
    if (fs.readlinkSync(`/proc/${pid}/ns/cgroup`) === this.ownNs) return this.setOf(ext);
    // The kernel shows the paths relative to the reader's cgroup namespace.
    const inner = inNamespaces(pid, CLONE.NEWCGROUP, () => parseCgroupFile(fs.readFileSync(file, 'utf8')));
    return this.setOf(cgnsPrefixes(ext, inner, `thread ${tid} of task ${pid}`));
  }

  /**
   * cgroup.img, or undefined when every thread is in criu-ts's own set (CRIU writes none
   * then either). With `manage` the controllers' directories and properties are saved too.
   */
  image(manage: boolean, log: Logger, yard?: string): { sets: SetEntry[]; controllers: MessageInput<'cg_controller_entry'>[] } | undefined {
    const others = [...this.sets.values()].filter((s) => s.id !== this.ownSet);
    if (!others.length) return undefined;
    const sets: SetEntry[] = others.map((s) => ({
      id: s.id,
      ctls: s.ctls.map((c) => ({ name: c.name, path: c.path, cgns_prefix: c.cgns_prefix })),
    }));
    const byCtl = new Map<string, Set<string>>();
    for (const s of others) for (const c of s.ctls) byCtl.set(c.name, (byCtl.get(c.name) ?? new Set()).add(c.path));
    const mounts = manage ? cgroupMounts(yard) : new Map<string, string>();
    const own = new CgroupYard();
    try {
      return { sets, controllers: this.controllers(byCtl, manage, mounts, own, log) };
    } finally {
      own.close();
    }
  }

  private controllers(
    byCtl: Map<string, Set<string>>,
    manage: boolean,
    mounts: Map<string, string>,
    yard: CgroupYard,
    log: Logger,
  ): MessageInput<'cg_controller_entry'>[] {
    return [...byCtl].map(([name, paths]) => {
      const cnames = name.startsWith('name=') || name === '' ? [name] : name.split(',');
      if (!manage) return { cnames, dirs: [] };
      // A path below another one is in that one's tree already. A hierarchy's root is never
      // changed by a restore: it needs no mount (ZDTM's named hierarchies are mounted nowhere).
      const tops = [...paths].filter((p) => ![...paths].some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
      const dirs = tops.map((p) =>
        p === '/'
          ? { dir_name: '', children: [], properties: [] }
          : dumpDir(path.join(mountOf(mounts, name, yard), p), p.replace(/^\//, ''), cnames),
      );
      log.debug(`cgroup.img: ${name || 'cgroup2'} at ${tops.join(', ')}`);
      return { cnames, dirs };
    });
  }
}

/** Options of a restore: the mode and --cgroup-root / cg_root ('' controller: every one). */
export interface CgroupRestoreOptions {
  mode: CgMode;
  roots: { ctrl: string; path: string }[];
  /**
   * Where a root in the dumping tool's own cgroups goes, when criu-ts has left the cgroups it
   * was started in (leaveCgroups): those. By default criu-ts's own, which the root inherits.
   */
  home?: CgCtl[];
  /** --cgroup-yard: the hierarchies are mounted there, by name. */
  yard?: string;
}

/**
 * The files of a cgroup that hold a limit criu-ts's own memory, threads or CPU time would run
 * into, by v1 controller ('' for cgroup2), and whether a value of one is a limit.
 */
const LIMITS: ReadonlyArray<[string, string, (v: string) => boolean]> = [
  ['memory', 'memory.limit_in_bytes', (v) => BigInt(v) < 1n << 62n],
  ['pids', 'pids.max', (v) => v !== 'max'],
  ['cpu', 'cpu.cfs_quota_us', (v) => v !== '-1'],
  ['', 'memory.max', (v) => v !== 'max'],
  ['', 'memory.high', (v) => v !== 'max'],
  ['', 'pids.max', (v) => v !== 'max'],
  ['', 'cpu.max', (v) => !v.startsWith('max')],
];

/** Whether cgroup `dir` of hierarchy `name` (mounted at `at`), or one above it, has a limit of LIMITS. */
function limited(at: string, name: string, dir: string): boolean {
  const ctls = name.split(',');
  for (let d = dir; d !== '/' && d !== '.' && d !== ''; d = path.dirname(d)) {
    for (const [ctl, file, isLimit] of LIMITS) {
      if (ctl === '' ? name !== '' : !ctls.includes(ctl)) continue;
      let v: string;
      try {
        v = fs.readFileSync(path.join(at, d, file), 'utf8').trim();
      } catch {
        continue;
      }
      if (isLimit(v)) return true;
    }
  }
  return false;
}

/**
 * Move criu-ts (all its threads) into the cgroups of process `to`, in every hierarchy mounted
 * here where the cgroup criu-ts is in sets a memory, thread count or CPU limit, and return the
 * cgroups it was in. runc puts criu into the container's cgroups before a restore: criu-ts's
 * own memory and threads would count against the container's limits, which only the restored
 * tasks must be in (restore then puts them there with `home`).
 */
export function leaveCgroups(to: number, log: Logger): CgCtl[] {
  const mine = parseCgroupFile(fs.readFileSync('/proc/self/cgroup', 'utf8'));
  const theirs = new Map(parseCgroupFile(fs.readFileSync(`/proc/${to}/cgroup`, 'utf8')).map((c) => [c.name, c.path]));
  const mounts = cgroupMounts();
  const left: string[] = [];
  for (const c of mine) {
    const dest = theirs.get(c.name),
      at = mounts.get(c.name);
    if (dest === undefined || dest === c.path || at === undefined) continue;
    // Only where a limit would bind criu-ts: each move of its threads, and the restored root's
    // joining back, is a cgroup migration of its own.
    if (!limited(at, c.name, c.path)) continue;
    try {
      fs.writeFileSync(path.join(at, dest, 'cgroup.procs'), `${process.pid}`);
      left.push(c.name || 'cgroup2');
    } catch (e) {
      log.warn(`criu-ts stays in its cgroup ${c.name || 'cgroup2'}:${c.path}: ${(e as Error).message}`);
    }
  }
  log.info(
    left.length ? `criu-ts left its cgroups of ${left.join(', ')} for those of ${to}` : 'criu-ts stays in its cgroups: none limits it',
  );
  return mine;
}

/**
 * The restore side: dirs made (and removed again if the restore fails), tasks and threads
 * moved into their sets, properties written once every task exists.
 */
export class CgroupRestore {
  private readonly sets = new Map<number, Message<'cg_set_entry'>>();
  private readonly ctlMount = new Map<string, string>();
  private mounts?: Map<string, string>;
  private readonly cgYard = new CgroupYard();
  /** criu-ts's own cgroups when the restore began, by hierarchy. */
  private readonly own: Map<string, string>;
  private readonly home?: CgCtl[];
  private readonly yard?: string;
  private readonly made: string[] = [];
  private readonly propDirs: { dir: string; props: Message<'cgroup_prop_entry'>[] }[] = [];
  private readonly mode: CgMode;
  private readonly img: CgroupImage | undefined;
  /** inventory.root_cg_set: the dumping tool's set. */
  private readonly rootSet: number;
  private readonly log: Logger;

  constructor(img: CgroupImage | undefined, rootSet: number, o: CgroupRestoreOptions, log: Logger) {
    this.img = img;
    this.rootSet = rootSet;
    this.log = log;
    this.mode = o.mode === CG_MODE.DEFAULT ? CG_MODE.SOFT : o.mode;
    this.own = new Map(parseCgroupFile(fs.readFileSync('/proc/thread-self/cgroup', 'utf8')).map((c) => [c.name, c.path]));
    this.home = o.home;
    this.yard = o.yard;
    if (!img || this.mode === CG_MODE.IGNORE) return;
    for (const s of img.sets) this.sets.set(s.id, s);
    rewriteRoots(img, o.roots);
  }

  /** Make the directories the mode asks for; before any task exists. */
  prepare(): void {
    if (!this.img || this.mode === CG_MODE.IGNORE) return;
    for (const c of this.img.controllers) {
      const name = c.cnames.join(',');
      for (const d of c.dirs) {
        if (d.dir_name === '') continue;
        // criu-ts's own cgroup exists: a hierarchy mounted nowhere here is fine there (runc
        // puts criu in the container's cgroups and names them in cg_root).
        if (!this.mounted(name) && this.own.get(name) === `/${d.dir_name}`.replace(/\/+$/, '')) continue;
        this.prepareDir(this.mountFor(name), d.dir_name, d);
      }
    }
  }

  private prepareDir(parent: string, rel: string, d: Message<'cgroup_dir_entry'>): void {
    const dir = path.join(parent, rel);
    let props = d.properties;
    if (rel === '' || dir === parent) {
      // The hierarchy's root: never made, never changed.
    } else if (!fs.existsSync(dir)) {
      if (this.mode === CG_MODE.NONE || this.mode === CG_MODE.PROPS) throw new CriuError(`cgroup dir ${dir} does not exist`);
      this.mkdirs(dir);
      if (d.dir_perms) chperm(dir, d.dir_perms);
      for (const p of props) if (SPECIAL.includes(p.name)) writeProp(dir, p);
    } else {
      if (this.mode === CG_MODE.STRICT) throw new CriuError(`cgroup dir ${dir} exists already (--manage-cgroups strict)`);
      if (this.mode === CG_MODE.SOFT || this.mode === CG_MODE.NONE) props = [];
      if (this.mode !== CG_MODE.NONE && d.dir_perms) chperm(dir, d.dir_perms);
    }
    if (props.length && rel !== '') this.propDirs.push({ dir, props });
    for (const ch of d.children) this.prepareDir(dir, ch.dir_name, ch);
  }

  private mkdirs(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d);
      this.made.push(d);
      // A new cpuset has no cpus or mems: the parent's, as CRIU gives them, until the image's.
      for (const f of CPUSET_INHERIT)
        if (fs.existsSync(path.join(d, f)))
          fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(path.dirname(d), f), 'utf8').trim() || '\n');
      this.log.info(`cgroup dir ${d} made`);
    }
  }

  /**
   * Put a task (all of its threads, `cgroup.procs`) or one thread (`tasks`, `cgroup.threads`)
   * into its set, if that differs from the set it inherited.
   */
  enter(tid: number, set: number | undefined, inherited: number | undefined, thread = false, unshareCgroupNs?: () => void): void {
    if (this.mode === CG_MODE.IGNORE) return;
    // The root of a tree dumped in the dumping tool's cgroups goes home (criu-ts left them).
    const isRoot = !inherited && !thread;
    const inDumpers = !this.img || !set || set === this.rootSet;
    if (isRoot && inDumpers && this.home) return this.join(tid, this.home, undefined, false);
    if (!this.img || !set || set === (inherited || this.rootSet)) return;
    const s = this.sets.get(set);
    if (!s) throw new CriuError(`cgroup.img: no set ${set}`);
    // The root of a cgroup namespace: into the namespace's root cgroups to unshare it there
    // (the namespace is rooted where the task is), then on to its own.
    if (isRoot && unshareCgroupNs && s.ctls.some((c) => c.cgns_prefix !== undefined)) {
      const tops = s.ctls.map((c) => ({
        name: c.name,
        path: c.cgns_prefix === undefined ? c.path : c.path.slice(0, c.cgns_prefix) || '/',
      }));
      this.join(tid, tops, undefined, false, true);
      unshareCgroupNs();
      this.log.info(`task ${tid}: cgroup namespace rooted at ${tops.map((c) => `${c.name || 'cgroup2'}:${c.path}`).join(', ')}`);
      this.join(tid, s.ctls, tops, false);
      return;
    }
    // What the task has already: its parent's set, or (the root, born of criu-ts's helper) criu-ts's cgroups.
    this.join(tid, s.ctls, inherited ? this.sets.get(inherited)?.ctls : undefined, thread);
    this.log.debug(`${thread ? 'thread' : 'task'} ${tid}: into cgroup set ${set}`);
  }

  private join(tid: number, ctls: readonly CgCtl[], had: readonly CgCtl[] | undefined, thread: boolean, always = false): void {
    for (const c of ctls) {
      if (!always && (had ? had.find((h) => h.name === c.name)?.path : this.own.get(c.name)) === c.path) continue;
      // The root of a hierarchy mounted nowhere here (ZDTM's named ones come and go): nothing to join.
      if (c.path === '/' && !this.mounted(c.name)) continue;
      const mnt = this.mountFor(c.name);
      const file = path.join(mnt, c.path, thread ? (c.name === '' ? 'cgroup.threads' : 'tasks') : 'cgroup.procs');
      try {
        fs.writeFileSync(file, `${tid}`);
      } catch (e) {
        throw new CriuError(`cannot move ${thread ? 'thread' : 'task'} ${tid} into ${file}: ${(e as Error).message}`);
      }
    }
  }

  private mounted(name: string): boolean {
    this.mounts ??= cgroupMounts(this.yard);
    return this.ctlMount.has(name) || this.mounts.has(name);
  }

  private mountFor(name: string): string {
    const have = this.ctlMount.get(name);
    if (have !== undefined) return have;
    this.mounts ??= cgroupMounts(this.yard);
    const at = mountOf(this.mounts, name, this.cgYard);
    this.ctlMount.set(name, at);
    return at;
  }

  /** The properties, once every task exists (a limit may be lower than what the restore itself needs). */
  properties(): void {
    for (const { dir, props } of this.propDirs)
      for (const p of props) {
        if (MEMBER_FILES.has(p.name)) {
          if (p.perms) chperm(path.join(dir, p.name), p.perms);
          continue;
        }
        if (SPECIAL.includes(p.name) || p.name === 'freezer.state') continue;
        if (p.name === 'cgroup.type' && p.value !== 'threaded') continue;
        writeProp(dir, p);
      }
  }

  /** The hierarchies criu-ts mounted for the restore go (once every task is in its cgroups). */
  close(): void {
    this.cgYard.close();
  }

  /** A failed restore: the directories it made go (its tasks are dead by then). */
  undo(): void {
    for (const d of this.made.splice(0).reverse()) {
      try {
        fs.rmdirSync(d);
      } catch (e) {
        this.log.warn(`cannot remove cgroup dir ${d}: ${(e as Error).message}`);
      }
    }
    this.close();
  }
}

function chperm(p: string, perms: Message<'cgroup_perms'>): void {
  fs.chownSync(p, perms.uid, perms.gid);
  fs.chmodSync(p, perms.mode & 0o7777);
}

function writeProp(dir: string, p: Message<'cgroup_prop_entry'>): void {
  const file = path.join(dir, p.name);
  try {
    if (p.name === 'devices.list') {
      // The list is set by denying everything, then allowing each line; the file is read-only.
      fs.writeFileSync(path.join(dir, 'devices.deny'), 'a');
      for (const l of p.value.split('\n').filter(Boolean)) fs.writeFileSync(path.join(dir, 'devices.allow'), l);
      return;
    } else if (p.name === 'net_prio.ifpriomap') {
      for (const l of p.value.split('\n').filter(Boolean)) fs.writeFileSync(file, l);
    } else if (p.value !== '') fs.writeFileSync(file, p.value);
    if (p.perms) chperm(file, p.perms);
  } catch (e) {
    throw new CriuError(`cannot restore cgroup property ${file} = ${JSON.stringify(p.value)}: ${(e as Error).message}`);
  }
}

/** --cgroup-root: each controller's top directory moves to the new root, and the sets' paths with it. */
function rewriteRoots(img: CgroupImage, roots: { ctrl: string; path: string }[]): void {
  if (!roots.length) return;
  for (const c of img.controllers) {
    const root = roots.find((r) => r.ctrl !== '' && c.cnames.includes(r.ctrl)) ?? roots.find((r) => r.ctrl === '');
    if (!root) continue;
    const name = c.cnames.join(',');
    for (const d of c.dirs) {
      const old = `/${d.dir_name}`;
      for (const s of img.sets)
        for (const m of s.ctls)
          if (m.name === name && (m.path === old || m.path.startsWith(`${old}/`) || old === '/'))
            m.path = path.posix.join(root.path, old === '/' ? m.path : m.path.slice(old.length)) || '/';
      d.dir_name = root.path.replace(/^\/+/, '');
    }
    // No dirs saved (dump without --manage-cgroups): the sets' paths take the new root.
    if (!c.dirs.length) for (const s of img.sets) for (const m of s.ctls) if (m.name === name) m.path = root.path;
  }
}

/** `[ctrl:]path` of --cgroup-root. */
export function parseCgroupRoot(v: string): { ctrl: string; path: string } {
  const i = v.indexOf(':');
  if (i < 0) return { ctrl: '', path: v };
  return { ctrl: v.slice(0, i), path: v.slice(i + 1) };
}
