// The sysctls of a network namespace CRIU keeps (netns-N.img, and each device's in
// netdev-N.img): ipv4 and ipv6 conf of all, default and each device, in CRIU's order of
// names, net.unix.max_dgram_qlen and net.ipv4.ping_group_range. Net sysctl files belong to
// the namespace of the thread that opens them: the caller has joined it.
import fs from 'node:fs';
import { CriuError } from '../../errors.ts';
import type { MessageInput, Message } from '../../images/index.ts';
import type { Logger } from '../types.ts';

const CTL_STR = 5,
  CTL_32 = 6;

const DEVCONFS4 = [
  'accept_local',
  'accept_redirects',
  'accept_source_route',
  'arp_accept',
  'arp_announce',
  'arp_filter',
  'arp_ignore',
  'arp_notify',
  'bootp_relay',
  'disable_policy',
  'disable_xfrm',
  'force_igmp_version',
  'forwarding',
  'igmpv2_unsolicited_report_interval',
  'igmpv3_unsolicited_report_interval',
  'log_martians',
  'medium_id',
  'promote_secondaries',
  'proxy_arp',
  'proxy_arp_pvlan',
  'route_localnet',
  'rp_filter',
  'secure_redirects',
  'send_redirects',
  'shared_media',
  'src_valid_mark',
  'tag',
  'ignore_routes_with_linkdown',
  'drop_gratuitous_arp',
  'drop_unicast_in_l2_multicast',
];

const DEVCONFS6 = [
  'accept_dad',
  'accept_ra',
  'accept_ra_defrtr',
  'accept_ra_from_local',
  'accept_ra_min_hop_limit',
  'accept_ra_mtu',
  'accept_ra_pinfo',
  'accept_ra_rt_info_max_plen',
  'accept_ra_rtr_pref',
  'accept_redirects',
  'accept_source_route',
  'autoconf',
  'dad_transmits',
  'disable_ipv6',
  'drop_unicast_in_l2_multicast',
  'drop_unsolicited_na',
  'force_mld_version',
  'force_tllao',
  'forwarding',
  'hop_limit',
  'ignore_routes_with_linkdown',
  'keep_addr_on_down',
  'max_addresses',
  'max_desync_factor',
  'mldv1_unsolicited_report_interval',
  'mldv2_unsolicited_report_interval',
  'mtu',
  'ndisc_notify',
  'optimistic_dad',
  'proxy_ndp',
  'regen_max_retry',
  'router_probe_interval',
  'router_solicitation_delay',
  'router_solicitation_interval',
  'router_solicitations',
  'stable_secret',
  'suppress_frag_ndisc',
  'temp_prefered_lft',
  'temp_valid_lft',
  'use_oif_addrs_only',
  'use_optimistic',
  'use_tempaddr',
];

type Entry = MessageInput<'sysctl_entry'>;
type Proto = 'ipv4' | 'ipv6';

const names = (proto: Proto) => (proto === 'ipv4' ? DEVCONFS4 : DEVCONFS6);
const isStr = (proto: Proto, name: string) => proto === 'ipv6' && name === 'stable_secret';
export const hasIpv6 = (): boolean => fs.existsSync('/proc/sys/net/ipv6');

function read(path: string, str: boolean): Entry {
  try {
    const v = fs.readFileSync(path, 'utf8').replace(/\n$/, '');
    return str ? { type: CTL_STR, sarg: v } : { type: CTL_32, iarg: Number.parseInt(v, 10) };
  } catch {
    // Absent on this kernel, or stable_secret never set (EIO): kept without a value.
    return { type: str ? CTL_STR : CTL_32 };
  }
}

/** The conf of `tgt` (all, default or a device) in CRIU's order. */
export function readConf(proto: Proto, tgt: string): Entry[] {
  return names(proto).map((n) => read(`/proc/sys/net/${proto}/conf/${tgt}/${n}`, isStr(proto, n)));
}

function write(path: string, e: Message<'sysctl_entry'>, log: Logger): void {
  const v = e.type === CTL_STR ? e.sarg : e.iarg;
  if (v === undefined) return;
  try {
    fs.writeFileSync(path, String(v));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') log.warn(`${path}: not on this kernel, not restored`);
    else throw new CriuError(`cannot write ${v} to ${path}: ${(err as Error).message}`);
  }
}

/**
 * Write the conf of `tgt` back; values equal to `def` (the namespace's default conf) are
 * left (but mtu), and accept_redirects goes last, after forwarding, which changes it.
 */
export function writeConf(
  proto: Proto,
  tgt: string,
  conf: readonly Message<'sysctl_entry'>[],
  log: Logger,
  def?: readonly Message<'sysctl_entry'>[],
): void {
  const list = names(proto);
  let last: number | undefined;
  conf.forEach((e, i) => {
    const name = list[i];
    if (name === undefined) return;
    const d = def?.[i];
    if (d && name !== 'mtu' && d.type === e.type && d.iarg === e.iarg && d.sarg === e.sarg) return;
    if (name === 'accept_redirects') last = i;
    else write(`/proc/sys/net/${proto}/conf/${tgt}/${name}`, e, log);
  });
  if (last !== undefined) write(`/proc/sys/net/${proto}/conf/${tgt}/accept_redirects`, conf[last], log);
}

const UNIX = '/proc/sys/net/unix/max_dgram_qlen',
  PING = '/proc/sys/net/ipv4/ping_group_range';

/** netns-N.img: the namespace's all and default conf and its other sysctls. */
export function readNetnsConf(): MessageInput<'netns_entry'> {
  const v6 = hasIpv6();
  return {
    def_conf4: readConf('ipv4', 'default'),
    all_conf4: readConf('ipv4', 'all'),
    ...(v6 ? { def_conf6: readConf('ipv6', 'default'), all_conf6: readConf('ipv6', 'all') } : {}),
    unix_conf: [read(UNIX, false)],
    ipv4_sysctl: [read(PING, true)],
  };
}

/** CRIU's order: all, then default, for ipv4 and ipv6; then unix and ipv4 sysctls. */
export function writeNetnsConf(e: Message<'netns_entry'>, log: Logger): void {
  writeConf('ipv4', 'all', e.all_conf4, log);
  writeConf('ipv4', 'default', e.def_conf4, log);
  if (hasIpv6()) {
    writeConf('ipv6', 'all', e.all_conf6, log);
    writeConf('ipv6', 'default', e.def_conf6, log);
  }
  if (e.unix_conf[0]) write(UNIX, e.unix_conf[0], log);
  if (e.ipv4_sysctl[0]) write(PING, e.ipv4_sysctl[0], log);
}
