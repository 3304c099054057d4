// Time namespace: CLOCK_MONOTONIC and CLOCK_BOOTTIME as the tree saw them at the dump
// (timens-N.img: criu-ts's clocks plus the namespace's offsets). The restore makes a new
// namespace whose offsets give the tree back those clocks: the helper unshares it (a
// multithreaded criu-ts cannot), criu-ts writes /proc/HELPER/timens_offsets, and the root,
// the helper's next child, is born in it (time_for_children). Its offsets are fixed from then.
import fs from 'node:fs';
import { CLONE, clockGettime } from '../../kernel/index.ts';
import { CriuError } from '../../errors.ts';
import { IMG } from '../../images/index.ts';
import type { NsKind } from './types.ts';

const CLOCK = { MONOTONIC: 1, BOOTTIME: 7 } as const;
const NS = 1_000_000_000n;

type Ts = { tv_sec: bigint; tv_nsec: bigint };

/** /proc/PID/timens_offsets: `monotonic SEC NSEC` and `boottime SEC NSEC`. */
function offsets(pid: number | 'self'): { monotonic: bigint; boottime: bigint } {
  const o = { monotonic: 0n, boottime: 0n };
  for (const line of fs.readFileSync(`/proc/${pid}/timens_offsets`, 'utf8').split('\n')) {
    const [name, sec, nsec] = line.trim().split(/\s+/);
    if (name === 'monotonic' || name === 'boottime') o[name] = BigInt(sec) * NS + BigInt(nsec);
  }
  return o;
}

const nsOf = (t: { sec: bigint; nsec: bigint }) => t.sec * NS + t.nsec;

/**
 * The clocks of the root time namespace. Offsets are relative to it, not to the namespace of
 * whoever writes them, and criu-ts may run in a time namespace of its own (ZDTM's zdtm_ct).
 */
function hostClocks(): { monotonic: bigint; boottime: bigint } {
  const own = offsets('self');
  return {
    monotonic: nsOf(clockGettime(CLOCK.MONOTONIC)) - own.monotonic,
    boottime: nsOf(clockGettime(CLOCK.BOOTTIME)) - own.boottime,
  };
}
const ts = (n: bigint): Ts => ({ tv_sec: n / NS, tv_nsec: n % NS });
const total = (t: { tv_sec: bigint; tv_nsec: bigint }) => BigInt(t.tv_sec) * NS + BigInt(t.tv_nsec);
/** An offset as the kernel takes it: seconds (may be negative) and nanoseconds in [0, 1e9). */
function offsetLine(clock: number, off: bigint): string {
  let sec = off / NS,
    nsec = off % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return `${clock} ${sec} ${nsec}`;
}

export const timeNs: NsKind = {
  name: 'time',
  // Not a clone flag: the helper unshares it and the root enters it at fork.
  cflag: 0,
  dumpRefusal: () => undefined,
  dump: ({ pid, id, imgs, log }) => {
    const o = offsets(pid);
    const host = hostClocks();
    const mono = host.monotonic + o.monotonic,
      boot = host.boottime + o.boottime;
    log.info(`time namespace ${id}: offsets ${o.monotonic} ns (monotonic), ${o.boottime} ns (boottime) to timens-${id}.img`);
    imgs.one(IMG.TIMENS, id, { monotonic: ts(mono), boottime: ts(boot) });
  },
  restoreRefusal: ({ id, imgs }) => {
    imgs.one(IMG.TIMENS, id);
    return undefined;
  },
  beforeRoot: ({ helper, id, imgs, log }) => {
    const e = imgs.one(IMG.TIMENS, id);
    helper.syscall('unshare', CLONE.NEWTIME);
    const host = hostClocks();
    const mono = total(e.monotonic) - host.monotonic,
      boot = total(e.boottime) - host.boottime;
    try {
      fs.writeFileSync(`/proc/${helper.tid}/timens_offsets`, `${offsetLine(CLOCK.MONOTONIC, mono)}\n${offsetLine(CLOCK.BOOTTIME, boot)}\n`);
    } catch (err) {
      throw new CriuError(`timens-${id}.img: cannot set the clocks' offsets: ${(err as Error).message}`);
    }
    log.info(`time namespace ${id}: offsets ${mono} ns (monotonic), ${boot} ns (boottime)`);
  },
};
