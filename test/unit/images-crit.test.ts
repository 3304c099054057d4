// Cross-check with CRIU's own decoder: Debian's crit (3.17, package criu) must read what we write.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageDir, PE_LAZY, PE_PRESENT, PagemapWriter } from '../../src/images/index.ts';
import type { MessageInput } from '../../src/images/index.ts';

const critFound = spawnSync('crit', ['--help'], { stdio: 'ignore' }).status === 0;
const skip = critFound ? false : 'crit not installed (Debian package "criu" provides it)';

let dir = '';

// Integers beyond 2^53 must not lose precision when parsing crit's JSON.
type Json = null | boolean | number | bigint | string | Json[] | { [k: string]: Json };
function parseJson(text: string): Json {
  const reviver = (_k: string, v: unknown, ctx?: { source?: string }) =>
    typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source && /^-?\d+$/.test(ctx.source) ? BigInt(ctx.source) : v;
  return JSON.parse(text, reviver as (k: string, v: unknown) => unknown) as Json;
}

function crit(file: string, pretty = false): { magic: string; entries: { [k: string]: Json }[] } {
  const args = ['decode', '-i', path.join(dir, file)];
  if (pretty) args.push('--pretty');
  return parseJson(execFileSync('crit', args, { encoding: 'utf8' })) as never;
}

const PID = 4242;
const TID2 = 4243;
const CHILD = 4250;

const x86Regs = (ip: bigint): MessageInput<'user_x86_regs_entry'> => ({
  r15: 15n,
  r14: 14n,
  r13: 13n,
  r12: 12n,
  bp: 0x7ffc00001000n,
  bx: 6n,
  r11: 0x246n,
  r10: 10n,
  r9: 9n,
  r8: 8n,
  ax: 0xfffffffffffffdfcn,
  cx: 0x7f0000001234n,
  dx: 0n,
  si: 0n,
  di: 0n,
  orig_ax: 230n,
  ip,
  cs: 0x33n,
  flags: 0x246n,
  sp: 0x7ffc00000ff0n,
  ss: 0x2bn,
  fs_base: 0x7f0000002740n,
  gs_base: 0n,
  ds: 0n,
  es: 0n,
  fs: 0n,
  gs: 0n,
  mode: 'NATIVE',
});

function threadInfo(ip: bigint): MessageInput<'thread_info_x86'> {
  return {
    clear_tid_addr: 0x7f0000002a10n,
    gpregs: x86Regs(ip),
    fpregs: {
      cwd: 0x37f,
      swd: 0,
      twd: 0,
      fop: 0,
      rip: 0n,
      rdp: 0n,
      mxcsr: 0x1f80,
      mxcsr_mask: 0xffff,
      st_space: Array.from({ length: 32 }, (_, i) => i),
      xmm_space: Array.from({ length: 64 }, (_, i) => 0xffffffff - i),
      xsave: {
        xstate_bv: 0x2a2n,
        ymmh_space: Array(64).fill(0),
        opmask_reg: Array(8).fill(0n),
        zmm_upper: Array(64).fill(0n),
        hi16_zmm: Array(128).fill(0n),
        pkru: [0x55555554, 0],
      },
    },
    tls: [12, 13, 14].map((n) => ({
      entry_number: n,
      base_addr: 0,
      limit: 0,
      seg_32bit: false,
      contents_h: false,
      contents_l: false,
      limit_in_pages: false,
      usable: false,
    })),
  };
}

const itimer = { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n };
const creds: MessageInput<'creds_entry'> = {
  uid: 1000,
  gid: 1000,
  euid: 1000,
  egid: 1000,
  suid: 1000,
  sgid: 1000,
  fsuid: 1000,
  fsgid: 1000,
  cap_inh: [0, 0],
  cap_prm: [0, 0],
  cap_eff: [0, 0],
  cap_bnd: [0xffffffff, 0x1ff],
  secbits: 0,
  groups: [27, 1000],
};
const fown = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };

