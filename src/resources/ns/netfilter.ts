// Netfilter of a network namespace the tree owns, kept as CRIU keeps it: the raw output of the
// legacy iptables-save / ip6tables-save (iptables-N.img, ip6tables-N.img; an nft-based
// iptables is skipped, its rules are nftables' own) and of `nft list ruleset` (nftables-N.img),
// fed back on restore to the legacy iptables-restore -w and to `nft -f` in the new namespace.
import { spawnSync } from 'node:child_process';
import { CriuError } from '../../errors.ts';
import { IMG } from '../../images/index.ts';
import type { Logger } from '../types.ts';
import type { NsImagesIn, NsImagesOut } from './types.ts';
import { hasIpv6 } from './netconf.ts';
import { failure, runInNet, type NetAt } from './nstool.ts';

type Family = 'iptables' | 'ip6tables';
const IMG_OF = { iptables: IMG.IPTABLES, ip6tables: IMG.IP6TABLES } as const;

const legacyCache = new Map<string, string | undefined>();

/**
 * The legacy (x_tables) tool of a family, as CRIU picks it: `iptables-save` unless it is the
 * nf_tables one, else `iptables-legacy-save`; none when neither is legacy.
 */
function legacyTool(family: Family, restore: boolean): string | undefined {
  const op = restore ? 'restore' : 'save';
  const key = `${family}-${op}`;
  if (legacyCache.has(key)) return legacyCache.get(key);
  let found: string | undefined;
  for (const cmd of [`${family}-${op}`, `${family}-legacy-${op}`]) {
    const r = spawnSync(cmd, ['-V'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
    if (r.status === 0 && !/nf_tables/.test(r.stdout + r.stderr)) {
      found = cmd;
      break;
    }
  }
  legacyCache.set(key, found);
  return found;
}

const families = (): Family[] => (hasIpv6() ? ['iptables', 'ip6tables'] : ['iptables']);

/** Is `nft` here? Without it an nftables ruleset can be neither read nor written. */
const nftHere = (): boolean => spawnSync('nft', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Why the netfilter state of the namespace of `pid` cannot be saved: nftables rules (an
 * nft-based iptables' too) on a machine without `nft`. undefined: it can.
 */
export function netfilterRefusal(pid: number): string | undefined {
  if (nftHere()) return xtablesRule(pid);
  for (const family of families()) {
    const out = runInNet(pid, `${family}-nft-save`, []);
    const rule = /^-A .*$/m.exec(out.status === 0 ? out.stdout.toString() : '');
    if (rule) return `the nftables-based ${family} rule "${rule[0]}" in its network namespace: nft is not installed to save it`;
  }
  return undefined;
}

/**
 * A rule of an nft-based iptables that uses an xtables extension: `nft list ruleset` cannot
 * write it back (it lists `xt match recent`, or nothing for a comment), so it would be lost.
 */
function xtablesRule(pid: number): string | undefined {
  const r = runInNet(pid, 'nft', ['--debug=netlink', 'list', 'ruleset']);
  if (r.status !== 0) return undefined;
  let rule = '';
  for (const line of r.stdout.toString().split('\n')) {
    if (/^\S/.test(line)) rule = line;
    const xt = /^\s+\[ (match|target) name (\S+)/.exec(line);
    if (xt)
      return `the rule ${rule.replace(/ \d+( \d+)?$/, '')} (handle ${/ (\d+)( \d+)?$/.exec(rule)?.[1]}) in its network namespace uses the xtables ${xt[1]} ${xt[2]}, which nft cannot save`;
  }
  return undefined;
}

/** Save the namespace's rulesets to its images. */
export function dumpNetfilter(pid: number, id: number, imgs: NsImagesOut, log: Logger): void {
  const saved: string[] = [];
  for (const family of families()) {
    const tool = legacyTool(family, false);
    if (!tool) continue;
    const r = runInNet(pid, tool, []);
    const why = failure(r);
    if (why) throw new CriuError(`${tool} in the network namespace of ${pid} failed: ${why}`);
    imgs.raw(IMG_OF[family], r.stdout, id);
    saved.push(`${family}-${id}.img`);
  }
  if (nftHere()) {
    const r = runInNet(pid, 'nft', ['list', 'ruleset']);
    const why = failure(r);
    if (why) throw new CriuError(`nft list ruleset in the network namespace of ${pid} failed: ${why}`);
    imgs.raw(IMG.NFTABLES, r.stdout, id);
    saved.push(`nftables-${id}.img`);
  }
  log.info(`network namespace ${id}: netfilter to ${saved.join(', ') || 'nothing (no legacy iptables, no nft)'}`);
}

/** A raw image with something in it (CRIU's empty_image: none, or no bytes). */
const nonEmpty = (b: Buffer | undefined): b is Buffer => b !== undefined && b.length > 0;

/** Why the images' rulesets cannot be restored on this machine (asked before any process exists). */
export function netfilterRestoreRefusal(id: number, imgs: NsImagesIn): string | undefined {
  for (const family of ['iptables', 'ip6tables'] as const)
    if (nonEmpty(imgs.raw(IMG_OF[family], id)) && !legacyTool(family, true))
      return `${family}-${id}.img: no legacy ${family}-restore here to restore it with`;
  if (nonEmpty(imgs.raw(IMG.NFTABLES, id)) && !nftHere()) return `nftables-${id}.img: nft is not installed to restore it with`;
  return undefined;
}

/**
 * Put the saved rulesets back in the new namespace of `pid`, iptables first (CRIU's order).
 * `replace`: the namespace holds the network lock alone (put in ahead of its sockets), which
 * the saved nftables ruleset, the lock in it, replaces in one transaction: never unlocked.
 */
export function restoreNetfilter(pid: NetAt, id: number, imgs: NsImagesIn, log: Logger, replace = false): void {
  const done: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    const data = imgs.raw(IMG_OF[family], id);
    if (!nonEmpty(data)) continue;
    const tool = legacyTool(family, true);
    const why = tool ? failure(runInNet(pid, tool, ['-w'], data)) : `no legacy ${family}-restore here`;
    if (why) throw new CriuError(`${family}-${id}.img: cannot restore its rules: ${why}`);
    done.push(`${family}-${id}.img`);
  }
  const nft = imgs.raw(IMG.NFTABLES, id);
  if (nonEmpty(nft)) {
    const why = failure(runInNet(pid, 'nft', ['-f', '-'], replace ? Buffer.concat([Buffer.from('flush ruleset\n'), nft]) : nft));
    if (why) throw new CriuError(`nftables-${id}.img: cannot restore its ruleset: ${why}`);
    done.push(`nftables-${id}.img`);
  }
  if (done.length) log.info(`network namespace ${id}: netfilter from ${done.join(', ')}`);
}
