// binfmt_misc formats (binfmt-misc.img): read from a binfmt_misc mount of the tree's mount
// namespace, registered again in the one made at restore. The kernel keeps the formats in the
// superblock (one per user namespace), which goes with the last mount of it: a tree that has
// the only one takes them with it.
import fs from 'node:fs';
import { CriuError, NotSupportedError } from '../../errors.ts';
import type { Message } from '../types.ts';

export type BinfmtEntry = Message<'binfmt_misc_entry'>;

/** The formats registered in the binfmt_misc mount at `dir` (as criu-ts reaches it). */
export function readBinfmt(dir: string): BinfmtEntry[] {
  const out: BinfmtEntry[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (name === 'register' || name === 'status') continue;
    const e: BinfmtEntry = { name, enabled: false, interpreter: '' };
    for (const line of fs.readFileSync(`${dir}/${name}`, 'utf8').split('\n')) {
      if (line === '') continue;
      if (line === 'enabled') e.enabled = true;
      else if (line === 'disabled') continue;
      else if (line.startsWith('interpreter ')) e.interpreter = line.slice(12);
      else if (line.startsWith('flags: ')) e.flags = line.slice(7);
      else if (line.startsWith('offset ')) e.offset = Number(line.slice(7));
      else if (line.startsWith('magic ')) e.magic = line.slice(6);
      else if (line.startsWith('mask ')) e.mask = line.slice(5);
      else if (line.startsWith('extension .')) e.extension = line.slice(11);
      else throw new NotSupportedError(`binfmt_misc format ${name}: "${line}" is not understood`);
    }
    out.push(e);
  }
  return out;
}

/** mountinfo shows magic and mask in hex (616263); register takes each byte as \xHH. */
function escaped(hex: string): string {
  return hex.replace(/(..)/g, '\\x$1');
}

/** The line register takes for `e` (":name:type:offset:magic:mask:interpreter:flags"). */
export function binfmtRegisterLine(e: BinfmtEntry): string {
  const flags = e.flags ?? '';
  if (e.magic !== undefined)
    return `:${e.name}:M:${e.offset ?? 0}:${escaped(e.magic)}:${e.mask ? escaped(e.mask) : ''}:${e.interpreter}:${flags}`;
  if (e.extension !== undefined) return `:${e.name}:E::${e.extension}::${e.interpreter}:${flags}`;
  throw new CriuError(`binfmt-misc.img: format ${e.name} has neither magic nor extension`);
}

/**
 * Register `entries` in the binfmt_misc mount at `dir`, each disabled again if it was. A format
 * there already (the superblock outlived the tree) is left as it is.
 */
export function registerBinfmt(dir: string, entries: BinfmtEntry[]): void {
  for (const e of entries) {
    if (fs.existsSync(`${dir}/${e.name}`)) continue;
    try {
      fs.writeFileSync(`${dir}/register`, binfmtRegisterLine(e));
      if (!e.enabled) fs.writeFileSync(`${dir}/${e.name}`, '0');
    } catch (err) {
      throw new CriuError(`binfmt_misc format ${e.name}: cannot be registered again: ${(err as Error).message}`);
    }
  }
}
