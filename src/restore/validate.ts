// Every field of the images a restore uses, checked before any process is created: a bad one
// is one line naming the image and the field, never a half-built tree or an odd failure deep
// in a stage. Whatever passes here is within what the kernel accepts for it.
import fs from 'node:fs';
import { ImageError, IMG, imageFileName } from '../images/index.ts';
import { arch } from '../kernel/index.ts';
import { MAP_DROPPABLE } from '../proc/index.ts';
import { VMA, PE } from '../resources/mm/index.ts';
import type { Message } from '../resources/types.ts';
import { fileEntryProblem, type FileEntry } from '../resources/files/index.ts';
import { inetEntryProblem } from '../resources/net/tcp.ts';
import { unixEntryProblem } from '../resources/net/unix-common.ts';
import { inetKindProblem } from '../resources/net/inet.ts';
import { netlinkEntryProblem } from '../resources/net/netlink.ts';
import { packetEntryProblem } from '../resources/net/packet.ts';
import type { LivePlan, RestorePlan } from './plan.ts';

const PAGE = BigInt(arch.pageSize);
const FD_CLOEXEC = 1;
const hex = (v: bigint | number) => `0x${v.toString(16)}`;

function sysctl(path: string, fallback: number): number {
  try {
    return Number(fs.readFileSync(path, 'latin1').trim()) || fallback;
  } catch {
    return fallback;
  }
}

/** The largest PID this kernel hands out, plus one (/proc/sys/kernel/pid_max). */
export const pidMax = (): number => sysctl('/proc/sys/kernel/pid_max', 4194304);

/** pstree.img, before any other image is read for its PIDs. */
export function checkPstree(dir: string, entries: Message<'pstree_entry'>[]): void {
  const file = `${dir}/pstree.img`;
  const max = pidMax();
  const seen = new Set<number>();
  entries.forEach((e, i) => {
    const at = `entry ${i}`;
    const inRange = (field: string, v: number, min: number) => {
      if (!Number.isInteger(v) || v < min || v >= max)
        throw new ImageError(file, `${at}: ${field} ${v} is outside 1..${max - 1} (pid_max ${max})`);
    };
    inRange('pid', e.pid, 1);
    inRange('ppid', e.ppid, i === 0 ? 0 : 1);
    inRange('pgid', e.pgid, 0);
    inRange('sid', e.sid, 0);
    for (const tid of e.threads) {
      inRange('threads', tid, 1);
      if (seen.has(tid)) throw new ImageError(file, `${at}: threads: ${tid} appears twice`);
      seen.add(tid);
    }
    if (!e.threads.length) {
      if (seen.has(e.pid)) throw new ImageError(file, `${at}: pid ${e.pid} appears twice`);
      seen.add(e.pid);
    }
  });
}

/** Every image of every task the plan holds, and how they refer to one another. */
export function validatePlan(dir: string, p: RestorePlan): void {
  const f = (name: string) => `${dir}/${name}`;
  for (const [id, e] of p.files) checkFile(f('files.img'), id, e);
  for (const t of p.tasks) {
    const core = f(imageFileName(IMG.CORE, t.pid));
    if (Buffer.byteLength(t.tc.comm) > 15)
      throw new ImageError(core, `tc.comm is ${Buffer.byteLength(t.tc.comm)} bytes, more than TASK_COMM_LEN-1 (15)`);
    if (t.zombie) {
      if (t.zombie.exitCode > 0xffff) throw new ImageError(core, `tc.exit_code ${hex(t.zombie.exitCode)} is not a wait status`);
      continue;
    }
    if (t.stopSignal !== undefined && (t.stopSignal < 1 || t.stopSignal > 64))
      throw new ImageError(core, `tc.stop_signo ${t.stopSignal} is not a signal`);
    if (t.tc.sigactions.length > 64)
      throw new ImageError(core, `tc.sigactions has ${t.tc.sigactions.length} entries, more than the 64 signals`);
    for (const [tid, tcore] of t.threadCores) {
      const file = f(imageFileName(IMG.CORE, tid));
      const nice = tcore.sched_nice;
      if (nice !== undefined && (nice < -20 || nice > 19)) throw new ImageError(file, `thread_core.sched_nice ${nice} is outside -20..19`);
    }
    checkMm(f(imageFileName(IMG.MM, t.pid)), t, p.files);
    checkFs(f(imageFileName(IMG.FS, t.pid)), t, p.files);
    checkFdinfo(f(imageFileName(IMG.FDINFO, t.ids.files_id)), t, p.files);
    checkPagemap(f(imageFileName(IMG.PAGEMAP, t.pid)), t);
  }
}

