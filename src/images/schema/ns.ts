// Field tables of CRIU's ns, utsns, timens, ipc-desc, ipc-var, ipc-shm, ipc-msg, ipc-sem, userns, pidns, mnt, cgroup, apparmor, autofs, binfmt-misc (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const nsMessages = {
  ns_file_entry: {
    name: 'ns_file_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'ns_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'ns_cflag', label: 'req', type: 'uint32' },
      { no: 4, name: 'flags', label: 'req', type: 'uint32' },
    ],
  },
  utsns_entry: {
    name: 'utsns_entry',
    fields: [
      { no: 1, name: 'nodename', label: 'req', type: 'string' },
      { no: 2, name: 'domainname', label: 'req', type: 'string' },
    ],
  },
  timespec: {
    name: 'timespec',
    fields: [
      { no: 1, name: 'tv_sec', label: 'req', type: 'uint64' },
      { no: 2, name: 'tv_nsec', label: 'req', type: 'uint64' },
    ],
  },
  timens_entry: {
    name: 'timens_entry',
    fields: [
      { no: 1, name: 'monotonic', label: 'req', type: 'message', ref: 'timespec' },
      { no: 2, name: 'boottime', label: 'req', type: 'message', ref: 'timespec' },
    ],
  },
  ipc_desc_entry: {
    name: 'ipc_desc_entry',
    fields: [
      { no: 1, name: 'key', label: 'req', type: 'uint32' },
      { no: 2, name: 'uid', label: 'req', type: 'uint32' },
      { no: 3, name: 'gid', label: 'req', type: 'uint32' },
      { no: 4, name: 'cuid', label: 'req', type: 'uint32' },
      { no: 5, name: 'cgid', label: 'req', type: 'uint32' },
      { no: 6, name: 'mode', label: 'req', type: 'uint32' },
      { no: 7, name: 'id', label: 'req', type: 'uint32' },
    ],
  },
  ipc_var_entry: {
    name: 'ipc_var_entry',
    fields: [
      { no: 1, name: 'sem_ctls', label: 'rep', type: 'uint32' },
      { no: 2, name: 'msg_ctlmax', label: 'req', type: 'uint32' },
      { no: 3, name: 'msg_ctlmnb', label: 'req', type: 'uint32' },
      { no: 4, name: 'msg_ctlmni', label: 'req', type: 'uint32' },
      { no: 5, name: 'auto_msgmni', label: 'req', type: 'uint32' },
      { no: 6, name: 'shm_ctlmax', label: 'req', type: 'uint64' },
      { no: 7, name: 'shm_ctlall', label: 'req', type: 'uint64' },
      { no: 8, name: 'shm_ctlmni', label: 'req', type: 'uint32' },
      { no: 9, name: 'shm_rmid_forced', label: 'req', type: 'uint32' },
      { no: 10, name: 'mq_queues_max', label: 'req', type: 'uint32' },
      { no: 11, name: 'mq_msg_max', label: 'req', type: 'uint32' },
      { no: 12, name: 'mq_msgsize_max', label: 'req', type: 'uint32' },
      { no: 13, name: 'mq_msg_default', label: 'opt', type: 'uint32' },
      { no: 14, name: 'mq_msgsize_default', label: 'opt', type: 'uint32' },
      { no: 15, name: 'msg_next_id', label: 'opt', type: 'uint32' },
      { no: 16, name: 'sem_next_id', label: 'opt', type: 'uint32' },
      { no: 17, name: 'shm_next_id', label: 'opt', type: 'uint32' },
    ],
  },
  ipc_shm_entry: {
    name: 'ipc_shm_entry',
    fields: [
      { no: 1, name: 'desc', label: 'req', type: 'message', ref: 'ipc_desc_entry' },
      { no: 2, name: 'size', label: 'req', type: 'uint64' },
      { no: 3, name: 'in_pagemaps', label: 'opt', type: 'bool' },
      { no: 4, name: 'hugetlb_flag', label: 'opt', type: 'uint32' },
    ],
  },
  ipc_msg: {
    name: 'ipc_msg',
    fields: [
      { no: 1, name: 'mtype', label: 'req', type: 'uint64' },
      { no: 2, name: 'msize', label: 'req', type: 'uint32' },
    ],
  },
  ipc_msg_entry: {
    name: 'ipc_msg_entry',
    fields: [
      { no: 1, name: 'desc', label: 'req', type: 'message', ref: 'ipc_desc_entry' },
      { no: 2, name: 'qbytes', label: 'req', type: 'uint32' },
      { no: 3, name: 'qnum', label: 'req', type: 'uint32' },
    ],
  },
  ipc_sem_entry: {
    name: 'ipc_sem_entry',
    fields: [
      { no: 1, name: 'desc', label: 'req', type: 'message', ref: 'ipc_desc_entry' },
      { no: 2, name: 'nsems', label: 'req', type: 'uint32' },
    ],
  },
  uid_gid_extent: {
    name: 'uid_gid_extent',
    fields: [
      { no: 1, name: 'first', label: 'req', type: 'uint32' },
      { no: 2, name: 'lower_first', label: 'req', type: 'uint32' },
      { no: 3, name: 'count', label: 'req', type: 'uint32' },
    ],
  },
  userns_entry: {
    name: 'userns_entry',
    fields: [
      { no: 1, name: 'uid_map', label: 'rep', type: 'message', ref: 'uid_gid_extent' },
      { no: 2, name: 'gid_map', label: 'rep', type: 'message', ref: 'uid_gid_extent' },
    ],
  },
  pidns_entry: {
    name: 'pidns_entry',
    fields: [{ no: 1, name: 'ext_key', label: 'opt', type: 'string' }],
  },
  mnt_entry: {
    name: 'mnt_entry',
    fields: [
      { no: 1, name: 'fstype', label: 'req', type: 'uint32' },
      { no: 2, name: 'mnt_id', label: 'req', type: 'uint32' },
      { no: 3, name: 'root_dev', label: 'req', type: 'uint32', opts: { dev: true } },
      { no: 4, name: 'parent_mnt_id', label: 'req', type: 'uint32' },
      { no: 5, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 6, name: 'root', label: 'req', type: 'string' },
      { no: 7, name: 'mountpoint', label: 'req', type: 'string' },
      { no: 8, name: 'source', label: 'req', type: 'string' },
      { no: 9, name: 'options', label: 'req', type: 'string' },
      { no: 10, name: 'shared_id', label: 'opt', type: 'uint32' },
      { no: 11, name: 'master_id', label: 'opt', type: 'uint32' },
      { no: 12, name: 'with_plugin', label: 'opt', type: 'bool' },
      { no: 13, name: 'ext_mount', label: 'opt', type: 'bool' },
      { no: 14, name: 'fsname', label: 'opt', type: 'string' },
      { no: 15, name: 'internal_sharing', label: 'opt', type: 'bool' },
      { no: 16, name: 'deleted', label: 'opt', type: 'bool' },
      { no: 17, name: 'sb_flags', label: 'opt', type: 'uint32', opts: { hex: true } },
      { no: 18, name: 'ext_key', label: 'opt', type: 'string' },
    ],
  },
  cgroup_perms: {
    name: 'cgroup_perms',
    fields: [
      { no: 1, name: 'mode', label: 'req', type: 'uint32' },
      { no: 2, name: 'uid', label: 'req', type: 'uint32' },
      { no: 3, name: 'gid', label: 'req', type: 'uint32' },
    ],
  },
  cgroup_prop_entry: {
    name: 'cgroup_prop_entry',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'value', label: 'req', type: 'string' },
      { no: 3, name: 'perms', label: 'opt', type: 'message', ref: 'cgroup_perms' },
    ],
  },
  cgroup_dir_entry: {
    name: 'cgroup_dir_entry',
    fields: [
      { no: 1, name: 'dir_name', label: 'req', type: 'string' },
      { no: 2, name: 'children', label: 'rep', type: 'message', ref: 'cgroup_dir_entry' },
      { no: 3, name: 'properties', label: 'rep', type: 'message', ref: 'cgroup_prop_entry' },
      { no: 4, name: 'dir_perms', label: 'opt', type: 'message', ref: 'cgroup_perms' },
    ],
  },
  cg_controller_entry: {
    name: 'cg_controller_entry',
    fields: [
      { no: 1, name: 'cnames', label: 'rep', type: 'string' },
      { no: 2, name: 'dirs', label: 'rep', type: 'message', ref: 'cgroup_dir_entry' },
      { no: 3, name: 'is_threaded', label: 'opt', type: 'bool' },
    ],
  },
  cg_member_entry: {
    name: 'cg_member_entry',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'path', label: 'req', type: 'string' },
      { no: 3, name: 'cgns_prefix', label: 'opt', type: 'uint32' },
    ],
  },
  cg_set_entry: {
    name: 'cg_set_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'ctls', label: 'rep', type: 'message', ref: 'cg_member_entry' },
    ],
  },
  cgroup_entry: {
    name: 'cgroup_entry',
    fields: [
      { no: 1, name: 'sets', label: 'rep', type: 'message', ref: 'cg_set_entry' },
      { no: 2, name: 'controllers', label: 'rep', type: 'message', ref: 'cg_controller_entry' },
    ],
  },
  aa_policy: {
    name: 'aa_policy',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'blob', label: 'req', type: 'bytes' },
    ],
  },
  aa_namespace: {
    name: 'aa_namespace',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'policies', label: 'rep', type: 'message', ref: 'aa_policy' },
      { no: 3, name: 'namespaces', label: 'rep', type: 'message', ref: 'aa_namespace' },
    ],
  },
  apparmor_entry: {
    name: 'apparmor_entry',
    fields: [{ no: 1, name: 'namespaces', label: 'rep', type: 'message', ref: 'aa_namespace' }],
  },
  autofs_entry: {
    name: 'autofs_entry',
    fields: [
      { no: 1, name: 'fd', label: 'req', type: 'int32' },
      { no: 2, name: 'pgrp', label: 'req', type: 'int32' },
      { no: 3, name: 'timeout', label: 'req', type: 'int32' },
      { no: 4, name: 'minproto', label: 'req', type: 'int32' },
      { no: 5, name: 'maxproto', label: 'req', type: 'int32' },
      { no: 6, name: 'mode', label: 'req', type: 'int32' },
      { no: 7, name: 'uid', label: 'opt', type: 'int32' },
      { no: 8, name: 'gid', label: 'opt', type: 'int32' },
      { no: 9, name: 'read_fd', label: 'opt', type: 'int32' },
    ],
  },
  binfmt_misc_entry: {
    name: 'binfmt_misc_entry',
    fields: [
      { no: 1, name: 'name', label: 'req', type: 'string' },
      { no: 2, name: 'enabled', label: 'req', type: 'bool' },
      { no: 3, name: 'interpreter', label: 'req', type: 'string' },
      { no: 4, name: 'flags', label: 'opt', type: 'string' },
      { no: 5, name: 'extension', label: 'opt', type: 'string' },
      { no: 6, name: 'magic', label: 'opt', type: 'string' },
      { no: 7, name: 'mask', label: 'opt', type: 'string' },
      { no: 8, name: 'offset', label: 'opt', type: 'int32' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const nsEnums = {
  fstype: {
    name: 'fstype',
    values: {
      UNSUPPORTED: 0,
      PROC: 1,
      SYSFS: 2,
      DEVTMPFS: 3,
      BINFMT_MISC: 4,
      TMPFS: 5,
      DEVPTS: 6,
      SIMFS: 7,
      PSTORE: 8,
      SECURITYFS: 9,
      FUSECTL: 10,
      DEBUGFS: 11,
      CGROUP: 12,
      AUFS: 13,
      MQUEUE: 14,
      FUSE: 15,
      AUTO: 16,
      OVERLAYFS: 17,
      AUTOFS: 18,
      TRACEFS: 19,
      CGROUP2: 23,
    },
  },
} as const satisfies Record<string, EnumDef>;
