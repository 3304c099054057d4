// /proc/PID/timers: POSIX timers, four lines each:
//   ID: 1
//   signal: 12/00000000deadbeef      (signo / sigev_value as hex pointer; "(null)" on old kernels)
//   notify: signal/pid.4078           (signal|thread|none / pid|tid . pid)
//   ClockID: 1

import { ProcParseError, splitLines } from './errors.ts';

export const SIGEV_SIGNAL = 0;
export const SIGEV_NONE = 1;
export const SIGEV_THREAD = 2;
export const SIGEV_THREAD_ID = 4;

export interface PosixTimerInfo {
  id: number;
  signo: number;
  /** sigev_value (sival_ptr) */
  sigval: bigint;
  /** "signal", "thread" or "none" as printed */
  notify: string;
  /** true when the target is a thread ("tid"), false for "pid" */
  toThread: boolean;
  /** the pid or tid after the dot */
  notifyPid: number;
  /** SIGEV_* as CRIU derives it: SIGEV_THREAD_ID when "tid", else SIGNAL / THREAD / NONE by the notify word */
  sigevNotify: number;
  clockId: number;
}

const F = 'timers';

/** Parse /proc/PID/timers, in file order (newest timer first, as the kernel lists them). */
export function parseTimers(text: string): PosixTimerInfo[] {
  const out: PosixTimerInfo[] = [];
  let cur: Partial<PosixTimerInfo> | undefined;
  const finish = () => {
    if (!cur) return;
    if (cur.id === undefined || cur.signo === undefined || cur.notify === undefined || cur.clockId === undefined) {
      throw new ProcParseError(F, `incomplete timer entry ${cur.id ?? '?'}`);
    }
    out.push(cur as PosixTimerInfo);
    cur = undefined;
  };
  for (const line of splitLines(text)) {
    if (line.trim() === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^ID:\s*(-?\d+)\s*$/.exec(line))) {
      finish();
      cur = { id: Number(m[1]) };
    } else if (!cur) {
      throw new ProcParseError(F, 'line before ID', line);
    } else if ((m = /^signal:\s*(\d+)\/(\S+)\s*$/.exec(line))) {
      cur.signo = Number(m[1]);
      const p = m[2];
      if (p === '(null)') cur.sigval = 0n;
      else if (/^(0x)?[0-9a-fA-F]+$/.test(p)) cur.sigval = BigInt(p.startsWith('0x') ? p : '0x' + p);
      else throw new ProcParseError(F, 'bad sigev_value', line);
    } else if ((m = /^notify:\s*([a-z]+)\/([a-z]+)\.(\d+)\s*$/.exec(line))) {
      cur.notify = m[1];
      cur.toThread = m[2].startsWith('t');
      cur.notifyPid = Number(m[3]);
      if (cur.toThread) cur.sigevNotify = SIGEV_THREAD_ID;
      else if (m[1].startsWith('s')) cur.sigevNotify = SIGEV_SIGNAL;
      else if (m[1].startsWith('t')) cur.sigevNotify = SIGEV_THREAD;
      else cur.sigevNotify = SIGEV_NONE;
    } else if ((m = /^ClockID:\s*(-?\d+)\s*$/.exec(line))) {
      cur.clockId = Number(m[1]);
    } else {
      throw new ProcParseError(F, 'unexpected line', line);
    }
  }
  finish();
  return out;
}
