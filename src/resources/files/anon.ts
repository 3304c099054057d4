// The anon-inode file kinds: eventfd, epoll, signalfd and timerfd. Their state is in fdinfo;
// each is made again in criu-ts with that state and moved into the task like any fd.
import fs from 'node:fs';
import { eventfd, epollCreate, signalfd, timerfdCreate, timerfdSettime, ioctl, fcntl, F, O, TFD_IOC_SET_TICKS, arch } from '../../kernel/index.ts';
import { FD_TYPE, FASYNC, fown, type FileKind } from './types.ts';

const anon = (name: string) => (p: { link: string }) => p.link === `anon_inode:[${name}]` || p.link === `anon_inode:${name}`;
const O_FLAGS = O.NONBLOCK;
// eventfd files are always O_RDWR, so bit 0 of the saved flags is free to carry EFD_SEMAPHORE.
const EFD_SEMAPHORE = 1;

const STATUS_FLAGS = O.NONBLOCK | O.APPEND;

/** Give a descriptor made with O_NONBLOCK the status flags the task had. */
function setStatusFlags(fd: number, flags: number): void {
  if ((flags & STATUS_FLAGS) !== O.NONBLOCK) fcntl(fd, F.SETFL, flags & STATUS_FLAGS);
}

export const eventfdFile: FileKind = {
  type: FD_TYPE.EVENTFD,
  name: 'eventfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['eventfd-count', 'eventfd-id', 'eventfd-semaphore'] },
  matches: anon('eventfd'),
  dump(p, id) {
    const flags = (p.flags & ~EFD_SEMAPHORE) | (p.info.eventfdSemaphore ? EFD_SEMAPHORE : 0);
    return { efd: { id, flags, fown: fown(), counter: p.info.eventfdCount ?? 0n } };
  },
  open(file, ctx) {
    const e = file.efd as Record<string, unknown>;
    const flags = e.flags as number;
    const fd = ctx.keep(eventfd(0, O.CLOEXEC | O_FLAGS | (flags & EFD_SEMAPHORE)));
    const counter = e.counter as bigint;
    if (counter > 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(counter, 0);
      fs.writeSync(fd, b);
    }
    setStatusFlags(fd, flags);
    return fd;
  },
};

export const eventpollFile: FileKind = {
  type: FD_TYPE.EVENTPOLL,
  name: 'epoll',
  claims: { flags: O.NONBLOCK | FASYNC },
  matches: anon('eventpoll'),
  dump(p, id) {
    const tfd = p.info.tfds.map((t) => ({
      id: 0, tfd: t.tfd, events: t.events, data: t.data,
      ...(t.sdev !== undefined ? { dev: t.sdev } : {}), ...(t.ino !== undefined ? { inode: BigInt(t.ino) } : {}),
      ...(t.pos !== undefined ? { pos: t.pos } : {}),
    }));
    return { epfd: { id, flags: p.flags, fown: fown(), tfd } };
  },
  open(file, ctx) {
    const e = file.epfd as Record<string, unknown>;
    const fd = ctx.keep(epollCreate(O.CLOEXEC));
    // epoll_create1 takes no O_NONBLOCK; the descriptor gets it afterwards if it had it.
    if ((e.flags as number) & O.NONBLOCK) fcntl(fd, F.SETFL, O.NONBLOCK);
    return fd;
  },
  // Targets are registered by the task itself: epoll keys each item by the task's fd number,
  // which the task later uses for EPOLL_CTL_MOD and DEL.
  afterInstall(file, fd, t, area) {
    const e = file.epfd as Record<string, unknown>;
    const size = arch.name === 'x86_64' ? 12 : 16; // struct epoll_event is packed on x86_64
    const ev = Buffer.alloc(size);
    for (const tf of (e.tfd as Array<Record<string, unknown>>)) {
      area.reset();
      ev.writeUInt32LE(tf.events as number, 0);
      ev.writeBigUInt64LE(tf.data as bigint, size - 8);
      t.syscall('epoll_ctl', fd, 1 /* EPOLL_CTL_ADD */, tf.tfd as number, area.put(ev));
    }
  },
};

export const signalfdFile: FileKind = {
  type: FD_TYPE.SIGNALFD,
  name: 'signalfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['sigmask'] },
  matches: anon('signalfd'),
  dump(p, id) { return { sgfd: { id, flags: p.flags, fown: fown(), sigmask: p.info.sigmask ?? 0n } }; },
  open(file, ctx) {
    const e = file.sgfd as Record<string, unknown>;
    const fd = ctx.keep(signalfd(e.sigmask as bigint, O.CLOEXEC | O.NONBLOCK));
    setStatusFlags(fd, e.flags as number);
    return fd;
  },
};

export const timerfdFile: FileKind = {
  type: FD_TYPE.TIMERFD,
  name: 'timerfd',
  claims: { flags: STATUS_FLAGS | FASYNC, fields: ['clockid', 'ticks', 'settime flags', 'it_value', 'it_interval'] },
  matches: anon('timerfd'),
  dump(p, id) {
    const t = p.info.timerfd;
    if (!t) throw new Error(`fd ${p.fd} of task ${p.pid}: timerfd without its fdinfo state`);
    return {
      tfd: {
        id, flags: p.flags, fown: fown(), clockid: t.clockid, ticks: t.ticks, settime_flags: t.settimeFlags,
        vsec: t.itValue.sec, vnsec: t.itValue.nsec, isec: t.itInterval.sec, insec: t.itInterval.nsec,
      },
    };
  },
  open(file, ctx) {
    const e = file.tfd as Record<string, unknown>;
    const fd = ctx.keep(timerfdCreate(e.clockid as number, O.CLOEXEC | O.NONBLOCK));
    const value = { sec: e.vsec as bigint, nsec: e.vnsec as bigint };
    // fdinfo shows the time left, so the timer is armed relative to now.
    if (value.sec !== 0n || value.nsec !== 0n) {
      timerfdSettime(fd, (e.settime_flags as number) & 2, { sec: e.isec as bigint, nsec: e.insec as bigint }, value);
    }
    const ticks = e.ticks as bigint;
    if (ticks > 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(ticks, 0);
      ioctl(fd, TFD_IOC_SET_TICKS, b);
    }
    setStatusFlags(fd, e.flags as number);
    return fd;
  },
};
