// crit x DIR ps|fds|mems|rss: the same walk over an image directory and the same text as crit.
import * as path from 'node:path';
import { ImageError } from '../images/index.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { loadImage } from './load.ts';

export const EXPLORERS = ['ps', 'fds', 'mems', 'rss'] as const;
export type Explorer = (typeof EXPLORERS)[number];

type Obj = JsonObject;
const big = (v: JsonValue | undefined): bigint => (typeof v === 'number' || typeof v === 'bigint' ? BigInt(v) : 0n);
const rpad = (s: string | number | bigint, n: number) => String(s).padStart(n);
const lpad = (s: string | number | bigint, n: number) => String(s).padEnd(n);
const hex = (v: JsonValue | undefined) => big(v).toString(16);

class Dir {
  readonly dir: string;
  private files: Obj[] | undefined;
  private readonly legacy = new Map<string, Obj[]>();
  private readonly names = new Map<string, string>();

  constructor(dir: string) {
    this.dir = dir;
  }

  entries(name: string): Obj[] {
    return loadImage(path.join(this.dir, name)).entries;
  }

  first(name: string): Obj {
    const e = this.entries(name)[0];
    if (e === undefined) throw new ImageError(name, 'has no entries');
    return e;
  }

  pstree(): Obj[] {
    return this.entries('pstree.img');
  }

  /** An object from files.img, or (pre-files.img images) from its legacy per-type image. */
  private find(field: string, legacyImage: string, id: JsonValue): Obj | undefined {
    if (this.files === undefined) {
      try {
        this.files = this.entries('files.img');
      } catch {
        this.files = [];
      }
    }
    if (this.files.length > 0) {
      const f = this.files.find((x) => x.id === id);
      if (f) return (f[field] as Obj | undefined) ?? undefined;
      return undefined;
    }
    let img = this.legacy.get(legacyImage);
    if (!img) this.legacy.set(legacyImage, (img = this.entries(legacyImage)));
    return img.find((x) => x.id === id);
  }

  fileName(type: JsonValue, id: JsonValue): string {
    const key = `${String(type)}/${String(id)}`;
    let s = this.names.get(key);
    if (s !== undefined) return s;
    if (type === 'REG') {
      const rf = this.find('reg', 'reg-files.img', id);
      s = rf?.name ? String(rf.name) : 'unknown path';
    } else if (type === 'PIPE') {
      const p = this.find('pipe', 'pipes.img', id);
      s = p ? `pipe[${p.pipe_id}]` : 'pipe[?]';
    } else if (type === 'UNIXSK') {
      const ux = this.find('usk', 'unixsk.img', id);
      s = ux ? `unix[${ux.ino} (${ux.peer})${ux.name ? ` ${String(ux.name)}` : ''}]` : 'unix[?]';
    } else {
      s = `${String(type)}.${String(id)}`;
    }
    this.names.set(key, s);
    return s;
  }
}

const taskId = (p: Obj, key: string): JsonValue => (key in p ? p[key] : ((p[`ns_${key}`] as JsonValue[] | undefined)?.[0] ?? null));

function ps(d: Dir, out: (line: string) => void): void {
  interface Item {
    pid: JsonValue;
    ppid: JsonValue;
    p: Obj;
    comm: string;
    kids: Item[];
  }
  const items = new Map<string, Item>();
  for (const p of d.pstree()) {
    const pid = taskId(p, 'pid');
    const core = d.first(`core-${pid}.img`);
    const tc = core.tc as Obj | undefined;
    if (!tc) throw new ImageError(`core-${pid}.img`, 'has no task core (tc)');
    items.set(String(pid), { pid, ppid: p.ppid, p, comm: String(tc.comm), kids: [] });
  }
  let root: Item | undefined;
  for (const it of items.values()) {
    if (it.ppid === 0) {
      root = it;
      continue;
    }
    const parent = items.get(String(it.ppid));
    if (!parent) throw new ImageError('pstree.img', `parent ${it.ppid} of ${it.pid} is not in the tree`);
    parent.kids.push(it);
  }
  if (!root) throw new ImageError('pstree.img', 'no root task (ppid 0)');
  out(`${rpad('PID', 7)}${rpad('PGID', 7)}${rpad('SID', 7)}   COMM`);
  const show = (it: Item, depth: number) => {
    out(
      `${rpad(String(it.pid), 7)}${rpad(String(taskId(it.p, 'pgid')), 7)}${rpad(String(taskId(it.p, 'sid')), 7)}   ${' '.repeat(4 * depth)}${it.comm}`,
    );
    for (const k of it.kids) show(k, depth + 1);
  };
  show(root, 0);
}

