// Field tables of CRIU's inventory, pstree, stats, cpuinfo, img-streamer (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const inventoryMessages = {
  plugins_entry: {
    name: 'plugins_entry',
    fields: [{ no: 12, name: 'plugins', label: 'rep', type: 'string' }],
  },
  inventory_entry: {
    name: 'inventory_entry',
    fields: [
      { no: 1, name: 'img_version', label: 'req', type: 'uint32' },
      { no: 2, name: 'fdinfo_per_id', label: 'opt', type: 'bool' },
      { no: 3, name: 'root_ids', label: 'opt', type: 'message', ref: 'task_kobj_ids_entry' },
      { no: 4, name: 'ns_per_id', label: 'opt', type: 'bool' },
      { no: 5, name: 'root_cg_set', label: 'opt', type: 'uint32' },
      { no: 6, name: 'lsmtype', label: 'opt', type: 'enum', ref: 'lsmtype' },
      { no: 8, name: 'dump_uptime', label: 'opt', type: 'uint64' },
      { no: 9, name: 'pre_dump_mode', label: 'opt', type: 'uint32' },
      { no: 10, name: 'tcp_close', label: 'opt', type: 'bool' },
      { no: 11, name: 'network_lock_method', label: 'opt', type: 'uint32' },
      { no: 12, name: 'plugins_entry', label: 'opt', type: 'message', ref: 'plugins_entry' },
      { no: 13, name: 'dump_criu_run_id', label: 'opt', type: 'string' },
      { no: 14, name: 'allow_uprobes', label: 'opt', type: 'bool' },
    ],
  },
  pstree_entry: {
    name: 'pstree_entry',
    fields: [
      { no: 1, name: 'pid', label: 'req', type: 'uint32' },
      { no: 2, name: 'ppid', label: 'req', type: 'uint32' },
      { no: 3, name: 'pgid', label: 'req', type: 'uint32' },
      { no: 4, name: 'sid', label: 'req', type: 'uint32' },
      { no: 5, name: 'threads', label: 'rep', type: 'uint32' },
    ],
  },
  dump_stats_entry: {
    name: 'dump_stats_entry',
    fields: [
      { no: 1, name: 'freezing_time', label: 'req', type: 'uint32' },
      { no: 2, name: 'frozen_time', label: 'req', type: 'uint32' },
      { no: 3, name: 'memdump_time', label: 'req', type: 'uint32' },
      { no: 4, name: 'memwrite_time', label: 'req', type: 'uint32' },
      { no: 5, name: 'pages_scanned', label: 'req', type: 'uint64' },
      { no: 6, name: 'pages_skipped_parent', label: 'req', type: 'uint64' },
      { no: 7, name: 'pages_written', label: 'req', type: 'uint64' },
      { no: 8, name: 'irmap_resolve', label: 'opt', type: 'uint32' },
      { no: 9, name: 'pages_lazy', label: 'req', type: 'uint64' },
      { no: 10, name: 'page_pipes', label: 'opt', type: 'uint64' },
      { no: 11, name: 'page_pipe_bufs', label: 'opt', type: 'uint64' },
      { no: 12, name: 'shpages_scanned', label: 'opt', type: 'uint64' },
      { no: 13, name: 'shpages_skipped_parent', label: 'opt', type: 'uint64' },
      { no: 14, name: 'shpages_written', label: 'opt', type: 'uint64' },
    ],
  },
  restore_stats_entry: {
    name: 'restore_stats_entry',
    fields: [
      { no: 1, name: 'pages_compared', label: 'req', type: 'uint64' },
      { no: 2, name: 'pages_skipped_cow', label: 'req', type: 'uint64' },
      { no: 3, name: 'forking_time', label: 'req', type: 'uint32' },
      { no: 4, name: 'restore_time', label: 'req', type: 'uint32' },
      { no: 5, name: 'pages_restored', label: 'opt', type: 'uint64' },
    ],
  },
  stats_entry: {
    name: 'stats_entry',
    fields: [
      { no: 1, name: 'dump', label: 'opt', type: 'message', ref: 'dump_stats_entry' },
      { no: 2, name: 'restore', label: 'opt', type: 'message', ref: 'restore_stats_entry' },
    ],
  },
  cpuinfo_x86_entry: {
    name: 'cpuinfo_x86_entry',
    fields: [
      { no: 1, name: 'vendor_id', label: 'req', type: 'enum', ref: 'vendor' },
      { no: 2, name: 'cpu_family', label: 'req', type: 'uint32' },
      { no: 3, name: 'model', label: 'req', type: 'uint32' },
      { no: 4, name: 'stepping', label: 'req', type: 'uint32' },
      { no: 5, name: 'capability_ver', label: 'req', type: 'uint32' },
      { no: 6, name: 'capability', label: 'rep', type: 'uint32' },
      { no: 7, name: 'model_id', label: 'opt', type: 'string' },
      { no: 8, name: 'xfeatures_mask', label: 'opt', type: 'uint64' },
      { no: 9, name: 'xsave_size', label: 'opt', type: 'uint32' },
      { no: 10, name: 'xsave_size_max', label: 'opt', type: 'uint32' },
    ],
  },
  cpuinfo_ppc64_entry: {
    name: 'cpuinfo_ppc64_entry',
    fields: [
      { no: 1, name: 'endian', label: 'req', type: 'enum', ref: 'endianness' },
      { no: 2, name: 'hwcap', label: 'rep', type: 'uint64' },
    ],
  },
  cpuinfo_s390_entry: {
    name: 'cpuinfo_s390_entry',
    fields: [{ no: 2, name: 'hwcap', label: 'rep', type: 'uint64' }],
  },
  cpuinfo_entry: {
    name: 'cpuinfo_entry',
    fields: [
      { no: 1, name: 'x86_entry', label: 'rep', type: 'message', ref: 'cpuinfo_x86_entry' },
      { no: 2, name: 'ppc64_entry', label: 'rep', type: 'message', ref: 'cpuinfo_ppc64_entry' },
      { no: 3, name: 's390_entry', label: 'rep', type: 'message', ref: 'cpuinfo_s390_entry' },
    ],
  },
  img_streamer_request_entry: {
    name: 'img_streamer_request_entry',
    fields: [{ no: 1, name: 'filename', label: 'req', type: 'string' }],
  },
  img_streamer_reply_entry: {
    name: 'img_streamer_reply_entry',
    fields: [{ no: 1, name: 'exists', label: 'req', type: 'bool' }],
  },
} as const satisfies Record<string, MessageDef>;

export const inventoryEnums = {
  lsmtype: { name: 'lsmtype', values: { NO_LSM: 0, SELINUX: 1, APPARMOR: 2 } },
  vendor: { name: 'vendor', values: { UNKNOWN: 0, INTEL: 1, AMD: 2 } },
  endianness: { name: 'endianness', values: { BIGENDIAN: 0, LITTLEENDIAN: 1 } },
} as const satisfies Record<string, EnumDef>;
