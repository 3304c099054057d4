// Strings in CRIU images are C strings (paths!) that need not be UTF-8. Invalid bytes are kept
// as U+DC80..U+DCFF (Python's surrogateescape), so decode -> encode gives the same bytes.
import { isUtf8 } from 'node:buffer';
/** Strict UTF-8 decode that maps each invalid byte to U+DC00+byte (like Python's surrogateescape). */
function decodeEscaped(buf: Buffer, s: number, e: number): string {
  const cps: number[] = [];
  const cont = (i: number) => i < e && (buf[i] & 0xc0) === 0x80;
  let i = s;
  while (i < e) {
    const b0 = buf[i];
    if (b0 < 0x80) {
      cps.push(b0);
      i++;
    } else if (b0 >= 0xc2 && b0 <= 0xdf && cont(i + 1)) {
      cps.push(((b0 & 0x1f) << 6) | (buf[i + 1] & 0x3f));
      i += 2;
    } else if (
      b0 >= 0xe0 &&
      b0 <= 0xef &&
      cont(i + 1) &&
      cont(i + 2) &&
      !(b0 === 0xe0 && buf[i + 1] < 0xa0) &&
      !(b0 === 0xed && buf[i + 1] >= 0xa0)
    ) {
      cps.push(((b0 & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f));
      i += 3;
    } else if (
      b0 >= 0xf0 &&
      b0 <= 0xf4 &&
      cont(i + 1) &&
      cont(i + 2) &&
      cont(i + 3) &&
      !(b0 === 0xf0 && buf[i + 1] < 0x90) &&
      !(b0 === 0xf4 && buf[i + 1] >= 0x90)
    ) {
      cps.push(((b0 & 0x07) << 18) | ((buf[i + 1] & 0x3f) << 12) | ((buf[i + 2] & 0x3f) << 6) | (buf[i + 3] & 0x3f));
      i += 4;
    } else {
      cps.push(0xdc00 + b0);
      i++;
    }
  }
  let out = '';
  for (let k = 0; k < cps.length; k += 4096) out += String.fromCodePoint(...cps.slice(k, k + 4096));
  return out;
}

export function decodeString(buf: Buffer, s: number, e: number): string {
  if (isUtf8(buf.subarray(s, e))) return buf.toString('utf8', s, e);
  return decodeEscaped(buf, s, e);
}

/** Raw bytes of a string value, undoing the escape applied to non-UTF-8 input (e.g. file paths). */
export function stringBytes(s: string): Buffer {
  if (s.isWellFormed()) return Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      const cp = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    } else if (c >= 0xdc80 && c <= 0xdcff) out.push(c - 0xdc00);
    else if (c >= 0xd800 && c <= 0xdfff) out.push(0xef, 0xbf, 0xbd);
    else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Buffer.from(out);
}
