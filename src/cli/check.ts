// `criu-ts check`: which kernel features criu-ts relies on, probed for real. `--feature NAME`
// takes every name CRIU 4.2's `criu check --feature` knows and answers for this kernel and
// for criu-ts together: a feature that criu-ts does not use is "not supported" here even when
// the kernel has it, since what the caller wants to know (ZDTM, to pick its tests) is
// whether a dump or restore relying on it can work.
import fs from 'node:fs';
import {
  ptrace,
  PTRACE,
  pidfdOpen,
  pidfdGetfd,
  close,
  memfdCreate,
  MFD,
  kcmp,
  KCMP,
  getpid,
  processVmReadv,
  zeroPagePfn,
  spawnTethered,
  endTethered,
  memTrackWorks,
  getRseqConfig,
  ioctl,
  PTRACE_O,
  timerfdCreate,
  TFD_IOC_SET_TICKS,
  SysError,
  prctl,
  PR,
  PR_SET_MM_MAP_SIZE,
  addressOf,
  sock,
  mmapPrivateAnon,
  madvise,
  munmap,
  tunWorks,
} from '../kernel/index.ts';
import { Tracee } from '../compel/index.ts';
import type { Logger } from '../resources/types.ts';
import { hasRawDiag } from '../resources/net/diag.ts';
import { lockAvailable } from '../resources/net/netlock.ts';
import { newIfindexWorks } from '../resources/ns/rtnl.ts';
import { hasTool } from '../resources/ns/nstool.ts';

