// /proc/PID/fdinfo/FD.

import { ProcParseError, decBig, decInt, hexBig, hexInt, octInt, splitLines } from './errors.ts';

export interface EpollTfd {
  tfd: number;
  events: number;
  data: bigint;
  /** these three are absent on kernels before 3.18 */
  pos?: bigint;
  ino?: number;
  sdev?: number;
}

export interface Timespec64 {
  sec: bigint;
  nsec: bigint;
}

export interface TimerfdInfo {
  clockid: number;
  ticks: bigint;
  /** TFD_TIMER_ABSTIME 1 | TFD_TIMER_CANCEL_ON_SET 2 (octal in the file) */
  settimeFlags: number;
  itValue: Timespec64;
  itInterval: Timespec64;
}

export interface FileHandle {
  bytes: number;
  type: number;
  /** the handle's bytes, decoded from hex */
  handle: Buffer;
}

export interface InotifyWd {
  wd: number;
  ino: bigint;
  sdev: number;
  mask: number;
  ignoredMask: number;
  fhandle: FileHandle;
}

export type FanotifyMark =
  | { kind: 'inode'; ino: bigint; sdev: number; mflags: number; mask: number; ignoredMask: number; fhandle: FileHandle }
  | { kind: 'mount'; mntId: number; mflags: number; mask: number; ignoredMask: number }
  | { kind: 'sb'; sdev: number; mflags: number; mask: number; ignoredMask: number };

export interface Fdinfo {
  pos: bigint;
  /** open flags (octal in the file) */
  flags: number;
  mntId: number;
  ino?: number;
  /**
   * Every single-valued "key: value" line, value trimmed, including pos/flags/mnt_id/ino and the type-specific
   * ones (eventfd-count, sigmask, clockid, ticks, "settime flags", it_value, tty-index, map_type, Pid, ...).
   */
  fields: Map<string, string>;
  /** eventfd: "eventfd-count" (hex) */
  eventfdCount?: bigint;
  eventfdId?: number;
  eventfdSemaphore?: boolean;
  /** eventpoll targets; empty array for an epoll fd with nothing registered */
  tfds: EpollTfd[];
  /** signalfd: "sigmask" (hex) */
  sigmask?: bigint;
  timerfd?: TimerfdInfo;
  /** inotify watches */
  inotify: InotifyWd[];
  /** fanotify: "fanotify flags:%x event-flags:%x" */
  fanotify?: { flags: number; eventFlags: number };
  fanotifyMarks: FanotifyMark[];
  /** "lock:" lines, raw (see /proc/locks format) */
  locks: string[];
  /** pidfd: Pid and NSpid */
  pidfdPid?: number;
  pidfdNsPid?: number[];
}

const F = 'fdinfo';

