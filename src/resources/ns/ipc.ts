// IPC namespace: its sysctls (ipcns-var-N.img); SysV objects are not saved yet, and a
// namespace that holds any is refused. IPC sysctl files bind to the namespace of the thread
// that opens them, so criu-ts's main thread joins it to read and to write them.
import fs from 'node:fs';
import { CLONE, inNamespaces } from '../../kernel/index.ts';
import { IMG, type MessageInput } from '../../images/index.ts';
import type { NsKind } from './types.ts';

type Var = MessageInput<'ipc_var_entry'>;
type Scalar = Exclude<keyof Var, 'sem_ctls'>;

/** Each sysctl and its field, in CRIU's order; `opt`: written only when dumped. */
const SYSCTLS: Array<[string, Scalar, 'u32' | 'u64', boolean?]> = [
  ['kernel/msgmax', 'msg_ctlmax', 'u32'],
  ['kernel/msgmnb', 'msg_ctlmnb', 'u32'],
  ['kernel/auto_msgmni', 'auto_msgmni', 'u32'],
  ['kernel/msgmni', 'msg_ctlmni', 'u32'],
  ['kernel/shmmax', 'shm_ctlmax', 'u64'],
  ['kernel/shmall', 'shm_ctlall', 'u64'],
  ['kernel/shmmni', 'shm_ctlmni', 'u32'],
  ['kernel/shm_rmid_forced', 'shm_rmid_forced', 'u32'],
  ['fs/mqueue/queues_max', 'mq_queues_max', 'u32'],
  ['fs/mqueue/msg_max', 'mq_msg_max', 'u32'],
  ['fs/mqueue/msgsize_max', 'mq_msgsize_max', 'u32'],
  ['fs/mqueue/msg_default', 'mq_msg_default', 'u32', true],
  ['fs/mqueue/msgsize_default', 'mq_msgsize_default', 'u32', true],
  ['kernel/msg_next_id', 'msg_next_id', 'u32', true],
  ['kernel/sem_next_id', 'sem_next_id', 'u32', true],
  ['kernel/shm_next_id', 'shm_next_id', 'u32', true],
];

const path = (name: string) => `/proc/sys/${name}`;
const readText = (name: string): string | undefined => {
  try {
    return fs.readFileSync(path(name), 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** Rows of /proc/sysvipc/KIND (after its header line) as the reader's IPC namespace has them. */
function sysvObjects(kind: 'shm' | 'msg' | 'sem'): number {
  return fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').split('\n').slice(1).filter(Boolean).length;
}

function dumpVars(): Var {
  const e: Record<string, unknown> = { sem_ctls: (readText('kernel/sem') ?? '0 0 0 0').split(/\s+/).map(Number) };
  for (const [name, field, type, opt] of SYSCTLS) {
    const t = readText(name);
    if (t === undefined) {
      if (opt) continue;
      e[field] = type === 'u64' ? 0n : 0;
      continue;
    }
    // The *_next_id sysctls start at -1 and cannot be written back so.
    if (field.endsWith('_next_id') && t === '-1') continue;
    e[field] = type === 'u64' ? BigInt(t) : Number(t) >>> 0;
  }
  return e as Var;
}

function writeSysctl(name: string, value: string): void {
  try {
    fs.writeFileSync(path(name), value);
  } catch (err) {
    // Some are read-only without the right capability in the namespace's owner (CRIU skips EACCES).
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
  }
}

export const ipcNs: NsKind = {
  name: 'ipc',
  cflag: CLONE.NEWIPC,
  dumpRefusal: (root) =>
    inNamespaces(root, CLONE.NEWIPC, () => {
      const held = (['shm', 'msg', 'sem'] as const).filter((k) => sysvObjects(k) > 0);
      return held.length ? `its IPC namespace holds SysV ${held.join(', ')} objects, which criu-ts does not save yet` : undefined;
    }),
  dump: ({ pid, id, imgs, log }) => {
    const e = inNamespaces(pid, CLONE.NEWIPC, dumpVars);
    log.info(`IPC namespace ${id}: sysctls to ipcns-var-${id}.img`);
    imgs.one(IMG.IPC_VAR, id, e);
  },
  restoreRefusal: ({ id, imgs }) => {
    for (const k of [IMG.IPCNS_SHM, IMG.IPCNS_MSG, IMG.IPCNS_SEM] as const)
      if (imgs.all(k, id).length) return `the dump holds SysV IPC objects (ipcns-*-${id}.img), which criu-ts does not restore yet`;
    imgs.one(IMG.IPC_VAR, id);
    return undefined;
  },
  restore: ({ pid, id, imgs }) => {
    const e = imgs.one(IMG.IPC_VAR, id) as Record<string, unknown>;
    inNamespaces(pid, CLONE.NEWIPC, () => {
      const sem = e.sem_ctls as number[];
      if (sem.length === 4) writeSysctl('kernel/sem', sem.join(' '));
      for (const [name, field] of SYSCTLS) {
        const v = e[field];
        if (v === undefined || readText(name) === undefined) continue;
        writeSysctl(name, String(v));
      }
    });
  },
};
