// JSON as crit writes it: Python's json.dump with ensure_ascii, ", "/": " separators, or indent=4.
// Text is produced by hand so that 64-bit integers keep every digit (bigint) and the output is
// the same bytes crit would print, not just the same document.

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const SHORT: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** A JSON string literal with everything outside printable ASCII escaped as \uXXXX (UTF-16 units). */
export function quote(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && ch !== '"' && ch !== '\\') out += ch;
    else out += SHORT[ch] ?? `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return out + '"';
}

/** Python's repr() of a float; crit never emits floats from CRIU's schema, but parsed JSON may hold them. */
function floatRepr(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  if (n === 0) return Object.is(n, -0) ? '-0.0' : '0.0';
  // shortest round-trip digits, then Python's choice between fixed and exponent notation
  const [mant, expText] = n.toExponential().split('e');
  const exp = Number(expText);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp < 0) {
    body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    body = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  } else {
    body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${body}` : body;
}

// field names recur in every entry
const keyCache = new Map<string, string>();
function quoteKey(k: string): string {
  let q = keyCache.get(k);
  if (q === undefined) {
    q = quote(k);
    if (keyCache.size < 10_000) keyCache.set(k, q);
  }
  return q;
}

/** The text of v (compact: Python's default separators; pretty: indent=4, starting at `level`). */
export function toJson(v: JsonValue, pretty = false, level = 0): string {
  switch (typeof v) {
    case 'number':
      // integers as JSON.stringify would write them (beyond 1e21 only floats come from parsing)
      return Number.isInteger(v) && Math.abs(v) < 1e21 ? String(v) : floatRepr(v);
    case 'string':
      return quote(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (v === null) return 'null';
  const pad = pretty ? '\n' + '    '.repeat(level + 1) : '';
  const sep = pretty ? ',' + pad : ', ';
  let out: string;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    out = '[' + pad;
    for (let i = 0; i < v.length; i++) out += (i ? sep : '') + toJson(v[i], pretty, level + 1);
    return out + (pretty ? '\n' + '    '.repeat(level) + ']' : ']');
  }
  const o = v as JsonObject;
  let first = true;
  out = '{' + pad;
  for (const k in o) {
    out += (first ? '' : sep) + quoteKey(k) + ': ' + toJson(o[k], pretty, level + 1);
    first = false;
  }
  if (first) return '{}';
  return out + (pretty ? '\n' + '    '.repeat(level) + '}' : '}');
}

// Integer literals too long to be exact as doubles (digits inside strings are told apart below).
const LONG_INT = /(?<![\w.+-])-?\d{16,}(?![\d.eE])/g;

/** The text with every long integer literal outside strings turned into a string "<tag><digits>". */
function tagLongInts(text: string, tag: string): string | undefined {
  let out = '';
  let last = 0;
  let pos = 0;
  let inString = false;
  LONG_INT.lastIndex = 0;
  for (let m = LONG_INT.exec(text); m; m = LONG_INT.exec(text)) {
    // follow the quotes up to the match to know whether it is inside a string
    for (let q = text.indexOf('"', pos); q !== -1 && q < m.index; q = text.indexOf('"', q + 1)) {
      let bs = 0;
      while (text.charCodeAt(q - 1 - bs) === 0x5c) bs++;
      if (bs % 2 === 0) inString = !inString;
    }
    pos = m.index;
    if (inString) continue;
    out += `${text.slice(last, m.index)}"${tag}${m[0]}"`;
    last = m.index + m[0].length;
  }
  return last === 0 ? undefined : out + text.slice(last);
}

function restore(v: JsonValue, tag: string): JsonValue {
  if (typeof v === 'string') {
    if (!v.startsWith(tag)) return v;
    const b = BigInt(v.slice(tag.length));
    return b >= -BigInt(Number.MAX_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = restore(v[i], tag);
  } else if (v !== null && typeof v === 'object') {
    for (const k in v) v[k] = restore(v[k], tag);
  }
  return v;
}

/** JSON.parse that keeps integers beyond 2^53 exact (as bigint), like Python's json. */
export function parseJson(text: string): JsonValue {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  // long literals go through the native parser as tagged strings, then become bigints
  const nonce = `${Math.random().toString(36).slice(2)}:`;
  const tagged = tagLongInts(text, `\\u0000${nonce}`);
  if (tagged === undefined) return JSON.parse(text) as JsonValue;
  return restore(JSON.parse(tagged) as JsonValue, `\u0000${nonce}`);
}
