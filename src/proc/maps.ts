// /proc/PID/maps and /proc/PID/smaps.

import { ProcParseError, splitLines } from './errors.ts';

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

export interface Vma {
  start: bigint;
  end: bigint;
  /** PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4 */
  prot: number;
  /** 's' (MAP_SHARED) vs 'p' (MAP_PRIVATE) */
  shared: boolean;
  /** file offset in bytes */
  pgoff: bigint;
  dev: { major: number; minor: number };
  inode: number;
  /**
   * '' for anonymous memory, '[heap]', '[stack]', '[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]',
   * '[anon:name]', or the file path. A ' (deleted)' suffix is stripped into `deleted`.
   * The kernel escapes '\n' in paths as '\012'; that escape is left as is (as CRIU does).
   */
  path: string;
  deleted: boolean;
  /** smaps only: the VmFlags tokens (empty set when the VmFlags line is empty). */
  vmFlags?: Set<string>;
  /** smaps only, kB */
  size?: number;
  /** smaps only, kB */
  rss?: number;
  /** smaps only, kB */
  anonymous?: number;
  /** smaps only, kB */
  swap?: number;
  /** smaps only, kB */
  locked?: number;
  /** smaps only, kB (4 normally, 2048/1048576 for hugetlb mappings) */
  kernelPageSize?: number;
  /** smaps only, on CPUs with memory protection keys: the VMA's key (pkey_mprotect). */
  protectionKey?: number;
}

// start-end perms offset major:minor inode, then a space, then an optional padded path.
const HEADER_RE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)(?: |$)/;

/** The kernel pads the header to this column (25 + sizeof(void*)*6 - 1 on 64-bit) and then adds one space. */
const PATH_PAD_COLUMN = 72;

const DELETED_SUFFIX = ' (deleted)';

/** True when the line starts like a VMA header ("hex-hex "), the test CRIU uses to tell headers from smaps fields. */
export function isVmaRangeLine(line: string): boolean {
  let i = 0;
  const n = line.length;
  const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
  while (i < n && isHex(line.charCodeAt(i))) i++;
  if (i === 0 || i >= n || line.charCodeAt(i) !== 45 /* - */) return false;
  i++;
  const s = i;
  while (i < n && isHex(line.charCodeAt(i))) i++;
  return i > s && i < n && line.charCodeAt(i) === 32;
}

/** Parse one header line of maps/smaps. Throws ProcParseError when it is malformed. */
export function parseMapsLine(line: string): Vma {
  const m = HEADER_RE.exec(line);
  if (!m) throw new ProcParseError('maps', 'cannot parse VMA line', line);
  let prot = PROT_NONE;
  if (m[3] === 'r') prot |= PROT_READ;
  if (m[4] === 'w') prot |= PROT_WRITE;
  if (m[5] === 'x') prot |= PROT_EXEC;

  const p = m[0].length;
  let path = '';
  if (p < line.length) {
    // Path column: the kernel pads to PATH_PAD_COLUMN then writes one space; with a longer header it writes
    // just that one space. Honour that exact column so paths starting with spaces survive; fall back to
    // skipping all spaces for text that was not laid out by the kernel.
    const col = Math.max(PATH_PAD_COLUMN, p) + 1;
    if (line.length > col && isAllSpaces(line, p, col)) path = line.slice(col);
    else {
      let i = p;
      while (i < line.length && line.charCodeAt(i) === 32) i++;
      path = line.slice(i);
    }
  }
  let deleted = false;
  if (path.endsWith(DELETED_SUFFIX)) {
    deleted = true;
    path = path.slice(0, -DELETED_SUFFIX.length);
  }
  return {
    start: BigInt('0x' + m[1]),
    end: BigInt('0x' + m[2]),
    prot,
    shared: m[6] === 's',
    pgoff: BigInt('0x' + m[7]),
    dev: { major: parseInt(m[8], 16), minor: parseInt(m[9], 16) },
    inode: Number(m[10]),
    path,
    deleted,
  };
}

function isAllSpaces(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 32) return false;
  return true;
}

/** Parse /proc/PID/maps. */
export function parseMaps(text: string): Vma[] {
  const out: Vma[] = [];
  for (const line of splitLines(text)) {
    if (line === '') continue;
    out.push(parseMapsLine(line));
  }
  return out;
}

const SMAPS_FIELDS: ReadonlyMap<string, 'size' | 'rss' | 'anonymous' | 'swap' | 'locked' | 'kernelPageSize' | 'protectionKey'> = new Map([
  ['Size', 'size'],
  ['Rss', 'rss'],
  ['Anonymous', 'anonymous'],
  ['Swap', 'swap'],
  ['Locked', 'locked'],
  ['KernelPageSize', 'kernelPageSize'],
  ['ProtectionKey', 'protectionKey'],
]);

/**
 * Parse /proc/PID/smaps: the maps header lines plus per-VMA fields and VmFlags. A dump reads
 * every task's smaps, about 25 lines per VMA of which it keeps a few, so lines are scanned in
 * place and only the kept ones are cut out of the text.
 */
