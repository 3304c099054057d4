// `criu-ts check`: which kernel features criu-ts relies on, probed for real.
import fs from 'node:fs';
import {
  pidfdOpen, pidfdGetfd, close, kcmp, KCMP, getpid, processVmReadv, zeroPagePfn, posixSpawn, kill, waitpid,
  WALL, SIG, getRseqConfig, ioctl, SysError, O, PTRACE_O, addressOf,
} from '../kernel/index.ts';
import { Tracee } from '../compel/index.ts';

export interface Feature { name: string; what: string; required: boolean; probe(): boolean }

function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8'));
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

function withSeizedHelper<T>(fn: (t: Tracee) => T): T {
  const pid = posixSpawn('/bin/sleep', ['sleep', '60'], [], [0, 1, 2].map((fd) => ({ fd, path: '/dev/null', flags: O.RDWR })));
  try {
    const t = Tracee.seize(pid, PTRACE_O.TRACESYSGOOD);
    return fn(t);
  } finally {
    kill(pid, SIG.KILL);
    waitpid(pid, WALL);
  }
}

const ok = (fn: () => unknown): boolean => { try { fn(); return true; } catch { return false; } };

export const FEATURES: Feature[] = [
  { name: 'ptrace_seize', what: 'PTRACE_SEIZE and PTRACE_INTERRUPT', required: true, probe: () => ok(() => withSeizedHelper(() => 0)) },
  { name: 'get_rseq_conf', what: 'PTRACE_GET_RSEQ_CONFIGURATION', required: true, probe: () => ok(() => withSeizedHelper((t) => getRseqConfig(t.tid))) },
  { name: 'clone3_set_tid', what: 'clone3 with set_tid (tasks at their old PIDs)', required: true, probe: () => kernelAtLeast(5, 5) },
  { name: 'pidfd_store', what: 'pidfd_open and pidfd_getfd', required: true, probe: () => ok(() => { const p = pidfdOpen(getpid()); try { close(pidfdGetfd(p, 0)); } finally { close(p); } }) },
  { name: 'kcmp', what: 'kcmp(KCMP_FILE) for shared files', required: true, probe: () => ok(() => kcmp(getpid(), getpid(), KCMP.FILE, 0, 0)) },
  { name: 'process_vm', what: 'process_vm_readv/writev', required: true, probe: () => ok(() => processVmReadv(getpid(), Buffer.alloc(8), [{ addr: 0n, len: 0 }])) },
  { name: 'pagemap_pfn', what: 'physical frame numbers in /proc/PID/pagemap (zero-page detection)', required: false, probe: () => ok(() => { if (zeroPagePfn() <= 0) throw new Error('no pfn'); }) },
  { name: 'mm_map', what: 'prctl(PR_SET_MM_MAP) (CONFIG_CHECKPOINT_RESTORE)', required: true, probe: () => fs.existsSync('/proc/self/map_files') },
  { name: 'timens', what: 'time namespaces', required: false, probe: () => fs.existsSync('/proc/self/ns/time') },
  { name: 'uffd', what: 'userfaultfd (lazy pages)', required: false, probe: () => fs.existsSync('/dev/userfaultfd') || fs.existsSync('/proc/sys/vm/unprivileged_userfaultfd') },
  { name: 'pagemap_scan', what: 'PAGEMAP_SCAN ioctl (dirty tracking without soft-dirty)', required: false, probe: () => probePagemapScan() },
  { name: 'mem_dirty_track', what: 'soft-dirty page tracking', required: false, probe: () => probeSoftDirty() },
];

function probePagemapScan(): boolean {
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    // PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg): a zero-size argument is EINVAL when the ioctl exists.
    ioctl(fd, 0xc0606610, Buffer.alloc(96));
    return true;
  } catch (e) {
    return e instanceof SysError && e.code === 'EINVAL';
  } finally { fs.closeSync(fd); }
}

function probeSoftDirty(): boolean {
  // Clear our own soft-dirty bits, dirty one page, and see whether pagemap flags it (bit 55).
  try { fs.writeFileSync('/proc/self/clear_refs', '4'); } catch { return false; }
  const buf = Buffer.alloc(3 * 4096);
  const page = (addressOf(buf) + 4095n) & ~4095n;
  buf.fill(7);
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const e = Buffer.alloc(8);
    fs.readSync(fd, e, 0, 8, Number(page / 4096n) * 8);
    return ((e.readBigUInt64LE(0) >> 55n) & 1n) === 1n;
  } finally { fs.closeSync(fd); }
}

export function runCheck(feature: string | undefined, out: (s: string) => void, err: (s: string) => void = out): number {
  if (feature === 'list') { out(FEATURES.map((f) => f.name).join(' ')); return 0; }
  if (feature !== undefined) {
    const f = FEATURES.find((x) => x.name === feature);
    if (!f) { err(`unknown feature ${feature} (criu-ts check --feature list names them)`); return 1; }
    const present = f.probe();
    out(`${f.name} is ${present ? 'supported' : 'not supported'}`);
    return present ? 0 : 1;
  }
  let missingRequired = false, missingExtra = false;
  for (const f of FEATURES) {
    const present = f.probe();
    out(`${present ? 'ok     ' : 'MISSING'} ${f.name.padEnd(16)} ${f.what}${f.required ? '' : ' (optional)'}`);
    if (!present) { if (f.required) missingRequired = true; else missingExtra = true; }
  }
  out(missingRequired ? 'Does not look good.' : missingExtra ? 'Looks good but some kernel features are missing\nwhich, depending on your process tree, may cause\ndump or restore failure.' : 'Looks good.');
  return missingRequired ? 1 : 0;
}
