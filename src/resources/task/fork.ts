// Creating a task or a thread at its dumped PID/TID: clone3 with set_tid, run by the task
// that is to be its parent, so that the child is born where it was (its parent, and what it
// shares with it, come from who clones it and with which flags).
import { kill, SysError, CLONE, cloneArgs, CLONE_ARGS_SIZE } from '../../kernel/index.ts';
import { Tracee, RemoteSysError, INJECTION_SIGMASK, type InjectionArea } from '../../compel/index.ts';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { Message } from '../types.ts';

/**
 * Blocks every signal in a new task or thread until its own mask goes in, last; all but
 * SIGTRAP, which ends injected calls (INJECTION_SIGMASK).
 */
export const ALL_SIGNALS = INJECTION_SIGMASK;

/** A thread of a restored task shares all a thread shares; it gets its TLS and clear_child_tid at birth. */
export const THREAD_FLAGS =
  CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM | CLONE.SETTLS | CLONE.CHILD_CLEARTID;

export interface CloneExtra {
  childTid?: bigint;
  tls?: bigint;
}

/**
 * clone3 with set_tid = [pid] inside `parent`: `pid` is the child's pid in its own PID
 * namespace (with CLONE_NEWPID, the new one; the kernel picks the outer ones). Returns the
 * new, stopped, traced child, known by its pid in criu-ts's namespace (the fork event's).
 */
export function cloneAt(
  parent: Tracee,
  area: InjectionArea,
  pid: number,
  flags: number,
  exitSignal: number,
  extra: CloneExtra = {},
): Tracee {
  // clone_args and, right after it, the set_tid array: one write into the tracee.
  area.reset();
  const at = area.alloc(CLONE_ARGS_SIZE + 8);
  area.tracee.writeMem(at, cloneArgs({ flags, exitSignal, childTid: extra.childTid, tls: extra.tls, setTid: pid }, at));
  let child: bigint;
  parent.lastEventMsg = 0;
  try {
    child = parent.syscall('clone3', at, CLONE_ARGS_SIZE);
  } catch (e) {
    if (e instanceof RemoteSysError && e.code === 'EEXIST') throw new CriuError(`pid ${pid} is already in use by another process`);
    throw e;
  }
  // clone3 returns the pid in the caller's namespace: the child's own unless it starts a new one.
  const own = flags & CLONE.NEWPID ? 1 : Number(child);
  if (own !== pid) throw new CriuError(`clone3 gave pid ${child}, not ${pid}`);
  const host = parent.lastEventMsg || Number(child);
  const stub = Tracee.adopt(host, pid);
  // Its fd table is a copy of the parent's, or the parent's own: the pidfd of criu-ts is in it.
  stub.criuPidfd = parent.criuPidfd;
  if (parent.courier) stub.courier = parent.courier;
  stub.waitStop();
  return stub;
}

export function pidInUse(pid: number): boolean {
  try {
    kill(pid, 0);
    return true;
  } catch (e) {
    return !(e instanceof SysError && e.code === 'ESRCH');
  }
}

type Ids = Message<'task_kobj_ids_entry'>;

type KobjField = 'vm_id' | 'files_id' | 'fs_id' | 'sighand_id';

/**
 * An mm, fd table, fs_struct or signal-handler table shared with the parent (clone with
 * CLONE_VM, CLONE_FILES, CLONE_FS, CLONE_SIGHAND) is restored by cloning the child with the
 * same flags (sharingFlags), also when the parent shares it in turn with its own parent;
 * sharing with a task the parent does not share it with is refused at dump.
 * `ids.sharedWith`: the task each shared object ("vm", "files"...) was first seen in.
 */
export function checkSharing(
  pid: number,
  ppid: number,
  ids: Record<KobjField, number> & { sharedWith: Map<string, number> },
  parentIds: Record<KobjField, number> | undefined,
): void {
  for (const [what, other] of ids.sharedWith) {
    const field = `${what}_id` as KobjField;
    if (other === ppid || (parentIds !== undefined && parentIds[field] === ids[field])) continue;
    throw new NotSupportedError(`task ${pid} shares its ${what} with task ${other} (CLONE_${what.toUpperCase()})`);
  }
}

/**
 * The clone flags that give a child what it shared with its parent: an mm, fd table,
 * fs_struct or signal-handler table with the same id (CLONE_SIGHAND needs CLONE_VM).
 */
export function sharingFlags(ids: Ids | undefined, parentIds: Ids | undefined): { flags: number; sharesVm: boolean } {
  const same = (k: KobjField) => ids !== undefined && parentIds !== undefined && parentIds[k] === ids[k];
  const sharesVm = same('vm_id');
  const flags =
    (same('files_id') ? CLONE.FILES : 0) |
    (same('fs_id') ? CLONE.FS : 0) |
    (sharesVm ? CLONE.VM : 0) |
    (sharesVm && same('sighand_id') ? CLONE.SIGHAND : 0);
  return { flags, sharesVm };
}
