// The journal of a dump in progress: what it changes outside its own memory (the injection
// areas it maps in the tasks, a cgroup it freezes, the images it writes, the network lock), in a file that
// the dump removes when it ends either way. A criu-ts that is killed (SIGKILL) leaves its
// journal behind, and the next criu-ts command undoes what the journal names (cleanStale).
import fs from 'node:fs';
import path from 'node:path';
import { readStat, parseMaps } from '../proc/index.ts';
import { Tracee, isInjectionArea, vdsoSyscallInsn, AREA_SIZE, INJECTION_SIGMASK } from '../compel/index.ts';
import { getpid, PTRACE_O, SIG } from '../kernel/index.ts';
import { CgroupFreezer } from './cgfreezer.ts';
import type { Logger } from '../resources/types.ts';
import { unlock, type LockSpec } from '../resources/net/netlock.ts';
import { healIn } from '../soccr/guard.ts';

import { RUN_DIR as JOURNAL_DIR } from '../rundir.ts';
/** The files a dump writes in its images directory. */
const IMAGE_FILE = /^(.*\.img|criu-ts-manifest\.json)$/;

interface Task {
  pid: number;
  start: string;
}
/** A journal of another format (another criu-ts version) is left alone, never undone. */
const VERSION = 2;
/**
 * The PID namespace the journal's PIDs belong to. A criu-ts in another one (ZDTM runs criu in
 * a PID namespace of its own) would read them as other processes: it leaves the journal alone.
 */
const pidns = (): string => fs.readlinkSync('/proc/self/ns/pid');
interface Record {
  version: number;
  pidns: string;
  owner: Task;
  dir: string;
  /** Image files that were in `dir` before the dump (they are left alone). */
  existing: string[];
  createdDir: boolean;
  /** The images are whole: a criu-ts killed after this leaves them. */
  imagesDone?: boolean;
  cgroup?: string;
  tasks: Task[];
  /** The network lock of the tree's connections: it stays only for complete images of a dead tree. */
  lock?: LockSpec;
}

const startOf = (pid: number): string => String(readStat(pid).startTime);

export class DumpJournal {
  private readonly file: string;
  private readonly rec: Record;

  constructor(dir: string, createdDir: boolean, cgroup: string | undefined) {
    const me = getpid();
    this.file = path.join(JOURNAL_DIR, `dump-${pidns().replace(/\D/g, '')}-${me}.json`);
    const existing = fs.readdirSync(dir).filter((n) => IMAGE_FILE.test(n));
    this.rec = {
      version: VERSION,
      pidns: pidns(),
      owner: { pid: me, start: startOf(me) },
      dir,
      existing,
      createdDir,
      ...(cgroup ? { cgroup } : {}),
      tasks: [],
    };
    try {
      fs.mkdirSync(JOURNAL_DIR, { recursive: true });
    } catch {
      /* read-only /run: see write() */
    }
    this.write();
  }

  /** The frozen tasks (with their start times from /proc/PID/stat), before any area is mapped in them. */
  tasks(tasks: { pid: number; startTime: bigint }[]): void {
    this.rec.tasks = tasks.map((t) => ({ pid: t.pid, start: String(t.startTime) }));
    this.write();
  }

  /**
   * Sockets about to go into TCP repair mode, appended (a line each, not the whole journal
   * again: a dump may freeze thousands): a criu-ts killed with its guardian leaves them healable.
   */
  repair(socks: Array<{ pid: number; fd: number; ino: number; reuseaddr: number }>): void {
    if (!socks.length) return;
    try {
      fs.appendFileSync(`${this.file}.repair`, socks.map((s) => `${s.pid} ${s.fd} ${s.ino} ${s.reuseaddr}\n`).join(''));
    } catch {
      /* read-only /run */
    }
  }

  /** The network lock, named before each rule is added. */
  lock(spec: LockSpec): void {
    this.rec.lock = spec;
    this.write();
  }

  /** The images are complete (their manifest is written): from now on they stay. */
  imagesDone(): void {
    this.rec.imagesDone = true;
    this.write();
  }

  /** Best effort: without a journal the dump works, only a killed one is not undone. */
  private write(): void {
    try {
      // Whole or not at all: a criu-ts killed while writing leaves the previous version.
      fs.writeFileSync(`${this.file}.tmp`, JSON.stringify(this.rec));
      fs.renameSync(`${this.file}.tmp`, this.file);
    } catch {
      /* read-only /run */
    }
  }

  close(): void {
    for (const f of [this.file, `${this.file}.repair`, `${this.file}.tmp`]) {
      try {
        fs.unlinkSync(f);
      } catch {
        /* gone */
      }
    }
  }
}

/**
 * Undo what dumps whose criu-ts died left behind: remove the injection areas still mapped
 * in their tasks, thaw their cgroup, delete their partial images. Returns one line per thing done.
 */
