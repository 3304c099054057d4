// /proc/PID/stat and /proc/PID/task/TID/stat.

import { ProcParseError } from './errors.ts';

export interface Stat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  ttyNr: number;
  tpgid: number;
  flags: number;
  minflt: number;
  cminflt: number;
  majflt: number;
  cmajflt: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
  priority: number;
  nice: number;
  numThreads: number;
  itrealvalue: number;
  /** clock ticks since boot */
  startTime: bigint;
  /** bytes */
  vsize: bigint;
  /** pages */
  rss: number;
  rsslim: bigint;
  startCode: bigint;
  endCode: bigint;
  startStack: bigint;
  kstkesp: bigint;
  kstkeip: bigint;
  /** legacy decimal signal masks */
  signal: bigint;
  blocked: bigint;
  sigignore: bigint;
  sigcatch: bigint;
  wchan: bigint;
  nswap: number;
  cnswap: number;
  exitSignal: number;
  processor: number;
  rtPriority: number;
  policy: number;
  delayacctBlkioTicks: bigint;
  guestTime: number;
  cguestTime: number;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
  exitCode: number;
}

const F = 'stat';
/** Fields after "pid (comm)": state .. exit_code (fields 3..52 of proc(5)). */
const NFIELDS = 50;

/** Parse /proc/PID/stat. comm may contain spaces and parentheses: it ends at the LAST ')'. */
export function parseStat(text: string): Stat {
  const t = text.replace(/\n$/, '');
  const open = t.indexOf(' (');
  const close = t.lastIndexOf(')');
  if (open < 0 || close < open) throw new ProcParseError(F, 'no "(comm)"', t);
  const pidStr = t.slice(0, open);
  if (!/^\d+$/.test(pidStr)) throw new ProcParseError(F, 'bad pid', t);
  const comm = t.slice(open + 2, close);
  const f = t
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  if (f.length < NFIELDS) throw new ProcParseError(F, `expected ${NFIELDS} fields after comm, got ${f.length}`, t);
  const num = (i: number): number => {
    const s = f[i];
    if (!/^-?\d+$/.test(s)) throw new ProcParseError(F, `bad field ${i + 3}`, t);
    return Number(s);
  };
  const big = (i: number): bigint => {
    const s = f[i];
    if (!/^-?\d+$/.test(s)) throw new ProcParseError(F, `bad field ${i + 3}`, t);
    return BigInt(s);
  };
  // f[0] is field 3 (state) of proc(5).
  return {
    pid: Number(pidStr),
    comm,
    state: f[0],
    ppid: num(1),
    pgrp: num(2),
    session: num(3),
    ttyNr: num(4),
    tpgid: num(5),
    flags: num(6),
    minflt: num(7),
    cminflt: num(8),
    majflt: num(9),
    cmajflt: num(10),
    utime: num(11),
    stime: num(12),
    cutime: num(13),
    cstime: num(14),
    priority: num(15),
    nice: num(16),
    numThreads: num(17),
    itrealvalue: num(18),
    startTime: big(19),
    vsize: big(20),
    rss: num(21),
    rsslim: big(22),
    startCode: big(23),
    endCode: big(24),
    startStack: big(25),
    kstkesp: big(26),
    kstkeip: big(27),
    signal: big(28),
    blocked: big(29),
    sigignore: big(30),
    sigcatch: big(31),
    wchan: big(32),
    nswap: num(33),
    cnswap: num(34),
    exitSignal: num(35),
    processor: num(36),
    rtPriority: num(37),
    policy: num(38),
    delayacctBlkioTicks: big(39),
    guestTime: num(40),
    cguestTime: num(41),
    startData: big(42),
    endData: big(43),
    startBrk: big(44),
    argStart: big(45),
    argEnd: big(46),
    envStart: big(47),
    envEnd: big(48),
    exitCode: num(49),
  };
}
