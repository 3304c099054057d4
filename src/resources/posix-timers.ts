// POSIX timers (timer_create) of task_timers_entry.posix: what /proc/PID/timers shows (id,
// clock, signal, sigev value, notification and its thread), and what only the task itself
// can ask (timer_gettime, timer_getoverrun), as CRIU keeps them.
import { PR } from '../kernel/index.ts';
import { readTimers, SIGEV_THREAD_ID, type PosixTimerInfo } from '../proc/index.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import { nsPid } from './ns/pid.ts';
import type { ClaimSite, ResourceClaims } from './claims.ts';
import type { Logger, Message, MessageInput } from './types.ts';

const ITIMERSPEC = 32;
const SIGEVENT = 64;
/** Clocks a timer_create of the restored task gets back as they were (CLOCK_* and a CPU clock of its own). */
const CLOCKS = new Set([0, 1, 2, 3, 7, 8, 9, 11]);

/** Why a timer cannot be restored, given the threads of its task; undefined when it can. */
export function checkPosixTimer(tm: PosixTimerInfo, at: ClaimSite, tids: ReadonlySet<number>): string | undefined {
  if (tm.clockId < 0) {
    // A CPU clock of some process or thread, by pid (~pid << 3); the pid stays only if it is ours.
    const pid = ~(tm.clockId >> 3);
    if (pid !== 0 && !tids.has(pid)) return `its clock is the CPU clock of ${pid}, outside the tree`;
  } else if (!CLOCKS.has(tm.clockId)) return `its clock ${tm.clockId} is not one timer_create takes`;
  if (tm.toThread && !tids.has(tm.notifyPid)) return `it signals thread ${tm.notifyPid}, not one of task ${at.pid}`;
  return undefined;
}

export const posixTimerClaims: ResourceClaims = { posixTimers: checkPosixTimer };

export function dumpPosixTimers(t: Tracee, area: InjectionArea, pid: number): MessageInput<'posix_timer_entry'>[] {
  const timers = readTimers(pid).sort((a, b) => a.id - b.id);
  area.reset();
  const a = area.alloc(ITIMERSPEC);
  return timers.map((tm) => {
    t.syscall('timer_gettime', tm.id, a);
    const b = area.read(a, ITIMERSPEC);
    const overrun = Number(t.syscall('timer_getoverrun', tm.id));
    return {
      it_id: tm.id,
      clock_id: tm.clockId >>> 0,
      si_signo: tm.signo,
      it_sigev_notify: tm.sigevNotify,
      sival_ptr: tm.sigval,
      overrun,
      isec: b.readBigUInt64LE(0),
      insec: b.readBigUInt64LE(8),
      vsec: b.readBigUInt64LE(16),
      vnsec: b.readBigUInt64LE(24),
      // /proc shows the thread's id in criu-ts's PID namespace; the task's own is the one it gave.
      ...(tm.sigevNotify === SIGEV_THREAD_ID ? { notify_thread_id: nsPid(pid, tm.notifyPid) } : {}),
    };
  });
}

/**
 * Each timer at its id, then armed with what was left of it. The kernel gives the id asked
 * for under PR_TIMER_CREATE_RESTORE_IDS; older kernels give them in order from 0, so timers
 * are created and deleted until the id comes. A timer that was about to expire (no time
 * left) gets its interval, as in CRIU. The overrun count is saved but cannot be set.
 */
export function restorePosixTimers(t: Tracee, area: InjectionArea, timers: readonly Message<'posix_timer_entry'>[], log: Logger): void {
  if (!timers.length) return;
  area.reset();
  const sev = area.alloc(SIGEVENT);
  const idp = area.alloc(4);
  const its = area.alloc(ITIMERSPEC);
  const byId = [...timers].sort((x, y) => x.it_id - y.it_id);
  const restoreIds = t.syscallRaw('prctl', PR.TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) === 0n;
  try {
    let next = 0;
    for (const tm of byId) {
      const ev = Buffer.alloc(SIGEVENT);
      ev.writeBigUInt64LE(tm.sival_ptr, 0);
      ev.writeInt32LE(tm.si_signo, 8);
      ev.writeInt32LE(tm.it_sigev_notify, 12);
      ev.writeInt32LE(tm.notify_thread_id ?? 0, 16);
      t.writeMem(sev, ev);
      const create = (want: number): number => {
        t.writeMem(idp, Buffer.from(new Int32Array([want]).buffer));
        t.syscall('timer_create', tm.clock_id | 0, sev, idp);
        return area.read(idp, 4).readInt32LE(0);
      };
      if (restoreIds) {
        const got = create(tm.it_id);
        if (got !== tm.it_id) throw new Error(`POSIX timer ${tm.it_id} came back as ${got}`);
      } else {
        for (;;) {
          const got = create(0);
          if (got !== next) throw new Error(`POSIX timer ${tm.it_id}: the kernel gave id ${got} where ${next} was due`);
          next++;
          if (got === tm.it_id) break;
          t.syscall('timer_delete', got);
        }
      }
    }
  } finally {
    if (restoreIds) t.syscall('prctl', PR.TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
  }
  for (const tm of byId) {
    const left = tm.vsec === 0n && tm.vnsec === 0n;
    const b = Buffer.alloc(ITIMERSPEC);
    b.writeBigUInt64LE(tm.isec, 0);
    b.writeBigUInt64LE(tm.insec, 8);
    b.writeBigUInt64LE(left ? tm.isec : tm.vsec, 16);
    b.writeBigUInt64LE(left ? tm.insec : tm.vnsec, 24);
    t.writeMem(its, b);
    t.syscall('timer_settime', tm.it_id, 0, its, 0);
  }
  log.debug(`${byId.length} POSIX timer(s): ${byId.map((tm) => tm.it_id).join(', ')}`);
}
