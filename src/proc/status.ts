// /proc/PID/status and /proc/PID/task/TID/status.

import { ProcParseError, decInt, hexBig, octInt, splitLines } from './errors.ts';

export interface Status {
  name: string;
  /** umask (octal in the file); -1 when absent */
  umask: number;
  /** state letter: R S D T t X Z P I */
  state: string;
  tgid: number;
  ngid: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  /** real, effective, saved, filesystem */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  fdSize: number;
  groups: number[];
  /** ids in each nested pid namespace, outermost first (NStgid/NSpid/NSpgid/NSsid) */
  nsTgid: number[];
  nsPid: number[];
  nsPgid: number[];
  nsSid: number[];
  /** Kthread: 1 for kernel threads; -1 when the line is absent (older kernels) */
  kthread: number;
  threads: number;
  sigQ: { queued: number; limit: number };
  sigPnd: bigint;
  shdPnd: bigint;
  sigBlk: bigint;
  sigIgn: bigint;
  sigCgt: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: boolean;
  /** SECCOMP_MODE_DISABLED 0, STRICT 1, FILTER 2 */
  seccomp: number;
  seccompFilters: number;
  /** Every "Key:\tvalue" line of the file, values with surrounding whitespace trimmed. */
  raw: Map<string, string>;
}

const F = 'status';

function idList(v: string, line: string): number[] {
  const out: number[] = [];
  for (const t of v.split(/\s+/)) if (t !== '') out.push(decInt(F, t, line));
  return out;
}

function quad(v: string, line: string): [number, number, number, number] {
  const l = idList(v, line);
  if (l.length !== 4) throw new ProcParseError(F, 'expected four ids', line);
  return [l[0], l[1], l[2], l[3]];
}

type Field = (s: Status, v: string, line: string) => void;

/**
 * What each known line sets, looked up by key (one hash per line, where a switch compared each
 * freshly sliced key with up to ~35 cases). A dump parses the status of every thread.
 */
const FIELDS: ReadonlyMap<string, Field> = new Map<string, Field>([
  [
    'Name',
    (s, v) => {
      s.name = unescapeName(v);
    },
  ],
  [
    'Umask',
    (s, v, line) => {
      s.umask = octInt(F, v, line);
    },
  ],
  [
    'State',
    (s, v) => {
      s.state = v.charAt(0);
    },
  ],
  [
    'Tgid',
    (s, v, line) => {
      s.tgid = decInt(F, v, line);
    },
  ],
  [
    'Ngid',
    (s, v, line) => {
      s.ngid = decInt(F, v, line);
    },
  ],
  [
    'Pid',
    (s, v, line) => {
      s.pid = decInt(F, v, line);
    },
  ],
  [
    'PPid',
    (s, v, line) => {
      s.ppid = decInt(F, v, line);
    },
  ],
  [
    'TracerPid',
    (s, v, line) => {
      s.tracerPid = decInt(F, v, line);
    },
  ],
  [
    'Uid',
    (s, v, line) => {
      s.uid = quad(v, line);
    },
  ],
  [
    'Gid',
    (s, v, line) => {
      s.gid = quad(v, line);
    },
  ],
  [
    'FDSize',
    (s, v, line) => {
      s.fdSize = decInt(F, v, line);
    },
  ],
  [
    'Groups',
    (s, v, line) => {
      s.groups = idList(v, line);
    },
  ],
  [
    'NStgid',
    (s, v, line) => {
      s.nsTgid = idList(v, line);
    },
  ],
  [
    'NSpid',
    (s, v, line) => {
      s.nsPid = idList(v, line);
    },
  ],
  [
    'NSpgid',
    (s, v, line) => {
      s.nsPgid = idList(v, line);
    },
  ],
  [
    'NSsid',
    (s, v, line) => {
      s.nsSid = idList(v, line);
    },
  ],
  [
    'Kthread',
    (s, v, line) => {
      s.kthread = decInt(F, v, line);
    },
  ],
  [
    'Threads',
    (s, v, line) => {
      s.threads = decInt(F, v, line);
    },
  ],
  [
    'SigQ',
    (s, v, line) => {
      const m = /^(\d+)\/(\d+)$/.exec(v);
      if (!m) throw new ProcParseError(F, 'bad SigQ', line);
      s.sigQ = { queued: Number(m[1]), limit: Number(m[2]) };
    },
  ],
  [
    'SigPnd',
    (s, v, line) => {
      s.sigPnd = hexBig(F, v, line);
    },
  ],
  [
    'ShdPnd',
    (s, v, line) => {
      s.shdPnd = hexBig(F, v, line);
    },
  ],
  [
    'SigBlk',
    (s, v, line) => {
      s.sigBlk = hexBig(F, v, line);
    },
  ],
  [
    'SigIgn',
    (s, v, line) => {
      s.sigIgn = hexBig(F, v, line);
    },
  ],
  [
    'SigCgt',
    (s, v, line) => {
      s.sigCgt = hexBig(F, v, line);
    },
  ],
  [
    'CapInh',
    (s, v, line) => {
      s.capInh = hexBig(F, v, line);
    },
  ],
  [
    'CapPrm',
    (s, v, line) => {
      s.capPrm = hexBig(F, v, line);
    },
  ],
  [
    'CapEff',
    (s, v, line) => {
      s.capEff = hexBig(F, v, line);
    },
  ],
  [
    'CapBnd',
    (s, v, line) => {
      s.capBnd = hexBig(F, v, line);
    },
  ],
  [
    'CapAmb',
    (s, v, line) => {
      s.capAmb = hexBig(F, v, line);
    },
  ],
  [
    'NoNewPrivs',
    (s, v, line) => {
      s.noNewPrivs = decInt(F, v, line) !== 0;
    },
  ],
  [
    'Seccomp',
    (s, v, line) => {
      s.seccomp = decInt(F, v, line);
    },
  ],
  [
    'Seccomp_filters',
    (s, v, line) => {
      s.seccompFilters = decInt(F, v, line);
    },
  ],
  // Vm*, Rss*, Cpus_allowed, Speculation*, ctxt switches, ...: raw only
]);

