/**
 * ICMP echo ("ping") sockets need the caller's group in net.ipv4.ping_group_range (both
 * IPv4 and IPv6 use it), for the workload and for the restore that makes them again.
 * allowPing() opens it to every group and returns what puts the old range back.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const RANGE = '/proc/sys/net/ipv4/ping_group_range';

export function allowPing(): () => void {
  const old = readFileSync(RANGE, 'utf8').trim();
  writeFileSync(RANGE, '0 2147483647');
  return () => writeFileSync(RANGE, old.replace(/\s+/, ' '));
}
