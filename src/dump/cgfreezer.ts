// --freeze-cgroup: freeze the tree with the cgroup freezer (v1 freezer.state or v2
// cgroup.freeze) so that no task can fork or exit while it is being seized, as CRIU does.
import fs from 'node:fs';
import path from 'node:path';
import { CriuError } from '../errors.ts';
import { cgroupMounts, parseCgroupFile, type CgCtl } from '../resources/cgroups.ts';

export class CgroupFreezer {
  readonly dir: string;
  private readonly v2: boolean;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    if (fs.existsSync(path.join(this.dir, 'cgroup.freeze'))) this.v2 = true;
    else if (fs.existsSync(path.join(this.dir, 'freezer.state'))) this.v2 = false;
    else throw new CriuError(`--freeze-cgroup ${dir}: not a freezer cgroup (no cgroup.freeze or freezer.state)`);
  }

  private frozen(): boolean {
    if (this.v2) return /^frozen 1$/m.test(fs.readFileSync(path.join(this.dir, 'cgroup.events'), 'utf8'));
    return fs.readFileSync(path.join(this.dir, 'freezer.state'), 'utf8').trim() === 'FROZEN';
  }

  freeze(deadline: number): void {
    if (this.v2) fs.writeFileSync(path.join(this.dir, 'cgroup.freeze'), '1');
    else fs.writeFileSync(path.join(this.dir, 'freezer.state'), 'FROZEN');
    while (!this.frozen()) {
      if (Date.now() > deadline) {
        this.thaw();
        throw new CriuError(`timed out freezing cgroup ${this.dir}`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }

  thaw(): void {
    try {
      if (this.v2) fs.writeFileSync(path.join(this.dir, 'cgroup.freeze'), '0');
      else fs.writeFileSync(path.join(this.dir, 'freezer.state'), 'THAWED');
    } catch {
      /* the cgroup is gone */
    }
  }

  /** Processes in the cgroup (every one of them must belong to the dumped tree). */
  pids(): number[] {
    return fs.readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }
}

/**
 * The frozen cgroup (v2 cgroup.freeze, v1 freezer) a task is in, found from criu-ts's mounts of
 * those hierarchies; undefined when none. ptrace cannot stop a frozen task until it is thawed.
 */
export function frozenCgroupOf(pid: number): string | undefined {
  let ctls: CgCtl[];
  try {
    ctls = parseCgroupFile(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return undefined; // gone: the seize says so
  }
  const mounts = cgroupMounts();
  for (const c of ctls) {
    const v2 = c.name === '';
    const at = mounts.get(c.name);
    if (at === undefined || !(v2 || c.name.split(',').includes('freezer'))) continue;
    const dir = path.join(at, c.path);
    try {
      if (
        v2
          ? /^frozen 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'))
          : fs.readFileSync(path.join(dir, 'freezer.state'), 'utf8').trim() !== 'THAWED'
      )
        return dir;
    } catch {
      /* not a cgroup of this mount */
    }
  }
  return undefined;
}