function fds(d: Dir, out: (line: string) => void): void {
  for (const p of d.pstree()) {
    const pid = taskId(p, 'pid');
    const filesId = d.first(`ids-${pid}.img`).files_id;
    const fdinfo = d.entries(`fdinfo-${filesId}.img`);
    out(String(pid));
    for (const fd of fdinfo) out(`\t${rpad(String(fd.fd), 7)}: ${d.fileName(fd.type, fd.id)}`);
    const fs = d.first(`fs-${pid}.img`);
    out(`\t${rpad('cwd', 7)}: ${d.fileName('REG', fs.cwd_id)}`);
    out(`\t${rpad('root', 7)}: ${d.fileName('REG', fs.root_id)}`);
  }
}

const VMA_REGULAR = 1n << 0n,
  VMA_STACK = 1n << 1n,
  VMA_VSYSCALL = 1n << 2n,
  VMA_VDSO = 1n << 3n;
const VMA_FILE_PRIVATE = 1n << 6n,
  VMA_FILE_SHARED = 1n << 7n,
  VMA_ANON_SHARED = 1n << 8n;
const VMA_SYSVIPC = 1n << 10n,
  VMA_SOCKET = 1n << 11n;

function mems(d: Dir, out: (line: string) => void): void {
  // crit numbers the shared objects it meets, across all tasks
  const ids = new Map<bigint, number>();
  const vid = (v: JsonValue | undefined) => {
    const k = big(v);
    if (!ids.has(k)) ids.set(k, ids.size + 1);
    return ids.get(k)!.toString(16);
  };
  for (const p of d.pstree()) {
    const pid = taskId(p, 'pid');
    const mm = d.first(`mm-${pid}.img`);
    out(String(pid));
    out(`\t${lpad('exe', 36)}    ${d.fileName('REG', mm.exe_file_id)}`);
    for (const vma of (mm.vmas as Obj[] | undefined) ?? []) {
      const st = big(vma.status);
      let fn: string;
      if (st & VMA_SYSVIPC) fn = ` ips[${vid(vma.shmid)}]`;
      else if (st & VMA_ANON_SHARED) fn = ` shmem[${vid(vma.shmid)}]`;
      else if (st & VMA_SOCKET) fn = ` packet[${vid(vma.shmid)}]`;
      else if (st & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) {
        fn = ' ' + d.fileName('REG', vma.shmid);
        if (big(vma.pgoff) !== 0n) fn += ` + 0x${hex(vma.pgoff)}`;
        if (st & VMA_FILE_SHARED) fn += ' (s)';
      } else if (st & VMA_STACK) fn = ' [stack]';
      else if (st & VMA_VSYSCALL) fn = ' [vsyscall]';
      else if (st & VMA_VDSO) fn = ' [vdso]';
      else if (big(vma.flags) & 0x100n) fn = ' [stack?]';
      else fn = '';
      if (!(st & VMA_REGULAR)) fn += ' *';
      const prot = big(vma.prot);
      const rwx = (prot & 1n ? 'r' : '-') + (prot & 2n ? 'w' : '-') + (prot & 4n ? 'x' : '-');
      out(`\t${lpad(`${hex(vma.start).padStart(8, '0')}-${hex(vma.end).padStart(8, '0')}`, 36)}${rwx}${fn}`);
    }
  }
}

function rss(d: Dir, out: (line: string) => void): void {
  for (const p of d.pstree()) {
    const pid = taskId(p, 'pid');
    const vmas = (d.first(`mm-${pid}.img`).vmas as Obj[] | undefined) ?? [];
    const pms = d.entries(`pagemap-${pid}.img`);
    out(String(pid));
    // crit walks with Python list indexes, where -1 is the last element
    const at = (i: number) => vmas[i < 0 ? vmas.length + i : i];
    let vmi = 0;
    let pvmi = -1;
    for (const pm of pms.slice(1)) {
      const nr = big(pm.nr_pages ?? pm.compat_nr_pages);
      const vaddr = big(pm.vaddr);
      const pstr = `\t${hex(pm.vaddr)} / ${lpad(nr, 8)}`;
      while (vmi < vmas.length && big(at(vmi).end) <= vaddr) vmi++;
      const pme = vaddr + (nr << 12n);
      let vstr = '';
      while (vmi < vmas.length && big(at(vmi).start) < pme) {
        const vma = at(vmi);
        if (vmi === pvmi) vstr += ' ~';
        else {
          vstr += ` ${hex(vma.start).padStart(8, '0')} / ${lpad((big(vma.end) - big(vma.start)) >> 12n, 8)}`;
          if (big(vma.status) & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) vstr += ' ' + d.fileName('REG', vma.shmid);
          pvmi = vmi;
        }
        vstr += `\n\t${' '.repeat(23)}`;
        vmi++;
      }
      vmi--;
      out(`${lpad(pstr, 24)}${vstr}`);
    }
  }
}

/** Runs one explorer over an image directory; `out` gets each line without its newline. */
export function explore(dir: string, what: Explorer, out: (line: string) => void): void {
  const d = new Dir(dir);
  ({ ps, fds, mems, rss })[what](d, out);
}
