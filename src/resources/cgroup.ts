// cgroups (CRIU's cgroup.img, --manage-cgroups): each task's and thread's cgroup set (its
// path in every hierarchy, as /proc/PID/task/TID/cgroup shows it), and the directories of
// those paths with their permissions and properties. Nothing is saved for a tree in
// criu-ts's own cgroups. At restore each hierarchy is mounted in a yard of criu-ts's own (a
// temporary directory); a missing directory is made again with its permissions and
// properties (mode soft; full sets them on existing ones too), and each task is moved into
// its cgroups before it forks, so that its children are born there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mountFs, umount2, MNT_DETACH } from '../kernel/index.ts';
import { CriuError } from '../errors.ts';
import type { Message, MessageInput } from './types.ts';

/** CRIU's --manage-cgroups modes criu-ts takes; strict is refused. */
export type CgroupMode = 'ignore' | 'soft' | 'full';

export function parseCgroupMode(v: string | boolean | undefined): CgroupMode {
  if (v === undefined || v === true || v === '' || v === 'soft') return 'soft';
  if (v === 'ignore' || v === 'full') return v;
  if (v === 'props') return 'soft';
  throw new CriuError(`not supported yet: --manage-cgroups=${String(v)}`);
}

/** One line of /proc/PID/cgroup: the hierarchy's controllers ("cpu,cpuacct", "name=x", "" for v2) and the path. */
interface Member {
  name: string;
  path: string;
}

export function readMembers(pid: number, tid = pid): Member[] {
  return parseMembers(fs.readFileSync(`/proc/${pid}/task/${tid}/cgroup`, 'utf8'));
}

export function parseMembers(text: string): Member[] {
  return text
    .split('\n')
    .filter((l) => l)
    .map((l) => {
      const a = l.indexOf(':'),
        b = l.indexOf(':', a + 1);
      return { name: l.slice(a + 1, b), path: l.slice(b + 1) };
    });
}