function leaderCore(comm: string, ip: bigint): MessageInput<'core_entry'> {
  return {
    mtype: 'X86_64',
    thread_info: threadInfo(ip),
    tc: {
      task_state: 1,
      exit_code: 0,
      personality: 0,
      flags: 0x400000,
      blk_sigset: 0x800n,
      comm,
      timers: { real: { isec: 7n, iusec: 0n, vsec: 298n, vusec: 916171n }, virt: itimer, prof: itimer, posix: [] },
      rlimits: {
        rlimits: Array.from({ length: 16 }, (_, i) => ({ cur: i === 3 ? 8388608n : 0xffffffffffffffffn, max: 0xffffffffffffffffn })),
      },
      signals_s: { signals: [{ siginfo: Buffer.alloc(128, 0x11) }] },
      loginuid: 4294967295,
      oom_score_adj: 0,
      sigactions: Array.from({ length: 62 }, (_, i) => ({
        sigaction: i === 13 ? 1n : 0n,
        flags: 0x4000000n,
        restorer: 0x7f0000003000n,
        mask: 0n,
      })),
      child_subreaper: false,
    },
    thread_core: {
      futex_rla: 0x7f0000002a20n,
      futex_rla_len: 24,
      sched_nice: 0,
      sched_policy: 0,
      sas: { ss_sp: 0n, ss_size: 0n, ss_flags: 2 },
      signals_p: {},
      creds,
      comm,
      rseq_entry: { rseq_abi_pointer: 0x7f0000002fe0n, rseq_abi_size: 32, signature: 0x53053053 },
      cg_set: 1,
    },
  };
}