/** Parse /proc/PID/status. Throws ProcParseError when Name/State/Pid are missing or a known field is malformed. */
export function parseStatus(text: string): Status {
  const s: Status = {
    name: '',
    umask: -1,
    state: '',
    tgid: 0,
    ngid: 0,
    pid: 0,
    ppid: 0,
    tracerPid: 0,
    uid: [0, 0, 0, 0],
    gid: [0, 0, 0, 0],
    fdSize: 0,
    groups: [],
    nsTgid: [],
    nsPid: [],
    nsPgid: [],
    nsSid: [],
    kthread: -1,
    threads: 0,
    sigQ: { queued: 0, limit: 0 },
    sigPnd: 0n,
    shdPnd: 0n,
    sigBlk: 0n,
    sigIgn: 0n,
    sigCgt: 0n,
    capInh: 0n,
    capPrm: 0n,
    capEff: 0n,
    capBnd: 0n,
    capAmb: 0n,
    noNewPrivs: false,
    seccomp: 0,
    seccompFilters: 0,
    raw: new Map(),
  };
  for (const line of splitLines(text)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    // Name keeps inner and trailing spaces: only the tab after the colon is the separator.
    const rawVal = line.slice(colon + 1);
    const v = key === 'Name' ? rawVal.replace(/^\t/, '') : rawVal.trim();
    s.raw.set(key, v);
    FIELDS.get(key)?.(s, v, line);
  }
  if (!s.raw.has('Name') || !s.raw.has('State') || !s.raw.has('Pid')) throw new ProcParseError(F, 'missing Name, State or Pid');
  return s;
}

/**
 * The kernel escapes '\\' as "\\\\" and '\n' as "\\n" in the Name line (proc_task_name with ESCAPE_SPACE|ESCAPE_SPECIAL
 * only for '\n' and '\\'). Undo that so the name matches /proc/PID/comm.
 */
function unescapeName(v: string): string {
  if (!v.includes('\\')) return v;
  return v.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}
