// /proc/PID/limits.

import { ProcParseError, splitLines } from './errors.ts';

/** RLIM_INFINITY as the kernel reports it ("unlimited"). */
export const RLIM_INFINITY = (1n << 64n) - 1n;

/** The names /proc/PID/limits prints, indexed by RLIMIT_* number (RLIMIT_CPU 0 .. RLIMIT_RTTIME 15). */
export const RLIMIT_NAMES: readonly string[] = [
  'Max cpu time',
  'Max file size',
  'Max data size',
  'Max stack size',
  'Max core file size',
  'Max resident set',
  'Max processes',
  'Max open files',
  'Max locked memory',
  'Max address space',
  'Max file locks',
  'Max pending signals',
  'Max msgqueue size',
  'Max nice priority',
  'Max realtime priority',
  'Max realtime timeout',
];

export interface Rlimit {
  name: string;
  soft: bigint;
  hard: bigint;
  /** "seconds", "bytes", ... ('' for the two priority limits) */
  units: string;
}

const LINE_RE = /^(.*?)\s+(unlimited|\d+)\s+(unlimited|\d+)(?:\s+(\S+))?\s*$/;

function value(s: string): bigint {
  return s === 'unlimited' ? RLIM_INFINITY : BigInt(s);
}

/** Parse /proc/PID/limits into RLIMIT order (array index = RLIMIT_* number). */
export function parseLimits(text: string): Rlimit[] {
  const out: Rlimit[] = [];
  for (const line of splitLines(text)) {
    if (line.trim() === '' || line.startsWith('Limit ')) continue;
    const m = LINE_RE.exec(line);
    if (!m) throw new ProcParseError('limits', 'cannot parse line', line);
    const r: Rlimit = { name: m[1], soft: value(m[2]), hard: value(m[3]), units: m[4] ?? '' };
    const idx = RLIMIT_NAMES.indexOf(r.name);
    if (idx >= 0) {
      if (out[idx] !== undefined) throw new ProcParseError('limits', 'duplicate limit', line);
      out[idx] = r;
    } else {
      // A limit newer than this table: keep it after the known ones, in file order.
      out[Math.max(out.length, RLIMIT_NAMES.length)] = r;
    }
  }
  for (let i = 0; i < out.length; i++)
    if (out[i] === undefined) throw new ProcParseError('limits', `missing ${RLIMIT_NAMES[i] ?? `limit ${i}`}`);
  return out;
}