function writeImages(): void {
  const d = new ImageDir(dir);
  let w = d.writer('INVENTORY');
  w.write('inventory_entry', {
    img_version: 2,
    fdinfo_per_id: true,
    ns_per_id: true,
    root_cg_set: 1,
    lsmtype: 'NO_LSM',
    root_ids: { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1, pid_ns_id: 2, net_ns_id: 3 },
    network_lock_method: 0,
    plugins_entry: {},
    dump_criu_run_id: 'run-id',
  });
  w.close();

  w = d.writer('PSTREE');
  w.write('pstree_entry', { pid: PID, ppid: 0, pgid: PID, sid: 1, threads: [PID, TID2] });
  w.write('pstree_entry', { pid: CHILD, ppid: PID, pgid: PID, sid: 1, threads: [CHILD] });
  w.close();

  w = d.writer('CORE', PID);
  w.write('core_entry', leaderCore('sleeper', 0x401000n));
  w.close();
  w = d.writer('CORE', TID2);
  w.write('core_entry', {
    mtype: 'X86_64',
    thread_info: threadInfo(0x401100n),
    thread_core: { futex_rla: 0n, futex_rla_len: 24, blk_sigset: 0xfffffffe7ffbfeffn, creds, comm: 'worker' },
  });
  w.close();
  w = d.writer('CORE', CHILD);
  w.write('core_entry', leaderCore('child', 0x401200n));
  w.close();

  for (const pid of [PID, CHILD]) {
    w = d.writer('IDS', pid);
    w.write('task_kobj_ids_entry', { vm_id: pid, files_id: pid === PID ? 1 : 2, fs_id: 1, sighand_id: pid, pid_ns_id: 2 });
    w.close();
    w = d.writer('FS', pid);
    w.write('fs_entry', { cwd_id: 3, root_id: 4, umask: 0o22 });
    w.close();
    w = d.writer('MM', pid);
    w.write('mm_entry', {
      mm_start_code: 0x400000n,
      mm_end_code: 0x401000n,
      mm_start_data: 0x600000n,
      mm_end_data: 0x601000n,
      mm_start_stack: 0x7ffc00000000n,
      mm_start_brk: 0x1000000n,
      mm_brk: 0x1021000n,
      mm_arg_start: 0x7ffc00000100n,
      mm_arg_end: 0x7ffc00000110n,
      mm_env_start: 0x7ffc00000110n,
      mm_env_end: 0x7ffc00000200n,
      exe_file_id: 5,
      mm_saved_auxv: [33n, 0x7ffc00100000n, 0n, 0n],
      vmas: [
        { start: 0x400000n, end: 0x401000n, pgoff: 0n, shmid: 5n, prot: 5, flags: 2, status: 0x41, fd: -1n, fdflags: 0 },
        { start: 0x1000000n, end: 0x1021000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 0x221, fd: -1n },
        {
          start: 0x7ffc00000000n,
          end: 0x7ffc00021000n,
          pgoff: 0n,
          shmid: 0n,
          prot: 3,
          flags: 0x122,
          status: 0x201,
          fd: -1n,
          madv: 0x8000n,
        },
        { start: 0xffffffffff600000n, end: 0xffffffffff601000n, pgoff: 0n, shmid: 0n, prot: 4, flags: 0x22, status: 0x204, fd: -1n },
      ],
      dumpable: 1,
      thp_disabled: false,
    });
    w.close();
    const pm = new PagemapWriter(dir, pid, pid === PID ? 1 : 2);
    pm.addPages(0x1000000n, Buffer.alloc(2 * 4096, 0xaa), PE_PRESENT | PE_LAZY);
    pm.addPages(0x7ffc00020000n, Buffer.alloc(4096, 0xbb), PE_PRESENT | PE_LAZY);
    pm.close();
  }

  w = d.writer('FILES');
  const reg = (id: number, name: string, flags: number) => ({
    type: 'REG' as const,
    id,
    reg: { id, flags, pos: 0n, fown, name, size: 1234n, mode: 0o100644 },
  });
  w.write('file_entry', reg(3, '/home/u', 0o200000));
  w.write('file_entry', reg(4, '/', 0o200000));
  w.write('file_entry', reg(5, '/usr/bin/sleeper', 0o100000));
  w.write('file_entry', reg(6, '/tmp/log', 0o102001));
  w.write('file_entry', { type: 'PIPE', id: 7, pipe: { id: 7, pipe_id: 141484, flags: 0, fown } });
  w.write('file_entry', { type: 'PIPE', id: 8, pipe: { id: 8, pipe_id: 141484, flags: 1, fown } });
  w.write('file_entry', {
    type: 'UNIXSK',
    id: 9,
    usk: {
      id: 9,
      ino: 5555,
      type: 1,
      state: 1,
      flags: 2,
      uflags: 0,
      backlog: 0,
      peer: 5556,
      fown,
      opts: { so_sndbuf: 212992, so_rcvbuf: 212992, so_snd_tmo_sec: 0n, so_snd_tmo_usec: 0n, so_rcv_tmo_sec: 0n, so_rcv_tmo_usec: 0n },
      name: Buffer.from('\0abstract'),
      ns_id: 2,
    },
  });
  w.write('file_entry', { type: 'EVENTFD', id: 10, efd: { id: 10, flags: 2050, fown, counter: 42n } });
  w.close();

  w = d.writer('FDINFO', 1);
  w.write('fdinfo_entry', { id: 6, flags: 0, type: 'REG', fd: 1 });
  w.write('fdinfo_entry', { id: 7, flags: 1, type: 'PIPE', fd: 3 });
  w.write('fdinfo_entry', { id: 8, flags: 1, type: 'PIPE', fd: 4 });
  w.write('fdinfo_entry', { id: 9, flags: 0, type: 'UNIXSK', fd: 5 });
  w.write('fdinfo_entry', { id: 10, flags: 0, type: 'EVENTFD', fd: 6 });
  w.close();
  w = d.writer('FDINFO', 2);
  w.write('fdinfo_entry', { id: 6, flags: 0, type: 'REG', fd: 1 });
  w.close();

  w = d.writer('PIPES_DATA');
  w.write('pipe_data_entry', { pipe_id: 141484, bytes: 10, size: 65536 });
  w.writeRaw(Buffer.from('hello-pipe'));
  w.close();
  w = d.writer('TCP_STREAM', 0x1a2b);
  w.write('tcp_stream_entry', {
    inq_len: 2,
    inq_seq: 100,
    outq_len: 3,
    outq_seq: 200,
    opt_mask: 0x7,
    snd_wscale: 7,
    mss_clamp: 1460,
    timestamp: 5,
  });
  w.writeRaw(Buffer.from('hiyou'));
  w.close();
  w = d.writer('SECCOMP');
  w.write('seccomp_entry', {});
  w.close();
  w = d.writer('TIMENS', 0);
  w.write('timens_entry', { monotonic: { tv_sec: 1000n, tv_nsec: 5n }, boottime: { tv_sec: 1002n, tv_nsec: 6n } });
  w.close();
}

