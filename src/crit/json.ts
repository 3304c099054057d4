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

function scalar(v: JsonValue): string | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isInteger(v) ? (Number.isSafeInteger(v) ? String(v) : BigInt(v).toString()) : floatRepr(v);
    case 'string':
      return quote(v);
    default:
      return undefined;
  }
}

/** Appends the text of v to out (compact: Python's default separators; pretty: indent=4). */
export function writeJson(v: JsonValue, pretty: boolean, out: (s: string) => void, level = 0): void {
  const s = scalar(v);
  if (s !== undefined) return out(s);
  const isArr = Array.isArray(v);
  const keys = isArr ? undefined : Object.keys(v as JsonObject);
  const n = isArr ? (v as JsonValue[]).length : keys!.length;
  const [open, close] = isArr ? ['[', ']'] : ['{', '}'];
  if (n === 0) return out(open + close);
  const pad = pretty ? '\n' + '    '.repeat(level + 1) : '';
  const sep = pretty ? ',' + pad : ', ';
  out(open + pad);
  for (let i = 0; i < n; i++) {
    if (i > 0) out(sep);
    if (isArr) {
      writeJson((v as JsonValue[])[i], pretty, out, level + 1);
    } else {
      out(quote(keys![i]) + ': ');
      writeJson((v as JsonObject)[keys![i]], pretty, out, level + 1);
    }
  }
  out(pretty ? '\n' + '    '.repeat(level) + close : close);
}

export function toJson(v: JsonValue, pretty = false): string {
  const parts: string[] = [];
  writeJson(v, pretty, (s) => parts.push(s));
  return parts.join('');
}

const INT = /^-?\d+$/;

/** JSON.parse that keeps integers beyond 2^53 exact (as bigint), like Python's json. */
export function parseJson(text: string): JsonValue {
  const reviver = function (this: unknown, _k: string, v: unknown, ctx?: { source?: string }): unknown {
    if (typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source !== undefined && INT.test(ctx.source)) return BigInt(ctx.source);
    return v;
  };
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, reviver as (k: string, v: unknown) => unknown) as JsonValue;
}