function checkFile(file: string, id: number, e: FileEntry): void {
  const reg = e.reg;
  if (reg) {
    if (!reg.name) throw new ImageError(file, `file ${id}: reg.name is empty`);
    if (reg.name.includes('\0')) throw new ImageError(file, `file ${id}: reg.name holds a NUL byte`);
    if (reg.fown.signum > 64) throw new ImageError(file, `file ${id}: reg.fown.signum ${reg.fown.signum} is not a signal`);
  }
  const problems: Array<[string, string | undefined]> = [
    ['usk', e.usk && unixEntryProblem(e.usk)],
    ['isk', e.isk && (inetEntryProblem(e.isk) ?? inetKindProblem(e.isk))],
    ['nlsk', e.nlsk && netlinkEntryProblem(e.nlsk)],
    ['psk', e.psk && packetEntryProblem(e.psk)],
  ];
  for (const [field, why] of problems) if (why) throw new ImageError(file, `file ${id}: ${field} ${why}`);
}

function checkMm(file: string, t: LivePlan, files: Map<number, FileEntry>): void {
  const mm = t.mm;
  let prevEnd = 0n;
  mm.vmas.forEach((v, i) => {
    const at = `vmas[${i}]`;
    if (v.status & VMA.AREA_VSYSCALL) return;
    const what = v.status & VMA.AREA_VDSO ? ' ([vdso])' : v.status & VMA.AREA_VVAR ? ' ([vvar])' : '';
    if (v.start % PAGE || v.end % PAGE)
      throw new ImageError(file, `${at}${what}: start ${hex(v.start)} or end ${hex(v.end)} is not page aligned`);
    if (v.end <= v.start)
      throw new ImageError(file, `${at}${what}: end ${hex(v.end)} is not above start ${hex(v.start)} (size ${v.end - v.start})`);
    if (v.end > arch.taskSize)
      throw new ImageError(file, `${at}${what}: end ${hex(v.end)} is above the top of user space ${hex(arch.taskSize)}`);
    if (v.start < prevEnd) throw new ImageError(file, `${at}${what}: start ${hex(v.start)} overlaps the area before it or is out of order`);
    if (v.pgoff % PAGE) throw new ImageError(file, `${at}: pgoff ${hex(v.pgoff)} is not page aligned`);
    if ((v.flags & 3) !== 1 && (v.flags & 3) !== 2 && (v.flags & 0xf) !== MAP_DROPPABLE)
      throw new ImageError(file, `${at}: flags ${hex(v.flags)} are neither MAP_SHARED, MAP_PRIVATE nor MAP_DROPPABLE`);
    // arm64 keeps PROT_BTI (0x10) for a VMA whose code is checked for branch targets.
    const protMask = arch.name === 'aarch64' ? 0x17 : 7;
    if (v.prot & ~protMask) {
      throw new ImageError(file, `${at}: prot ${hex(v.prot)} has bits other than PROT_READ|WRITE|EXEC${protMask & 0x10 ? '|BTI' : ''}`);
    }
    if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) && !(v.status & (VMA.AREA_MEMFD | VMA.ANON_SHARED)))
      regFile(file, `${at}: shmid`, Number(v.shmid), files);
    if (v.status & VMA.AREA_SOCKET && !files.get(Number(v.shmid))?.psk)
      throw new ImageError(file, `${at}: shmid ${v.shmid} of a socket mapping is not a packet socket in files.img`);
    prevEnd = v.end;
  });
  checkGuards(file, t);
  mm.aios.forEach((a, i) => {
    const v = mm.vmas.find((x) => x.start === a.id);
    if (!v || !(v.status & VMA.AREA_AIORING)) throw new ImageError(file, `aios[${i}]: id ${hex(a.id)} is not the start of an AIO ring VMA`);
    if (BigInt(a.ring_len) !== v.end - v.start)
      throw new ImageError(file, `aios[${i}]: ring_len ${a.ring_len} is not the size of its VMA (${v.end - v.start})`);
    if (a.nr_req < 1 || a.nr_req > 1 << 20) throw new ImageError(file, `aios[${i}]: nr_req ${a.nr_req} is outside 1..${1 << 20}`);
  });
  if (mm.mm_brk < mm.mm_start_brk) throw new ImageError(file, `mm_brk ${hex(mm.mm_brk)} is below mm_start_brk ${hex(mm.mm_start_brk)}`);
  if (mm.mm_saved_auxv.length % 2) throw new ImageError(file, `mm_saved_auxv has an odd number of words (${mm.mm_saved_auxv.length})`);
  if (mm.exe_file_id) regFile(file, 'exe_file_id', mm.exe_file_id, files);
}

