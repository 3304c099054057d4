// IPC namespace: its sysctls (ipcns-var-N.img) and SysV objects (sysv.ts). IPC sysctl files
// and SysV calls act on the namespace of the calling thread, so criu-ts's main thread joins
// it to read and to write them. POSIX message queues live in an mqueue mount (mount
// namespaces) and are not saved, as CRIU does not save them either.
import fs from 'node:fs';
import { CLONE, inNamespaces } from '../../kernel/index.ts';
import { IMG, type MessageInput } from '../../images/index.ts';
import type { NsKind } from './types.ts';
import { dumpSysv, restoreSysv } from './sysv.ts';

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
  dumpRefusal: () => undefined,
  dump: ({ pid, id, imgs, log }) => {
    const { e, n } = inNamespaces(pid, CLONE.NEWIPC, () => ({ e: dumpVars(), n: dumpSysv(id, imgs) }));
    log.info(`IPC namespace ${id}: sysctls to ipcns-var-${id}.img, ${n} SysV object(s) to ipcns-{shm,msg,sem}-${id}.img`);
    imgs.one(IMG.IPC_VAR, id, e);
  },
  restoreRefusal: ({ id, imgs }) => {
    imgs.one(IMG.IPC_VAR, id);
    return undefined;
  },
  restore: ({ pid, id, imgs, log }) => {
    const e = imgs.one(IMG.IPC_VAR, id) as Record<string, unknown>;
    inNamespaces(pid, CLONE.NEWIPC, () => {
      // Limits first, then the objects at their ids, then the next ids as they were.
      const sem = e.sem_ctls as number[];
      if (sem.length === 4) writeSysctl('kernel/sem', sem.join(' '));
      const set = (nextIds: boolean) => {
        for (const [name, field] of SYSCTLS) {
          const v = e[field];
          if (v === undefined || name.endsWith('_next_id') !== nextIds || readText(name) === undefined) continue;
          writeSysctl(name, String(v));
        }
      };
      set(false);
      const n = restoreSysv(id, imgs);
      set(true);
      log.info(`IPC namespace ${id}: sysctls and ${n} SysV object(s) restored`);
    });
  },
};
