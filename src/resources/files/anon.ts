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
  copyTaskFd,
  close,
  ioctl,
  fcntl,
  F,
  O,
  TFD_IOC_SET_TICKS,
  epollEvent,
  kcmpEpollTfd,
} from '../../kernel/index.ts';
import { readFdinfo, type TimerfdInfo } from '../../proc/index.ts';
import { FD_TYPE, FASYNC, fown, fileKind, type FdProbe } from './types.ts';
import { NotSupportedError } from '../../errors.ts';

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

export const eventpollFile = fileKind({
  type: FD_TYPE.EVENTPOLL,
  field: 'epfd',
  name: 'epoll',
  claims: { flags: O.NONBLOCK | FASYNC },
  matches: anon('eventpoll'),
  dump(p, id) {
    // The restore registers each target by its fd number in the task: a target whose fd was
    // closed or now holds another file would come back wrong, or not at all.
    for (const t of p.info.tfds) {
      if (!kcmpEpollTfd(p.pid, t.tfd, p.fd, t.tfd)) {
        throw new NotSupportedError(`task ${p.pid}: fd ${p.fd} (epoll): its target fd ${t.tfd} was closed or replaced after it was added`);
      }
    }
    const tfd = p.info.tfds.map((t) => ({
      id: 0,
      tfd: t.tfd,
      events: t.events,
      data: t.data,
      ...(t.sdev !== undefined ? { dev: t.sdev } : {}),
      ...(t.ino !== undefined ? { inode: BigInt(t.ino) } : {}),
      ...(t.pos !== undefined ? { pos: t.pos } : {}),
    }));
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
      t.syscall('epoll_ctl', fd, 1 /* EPOLL_CTL_ADD */, tf.tfd, area.put(epollEvent(tf.events, tf.data)));
    }
  },
});

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
    // fdinfo shows the time left, so the timer is armed relative to now.
    if (value.sec !== 0n || value.nsec !== 0n) {
      timerfdSettime(fd, e.settime_flags & 2, { sec: e.isec, nsec: e.insec }, value);
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
