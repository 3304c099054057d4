// Field tables of CRIU's netdev, sysctl, macvlan, sit, tun (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const netMessages = {
  net_device_entry: {
    name: 'net_device_entry',
    fields: [
      { no: 1, name: 'type', label: 'req', type: 'enum', ref: 'nd_type' },
      { no: 2, name: 'ifindex', label: 'req', type: 'uint32' },
      { no: 3, name: 'mtu', label: 'req', type: 'uint32' },
      { no: 4, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 5, name: 'name', label: 'req', type: 'string' },
      { no: 6, name: 'tun', label: 'opt', type: 'message', ref: 'tun_link_entry' },
      { no: 7, name: 'address', label: 'opt', type: 'bytes' },
      { no: 8, name: 'conf', label: 'rep', type: 'int32' },
      { no: 9, name: 'conf4', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 10, name: 'conf6', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 11, name: 'macvlan', label: 'opt', type: 'message', ref: 'macvlan_link_entry' },
      { no: 12, name: 'peer_ifindex', label: 'opt', type: 'uint32' },
      { no: 13, name: 'peer_nsid', label: 'opt', type: 'uint32' },
      { no: 14, name: 'master', label: 'opt', type: 'uint32' },
      { no: 15, name: 'sit', label: 'opt', type: 'message', ref: 'sit_entry' },
    ],
  },
  netns_id: {
    name: 'netns_id',
    fields: [
      { no: 1, name: 'target_ns_id', label: 'req', type: 'uint32' },
      { no: 2, name: 'netnsid_value', label: 'req', type: 'int32' },
    ],
  },
  netns_entry: {
    name: 'netns_entry',
    fields: [
      { no: 1, name: 'def_conf', label: 'rep', type: 'int32' },
      { no: 2, name: 'all_conf', label: 'rep', type: 'int32' },
      { no: 3, name: 'def_conf4', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 4, name: 'all_conf4', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 5, name: 'def_conf6', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 6, name: 'all_conf6', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 7, name: 'nsids', label: 'rep', type: 'message', ref: 'netns_id' },
      { no: 8, name: 'ext_key', label: 'opt', type: 'string' },
      { no: 9, name: 'unix_conf', label: 'rep', type: 'message', ref: 'sysctl_entry' },
      { no: 10, name: 'ipv4_sysctl', label: 'rep', type: 'message', ref: 'sysctl_entry' },
    ],
  },
  sysctl_entry: {
    name: 'sysctl_entry',
    fields: [
      { no: 1, name: 'type', label: 'req', type: 'enum', ref: 'SysctlType' },
      { no: 2, name: 'iarg', label: 'opt', type: 'int32' },
      { no: 3, name: 'sarg', label: 'opt', type: 'string' },
    ],
  },
  macvlan_link_entry: {
    name: 'macvlan_link_entry',
    fields: [
      { no: 1, name: 'mode', label: 'req', type: 'uint32' },
      { no: 2, name: 'flags', label: 'opt', type: 'uint32' },
    ],
  },
  sit_entry: {
    name: 'sit_entry',
    fields: [
      { no: 1, name: 'link', label: 'opt', type: 'uint32' },
      { no: 2, name: 'local', label: 'rep', type: 'uint32', opts: { ipadd: true } },
      { no: 3, name: 'remote', label: 'rep', type: 'uint32', opts: { ipadd: true } },
      { no: 4, name: 'ttl', label: 'opt', type: 'uint32' },
      { no: 5, name: 'tos', label: 'opt', type: 'uint32' },
      { no: 6, name: 'pmtudisc', label: 'opt', type: 'bool' },
      { no: 7, name: 'proto', label: 'opt', type: 'uint32' },
      { no: 8, name: 'flags', label: 'opt', type: 'uint32' },
      { no: 9, name: 'encap_type', label: 'opt', type: 'uint32' },
      { no: 10, name: 'encap_flags', label: 'opt', type: 'uint32' },
      { no: 11, name: 'encap_sport', label: 'opt', type: 'uint32' },
      { no: 12, name: 'encap_dport', label: 'opt', type: 'uint32' },
      { no: 13, name: 'rd_prefixlen', label: 'opt', type: 'uint32' },
      { no: 14, name: 'rd_prefix', label: 'rep', type: 'uint32', opts: { ipadd: true } },
      { no: 15, name: 'relay_prefixlen', label: 'opt', type: 'uint32' },
      { no: 16, name: 'relay_prefix', label: 'rep', type: 'uint32', opts: { ipadd: true } },
    ],
  },
  tunfile_entry: {
    name: 'tunfile_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint32' },
      { no: 2, name: 'netdev', label: 'opt', type: 'string' },
      { no: 3, name: 'detached', label: 'opt', type: 'bool' },
      { no: 4, name: 'ns_id', label: 'opt', type: 'uint32' },
    ],
  },
  tun_link_entry: {
    name: 'tun_link_entry',
    fields: [
      { no: 1, name: 'flags', label: 'req', type: 'uint32', opts: { hex: true } },
      { no: 2, name: 'owner', label: 'req', type: 'int32' },
      { no: 3, name: 'group', label: 'req', type: 'int32' },
      { no: 4, name: 'vnethdr', label: 'req', type: 'uint32' },
      { no: 5, name: 'sndbuf', label: 'req', type: 'uint32' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const netEnums = {
  nd_type: { name: 'nd_type', values: { LOOPBACK: 1, VETH: 2, TUN: 3, EXTLINK: 4, VENET: 5, BRIDGE: 6, MACVLAN: 7, SIT: 8 } },
  SysctlType: { name: 'SysctlType', values: { CTL_STR: 5, CTL_32: 6 } },
} as const satisfies Record<string, EnumDef>;
