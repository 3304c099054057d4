// Credentials (creds_entry): ids, capability sets, securebits, groups, no_new_privs.
import fs from 'node:fs';
import { readStatus, type Status } from '../../proc/index.ts';
import { PR } from '../../kernel/index.ts';
import type { Tracee, InjectionArea } from '../../compel/index.ts';
import type { Message } from '../types.ts';
import type { ResourceClaims } from '../claims.ts';

type Creds = Message<'creds_entry'>;

export const credsClaims: ResourceClaims = {
  status: Object.fromEntries(
    ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'].map((k) => [k, true]),
  ),
};

const capWords = (c: bigint): number[] => [Number(c & 0xffffffffn), Number(c >> 32n)];

export function dumpCreds(st: Status, secbits: number): Creds {
  return {
    uid: st.uid[0],
    gid: st.gid[0],
    euid: st.uid[1],
    egid: st.gid[1],
    suid: st.uid[2],
    sgid: st.gid[2],
    fsuid: st.uid[3],
    fsgid: st.gid[3],
    cap_inh: capWords(st.capInh),
    cap_prm: capWords(st.capPrm),
    cap_eff: capWords(st.capEff),
    cap_bnd: capWords(st.capBnd),
    secbits,
    groups: st.groups,
    no_new_privs: st.noNewPrivs ? 1 : 0,
    cap_amb: capWords(st.capAmb),
  };
}

export function readSecbits(t: Tracee): number {
  return Number(t.syscall('prctl', PR.GET_SECUREBITS, 0, 0, 0, 0));
}

const SCALARS = ['uid', 'gid', 'euid', 'egid', 'suid', 'sgid', 'fsuid', 'fsgid', 'secbits', 'no_new_privs'] as const;
const ARRAYS = ['cap_inh', 'cap_prm', 'cap_eff', 'cap_bnd', 'cap_amb', 'groups'] as const;

/** Whether the credentials a thread has now (`cur`) are the dumped ones, so nothing is to be done. */
function same(cur: Creds, want: Creds): boolean {
  return (
    SCALARS.every((k) => (cur[k] ?? 0) === (want[k] ?? 0)) &&
    ARRAYS.every((k) => cur[k].length === want[k].length && cur[k].every((v, i) => v === want[k][i]))
  );
}

const capLastCap = (() => {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  } catch {
    return 63;
  }
})();

/**
 * Switch the (root) stub to the dumped credentials. Order matters: groups and gids need
 * CAP_SETGID, uids drop capabilities unless KEEPCAPS, so capabilities are set last.
 */
export function restoreCreds(t: Tracee, area: InjectionArea, c: Creds, current?: Creds): void {
  // The stub has criu-ts's credentials; a task dumped with the same ones needs nothing.
  if (current && same(current, c)) return;
  const groups = c.groups;
  area.reset();
  const g = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((v, i) => {
    g.writeUInt32LE(v, i * 4);
  });
  t.syscall('setgroups', groups.length, area.put(g));
  t.syscall('setresgid', c.gid, c.egid, c.sgid);
  t.syscall('setfsgid', c.fsgid);
  const root = c.uid === 0 && c.euid === 0 && c.suid === 0;
  if (!root) t.syscall('prctl', PR.SET_SECUREBITS, c.secbits | 0x10 /* KEEP_CAPS */, 0, 0, 0);
  t.syscall('setresuid', c.uid, c.euid, c.suid);
  t.syscall('setfsuid', c.fsuid);
  const bnd = c.cap_bnd;
  const bndMask = BigInt(bnd[0] >>> 0) | (BigInt(bnd[1] >>> 0) << 32n);
  for (let cap = 0; cap <= capLastCap; cap++) {
    if (!((bndMask >> BigInt(cap)) & 1n)) t.syscallRaw('prctl', PR.CAPBSET_DROP, cap, 0, 0, 0);
  }
  // capset(header{version 3, pid 0}, data[2]{effective, permitted, inheritable})
  area.reset();
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(0x20080522, 0);
  const data = Buffer.alloc(24);
  const eff = c.cap_eff,
    prm = c.cap_prm,
    inh = c.cap_inh;
  for (let i = 0; i < 2; i++) {
    data.writeUInt32LE(eff[i] >>> 0, i * 12);
    data.writeUInt32LE(prm[i] >>> 0, i * 12 + 4);
    data.writeUInt32LE(inh[i] >>> 0, i * 12 + 8);
  }
  t.syscall('capset', area.put(hdr), area.put(data));
  restoreAmbient(t, c.cap_amb);
  t.syscallRaw('prctl', PR.SET_SECUREBITS, c.secbits, 0, 0, 0);
  if (c.no_new_privs) t.syscall('prctl', PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

const PR_CAP_AMBIENT_RAISE = 2;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;

/** Ambient capabilities, raised one by one once they are permitted and inheritable (capset above). */
function restoreAmbient(t: Tracee, amb: number[]): void {
  t.syscall('prctl', PR.CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (let cap = 0; cap <= capLastCap; cap++) {
    if (((amb[cap >> 5] ?? 0) >>> (cap & 31)) & 1) t.syscall('prctl', PR.CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
  }
}

/**
 * Every thread's credentials, which the kernel keeps per thread. Every thread was cloned
 * from the stub (`leader`) and has its credentials until now: they are read once, unless
 * the tree is in a user namespace of its own (`ownUserns`), where /proc shows criu-ts other
 * ids than the images' (the namespace's): then every thread sets its own.
 */
export function restoreThreadCreds(
  leader: Tracee,
  area: InjectionArea,
  pid: number,
  threads: Array<{ tracee: Tracee; creds?: Creds }>,
  ownUserns = false,
): void {
  const current = ownUserns ? undefined : dumpCreds(readStatus(pid), readSecbits(leader));
  for (const { tracee, creds } of threads) if (creds) restoreCreds(tracee, area, creds, current);
}