/** Properties saved per controller (CRIU's default list), and those of every v1 and v2 directory. */
const PROPS: Record<string, string[]> = {
  cpu: ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.rt_period_us', 'cpu.rt_runtime_us'],
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
const GLOBAL_V2 = ['cgroup.subtree_control', 'cgroup.max.descendants', 'cgroup.max.depth', 'cgroup.type', 'cgroup.procs'];
/** Saved for their permissions only: their content is the tasks. */
const PERMS_ONLY = new Set(['cgroup.procs', 'tasks']);
/** Written right after the directory is made: they cannot change once it has children or tasks. */
const EARLY = new Set([
  'cpuset.cpus',
  'cpuset.mems',
  'devices.list',
  'memory.kmem.limit_in_bytes',
  'memory.swappiness',
  'memory.oom_control',
  'memory.use_hierarchy',
  'cgroup.type',
]);

function propNames(name: string): string[] {
  if (name === '') return GLOBAL_V2;
  return [...GLOBAL_V1, ...name.split(',').flatMap((c) => PROPS[c] ?? [])];
}

/**
 * Each hierarchy mounted once in a temporary directory of criu-ts, unmounted by close(); or,
 * with `external` (--cgroup-yard DIR), the user's own mounts there, as CRIU names them:
 * DIR/cpu,cpuacct, DIR/zdtmtst for name=zdtmtst, DIR/unified for v2.
 */
export class CgroupYard {
  private dirs = new Map<string, string>();
  private base: string | undefined;
  private readonly external: string | undefined;

  constructor(external?: string) {
    this.external = external;
  }

  dir(name: string): string {
    let d = this.dirs.get(name);
    if (d !== undefined) return d;
    if (this.external !== undefined) {
      const sub = name === '' ? 'unified' : name.replace(/(^|,)name=/g, '$1');
      d = path.join(this.external, sub);
      if (!fs.existsSync(d)) throw new CriuError(`cgroup hierarchy ${name || 'v2'}: ${d} does not exist in the --cgroup-yard`);
      this.dirs.set(name, d);
      return d;
    }
    this.base ??= fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cgyard-'));
    d = path.join(this.base, String(this.dirs.size));
    fs.mkdirSync(d);
    const cnames = name.split(',');
    const opts = cnames.some((c) => c.startsWith('name=')) ? `none,${name}` : name;
    try {
      if (name === '') mountFs('cgroup2', d, '');
      else mountFs('cgroup', d, opts);
    } catch (e) {
      fs.rmdirSync(d);
      throw new CriuError(`cgroup hierarchy ${name || 'v2'}: ${(e as Error).message}`);
    }
    this.dirs.set(name, d);
    return d;
  }

  close(): void {
    if (this.external !== undefined) {
      this.dirs.clear();
      return;
    }
    for (const d of this.dirs.values()) {
      try {
        umount2(d, MNT_DETACH);
        fs.rmdirSync(d);
      } catch {
        /* left for the next run's cleanup */
      }
    }
    this.dirs.clear();
    if (this.base) fs.rmSync(this.base, { recursive: true, force: true });
    this.base = undefined;
  }
}

const perms = (st: fs.Stats): Message<'cgroup_perms'> => ({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });

type DirEntry = MessageInput<'cgroup_dir_entry'>;

/** The cgroup sets of a dump, and the directories of the paths that differ from criu-ts's own. */
export class CgroupDump {
  private sets = new Map<string, number>();
  private entries: Message<'cg_set_entry'>[] = [];
  private own = new Map(readMembers(process.pid).map((m) => [m.name, m.path]));

  /** The id of the set of a task (or one of its threads). */
  setOf(pid: number, tid = pid): number {
    const ctls = readMembers(pid, tid);
    const key = JSON.stringify(ctls);
    let id = this.sets.get(key);
    if (id === undefined) {
      id = this.entries.length + 1;
      this.sets.set(key, id);
      this.entries.push({ id, ctls });
    }
    return id;
  }

  /** cgroup.img's entry, undefined when every task is in criu-ts's own cgroups. `yard`: --cgroup-yard. */
  image(yardDir?: string): MessageInput<'cgroup_entry'> | undefined {
    const paths = new Map<string, Set<string>>();
    for (const s of this.entries)
      for (const m of s.ctls) {
        if (this.own.get(m.name) === m.path) continue;
        const l = paths.get(m.name) ?? new Set();
        l.add(m.path);
        paths.set(m.name, l);
      }
    if (!paths.size) return undefined;
    const yard = new CgroupYard(yardDir);
    try {
      const controllers = [...paths].map(([name, ps]) => ({ cnames: name.split(','), dirs: dirTree(yard.dir(name), name, [...ps]) }));
      return { sets: this.entries, controllers };
    } finally {
      yard.close();
    }
  }
}

/**
 * The directories of `paths` (each path's every component, and every directory below one,
 * empty cgroups too), with perms and properties.
 */
function dirTree(root: string, name: string, used: string[]): DirEntry[] {
  const paths = used.flatMap((p) => (p === '/' ? [p] : [p, ...below(root, p)]));
  const tree = new Map<string, Set<string>>(); // parent -> child components
  for (const p of paths) {
    const parts = p.split('/').filter((x) => x);
    for (let i = 0; i < parts.length; i++) {
      const parent = `/${parts.slice(0, i).join('/')}`;
      const s = tree.get(parent) ?? new Set();
      s.add(parts[i]);
      tree.set(parent, s);
    }
  }
  const walk = (parent: string): DirEntry[] =>
    [...(tree.get(parent) ?? [])].map((c) => {
      const rel = parent === '/' ? `/${c}` : `${parent}/${c}`;
      const dir = path.join(root, rel);
      let st: fs.Stats;
      try {
        st = fs.statSync(dir);
      } catch {
        throw new CriuError(`cgroup ${name || 'v2'}:${rel} cannot be read`);
      }
      return { dir_name: c, children: walk(rel), properties: readProps(dir, name), dir_perms: perms(st) };
    });
  return walk('/');
}

function below(root: string, rel: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    const sub = `${rel}/${d.name}`;
    out.push(sub, ...below(root, sub));
  }
  return out;
}

function readProps(dir: string, name: string): MessageInput<'cgroup_prop_entry'>[] {
  const out: MessageInput<'cgroup_prop_entry'>[] = [];
  for (const p of propNames(name)) {
    const f = path.join(dir, p);
    try {
      const value = PERMS_ONLY.has(p) ? '' : fs.readFileSync(f, 'utf8').replace(/\n$/, '');
      out.push({ name: p, value, perms: perms(fs.statSync(f)) });
    } catch {
      /* not on this kernel */
    }
  }
  return out;
}

/** The restore's side: directories made where missing, tasks and threads moved into their sets. */
export class CgroupRestore {
  private yard: CgroupYard;
  private sets: Map<number, Message<'cg_set_entry'>>;
  private prepared = false;
  private readonly entry: Message<'cgroup_entry'> | undefined;
  private readonly mode: CgroupMode;

