// Signal dispositions (sa_entry x 62, in the leader's task_core). Read and set from inside
// the task with rt_sigaction, since /proc shows only which signals are caught.
import { SIG, SIGMAX } from '../kernel/index.ts';
import type { Tracee, InjectionArea } from '../compel/index.ts';
import type { Message } from './types.ts';
import type { ResourceClaims } from './claims.ts';

type Sigaction = Message<'sa_entry'>;

/** An ignored SIGTRAP is reset to SIG_DFL by the kernel at the traps that end injected calls. */
export const sigactClaims: ResourceClaims = {
  status: {
    SigIgn: (v) =>
      BigInt(`0x${v}`) & (1n << 4n) ? "SIGTRAP is ignored (SIG_IGN), which the traps of criu-ts's injected calls would undo" : undefined,
    SigCgt: true,
  },
};

const KSIGACTION = 32; // handler, flags, restorer, mask
const signals = (): number[] => {
  const out: number[] = [];
  for (let s = 1; s <= SIGMAX; s++) if (s !== SIG.KILL && s !== SIG.STOP) out.push(s);
  return out;
};

const DEFAULT: Sigaction = { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n };

/**
 * Only signals that /proc shows as caught or ignored are read from the task (one injected
 * call each); the others have the default action, whose flags matter only for SIGCHLD,
 * which is always read.
 */
export function dumpSigactions(t: Tracee, area: InjectionArea, caughtOrIgnored: bigint): Sigaction[] {
  area.reset();
  const a = area.alloc(KSIGACTION);
  return signals().map((sig) => {
    if (sig !== SIG.CHLD && !((caughtOrIgnored >> BigInt(sig - 1)) & 1n)) return { ...DEFAULT };
    t.syscall('rt_sigaction', sig, 0, a, 8);
    const b = area.read(a, KSIGACTION);
    return { sigaction: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8), restorer: b.readBigUInt64LE(16), mask: b.readBigUInt64LE(24) };
  });
}

const same = (a: Sigaction, b: Sigaction): boolean =>
  a.sigaction === b.sigaction && a.flags === b.flags && a.restorer === b.restorer && a.mask === b.mask;

/**
 * Set the actions that differ from what the task has: every default one for a stub from
 * the helper (posixSpawn resets them), or `inherited`, its parent's, when it was forked
 * from its restored parent.
 */
export function restoreSigactions(t: Tracee, area: InjectionArea, list: Sigaction[], inherited?: Sigaction[]): void {
  const sigs = signals();
  if (list.length !== sigs.length) throw new Error(`expected ${sigs.length} sigactions, image has ${list.length}`);
  area.reset();
  const a = area.alloc(KSIGACTION);
  const b = Buffer.alloc(KSIGACTION);
  list.forEach((sa, i) => {
    if (same(sa, inherited?.[i] ?? DEFAULT)) return;
    b.writeBigUInt64LE(sa.sigaction, 0);
    b.writeBigUInt64LE(sa.flags, 8);
    b.writeBigUInt64LE(sa.restorer, 16);
    b.writeBigUInt64LE(sa.mask, 24);
    t.writeMem(a, b);
    t.syscall('rt_sigaction', sigs[i], a, 0, 8);
  });
}