export function parseSmaps(text: string): Vma[] {
  const out: Vma[] = [];
  let cur: Vma | undefined;
  for (let at = 0; at < text.length; ) {
    let eol = text.indexOf('\n', at);
    if (eol < 0) eol = text.length;
    const from = at;
    at = eol + 1;
    if (eol === from) continue;
    const c = text.charCodeAt(from);
    if (c < 65 || c > 90) {
      // not 'A'..'Z': field names are capitalised, VMA headers start with a hex digit
      const line = text.slice(from, eol);
      if (!isVmaRangeLine(line)) throw new ProcParseError('smaps', 'cannot parse line', line);
      cur = parseMapsLine(line);
      out.push(cur);
      continue;
    }
    if (!cur) throw new ProcParseError('smaps', 'field before the first VMA', text.slice(from, eol));
    const colon = text.indexOf(':', from);
    if (colon < 0 || colon > eol) continue;
    const key = text.slice(from, colon);
    if (key === 'VmFlags') {
      cur.vmFlags = parseVmFlagsLine(text.slice(colon + 1, eol));
      continue;
    }
    const field = SMAPS_FIELDS.get(key);
    if (field) cur[field] = kbValue(text.slice(from, eol), colon - from);
    // Pss, Shared_*, Private_*, THPeligible, ... are not kept
  }
  return out;
}

function kbValue(line: string, colon: number): number {
  const m = /^\s*(\d+)/.exec(line.slice(colon + 1));
  if (!m) throw new ProcParseError('smaps', 'bad numeric field', line);
  return Number(m[1]);
}

/** Split the part after "VmFlags:" into its tokens. */
export function parseVmFlagsLine(rest: string): Set<string> {
  const set = new Set<string>();
  for (const tok of rest.split(/\s+/)) if (tok !== '') set.add(tok);
  return set;
}

// madvise advice numbers (asm-generic, same on x86_64 and aarch64).
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_DONTFORK = 10;
export const MADV_MERGEABLE = 12;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_WIPEONFORK = 18;

/**
 * VmFlags token -> madvise advice recorded in CRIU's vma_entry.madv (bit N = 1 << MADV_N).
 * Same set as CRIU's proc_parse.c: advice that leaves a mark on the VMA and must be re-applied on restore.
 */
const MADV_BY_VMFLAG: ReadonlyMap<string, number> = new Map([
  ['sr', MADV_SEQUENTIAL],
  ['rr', MADV_RANDOM],
  ['dc', MADV_DONTFORK],
  ['dd', MADV_DONTDUMP],
  ['mg', MADV_MERGEABLE],
  ['hg', MADV_HUGEPAGE],
  ['nh', MADV_NOHUGEPAGE],
  ['wf', MADV_WIPEONFORK],
]);

/** CRIU's vma_entry.madv bitmap for a VMA's VmFlags. Like CRIU, a token is matched on its first two characters. */
export function madvBits(vmFlags: Iterable<string> | undefined): bigint {
  let bits = 0n;
  if (!vmFlags) return bits;
  for (const tok of vmFlags) {
    const adv = MADV_BY_VMFLAG.get(tok.slice(0, 2));
    if (adv !== undefined) bits |= 1n << BigInt(adv);
  }
  return bits;
}

// mmap flags (asm-generic values; identical on x86_64 and aarch64).
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_DROPPABLE = 0x08;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_HUGETLB = 0x40000;

export interface VmFlagsInfo {
  /** mmap flags implied by VmFlags: gd->MAP_GROWSDOWN, lo->MAP_LOCKED, nr->MAP_NORESERVE, ht->MAP_HUGETLB, dp->MAP_DROPPABLE */
  mapFlags: number;
  /** same as madvBits() */
  madv: bigint;
  /** 'io' or 'pf' present: VM_IO / VM_PFNMAP (CRIU refuses these unless vvar, shared file, or uprobes) */
  ioPf: boolean;
  /** 'ss': shadow stack */
  shadowStack: boolean;
  /** 'sh' and 'mw': a shared mapping that may be written (CRIU opens the file O_RDWR then) */
  sharedMayWrite: boolean;
}

/** Everything CRIU derives from the VmFlags line, in one pass. */
export function vmFlagsInfo(vmFlags: Iterable<string> | undefined): VmFlagsInfo {
  const info: VmFlagsInfo = { mapFlags: 0, madv: 0n, ioPf: false, shadowStack: false, sharedMayWrite: false };
  if (!vmFlags) return info;
  let sh = false;
  let mw = false;
  for (const tok of vmFlags) {
    const t = tok.slice(0, 2);
    switch (t) {
      case 'gd':
        info.mapFlags |= MAP_GROWSDOWN;
        break;
      case 'lo':
        info.mapFlags |= MAP_LOCKED;
        break;
      case 'nr':
        info.mapFlags |= MAP_NORESERVE;
        break;
      case 'ht':
        info.mapFlags |= MAP_HUGETLB;
        break;
      case 'dp':
        info.mapFlags |= MAP_DROPPABLE;
        break;
      case 'io':
      case 'pf':
        info.ioPf = true;
        break;
      case 'ss':
        info.shadowStack = true;
        break;
      case 'sh':
        sh = true;
        break;
      case 'mw':
        mw = true;
        break;
      default: {
        const adv = MADV_BY_VMFLAG.get(t);
        if (adv !== undefined) info.madv |= 1n << BigInt(adv);
      }
    }
  }
  info.sharedMayWrite = sh && mw;
  return info;
}

/** Kernel special mappings by name. */
export function isVdso(v: Vma): boolean {
  return v.path === '[vdso]';
}
export function isVvar(v: Vma): boolean {
  return v.path === '[vvar]' || v.path === '[vvar_vclock]';
}
export function isVsyscall(v: Vma): boolean {
  return v.path === '[vsyscall]' || v.path === '[vectors]';
}