/** Decode the hex "f_handle:" blob. */
function decodeHandle(hex: string): Buffer {
  const h = hex.trim();
  const n = h.length >> 1;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** "k1:v1 k2:v2 ..." (values hex) -> map; tolerant to extra spaces. */
function kvPairs(s: string): Map<string, string> {
  const m = new Map<string, string>();
  const re = /([A-Za-z_-]+):\s*(\S*)/g;
  let r: RegExpExecArray | null;
  while ((r = re.exec(s)) !== null) m.set(r[1], r[2]);
  return m;
}

function need(m: Map<string, string>, k: string, line: string): string {
  const v = m.get(k);
  if (v === undefined) throw new ProcParseError(F, `missing ${k}`, line);
  return v;
}

function fhandleOf(m: Map<string, string>, line: string): FileHandle {
  const fi = line.indexOf('f_handle:');
  return {
    bytes: hexInt(F, need(m, 'fhandle-bytes', line), line),
    type: hexInt(F, need(m, 'fhandle-type', line), line),
    handle: fi >= 0 ? decodeHandle(line.slice(fi + 9)) : Buffer.alloc(0),
  };
}

function timespec(v: string, line: string): Timespec64 {
  const m = /^\(\s*(\d+),\s*(\d+)\)$/.exec(v);
  if (!m) throw new ProcParseError(F, 'bad timespec', line);
  return { sec: BigInt(m[1]), nsec: BigInt(m[2]) };
}

/** Parse /proc/PID/fdinfo/FD. */
export function parseFdinfo(text: string): Fdinfo {
  const fi: Fdinfo = {
    pos: 0n,
    flags: 0,
    mntId: -1,
    fields: new Map(),
    tfds: [],
    inotify: [],
    fanotifyMarks: [],
    locks: [],
  };
  let seenPos = false;
  for (const line of splitLines(text)) {
    if (line === '') continue;
    // Multi-valued lines first: their "key" is followed by more "k:v" pairs on the same line.
    if (line.startsWith('tfd:')) {
      const m =
        /^tfd:\s*(\d+)\s+events:\s*([0-9a-fA-F]+)\s+data:\s*([0-9a-fA-F]+)(?:\s+pos:\s*(\d+)\s+ino:\s*([0-9a-fA-F]+)\s+sdev:\s*([0-9a-fA-F]+))?/.exec(
          line,
        );
      if (!m) throw new ProcParseError(F, 'bad tfd line', line);
      const e: EpollTfd = { tfd: Number(m[1]), events: parseInt(m[2], 16), data: BigInt('0x' + m[3]) };
      if (m[4] !== undefined) {
        e.pos = BigInt(m[4]);
        e.ino = parseInt(m[5], 16);
        e.sdev = parseInt(m[6], 16);
      }
      fi.tfds.push(e);
      continue;
    }
    if (line.startsWith('inotify wd:')) {
      const m = kvPairs(line.slice(8));
      fi.inotify.push({
        wd: hexInt(F, need(m, 'wd', line), line),
        ino: hexBig(F, need(m, 'ino', line), line),
        sdev: hexInt(F, need(m, 'sdev', line), line),
        mask: hexInt(F, need(m, 'mask', line), line),
        ignoredMask: hexInt(F, need(m, 'ignored_mask', line), line),
        fhandle: fhandleOf(m, line),
      });
      continue;
    }
    if (line.startsWith('fanotify ')) {
      const m = kvPairs(line.slice(9));
      if (m.has('flags') && m.has('event-flags') && !m.has('mask')) {
        fi.fanotify = { flags: hexInt(F, need(m, 'flags', line), line), eventFlags: hexInt(F, need(m, 'event-flags', line), line) };
      } else if (m.has('ino')) {
        fi.fanotifyMarks.push({
          kind: 'inode',
          ino: hexBig(F, need(m, 'ino', line), line),
          sdev: hexInt(F, need(m, 'sdev', line), line),
          mflags: hexInt(F, need(m, 'mflags', line), line),
          mask: hexInt(F, need(m, 'mask', line), line),
          ignoredMask: hexInt(F, need(m, 'ignored_mask', line), line),
          fhandle: fhandleOf(m, line),
        });
      } else if (m.has('mnt_id')) {
        fi.fanotifyMarks.push({
          kind: 'mount',
          mntId: hexInt(F, need(m, 'mnt_id', line), line),
          mflags: hexInt(F, need(m, 'mflags', line), line),
          mask: hexInt(F, need(m, 'mask', line), line),
          ignoredMask: hexInt(F, need(m, 'ignored_mask', line), line),
        });
      } else if (m.has('sdev')) {
        fi.fanotifyMarks.push({
          kind: 'sb',
          sdev: hexInt(F, need(m, 'sdev', line), line),
          mflags: hexInt(F, need(m, 'mflags', line), line),
          mask: hexInt(F, need(m, 'mask', line), line),
          ignoredMask: hexInt(F, need(m, 'ignored_mask', line), line),
        });
      } else {
        throw new ProcParseError(F, 'unknown fanotify line', line);
      }
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const v = line.slice(colon + 1).trim();
    if (key === 'lock') {
      if (v !== '') fi.locks.push(v);
      continue;
    }
    fi.fields.set(key, v);
    switch (key) {
      case 'pos':
        fi.pos = decBig(F, v, line);
        seenPos = true;
        break;
      case 'flags':
        fi.flags = octInt(F, v, line);
        break;
      case 'mnt_id':
        fi.mntId = decInt(F, v, line);
        break;
      case 'ino':
        fi.ino = decInt(F, v, line);
        break;
      case 'eventfd-count':
        fi.eventfdCount = hexBig(F, v, line);
        break;
      case 'eventfd-id':
        fi.eventfdId = decInt(F, v, line);
        break;
      case 'eventfd-semaphore':
        fi.eventfdSemaphore = decInt(F, v, line) !== 0;
        break;
      case 'sigmask':
        fi.sigmask = hexBig(F, v, line);
        break;
      case 'clockid':
        timerfdOf(fi).clockid = decInt(F, v, line);
        break;
      case 'ticks':
        timerfdOf(fi).ticks = decBig(F, v, line);
        break;
      case 'settime flags':
        timerfdOf(fi).settimeFlags = octInt(F, v, line);
        break;
      case 'it_value':
        timerfdOf(fi).itValue = timespec(v, line);
        break;
      case 'it_interval':
        timerfdOf(fi).itInterval = timespec(v, line);
        break;
      case 'Pid':
        fi.pidfdPid = decInt(F, v, line);
        break;
      case 'NSpid':
        fi.pidfdNsPid = v
          .split(/\s+/)
          .filter((x) => x !== '')
          .map((x) => decInt(F, x, line));
        break;
      default:
        break;
    }
  }
  if (!seenPos) throw new ProcParseError(F, 'no pos line');
  return fi;
}

function timerfdOf(fi: Fdinfo): TimerfdInfo {
  if (!fi.timerfd) {
    fi.timerfd = { clockid: 0, ticks: 0n, settimeFlags: 0, itValue: { sec: 0n, nsec: 0n }, itInterval: { sec: 0n, nsec: 0n } };
  }
  return fi.timerfd;
}
