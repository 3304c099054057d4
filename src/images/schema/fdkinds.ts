// Field tables of CRIU's eventfd, eventpoll, timerfd, signalfd, fsnotify, fh, tty (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const fdkindsMessages = {
  eventfd_file_entry: {
    name: 'eventfd_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32' },
      { no: 3, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 4, name: 'counter', label: 'req', type: 'uint64' },
    ],
  },
  eventpoll_tfd_entry: {
    name: 'eventpoll_tfd_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'tfd', label: 'req', type: 'uint32' },
      { no: 3, name: 'events', label: 'req', type: 'uint32' },
      { no: 4, name: 'data', label: 'req', type: 'uint64' },
      { no: 5, name: 'dev', label: 'opt', type: 'uint32' },
      { no: 6, name: 'inode', label: 'opt', type: 'uint64' },
      { no: 7, name: 'pos', label: 'opt', type: 'uint64' },
      // criu-ts: the fd number the target was added under, when that fd was closed or reused
      // since (tfd is then an fd of the task holding the same file, as CRIU saves it).
      { no: 100, name: 'key_fd', label: 'opt', type: 'uint32' },
    ],
  },
  eventpoll_file_entry: {
    name: 'eventpoll_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32' },
      { no: 3, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 4, name: 'tfd', label: 'rep', type: 'message', ref: 'eventpoll_tfd_entry' },
    ],
  },
  timerfd_entry: {
    name: 'timerfd_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 3, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 4, name: 'clockid', label: 'req', type: 'uint32' },
      { no: 5, name: 'ticks', label: 'req', type: 'uint64' },
      { no: 6, name: 'settime_flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 7, name: 'vsec', label: 'req', type: 'uint64' },
      { no: 8, name: 'vnsec', label: 'req', type: 'uint64' },
      { no: 9, name: 'isec', label: 'req', type: 'uint64' },
      { no: 10, name: 'insec', label: 'req', type: 'uint64' },
    ],
  },
  signalfd_entry: {
    name: 'signalfd_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 3, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 4, name: 'sigmask', label: 'req', type: 'uint64', opts: { hex: true } },
    ],
  },
  inotify_wd_entry: {
    name: 'inotify_wd_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'i_ino', label: 'req', type: 'uint64' },
      { no: 3, name: 'mask', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 4, name: 'ignored_mask', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 5, name: 's_dev', label: 'req', type: 'uint32', opts: { dev: true } },
      { no: 6, name: 'wd', label: 'req', type: 'uint32' },
      { no: 7, name: 'f_handle', label: 'req', type: 'message', ref: 'fh_entry' },
    ],
  },
  inotify_file_entry: {
    name: 'inotify_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 4, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 5, name: 'wd', label: 'rep', type: 'message', ref: 'inotify_wd_entry' },
    ],
  },
  fanotify_inode_mark_entry: {
    name: 'fanotify_inode_mark_entry',
    fields: [
      { no: 1, name: 'i_ino', label: 'req', type: 'uint64' },
      { no: 2, name: 'f_handle', label: 'req', type: 'message', ref: 'fh_entry' },
    ],
  },
  fanotify_mount_mark_entry: {
    name: 'fanotify_mount_mark_entry',
    fields: [
      { no: 1, name: 'mnt_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'path', label: 'opt', type: 'string' },
    ],
  },
  fanotify_mark_entry: {
    name: 'fanotify_mark_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'type', label: 'req', type: 'enum', ref: 'mark_type' },
      { no: 3, name: 'mflags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 4, name: 'mask', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 5, name: 'ignored_mask', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 6, name: 's_dev', label: 'req', type: 'uint32', opts: { dev: true } },
      { no: 7, name: 'ie', label: 'opt', type: 'message', ref: 'fanotify_inode_mark_entry' },
      { no: 8, name: 'me', label: 'opt', type: 'message', ref: 'fanotify_mount_mark_entry' },
    ],
  },
  fanotify_file_entry: {
    name: 'fanotify_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 3, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 4, name: 'faflags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 5, name: 'evflags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 6, name: 'mark', label: 'rep', type: 'message', ref: 'fanotify_mark_entry' },
    ],
  },
  fh_entry: {
    name: 'fh_entry',
    fields: [
      { no: 1, name: 'bytes', label: 'req', type: 'uint32' },
      { no: 2, name: 'type', label: 'req', type: 'uint32' },
      { no: 3, name: 'handle', label: 'rep', type: 'uint64' },
      { no: 4, name: 'path', label: 'opt', type: 'string' },
      { no: 5, name: 'mnt_id', label: 'opt', type: 'uint32' },
    ],
  },
  irmap_cache_entry: {
    name: 'irmap_cache_entry',
    fields: [
      { no: 1, name: 'dev', label: 'req', type: 'uint32', opts: { dev: true, odev: true } },
      { no: 2, name: 'inode', label: 'req', type: 'uint64' },
      { no: 3, name: 'path', label: 'req', type: 'string' },
    ],
  },
  winsize_entry: {
    name: 'winsize_entry',
    fields: [
      { no: 1, name: 'ws_row', label: 'req', type: 'uint32' },
      { no: 2, name: 'ws_col', label: 'req', type: 'uint32' },
      { no: 3, name: 'ws_xpixel', label: 'req', type: 'uint32' },
      { no: 4, name: 'ws_ypixel', label: 'req', type: 'uint32' },
    ],
  },
  termios_entry: {
    name: 'termios_entry',
    fields: [
      { no: 1, name: 'c_iflag', label: 'req', type: 'uint32' },
      { no: 2, name: 'c_oflag', label: 'req', type: 'uint32' },
      { no: 3, name: 'c_cflag', label: 'req', type: 'uint32' },
      { no: 4, name: 'c_lflag', label: 'req', type: 'uint32' },
      { no: 5, name: 'c_line', label: 'req', type: 'uint32' },
      { no: 6, name: 'c_ispeed', label: 'req', type: 'uint32' },
      { no: 7, name: 'c_ospeed', label: 'req', type: 'uint32' },
      { no: 8, name: 'c_cc', label: 'rep', type: 'uint32' },
    ],
  },
  tty_pty_entry: {
    name: 'tty_pty_entry',
    fields: [{ no: 1, name: 'index', label: 'req', type: 'uint32' }],
  },
  tty_data_entry: {
    name: 'tty_data_entry',
    fields: [
      { no: 1, name: 'tty_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'data', label: 'req', type: 'bytes' },
    ],
  },
  tty_info_entry: {
    name: 'tty_info_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'type', label: 'req', type: 'enum', ref: 'TtyType' },
      { no: 3, name: 'locked', label: 'req', type: 'bool' },
      { no: 4, name: 'exclusive', label: 'req', type: 'bool' },
      { no: 5, name: 'packet_mode', label: 'req', type: 'bool' },
      { no: 6, name: 'sid', label: 'req', type: 'uint32' },
      { no: 7, name: 'pgrp', label: 'req', type: 'uint32' },
      { no: 8, name: 'rdev', label: 'req', type: 'uint32' },
      { no: 9, name: 'termios', label: 'opt', type: 'message', ref: 'termios_entry' },
      { no: 10, name: 'termios_locked', label: 'opt', type: 'message', ref: 'termios_entry' },
      { no: 11, name: 'winsize', label: 'opt', type: 'message', ref: 'winsize_entry' },
      { no: 12, name: 'pty', label: 'opt', type: 'message', ref: 'tty_pty_entry' },
      { no: 13, name: 'dev', label: 'opt', type: 'uint32' },
      { no: 14, name: 'uid', label: 'opt', type: 'uint32' },
      { no: 15, name: 'gid', label: 'opt', type: 'uint32' },
    ],
  },
  tty_file_entry: {
    name: 'tty_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'tty_info_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 4, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 6, name: 'regf_id', label: 'opt', type: 'uint32' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const fdkindsEnums = {
  mark_type: { name: 'mark_type', values: { INODE: 1, MOUNT: 2 } },
  fh_entry_sizes: { name: 'fh_entry_sizes', values: { min_entries: 16 } },
  TtyType: { name: 'TtyType', values: { UNKNOWN: 0, PTY: 1, CONSOLE: 2, VT: 3, CTTY: 4, EXT_TTY: 5, SERIAL: 6 } },
} as const satisfies Record<string, EnumDef>;
