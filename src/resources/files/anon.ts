// The anon-inode file kinds: eventfd, epoll, signalfd and timerfd. Their state is in fdinfo;
// each is made again in criu-ts with that state and moved into the task like any fd.
import fs from 'node:fs';
import {
  eventfd,
  epollCreate,
  signalfd,
  timerfdCreate,
  timerfdSettime,
  timerfdGettime,
  clockGettime,
  copyTaskFd,
  close,
  ioctl,
  fcntl,
  F,
  O,
  TFD_IOC_SET_TICKS,
  epollEvent,
  kcmpEpollTfd,
  getpid,
  FD_CLOEXEC,
} from '../../kernel/index.ts';
import { readFdinfo, type TimerfdInfo } from '../../proc/index.ts';
import { FD_TYPE, FASYNC, fown, fileKind, type FdProbe } from './types.ts';
import { NotSupportedError } from '../../errors.ts';
import type { Tracee } from '../../compel/index.ts';

const anon = (name: string) => (p: { link: string }) => p.link === `anon_inode:[${name}]` || p.link === `anon_inode:${name}`;
const O_FLAGS = O.NONBLOCK;
// eventfd files are always O_RDWR, so bit 0 of the saved flags is free to carry EFD_SEMAPHORE.
const EFD_SEMAPHORE = 1;

const STATUS_FLAGS = O.NONBLOCK | O.APPEND;

/** Give a descriptor made with O_NONBLOCK the status flags the task had. */
function setStatusFlags(fd: number, flags: number): void {
  if ((flags & STATUS_FLAGS) !== O.NONBLOCK) fcntl(fd, F.SETFL, flags & STATUS_FLAGS);
}

export const eventfdFile = fileKind({
  type: FD_TYPE.EVENTFD,
  field: 'efd',
  name: 'eventfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['eventfd-count', 'eventfd-id', 'eventfd-semaphore'] },
  matches: anon('eventfd'),
  dump(p, id) {
    const flags = (p.flags & ~EFD_SEMAPHORE) | (p.info.eventfdSemaphore ? EFD_SEMAPHORE : 0);
    return { id, flags, fown: fown(), counter: p.info.eventfdCount ?? 0n };
  },
  open(e, ctx) {
    const flags = e.flags;
    const fd = ctx.keep(eventfd(0, O.CLOEXEC | O_FLAGS | (flags & EFD_SEMAPHORE)));
    const counter = e.counter;
    if (counter > 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(counter, 0);
      fs.writeSync(fd, b);
    }
    setStatusFlags(fd, flags);
    return fd;
  },
});

const EPIOCGPARAMS = 0x80088a02; // _IOR(0x8A, 0x02, struct epoll_params)

/** Busy polling set on an epoll (EPIOCSPARAMS, Linux 6.9), which no image keeps; undefined when none. */
function busyPollProblem(p: FdProbe): string | undefined {
  let fd: number;
  try {
    fd = copyTaskFd(p.pid, p.fd);
  } catch {
    return undefined; // closed meanwhile: the dump sees it
  }
  try {
    const b = Buffer.alloc(8);
    ioctl(fd, EPIOCGPARAMS, b);
    const usecs = b.readUInt32LE(0),
      budget = b.readUInt16LE(4),
      prefer = b.readUInt8(6);
    if (usecs || budget || prefer)
      return `busy polling is set on it (EPIOCSPARAMS: ${usecs} us, budget ${budget}, prefer ${prefer}), which no image keeps`;
    return undefined;
  } catch {
    return undefined; // a kernel without it
  } finally {
    close(fd);
  }
}

export const eventpollFile = fileKind({
  type: FD_TYPE.EVENTPOLL,
  field: 'epfd',
  name: 'epoll',
  claims: { flags: O.NONBLOCK | FASYNC, check: busyPollProblem },
  matches: anon('eventpoll'),
  dump(p, id) {
    // epoll keys each target by (file, fd number). A target whose fd was closed or now holds
    // another file is found at another fd of the task (KCMP_EPOLL_TFD): tfd names that fd, as
    // CRIU saves it, and key_fd the number it was added under, which the restore uses again.
    // An epoll in flight (criu-ts's own fd, from a socket queue) was checked against the task
    // that holds the queue, which registers its targets at restore (net/unix.ts).
    const seen = new Map<number, number>();
    const tfd = p.info.tfds.map((t) => {
      const toff = seen.get(t.tfd) ?? 0;
      seen.set(t.tfd, toff + 1);
      const at = p.pid === getpid() ? t.tfd : targetFd(p.pid, p.fd, t.tfd, toff);
      return {
        id: 0,
        tfd: at,
        events: t.events,
        data: t.data,
        ...(t.sdev !== undefined ? { dev: t.sdev } : {}),
        ...(t.ino !== undefined ? { inode: BigInt(t.ino) } : {}),
        ...(t.pos !== undefined ? { pos: t.pos } : {}),
        ...(at !== t.tfd ? { key_fd: t.tfd } : {}),
      };
    });
    return { id, flags: p.flags, fown: fown(), tfd };
  },
  open(e, ctx) {
    const fd = ctx.keep(epollCreate(O.CLOEXEC));
    // epoll_create1 takes no O_NONBLOCK; the descriptor gets it afterwards if it had it.
    if (e.flags & O.NONBLOCK) fcntl(fd, F.SETFL, O.NONBLOCK);
    return fd;
  },
  // Targets are registered by the task itself: epoll keys each item by the task's fd number,
  // which the task later uses for EPOLL_CTL_MOD and DEL.
  afterInstall(e, fd, t, area) {
    for (const tf of e.tfd) {
      area.reset();
      const ev = area.put(epollEvent(tf.events, tf.data));
      if (tf.key_fd === undefined || tf.key_fd === tf.tfd) t.syscall('epoll_ctl', fd, 1 /* EPOLL_CTL_ADD */, tf.tfd, ev);
      else addUnderKey(t, fd, tf.tfd, tf.key_fd, ev);
    }
  },
});