const inPath = (cmd: string): boolean =>
  (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => {
    try {
      fs.accessSync(`${d}/${cmd}`, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });

/** A feature: probed when criu-ts uses it; without a probe, `what` says what it would serve. */
export interface Feature {
  name: string;
  what: string;
  required?: boolean;
  probe?: () => boolean;
}

function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8'));
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

function withSeizedHelper<T>(fn: (t: Tracee) => T): T {
  const child = spawnTethered();
  try {
    return fn(Tracee.seize(child.pid, PTRACE_O.TRACESYSGOOD));
  } finally {
    endTethered(child);
  }
}

const ok = (fn: () => unknown): boolean => {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
};

/** Does this kernel have the option on a datagram socket of the family? */
const sockoptWorks = (family: number, level: number, opt: number): boolean =>
  ok(() => {
    const fd = sock.socket(family, sock.SOCK.DGRAM | sock.SOCK.CLOEXEC, 0);
    try {
      sock.getsockoptInt(fd, level, opt);
    } finally {
      close(fd);
    }
  });

/** The timerfd ticks ioctl, which puts a timerfd's expirations back: with a null argument it fails with EFAULT where it exists. */
function probeTimerfd(): boolean {
  const fd = timerfdCreate(1 /* CLOCK_MONOTONIC */, 0);
  try {
    ioctl(fd, TFD_IOC_SET_TICKS, 0);
    return true;
  } catch (e) {
    return e instanceof SysError && e.code === 'EFAULT';
  } finally {
    close(fd);
  }
}

/** A file's mount id in fdinfo: what ties a file to a mount of a restored namespace. */
function probeMntId(): boolean {
  const fd = fs.openSync('/', 'r');
  try {
    return /^mnt_id:/m.test(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/** TCP repair mode on a loopback connection in FIN_WAIT (its end was shut down for writing). */
function probeHalfClosed(): boolean {
  const fds: number[] = [];
  try {
    const l = sock.socket(sock.AF.INET, sock.SOCK.STREAM | sock.SOCK.CLOEXEC, 0);
    fds.push(l);
    const any = Buffer.alloc(16);
    any.writeUInt16LE(sock.AF.INET, 0);
    any.set([127, 0, 0, 1], 4);
    sock.bind(l, any);
    sock.listen(l, 1);
    const c = sock.socket(sock.AF.INET, sock.SOCK.STREAM | sock.SOCK.CLOEXEC, 0);
    fds.push(c);
    sock.connect(c, sock.getsockname(l));
    sock.shutdown(c, sock.SHUT.WR);
    sock.setsockoptInt(c, sock.SOL.TCP, sock.TCP.REPAIR, 1);
    sock.setsockoptInt(c, sock.SOL.TCP, sock.TCP.REPAIR, -1);
    return true;
  } catch {
    return false;
  } finally {
    for (const fd of fds) close(fd);
  }
}

const pidfds = (): boolean =>
  ok(() => {
    const p = pidfdOpen(getpid());
    try {
      close(pidfdGetfd(p, 0));
    } finally {
      close(p);
    }
  });

/** criu-ts's own requirements (names of its own), then every name of CRIU 4.2's `check --feature`. */
export const FEATURES: Feature[] = [
  { name: 'ptrace_seize', what: 'PTRACE_SEIZE and PTRACE_INTERRUPT', required: true, probe: () => ok(() => withSeizedHelper(() => 0)) },
  {
    name: 'get_rseq_conf',
    what: 'PTRACE_GET_RSEQ_CONFIGURATION',
    required: true,
    probe: () => ok(() => withSeizedHelper((t) => getRseqConfig(t.tid))),
  },
  { name: 'clone3_set_tid', what: 'clone3 with set_tid (tasks at their old PIDs)', required: true, probe: () => kernelAtLeast(5, 5) },
  { name: 'pidfd_getfd', what: 'pidfd_open and pidfd_getfd', required: true, probe: pidfds },
  {
    name: 'kcmp',
    what: 'kcmp(KCMP_FILE) for shared files',
    required: true,
    probe: () => ok(() => kcmp(getpid(), getpid(), KCMP.FILE, 0, 0)),
  },
  {
    name: 'process_vm',
    what: 'process_vm_readv/writev',
    required: true,
    probe: () => ok(() => processVmReadv(getpid(), Buffer.alloc(8), [{ addr: 0n, len: 0 }])),
  },
  {
    name: 'mm_map',
    what: 'prctl(PR_SET_MM_MAP) (CONFIG_CHECKPOINT_RESTORE)',
    required: true,
    probe: () =>
      ok(() => {
        const b = Buffer.alloc(4);
        prctl(PR.SET_MM, PR_SET_MM_MAP_SIZE, addressOf(b), 0, 0);
      }),
  },
  {
    name: 'pagemap_pfn',
    what: 'physical frame numbers in /proc/PID/pagemap (zero-page detection)',
    probe: () =>
      ok(() => {
        if (zeroPagePfn() <= 0) throw new Error('no pfn');
      }),
  },
  { name: 'timerfd', what: 'timerfd expirations put back (TFD_IOC_SET_TICKS)', probe: probeTimerfd },
  {
    name: 'seccomp_suspend',
    what: 'tasks under seccomp traced with their filters suspended (PTRACE_O_SUSPEND_SECCOMP)',
    probe: () => ok(() => withSeizedHelper((t) => ptrace(PTRACE.SETOPTIONS, t.tid, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.SUSPEND_SECCOMP))),
  },
  {
    name: 'seccomp_filters',
    what: 'seccomp filters read by PTRACE_SECCOMP_GET_FILTER',
    probe: () => /^Seccomp_filters:/m.test(fs.readFileSync('/proc/self/status', 'utf8')),
  },
  {
    name: 'kcmp_epoll',
    what: 'epoll targets checked with kcmp(KCMP_EPOLL_TFD) (a target fd closed or replaced since it was added)',
    probe: () => kernelAtLeast(4, 13),
  },
  { name: 'fdinfo_lock', what: 'file locks in /proc/PID/fdinfo (--file-locks)', probe: () => kernelAtLeast(4, 1) },
  {
    name: 'timer_cr_ids',
    what: 'POSIX timers created at their ids (PR_TIMER_CREATE_RESTORE_IDS)',
    probe: () => ok(() => prctl(PR.TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0)),
  },
  { name: 'mnt_id', what: 'mount ids of files in /proc/PID/fdinfo (mount namespaces)', probe: probeMntId },
  { name: 'move_mount_set_group', what: 'mount peer groups restored (MOVE_MOUNT_SET_GROUP)', probe: () => kernelAtLeast(5, 15) },
  {
    name: 'memfd_hugetlb',
    what: 'MFD_HUGETLB memfds (their hugetlb_flag)',
    probe: () =>
      ok(() => {
        close(memfdCreate('criu-ts-probe', MFD.CLOEXEC | MFD.HUGETLB));
      }),
  },
  { name: 'net_diag_raw', what: 'raw sockets listed by sock_diag (raw_diag)', probe: hasRawDiag },
  {
    name: 'sockopt_buf_lock',
    what: 'socket buffer-size locks (SO_BUF_LOCK)',
    probe: () => sockoptWorks(sock.AF.UNIX, sock.SOL.SOCKET, sock.SO.BUF_LOCK),
  },
  {
    name: 'ipv6_freebind',
    what: 'IPV6_FREEBIND of IPv6 sockets, dumped and restored',
    probe: () => sockoptWorks(sock.AF.INET6, sock.SOL.IPV6, sock.IPV6.FREEBIND),
  },
  {
    // KCMP_EPOLL_TFD came with Linux 4.13: an epoll's targets are matched to fds by it.
    name: 'kcmp_epoll',
    what: 'epoll targets compared by kcmp (KCMP_EPOLL_TFD)',
    probe: () => kernelAtLeast(4, 13) && ok(() => kcmp(getpid(), getpid(), KCMP.FILE, 0, 0)),
  },
  { name: 'aio_remap', what: 'AIO rings moved to their place with mremap (mm/aio.ts)', probe: () => kernelAtLeast(3, 19) },
  {
    name: 'network_lock_nftables',
    what: 'the nftables network lock (nft, and sets of concatenated addresses and ports)',
    probe: () => lockAvailable('nftables'),
  },
  {
    name: 'nftables',
    what: "nftables rulesets of the tree's network namespace, saved and restored with nft",
    probe: () => inPath('nft'),
  },
  {
    // CRIU asks for the legacy binaries; criu-ts's iptables lock needs iptables and ip6tables that work.
    name: 'has_ipt_legacy',
    what: 'iptables-legacy and ip6tables-legacy, and the iptables network lock',
    probe: () => ['iptables-legacy', 'ip6tables-legacy'].every(inPath) && lockAvailable('iptables'),
  },
  {
    // criu-ts finds guard regions in /proc/PID/pagemap (bit 58), where CRIU asks PAGEMAP_SCAN.
    name: 'pagemap_scan_guard_pages',
    what: 'guard regions (MADV_GUARD_INSTALL) shown by /proc/PID/pagemap',
    probe: guardRegionsShown,
  },
  {
    name: 'loginuid',
    what: 'audit login uids, written back by the restored task (/proc/self/loginuid)',
    probe: () => fs.existsSync('/proc/self/loginuid'),
  },
  {
    name: 'mem_dirty_track',
    what: 'memory change tracking for pre-dump and --track-mem (userfaultfd with asynchronous write protection)',
    probe: memTrackWorks,
  },
  // criu-ts binds a unix socket again in the root of its mount namespace (unix_sk_entry.mnt_id).
  { name: 'sk_unix_file', what: 'unix sockets bound in other mount namespaces', probe: () => kernelAtLeast(4, 10) },
  { name: 'cgroupns', what: 'cgroup namespaces', probe: () => fs.existsSync('/proc/self/ns/cgroup') },
  {
    name: 'timens',
    what: 'time namespaces (a tree in one of its own; one for its children only is refused)',
    probe: () => fs.existsSync('/proc/self/ns/time'),
  },
  // CRIU's name for the kernel showing NSpid: the pids of a task in nested PID namespaces.
  {
    name: 'ns_pid',
    what: "pids inside the tree's PID namespace (NSpid in /proc/PID/status)",
    probe: () => /^NSpid:/m.test(fs.readFileSync('/proc/self/status', 'utf8')),
  },
  {
    name: 'userns',
    what: 'user namespaces (a tree in one of its own: its uid and gid maps, ids as it sees them)',
    probe: () => fs.existsSync('/proc/self/ns/user'),
  },
  { name: 'tun', what: 'tun/tap devices and their fds (TUNSETIFINDEX)', probe: () => tunWorks(false) },
  { name: 'tun_ns', what: "tun files' network namespaces (SIOCGSKNS)", probe: () => tunWorks(true) },
  // Both ends of a veth across two namespaces of the tree, each told by IFLA_LINK_NETNSID (Linux 4.0).
  {
    name: 'link_nsid',
    what: 'veth pairs across network namespaces of the tree',
    probe: () => kernelAtLeast(4, 0) && hasTool('ip', ['-V']),
  },
  { name: 'newifindex', what: 'a device made beforehand moved in at its ifindex (--external netdev[])', probe: newIfindexWorks },
  { name: 'tcp_half_closed', what: 'TCP repair mode on half-closed connections', probe: probeHalfClosed },
  // CRIU's other names. criu-ts does not use these (yet): what each would serve.
  ...(
    [
      ['autofs', 'autofs mounts'],
      ['compat_cr', '32-bit (compat) tasks'],
      ['uffd', 'lazy pages (userfaultfd)'],
      ['uffd-noncoop', 'lazy pages of trees that fork (userfaultfd events)'],
      ['can_map_vdso', 'mapping the vDSO by arch_prctl (criu-ts moves it with mremap)'],
      ['sk_ns', 'sockets of other network namespaces'],
      ['nsid', 'network namespace ids'],
      ['external_net_ns', 'external network namespaces'],
      ['nftables', 'nftables in network namespaces'],
      ['pidfd_store', 'the pidfd store of iterative dumps (RPC)'],
      ['apparmor_stacking', 'AppArmor namespaces'],
      ['openat2', 'opening files with openat2'],
      ['pagemap_scan', 'dirty tracking with PAGEMAP_SCAN'],
      ['overlayfs_maps', 'mappings of files on overlayfs'],
      ['breakpoints', 'hardware breakpoints'],
    ] as const
  ).map(([name, what]): Feature => ({ name, what })),
];

const MADV_GUARD_INSTALL = 102;
const PM_GUARD_REGION = 1n << 58n;

/** Does pagemap mark a guard region installed on a page of criu-ts's own? */
function guardRegionsShown(): boolean {
  const page = 4096n;
  let addr: bigint;
  try {
    addr = mmapPrivateAnon(page);
  } catch {
    return false;
  }
  try {
    madvise(addr, page, MADV_GUARD_INSTALL);
    const fd = fs.openSync('/proc/self/pagemap', 'r');
    try {
      const b = Buffer.alloc(8);
      fs.readSync(fd, b, 0, 8, Number((addr / page) * 8n));
      return (b.readBigUInt64LE(0) & PM_GUARD_REGION) !== 0n;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  } finally {
    munmap(addr, page);
  }
}

/** Every name `check --feature` answers, CRIU's and criu-ts's own. */
export const FEATURE_NAMES = FEATURES.map((f) => f.name);

export function runCheck(feature: string | undefined, out: (s: string) => void, log: Logger): number {
  if (feature === 'list') {
    out(FEATURE_NAMES.join(' '));
    return 0;
  }
  if (feature !== undefined) {
    const f = FEATURES.find((x) => x.name === feature);
    if (!f) {
      log.error(`Unknown feature ${feature} (criu-ts check --feature list names them)`);
      return 1;
    }
    if (!f.probe) {
      log.warn(`${f.name} is not supported: criu-ts does not handle ${f.what} yet`);
      return 1;
    }
    if (!f.probe()) {
      log.warn(`${f.name} is not supported by this kernel: ${f.what}`);
      return 1;
    }
    out(`${f.name} is supported`);
    return 0;
  }
  let missingRequired = false,
    missingExtra = false;
  for (const f of FEATURES) {
    if (!f.probe) continue;
    const present = f.probe();
    out(`${present ? 'ok     ' : 'MISSING'} ${f.name.padEnd(16)} ${f.what}${f.required ? '' : ' (optional)'}`);
    if (!present) {
      if (f.required) missingRequired = true;
      else missingExtra = true;
    }
  }
  out(
    missingRequired
      ? 'Does not look good.'
      : missingExtra
        ? 'Looks good but some kernel features are missing\nwhich, depending on your process tree, may cause\ndump or restore failure.'
        : 'Looks good.',
  );
  return missingRequired ? 1 : 0;
}
