// Text forms crit uses for binary data and numbers: base64.encodebytes, quoted-printable
// (binascii.b2a_qp / a2b_qp), int(text, 0) and the human_readable sizes of `show --nopl`.

/** base64 in lines of 76 characters, each ending in "\n" (Python's base64.encodebytes). */
export function base64Lines(data: Uint8Array): string {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let out = '';
  for (let i = 0; i < buf.length; i += 57) out += buf.toString('base64', i, Math.min(i + 57, buf.length)) + '\n';
  return out;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes base64 text, ignoring whitespace (line breaks); throws on anything else that is wrong. */
export function fromBase64(text: string): Buffer {
  const s = text.replace(/\s+/g, '');
  if (!B64.test(s) || s.length % 4 !== 0) throw new Error('not valid base64');
  return Buffer.from(s, 'base64');
}

const MAXLINE = 76;
const HEXD = '0123456789ABCDEF';

function mustQuote(d: Uint8Array, i: number, lineLen: number, textMode: boolean): boolean {
  const c = d[i];
  const last = i + 1 === d.length;
  if (c > 126 || c === 0x3d) return true;
  // a lone "." on a line would end an SMTP message
  if (c === 0x2e && lineLen === 0 && (last || d[i + 1] === 0x0a || d[i + 1] === 0x0d || d[i + 1] === 0)) return true;
  if (!textMode && (c === 0x0d || c === 0x0a)) return true;
  if ((c === 0x09 || c === 0x20) && last) return true;
  return c < 33 && c !== 0x0d && c !== 0x0a && c !== 0x09 && c !== 0x20;
}

/** binascii.b2a_qp(data) with quotetabs off and header off; textMode=false also quotes CR and LF. */
function b2aQp(d: Uint8Array, textMode: boolean): string {
  const nl = d.indexOf(0x0a);
  const crlf = nl > 0 && d[nl - 1] === 0x0d;
  const eol = crlf ? '\r\n' : '\n';
  const out: string[] = [];
  let lineLen = 0;
  let i = 0;
  while (i < d.length) {
    const c = d[i];
    if (mustQuote(d, i, lineLen, textMode)) {
      if (lineLen + 3 >= MAXLINE) {
        out.push('=' + eol);
        lineLen = 0;
      }
      out.push('=' + HEXD[c >> 4] + HEXD[c & 15]);
      lineLen += 3;
      i++;
    } else if (textMode && (c === 0x0a || (c === 0x0d && i + 1 < d.length && d[i + 1] === 0x0a))) {
      lineLen = 0;
      // white space at the end of a line is quoted so that mail transports cannot strip it
      const prev = out.length ? out[out.length - 1] : '';
      if (prev === ' ' || prev === '\t') out[out.length - 1] = '=' + (prev === ' ' ? '20' : '09');
      out.push(eol);
      i += c === 0x0d ? 2 : 1;
    } else {
      if (i + 1 !== d.length && d[i + 1] !== 0x0a && lineLen + 1 >= MAXLINE) {
        out.push('=' + eol);
        lineLen = 0;
      }
      lineLen++;
      out.push(String.fromCharCode(c));
      i++;
    }
  }
  return out.join('');
}

/** binascii.a2b_qp(text): "=XX" escapes and "=\n" soft line breaks; anything else is literal. */
export function fromQuotedPrintable(text: string): Buffer {
  const out: number[] = [];
  const isHex = (ch: string | undefined) => ch !== undefined && /^[0-9A-Fa-f]$/.test(ch);
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new Error('quoted-printable text must be ASCII');
    if (text[i] !== '=') {
      out.push(c);
      i++;
      continue;
    }
    i++;
    if (i >= text.length) break;
    if (text[i] === '\n' || text[i] === '\r') {
      while (i < text.length && text[i] !== '\n') i++;
      if (i < text.length) i++;
    } else if (text[i] === '=') {
      out.push(0x3d);
      i++;
    } else if (i + 1 < text.length && isHex(text[i]) && isHex(text[i + 1])) {
      out.push(parseInt(text.slice(i, i + 2), 16));
      i += 2;
    } else {
      out.push(0x3d);
    }
  }
  return Buffer.from(out);
}

/**
 * crit's quopri.encodestring for unix socket names. Where Python's text mode would lose bytes
 * (CR/LF line ends it normalises), CR and LF are quoted instead so the name survives a round trip.
 */
export function toQuotedPrintable(data: Uint8Array): string {
  const text = b2aQp(data, true);
  if (data.indexOf(0x0a) < 0 && data.indexOf(0x0d) < 0) return text;
  return fromQuotedPrintable(text).equals(data) ? text : b2aQp(data, false);
}

/** Python's int(text, 0): optional sign, 0x/0o/0b prefixes, underscores between digits. */
export function parsePyInt(text: string): bigint | undefined {
  const m = /^\s*([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?0)*|[1-9](?:_?\d)*)\s*$/.exec(text);
  if (!m) return undefined;
  const body = m[2].replace(/_/g, '');
  const v = /^0[oO]/.test(body) ? BigInt('0o' + body.slice(2)) : BigInt(body);
  return m[1] === '-' ? -v : v;
}

/** crit's human_readable() size for `show --nopl`: "10B", "1.5KB"; %.1f rounds half to even. */
export function humanReadable(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z'];
  let div = 1n;
  const n = BigInt(bytes);
  for (const unit of units) {
    if (n < div * 1024n) {
      if (n % div === 0n) return `${n / div}${unit}B`;
      // tenths, rounded half to even on the exact value
      const q = (n * 10n) / div;
      const r = (n * 10n) % div;
      const t = r * 2n > div || (r * 2n === div && q % 2n === 1n) ? q + 1n : q;
      return `${t / 10n}.${t % 10n}${unit}B`;
    }
    div *= 1024n;
  }
  const t = (n * 10n) / div;
  return `${t / 10n}.${t % 10n}YB`;
}