/** The fd of task `pid` that holds target `tfd` (the `toff`th of that number) of its epoll `epfd`. */
function targetFd(pid: number, epfd: number, tfd: number, toff: number): number {
  if (kcmpEpollTfd(pid, tfd, epfd, tfd, toff)) return tfd;
  for (const name of fs.readdirSync(`/proc/${pid}/fd`)) {
    const fd = Number(name);
    if (fd !== epfd && kcmpEpollTfd(pid, fd, epfd, tfd, toff)) return fd;
  }
  throw new NotSupportedError(`task ${pid}: fd ${epfd} (epoll): its target fd ${tfd} was closed and no fd of the task holds its file`);
}

/**
 * Register the file at `from` under the number `key`, as it was added: `key` is made a copy
 * of `from` for the call, and gets back what it held (with its close-on-exec flag), if anything.
 */
function addUnderKey(t: Tracee, epfd: number, from: number, key: number, ev: bigint): void {
  const held = t.syscallRaw('fcntl', key, F.GETFD);
  const spare = held >= 0n ? t.syscall('fcntl', key, F.DUPFD_CLOEXEC, 0) : undefined;
  try {
    t.syscall('dup3', from, key, O.CLOEXEC);
    t.syscall('epoll_ctl', epfd, 1 /* EPOLL_CTL_ADD */, key, ev);
  } finally {
    if (spare !== undefined) {
      t.syscall('dup3', spare, key, held & BigInt(FD_CLOEXEC) ? O.CLOEXEC : 0);
      t.syscallRaw('close', spare);
    } else t.syscallRaw('close', key);
  }
}

export const signalfdFile = fileKind({
  type: FD_TYPE.SIGNALFD,
  field: 'sgfd',
  name: 'signalfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['sigmask'] },
  matches: anon('signalfd'),
  dump(p, id) {
    return { id, flags: p.flags, fown: fown(), sigmask: p.info.sigmask ?? 0n };
  },
  open(e, ctx) {
    const fd = ctx.keep(signalfd(e.sigmask, O.CLOEXEC | O.NONBLOCK));
    setStatusFlags(fd, e.flags);
    return fd;
  },
});

/**
 * A periodic timerfd that expired and was not read yet shows no time left in fdinfo (the
 * kernel moves it on only when it is read), and armed again with none it would stay stopped.
 * timerfd_gettime moves it on as a read would, keeping the count: its fdinfo is read again then.
 */
function forwardedTimerfd(p: FdProbe): TimerfdInfo | undefined {
  const t = p.info.timerfd;
  if (!t || (t.itInterval.sec === 0n && t.itInterval.nsec === 0n) || t.itValue.sec !== 0n || t.itValue.nsec !== 0n) return undefined;
  const fd = copyTaskFd(p.pid, p.fd);
  try {
    timerfdGettime(fd);
    return readFdinfo(process.pid, fd).timerfd;
  } finally {
    close(fd);
  }
}

const TFD_TIMER_ABSTIME = 1,
  TFD_TIMER_CANCEL_ON_SET = 2;

function addTime(a: { sec: bigint; nsec: bigint }, b: { sec: bigint; nsec: bigint }): { sec: bigint; nsec: bigint } {
  const nsec = a.nsec + b.nsec;
  return { sec: a.sec + b.sec + nsec / 1_000_000_000n, nsec: nsec % 1_000_000_000n };
}

export const timerfdFile = fileKind({
  type: FD_TYPE.TIMERFD,
  field: 'tfd',
  name: 'timerfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['clockid', 'ticks', 'settime flags', 'it_value', 'it_interval'] },
  matches: anon('timerfd'),
  dump(p, id) {
    const t = forwardedTimerfd(p) ?? p.info.timerfd;
    if (!t) throw new Error(`fd ${p.fd} of task ${p.pid}: timerfd without its fdinfo state`);
    return {
      id,
      flags: p.flags,
      fown: fown(),
      clockid: t.clockid,
      ticks: t.ticks,
      settime_flags: t.settimeFlags,
      vsec: t.itValue.sec,
      vnsec: t.itValue.nsec,
      isec: t.itInterval.sec,
      insec: t.itInterval.nsec,
    };
  },
  open(e, ctx) {
    const fd = ctx.keep(timerfdCreate(e.clockid, O.CLOEXEC | O.NONBLOCK));
    const value = { sec: e.vsec, nsec: e.vnsec };
    // fdinfo shows the time left: an absolute timer (which a set clock moves, or cancels with
    // TFD_TIMER_CANCEL_ON_SET) is armed at now plus that, a relative one at that.
    if (value.sec !== 0n || value.nsec !== 0n) {
      const at = e.settime_flags & TFD_TIMER_ABSTIME ? addTime(clockGettime(e.clockid), value) : value;
      timerfdSettime(fd, e.settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET), { sec: e.isec, nsec: e.insec }, at);
    }
    const ticks = e.ticks;
    if (ticks > 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(ticks, 0);
      ioctl(fd, TFD_IOC_SET_TICKS, b);
    }
    setStatusFlags(fd, e.flags);
    return fd;
  },
});