export function cleanStale(log?: Logger): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(JOURNAL_DIR);
  } catch {
    return [];
  }
  const done: string[] = [];
  const ns = pidns().replace(/\D/g, '');
  for (const name of names) {
    // A criu-ts killed while writing its journal leaves the half-written copy: its owner is in the name.
    const tmp = /^dump-(\d+)-(\d+)\.json\.tmp$/.exec(name);
    if (tmp) {
      if (tmp[1] === ns && !fs.existsSync(`/proc/${tmp[2]}`)) fs.rmSync(path.join(JOURNAL_DIR, name), { force: true });
      continue;
    }
    if (!/^dump-(\d+-)?\d+\.json$/.test(name)) continue;
    const file = path.join(JOURNAL_DIR, name);
    let rec: Record;
    try {
      rec = JSON.parse(fs.readFileSync(file, 'utf8')) as Record;
    } catch {
      continue;
    }
    if (rec.version !== VERSION || rec.pidns !== pidns() || alive(rec.owner)) continue;
    for (const t of rec.tasks) {
      if (!alive(t)) continue;
      try {
        const n = removeAreas(t.pid);
        if (n) done.push(`removed ${n} injection area(s) that a killed criu-ts left in task ${t.pid}`);
      } catch (e) {
        log?.warn(`cannot remove the injection area a killed criu-ts left in task ${t.pid}: ${(e as Error).message}`);
      }
    }
    if (rec.cgroup) {
      try {
        new CgroupFreezer(rec.cgroup).thaw();
        done.push(`thawed cgroup ${rec.cgroup}`);
      } catch {
        /* gone */
      }
    }
    // Sockets its guardian (killed too) did not get back out of repair mode.
    let healed = 0;
    try {
      for (const l of fs.readFileSync(`${file}.repair`, 'latin1').split('\n')) {
        const [p, fd, ino, reuse] = l.split(' ').map(Number);
        if (l && healIn(p, fd, ino, reuse)) healed++;
      }
      fs.unlinkSync(`${file}.repair`);
    } catch {
      /* none */
    }
    if (healed) done.push(`turned TCP repair off on ${healed} socket(s) a killed criu-ts left in it`);
    // The lock waits for the restore only if the images are whole and the tree is gone.
    if (rec.lock && (!rec.imagesDone || rec.tasks.some(alive))) {
      const err = unlock(rec.lock);
      if (err) log?.warn(`cannot remove the network lock a killed criu-ts left: ${err}`);
      else if (rec.lock.method !== 'skip') done.push(`removed the network lock (${rec.lock.method}) that a killed criu-ts left`);
    }
    const n = rec.imagesDone ? 0 : removeImages(rec);
    if (n) done.push(`removed ${n} partial image file(s) from ${rec.dir}`);
    try {
      fs.unlinkSync(file);
    } catch {
      /* another criu-ts did */
    }
  }
  for (const d of done) log?.warn(d);
  return done;
}

function alive(t: Task): boolean {
  try {
    return startOf(t.pid) === t.start;
  } catch {
    return false;
  }
}

function removeImages(rec: Record): number {
  const keep = new Set(rec.existing);
  let n = 0;
  let left: string[];
  try {
    left = fs.readdirSync(rec.dir);
  } catch {
    return 0;
  }
  for (const f of left) {
    if (!IMAGE_FILE.test(f) || keep.has(f)) continue;
    try {
      fs.unlinkSync(path.join(rec.dir, f));
      n++;
    } catch {
      /* gone */
    }
  }
  if (rec.createdDir) {
    try {
      fs.rmdirSync(rec.dir);
    } catch {
      /* not empty: the log stays */
    }
  }
  return n;
}

/**
 * Unmap the injection areas in `pid` (marked, see compel/area.ts), with an injected munmap
 * through its vDSO, the thread's own state kept as in a dump.
 */
function removeAreas(pid: number): number {
  const maps = parseMaps(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
  const areas = maps.filter((v) => v.end - v.start === BigInt(AREA_SIZE) && !v.path && isInjectionArea(pid, v.start, v.end - v.start));
  if (!areas.length) return 0;
  const stopped = readStat(pid).state === 'T';
  const t = Tracee.seize(pid, PTRACE_O.TRACESYSGOOD);
  try {
    const regs = t.getRegs(),
      mask = t.getSigmask();
    t.keepOwnState(regs, mask);
    t.useSyscallInsn(vdsoSyscallInsn(t, maps, `task ${pid}`));
    for (const a of areas) t.syscall('munmap', a.start, a.end - a.start);
    if (stopped) {
      // Back into the job-control stop it was in, before any of its signals is handled.
      t.dropOwnState();
      t.setSigmask(INJECTION_SIGMASK);
      t.enterGroupStop(pid, SIG.STOP);
      t.setRegs(regs);
      t.setSigmask(mask);
    }
  } finally {
    t.detach();
  }
  return areas.length;
}