/** Guard regions: page-aligned, in order, each inside one VMA (madvise fails on a hole). */
function checkGuards(file: string, t: LivePlan): void {
  let prevEnd = 0n;
  for (const g of t.guards) {
    const at = `guard region ${hex(g.start)}-${hex(g.end)}`;
    if (g.start % PAGE || g.end % PAGE || g.end <= g.start) throw new ImageError(file, `${at}: not a page-aligned range`);
    if (g.start < prevEnd) throw new ImageError(file, `${at}: overlaps the guard region before it or is out of order`);
    if (!t.mm.vmas.some((v) => v.start <= g.start && g.end <= v.end)) throw new ImageError(file, `${at}: not inside one VMA of the task`);
    prevEnd = g.end;
  }
}

/** A reference by path: a file of files.img with its reg entry. */
function regFile(file: string, field: string, id: number, files: Map<number, FileEntry>): void {
  const e = files.get(id);
  if (!e) throw new ImageError(file, `${field} ${id} is not in files.img`);
  if (!e.reg) throw new ImageError(file, `${field} ${id} is not a regular file in files.img (type ${e.type})`);
}

function checkFs(file: string, t: LivePlan, files: Map<number, FileEntry>): void {
  const { cwd_id, root_id, umask } = t.fsEntry;
  regFile(file, 'cwd_id', cwd_id, files);
  regFile(file, 'root_id', root_id, files);
  if (umask !== undefined && umask > 0o777) throw new ImageError(file, `umask 0${umask.toString(8)} has bits beyond 0777`);
}

function checkFdinfo(file: string, t: LivePlan, files: Map<number, FileEntry>): void {
  const nrOpen = sysctl('/proc/sys/fs/nr_open', 1 << 20);
  const fds = new Set<number>();
  for (const e of t.fdinfo) {
    if (e.fd >= nrOpen) throw new ImageError(file, `fd ${e.fd} is not below nr_open (${nrOpen})`);
    if (e.flags & ~FD_CLOEXEC) throw new ImageError(file, `fd ${e.fd}: flags ${hex(e.flags)} has bits other than FD_CLOEXEC`);
    if (fds.has(e.fd)) throw new ImageError(file, `fd ${e.fd} appears twice`);
    fds.add(e.fd);
    const fe = files.get(e.id);
    if (!fe) throw new ImageError(file, `fd ${e.fd}: id ${e.id} is not in files.img`);
    if (fe.type !== e.type)
      throw new ImageError(file, `fd ${e.fd}: type ${e.type} is not the type of file ${e.id} in files.img (${fe.type})`);
    const problem = fileEntryProblem(fe);
    if (problem) throw new ImageError(file, `fd ${e.fd}: file ${e.id} in files.img: ${problem}`);
  }
}

function checkPagemap(file: string, t: LivePlan): void {
  const vmas = t.mm.vmas;
  let k = 0,
    last = 0n;
  for (const r of t.pagemap.runs) {
    if (r.vaddr < last) k = 0;
    last = r.vaddr;
    const end = r.vaddr + BigInt(r.nrPages) * PAGE;
    if (!r.nrPages) throw new ImageError(file, `run at ${hex(r.vaddr)}: nr_pages is 0`);
    if (r.flags & ~(PE.PARENT | PE.LAZY | PE.PRESENT | PE.COW_PARENT))
      throw new ImageError(file, `run at ${hex(r.vaddr)}: flags ${hex(r.flags)} are unknown`);
    // Runs are in address order, as VMAs are: one walk finds the area of each.
    while (k < vmas.length && vmas[k].end <= r.vaddr) k++;
    let covered = r.vaddr,
      j = k;
    while (j < vmas.length && vmas[j].start <= covered && covered < end) covered = vmas[j++].end;
    if (covered < end)
      throw new ImageError(file, `run at ${hex(r.vaddr)} of ${r.nrPages} pages is outside the task's memory areas (mm-${t.pid}.img)`);
  }
}
