// /proc/PID/auxv: (type, value) pairs of native words, terminated by AT_NULL.
// x86_64 and aarch64 are little-endian with 64-bit words.

import { ProcParseError } from './errors.ts';

export const AT_NULL = 0;
export const AT_PHDR = 3;
export const AT_PHENT = 4;
export const AT_PHNUM = 5;
export const AT_PAGESZ = 6;
export const AT_BASE = 7;
export const AT_ENTRY = 9;
export const AT_UID = 11;
export const AT_HWCAP = 16;
export const AT_CLKTCK = 17;
export const AT_SECURE = 23;
export const AT_RANDOM = 25;
export const AT_HWCAP2 = 26;
export const AT_EXECFN = 31;
export const AT_SYSINFO_EHDR = 33;
export const AT_MINSIGSTKSZ = 51;

/**
 * Words of the auxiliary vector up to and including the AT_NULL pair (CRIU stores mm.mm_saved_auxv this way).
 * Throws when the buffer has a partial pair; a vector without AT_NULL is returned whole.
 */
export function parseAuxv(buf: Buffer): bigint[] {
  if (buf.length % 16 !== 0) throw new ProcParseError('auxv', `length ${buf.length} is not a multiple of 16`);
  const words: bigint[] = [];
  for (let off = 0; off < buf.length; off += 16) {
    const type = buf.readBigUInt64LE(off);
    words.push(type, buf.readBigUInt64LE(off + 8));
    if (type === 0n) break;
  }
  return words;
}

/** Value of the first entry of `type`, or undefined. */
export function auxvGet(words: readonly bigint[], type: number | bigint): bigint | undefined {
  const t = BigInt(type);
  for (let i = 0; i + 1 < words.length; i += 2) {
    if (words[i] === t) return words[i + 1];
    if (words[i] === 0n) break;
  }
  return undefined;
}