  constructor(entry: Message<'cgroup_entry'> | undefined, mode: CgroupMode, yardDir?: string) {
    this.yard = new CgroupYard(yardDir);
    this.entry = entry;
    this.mode = mode;
    this.sets = new Map((entry?.sets ?? []).map((s) => [s.id, s]));
  }

  /** Make the directories (with their perms and properties) of every hierarchy. */
  private prepare(): void {
    if (this.prepared || !this.entry) return;
    this.prepared = true;
    for (const c of this.entry.controllers) {
      const name = c.cnames.join(',');
      const root = this.yard.dir(name);
      const make = (dirs: Message<'cgroup_dir_entry'>[], at: string): void => {
        for (const d of dirs) {
          const dir = path.join(at, d.dir_name);
          const made = !fs.existsSync(dir);
          if (made) fs.mkdirSync(dir);
          const props = made || this.mode === 'full' ? d.properties : [];
          for (const p of props.filter((x) => EARLY.has(x.name))) writeProp(dir, p);
          if (made && d.dir_perms) setPerms(dir, d.dir_perms);
          make(d.children, dir);
          for (const p of props.filter((x) => !EARLY.has(x.name))) writeProp(dir, p);
        }
      };
      make(c.dirs, root);
    }
  }

  /** Move a task (all its threads, cgroup.procs) or one thread into the set `id`. */
  move(id: number | undefined, pid: number, tid?: number): void {
    if (this.mode === 'ignore' || !this.entry || id === undefined) return;
    const set = this.sets.get(id);
    if (!set) throw new CriuError(`cgroup.img: no cgroup set ${id}`);
    this.prepare();
    const now = new Map(readMembers(pid, tid ?? pid).map((m) => [m.name, m.path]));
    for (const m of set.ctls) {
      if (now.get(m.name) === m.path) continue;
      if (!this.entry.controllers.some((c) => c.cnames.join(',') === m.name)) continue; // criu-ts's own at dump
      const file = tid === undefined ? 'cgroup.procs' : m.name === '' ? 'cgroup.threads' : 'tasks';
      const target = path.join(this.yard.dir(m.name), m.path, file);
      try {
        fs.writeFileSync(target, String(tid ?? pid));
      } catch (e) {
        throw new CriuError(
          `cannot move ${tid ? `thread ${tid}` : `task ${pid}`} into cgroup ${m.name || 'v2'}:${m.path}: ${(e as Error).message}`,
        );
      }
    }
  }

  close(): void {
    this.yard.close();
  }
}

function setPerms(f: string, p: Message<'cgroup_perms'>): void {
  fs.chownSync(f, p.uid, p.gid);
  fs.chmodSync(f, p.mode);
}

/** A property written back: multi-line ones line by line, the devices list as allow rules. */
function writeProp(dir: string, p: Message<'cgroup_prop_entry'>): void {
  const f = path.join(dir, p.name);
  if (PERMS_ONLY.has(p.name)) {
    if (p.perms) setPerms(f, p.perms);
    return;
  }
  let now: string | undefined;
  try {
    now = fs.readFileSync(f, 'utf8').replace(/\n$/, '');
  } catch {
    now = undefined;
  }
  if (now === p.value) {
    if (p.perms) setPerms(f, p.perms);
    return;
  }
  const put = (file: string, v: string) => {
    try {
      fs.writeFileSync(path.join(dir, file), v);
    } catch (e) {
      throw new CriuError(`cgroup property ${f} = ${JSON.stringify(v)}: ${(e as Error).message}`);
    }
  };
  if (p.name === 'devices.list') {
    put('devices.deny', 'a');
    for (const l of p.value.split('\n').filter((x) => x)) put('devices.allow', l);
  } else if (p.name === 'memory.oom_control') {
    const m = /oom_kill_disable (\d)/.exec(p.value);
    if (m) put(p.name, m[1]);
  } else if (p.name === 'net_prio.ifpriomap') {
    for (const l of p.value.split('\n').filter((x) => x)) put(p.name, l);
  } else if (p.name === 'cgroup.subtree_control') {
    for (const c of p.value.split(' ').filter((x) => x)) put(p.name, `+${c}`);
  } else if (p.value !== '' || !p.name.startsWith('cpuset.')) put(p.name, p.value);
  if (p.perms) setPerms(f, p.perms);
}
