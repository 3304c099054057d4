// Field tables of CRIU's fdinfo, fown, fs, regfile, remap-file-path, ghost-file, time, pipe, pipe-data, fifo, memfd, ext-file, file-lock, pidfd, bpfmap-file, bpfmap-data (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const filesMessages = {
  fdinfo_entry: {
    name: 'fdinfo_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32' },
      { no: 3, name: 'type', label: 'req', type: 'enum', ref: 'fd_types' },
      { no: 4, name: 'fd', label: 'req', type: 'uint32' },
      { no: 5, name: 'xattr_security_selinux', label: 'opt', type: 'string' },
    ],
  },
  file_entry: {
    name: 'file_entry',
    fields: [
      { no: 1, name: 'type', label: 'req', type: 'enum', ref: 'fd_types' },
      { no: 2, name: 'id', label: 'req', type: 'uint32' },
      { no: 3, name: 'reg', label: 'opt', type: 'message', ref: 'reg_file_entry' },
      { no: 4, name: 'isk', label: 'opt', type: 'message', ref: 'inet_sk_entry' },
      { no: 5, name: 'nsf', label: 'opt', type: 'message', ref: 'ns_file_entry' },
      { no: 6, name: 'psk', label: 'opt', type: 'message', ref: 'packet_sock_entry' },
      { no: 7, name: 'nlsk', label: 'opt', type: 'message', ref: 'netlink_sk_entry' },
      { no: 8, name: 'efd', label: 'opt', type: 'message', ref: 'eventfd_file_entry' },
      { no: 9, name: 'epfd', label: 'opt', type: 'message', ref: 'eventpoll_file_entry' },
      { no: 10, name: 'sgfd', label: 'opt', type: 'message', ref: 'signalfd_entry' },
      { no: 11, name: 'tunf', label: 'opt', type: 'message', ref: 'tunfile_entry' },
      { no: 12, name: 'tfd', label: 'opt', type: 'message', ref: 'timerfd_entry' },
      { no: 13, name: 'ify', label: 'opt', type: 'message', ref: 'inotify_file_entry' },
      { no: 14, name: 'ffy', label: 'opt', type: 'message', ref: 'fanotify_file_entry' },
      { no: 15, name: 'ext', label: 'opt', type: 'message', ref: 'ext_file_entry' },
      { no: 16, name: 'usk', label: 'opt', type: 'message', ref: 'unix_sk_entry' },
      { no: 17, name: 'fifo', label: 'opt', type: 'message', ref: 'fifo_entry' },
      { no: 18, name: 'pipe', label: 'opt', type: 'message', ref: 'pipe_entry' },
      { no: 19, name: 'tty', label: 'opt', type: 'message', ref: 'tty_file_entry' },
      { no: 20, name: 'memfd', label: 'opt', type: 'message', ref: 'memfd_file_entry' },
      { no: 21, name: 'bpf', label: 'opt', type: 'message', ref: 'bpfmap_file_entry' },
      { no: 22, name: 'pidfd', label: 'opt', type: 'message', ref: 'pidfd_entry' },
    ],
  },
  fown_entry: {
    name: 'fown_entry',
    fields: [
      { no: 1, name: 'uid', label: 'req', type: 'uint32' },
      { no: 2, name: 'euid', label: 'req', type: 'uint32' },
      { no: 3, name: 'signum', label: 'req', type: 'uint32' },
      { no: 4, name: 'pid_type', label: 'req', type: 'uint32' },
      { no: 5, name: 'pid', label: 'req', type: 'uint32' },
    ],
  },
  fs_entry: {
    name: 'fs_entry',
    fields: [
      { no: 1, name: 'cwd_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'root_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'umask', label: 'opt', type: 'uint32' },
    ],
  },
  reg_file_entry: {
    name: 'reg_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { flags: 'rfile.flags' } },
      { no: 3, name: 'pos', label: 'req', type: 'uint64' },
      { no: 5, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 6, name: 'name', label: 'req', type: 'string' },
      { no: 7, name: 'mnt_id', label: 'opt', type: 'sint32', default: -1 },
      { no: 8, name: 'size', label: 'opt', type: 'uint64' },
      { no: 9, name: 'ext', label: 'opt', type: 'bool' },
      { no: 10, name: 'mode', label: 'opt', type: 'uint32' },
      { no: 11, name: 'build_id', label: 'rep', type: 'uint32' },
      { no: 12, name: 'checksum', label: 'opt', type: 'uint32' },
      { no: 13, name: 'checksum_config', label: 'opt', type: 'uint32' },
      { no: 14, name: 'checksum_parameter', label: 'opt', type: 'uint32' },
    ],
  },
  remap_file_path_entry: {
    name: 'remap_file_path_entry',
    fields: [
      { no: 1, name: 'orig_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'remap_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'remap_type', label: 'opt', type: 'enum', ref: 'remap_type' },
    ],
  },
  ghost_file_entry: {
    name: 'ghost_file_entry',
    fields: [
      { no: 1, name: 'uid', label: 'req', type: 'uint32' },
      { no: 2, name: 'gid', label: 'req', type: 'uint32' },
      { no: 3, name: 'mode', label: 'req', type: 'uint32' },
      { no: 4, name: 'dev', label: 'opt', type: 'uint32', opts: { dev: true } },
      { no: 5, name: 'ino', label: 'opt', type: 'uint64' },
      { no: 6, name: 'rdev', label: 'opt', type: 'uint32', opts: { dev: true, odev: true } },
      { no: 7, name: 'atim', label: 'opt', type: 'message', ref: 'timeval' },
      { no: 8, name: 'mtim', label: 'opt', type: 'message', ref: 'timeval' },
      { no: 9, name: 'chunks', label: 'opt', type: 'bool' },
      { no: 10, name: 'size', label: 'opt', type: 'uint64' },
      { no: 11, name: 'symlnk_target', label: 'opt', type: 'string' },
    ],
  },
  ghost_chunk_entry: {
    name: 'ghost_chunk_entry',
    fields: [
      { no: 1, name: 'len', label: 'req', type: 'uint64' },
      { no: 2, name: 'off', label: 'req', type: 'uint64' },
    ],
  },
  timeval: {
    name: 'timeval',
    fields: [
      { no: 1, name: 'tv_sec', label: 'req', type: 'uint64' },
      { no: 2, name: 'tv_usec', label: 'req', type: 'uint64' },
    ],
  },
  pipe_entry: {
    name: 'pipe_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'pipe_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 4, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
    ],
  },
  pipe_data_entry: {
    name: 'pipe_data_entry',
    fields: [
      { no: 1, name: 'pipe_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'bytes', label: 'req', type: 'uint32' },
      { no: 3, name: 'size', label: 'opt', type: 'uint32' },
    ],
  },
  fifo_entry: {
    name: 'fifo_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'pipe_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'regf_id', label: 'opt', type: 'uint32' },
    ],
  },
  memfd_file_entry: {
    name: 'memfd_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { flags: 'rfile.flags' } },
      { no: 3, name: 'pos', label: 'req', type: 'uint64' },
      { no: 4, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 5, name: 'inode_id', label: 'req', type: 'uint32' },
    ],
  },
  memfd_inode_entry: {
    name: 'memfd_inode_entry',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'uid', label: 'req', type: 'uint32' },
      { no: 3, name: 'gid', label: 'req', type: 'uint32' },
      { no: 4, name: 'size', label: 'req', type: 'uint64' },
      { no: 5, name: 'shmid', label: 'req', type: 'uint32' },
      { no: 6, name: 'seals', label: 'req', type: 'uint32', opts: { flags: 'seals.flags' } },
      { no: 7, name: 'inode_id', label: 'req', type: 'uint64' },
      { no: 8, name: 'hugetlb_flag', label: 'opt', type: 'uint32' },
      { no: 9, name: 'mode', label: 'opt', type: 'uint32' },
    ],
  },
  ext_file_entry: {
    name: 'ext_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 5, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
    ],
  },
  file_lock_entry: {
    name: 'file_lock_entry',
    fields: [
      { no: 1, name: 'flag', label: 'req', type: 'uint32' },
      { no: 2, name: 'type', label: 'req', type: 'uint32' },
      { no: 3, name: 'pid', label: 'req', type: 'int32' },
      { no: 4, name: 'fd', label: 'req', type: 'int32' },
      { no: 5, name: 'start', label: 'req', type: 'int64' },
      { no: 6, name: 'len', label: 'req', type: 'int64' },
    ],
  },
  pidfd_entry: {
    name: 'pidfd_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'ino', label: 'req', type: 'uint32' },
      { no: 3, name: 'flags', label: 'req', type: 'uint32' },
      { no: 4, name: 'nspid', label: 'req', type: 'int32' },
      { no: 5, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
    ],
  },
  bpfmap_file_entry: {
    name: 'bpfmap_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'req', type: 'uint32', opts: { flags: 'rfile.flags' } },
      { no: 3, name: 'pos', label: 'req', type: 'uint64' },
      { no: 4, name: 'fown', label: 'req', type: 'message', ref: 'fown_entry' },
      { no: 5, name: 'map_type', label: 'req', type: 'uint32' },
      { no: 6, name: 'key_size', label: 'req', type: 'uint32' },
      { no: 7, name: 'value_size', label: 'req', type: 'uint32' },
      { no: 8, name: 'map_id', label: 'req', type: 'uint32' },
      { no: 9, name: 'max_entries', label: 'req', type: 'uint32' },
      { no: 10, name: 'map_flags', label: 'req', type: 'uint32' },
      { no: 11, name: 'memlock', label: 'req', type: 'uint64' },
      { no: 12, name: 'frozen', label: 'req', type: 'bool', default: false },
      { no: 13, name: 'map_name', label: 'req', type: 'string' },
      { no: 14, name: 'ifindex', label: 'req', type: 'uint32', default: 0 },
      { no: 15, name: 'mnt_id', label: 'opt', type: 'sint32', default: -1 },
      { no: 16, name: 'map_extra', label: 'opt', type: 'uint64' },
    ],
  },
  bpfmap_data_entry: {
    name: 'bpfmap_data_entry',
    fields: [
      { no: 1, name: 'map_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'keys_bytes', label: 'req', type: 'uint32' },
      { no: 3, name: 'values_bytes', label: 'req', type: 'uint32' },
      { no: 4, name: 'count', label: 'req', type: 'uint32' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const filesEnums = {
  fd_types: { name: 'fd_types', values: { UND: 0, REG: 1, PIPE: 2, FIFO: 3, INETSK: 4, UNIXSK: 5, EVENTFD: 6, EVENTPOLL: 7, INOTIFY: 8, SIGNALFD: 9, PACKETSK: 10, TTY: 11, FANOTIFY: 12, NETLINKSK: 13, NS: 14, TUNF: 15, EXT: 16, TIMERFD: 17, MEMFD: 18, BPFMAP: 19, PIDFD: 20, CTL_TTY: 65534, AUTOFS_PIPE: 65535 } },
  remap_type: { name: 'remap_type', values: { LINKED: 0, GHOST: 1, PROCFS: 2 } },
} as const satisfies Record<string, EnumDef>;
