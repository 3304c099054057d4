// seccomp: each thread's mode (thread_core_entry.seccomp_mode) and its filters, in CRIU's
// seccomp.img: one seccomp_filter per BPF program, a thread's chain written newest first,
// each later (older) entry's `prev` naming the entry written before it, and the thread's
// seccomp_filter naming its oldest, which a restore installs first. Threads whose chains are
// all the same are taken to share them (SECCOMP_FILTER_FLAG_TSYNC): only the leader's chain
// is kept, with TSYNC, as CRIU does, since the kernel cannot tell shared from equal.
import { PR, seccompFilters } from '../../kernel/index.ts';
import { readStatus } from '../../proc/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { ResourceClaims } from '../claims.ts';
import type { Message, MessageInput } from '../types.ts';

export const SECCOMP_MODE = { DISABLED: 0, STRICT: 1, FILTER: 2 } as const;
const SECCOMP_SET_MODE_FILTER = 1;
const FILTER_FLAG_TSYNC = 1;

/** The mode and the filters, of every thread (NoNewPrivs, which filters need, is creds'). */
export const seccompClaims: ResourceClaims = { status: { Seccomp: true, Seccomp_filters: true } };

type ThreadSeccomp = Pick<MessageInput<'thread_core_entry'>, 'seccomp_mode' | 'seccomp_filter'>;

/** The dump's seccomp.img, filled task by task. */
export class SeccompDump {
  private readonly filters: MessageInput<'seccomp_filter'>[] = [];

  /** The thread_core fields of each thread of one task (leader first), by tid. */
  collect(pid: number, tids: readonly number[]): Map<number, ThreadSeccomp> {
    const out = new Map<number, ThreadSeccomp>();
    const modes = tids.map((tid) => readStatus(pid, tid).seccomp);
    const chains = tids.map((tid, i) => (modes[i] === SECCOMP_MODE.FILTER ? seccompFilters(tid) : []));
    const same = (a: (typeof chains)[number], b: (typeof chains)[number]) =>
      a.length === b.length && a.every((f, j) => f.insns.equals(b[j].insns));
    const tsync = tids.length > 1 && modes.every((m) => m === SECCOMP_MODE.FILTER) && chains.every((c) => same(c, chains[0]));
    tids.forEach((tid, i) => {
      if (tsync && i > 0) return; // gets the leader's filters through TSYNC
      if (modes[i] === SECCOMP_MODE.DISABLED) return;
      if (modes[i] === SECCOMP_MODE.STRICT) {
        out.set(tid, { seccomp_mode: SECCOMP_MODE.STRICT });
        return;
      }
      const chain = chains[i];
      for (let j = chain.length - 1; j >= 0; j--) {
        const newest = j === chain.length - 1;
        this.filters.push({
          filter: chain[j].insns,
          flags: chain[j].flags | (tsync ? FILTER_FLAG_TSYNC : 0),
          ...(newest ? {} : { prev: this.filters.length - 1 }),
        });
      }
      out.set(tid, { seccomp_mode: SECCOMP_MODE.FILTER, seccomp_filter: this.filters.length - 1 });
    });
    return out;
  }

  entry(): MessageInput<'seccomp_entry'> {
    return { seccomp_filters: this.filters };
  }
}

/** A thread's filters in the order they are installed (oldest first), from seccomp.img. */
export function seccompChain(image: Message<'seccomp_entry'> | undefined, first: number, tid: number): Message<'seccomp_filter'>[] {
  const all = image?.seccomp_filters ?? [];
  const chain: Message<'seccomp_filter'>[] = [];
  for (let i: number | undefined = first; i !== undefined; i = all[i].prev) {
    if (i >= all.length || chain.length >= all.length) throw new Error(`seccomp.img: filter ${i} of thread ${tid} is not there`);
    if (all[i].filter.length % 8 || !all[i].filter.length)
      throw new Error(`seccomp.img: filter ${i} of thread ${tid} is not a BPF program`);
    chain.push(all[i]);
  }
  return chain;
}

/**
 * The thread's mode back: strict mode, or its filters installed in order. Injected calls
 * after this run unfiltered only because the restore traces with PTRACE_O_SUSPEND_SECCOMP.
 */
export function restoreSeccomp(
  th: Tracee,
  area: InjectionArea,
  mode: number | undefined,
  chain: readonly Message<'seccomp_filter'>[],
): void {
  if (mode === SECCOMP_MODE.STRICT) {
    th.syscall('prctl', PR.SET_SECCOMP, SECCOMP_MODE.STRICT, 0, 0, 0);
    return;
  }
  if (mode !== SECCOMP_MODE.FILTER) return;
  for (const f of chain) {
    area.reset();
    const insns = area.put(f.filter);
    const prog = Buffer.alloc(16);
    prog.writeUInt16LE(f.filter.length / 8, 0);
    prog.writeBigUInt64LE(insns, 8);
    th.syscall('seccomp', SECCOMP_SET_MODE_FILTER, f.flags ?? 0, area.put(prog));
  }
}