describe('crit reads our images', { skip }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'images-crit-'));
    writeImages();
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('inventory', () => {
    const img = crit('inventory.img');
    assert.equal(img.magic, 'INVENTORY');
    assert.equal(img.entries.length, 1);
    const e = img.entries[0];
    assert.equal(e.img_version, 2);
    assert.equal(e.fdinfo_per_id, true);
    assert.equal(e.ns_per_id, true);
    assert.equal(e.lsmtype, 'NO_LSM');
    assert.deepEqual(e.root_ids, { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1, pid_ns_id: 2, net_ns_id: 3 });
  });

  it('pstree', () => {
    const img = crit('pstree.img');
    assert.equal(img.magic, 'PSTREE');
    assert.deepEqual(img.entries, [
      { pid: PID, ppid: 0, pgid: PID, sid: 1, threads: [PID, TID2] },
      { pid: CHILD, ppid: PID, pgid: PID, sid: 1, threads: [CHILD] },
    ]);
  });

  it('leader core with x86 thread info', () => {
    const img = crit(`core-${PID}.img`);
    assert.equal(img.magic, 'CORE');
    const c = img.entries[0] as { [k: string]: never };
    assert.equal(c.mtype, 'X86_64');
    const ti = c.thread_info as { [k: string]: never };
    const gp = ti.gpregs as { [k: string]: Json };
    assert.equal(gp.ip, 0x401000);
    assert.equal(gp.ax, 0xfffffffffffffdfcn);
    assert.equal(gp.fs_base, 0x7f0000002740);
    assert.equal(gp.mode, 'NATIVE');
    const fp = ti.fpregs as { [k: string]: Json[] | Json };
    assert.equal(fp.cwd, 0x37f);
    assert.equal(fp.mxcsr, 0x1f80);
    assert.deepEqual(
      fp.st_space,
      Array.from({ length: 32 }, (_, i) => i),
    );
    assert.equal((fp.xmm_space as Json[])[0], 0xffffffff);
    assert.equal((fp.xsave as { xstate_bv: Json }).xstate_bv, 0x2a2);
    assert.equal((ti.tls as Json[]).length, 3);
    assert.deepEqual((ti.tls as { [k: string]: Json }[])[0], {
      entry_number: 12,
      base_addr: 0,
      limit: 0,
      seg_32bit: false,
      contents_h: false,
      contents_l: false,
      read_exec_only: true,
      limit_in_pages: false,
      seg_not_present: true,
      usable: false,
    });
    const tc = c.tc as { [k: string]: Json };
    assert.equal(tc.comm, 'sleeper');
    assert.equal(tc.blk_sigset, 0x800);
    assert.equal((tc.sigactions as Json[]).length, 62);
    assert.equal((tc.rlimits as { rlimits: { cur: Json }[] }).rlimits[0].cur, 0xffffffffffffffffn);
    assert.equal((tc.timers as { real: { vusec: Json } }).real.vusec, 916171);
    const sig = (tc.signals_s as { signals: { siginfo: string }[] }).signals[0].siginfo;
    assert.deepEqual(Buffer.from(sig, 'base64'), Buffer.alloc(128, 0x11));
    const th = c.thread_core as { [k: string]: Json };
    assert.equal(th.futex_rla_len, 24);
    assert.deepEqual((th.creds as { cap_bnd: Json }).cap_bnd, [0xffffffff, 0x1ff]);
    assert.deepEqual((th.rseq_entry as { signature: Json }).signature, 0x53053053);
    const pretty = crit(`core-${PID}.img`, true).entries[0] as { thread_info: { gpregs: { ip: Json }; clear_tid_addr: Json } };
    assert.equal(pretty.thread_info.gpregs.ip, '0x401000');
    assert.equal(pretty.thread_info.clear_tid_addr, '0x7f0000002a10');
  });

  it('non-leader thread core', () => {
    const c = crit(`core-${TID2}.img`).entries[0] as { [k: string]: { [k: string]: Json } };
    assert.equal(c.tc, undefined);
    assert.equal(c.thread_core.blk_sigset, 0xfffffffe7ffbfeffn);
    assert.equal(c.thread_core.comm, 'worker');
  });

  it('mm, pagemap', () => {
    const mm = crit(`mm-${PID}.img`).entries[0] as { [k: string]: Json };
    assert.equal(mm.exe_file_id, 5);
    assert.equal(mm.mm_brk, 0x1021000);
    const vmas = mm.vmas as { [k: string]: Json }[];
    assert.equal(vmas.length, 4);
    assert.equal(vmas[3].start, 0xffffffffff600000n);
    assert.equal(vmas[0].fd, -1);
    const pretty = crit(`mm-${PID}.img`, true).entries[0] as { vmas: { start: Json; prot: Json; status: Json }[] };
    assert.equal(pretty.vmas[3].start, '0xffffffffff600000');
    assert.equal(pretty.vmas[0].prot, 'PROT_READ | PROT_EXEC');

    const pm = crit(`pagemap-${PID}.img`, true);
    assert.equal(pm.magic, 'PAGEMAP');
    assert.deepEqual(pm.entries[0], { pages_id: 1 });
    // crit 3.17 (Debian 12) predates nr_pages (field 5): it shows field 2, now compat_nr_pages
    // = 0, as nr_pages. Newer crit (Debian sid, in the arm64 lab) knows both fields.
    const old = (pm.entries[1] as { compat_nr_pages?: number }).compat_nr_pages === undefined;
    assert.deepEqual(
      pm.entries.slice(1),
      old
        ? [
            { vaddr: '0x1000000', nr_pages: 0, flags: 'PE_LAZY | PE_PRESENT' },
            { vaddr: '0x7ffc00020000', nr_pages: 0, flags: 'PE_LAZY | PE_PRESENT' },
          ]
        : [
            { vaddr: '0x1000000', compat_nr_pages: 0, nr_pages: 2, flags: 'PE_LAZY | PE_PRESENT' },
            { vaddr: '0x7ffc00020000', compat_nr_pages: 0, nr_pages: 1, flags: 'PE_LAZY | PE_PRESENT' },
          ],
    );
  });

  it('files, fdinfo, ids, fs', () => {
    const files = crit('files.img').entries as { [k: string]: { [k: string]: Json } & Json }[];
    assert.equal(files.length, 8);
    assert.equal(files[2].type, 'REG');
    assert.equal(files[2].reg.name, '/usr/bin/sleeper');
    assert.equal(files[4].pipe.pipe_id, 141484);
    // conv=unix_name: crit shows socket names quoted-printable
    assert.equal(files[6].usk.name, '=00abstract');
    assert.equal(files[7].efd.counter, 42);
    const fdinfo = crit('fdinfo-1.img').entries;
    assert.deepEqual(
      fdinfo.map((e) => [e.fd, e.type, e.id]),
      [
        [1, 'REG', 6],
        [3, 'PIPE', 7],
        [4, 'PIPE', 8],
        [5, 'UNIXSK', 9],
        [6, 'EVENTFD', 10],
      ],
    );
    assert.equal(crit(`ids-${PID}.img`).entries[0].files_id, 1);
    assert.deepEqual(crit(`fs-${PID}.img`).entries[0], { cwd_id: 3, root_id: 4, umask: 18 });
  });

  it('extra payloads, seccomp, timens', () => {
    const pd = crit('pipes-data.img').entries[0];
    assert.equal(pd.pipe_id, 141484);
    assert.equal(Buffer.from(pd.extra as string, 'base64').toString(), 'hello-pipe');
    const tcp = crit('tcp-stream-1a2b.img').entries[0] as { extra: { inq: string; outq: string } } & { [k: string]: Json };
    assert.equal(Buffer.from(tcp.extra.inq, 'base64').toString(), 'hi');
    assert.equal(Buffer.from(tcp.extra.outq, 'base64').toString(), 'you');
    assert.deepEqual(crit('seccomp.img').entries, [{}]);
    assert.deepEqual(crit('timens-0.img').entries[0], { monotonic: { tv_sec: 1000, tv_nsec: 5 }, boottime: { tv_sec: 1002, tv_nsec: 6 } });
  });

  it('crit x walks the image set (ps, fds, mems)', () => {
    const ps = execFileSync('crit', ['x', dir, 'ps'], { encoding: 'utf8' });
    assert.match(ps, new RegExp(`${PID}\\s+${PID}\\s+1\\s+sleeper`));
    assert.match(ps, new RegExp(`${CHILD}\\s+${PID}\\s+1\\s+child`));
    const fds = execFileSync('crit', ['x', dir, 'fds'], { encoding: 'utf8' });
    assert.match(fds, /1: \/tmp\/log/);
    assert.match(fds, /3: pipe\[141484\]/);
    assert.match(fds, /5: unix\[5555 \(5556\)/);
    assert.match(fds, /cwd: \/home\/u/);
    const mems = execFileSync('crit', ['x', dir, 'mems'], { encoding: 'utf8' });
    assert.match(mems, /exe\s+\/usr\/bin\/sleeper/);
    assert.match(mems, /\/usr\/bin\/sleeper/);
  });
});
