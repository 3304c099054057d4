// A small proto2 codec driven by plain schema data.
// Own codec instead of a protobuf library because CRIU images need: required-field checks like
// protobuf-c, unknown fields kept for byte-exact re-encoding, crit's field options in the schema,
// and fast decoding of millions of pagemap entries straight out of a file buffer.
import { isUtf8 } from 'node:buffer';

export type ScalarType =
  | 'uint32' | 'uint64' | 'int32' | 'int64' | 'sint32' | 'sint64' | 'bool' | 'string' | 'bytes'
  | 'fixed32' | 'fixed64' | 'sfixed32' | 'sfixed64' | 'float' | 'double';
export type FieldType = ScalarType | 'enum' | 'message';
export type FieldLabel = 'req' | 'opt' | 'rep';

/** crit's `(criu)` field options; they only affect crit's JSON, never the wire format. */
export interface FieldOpts {
  readonly hex?: boolean;
  readonly flags?: string;
  readonly dict?: string;
  readonly ipadd?: boolean;
  readonly dev?: boolean;
  readonly odev?: boolean;
  readonly conv?: string;
}

export interface FieldDef {
  readonly no: number;
  readonly name: string;
  readonly label: FieldLabel;
  readonly type: FieldType;
  /** message or enum name */
  readonly ref?: string;
  readonly opts?: FieldOpts;
  readonly default?: unknown;
}

export interface MessageDef {
  readonly name: string;
  readonly fields: readonly FieldDef[];
}

export interface EnumDef {
  readonly name: string;
  readonly values: Readonly<Record<string, number>>;
}

export type ProtoValue = number | bigint | boolean | string | Buffer | ProtoObject | ProtoValue[];
/** A decoded message: field name -> value; absent optional fields are undefined. */
export interface ProtoObject {
  [field: string]: ProtoValue | undefined;
}
/** What encode accepts: 64-bit fields as bigint or safe-integer number, enums by number or name. */
export interface ProtoInput {
  readonly [field: string]: unknown;
}

/** A field the schema does not know, kept verbatim (tag included) for re-encoding. */
export interface UnknownField {
  readonly no: number;
  readonly wire: number;
  readonly raw: Buffer;
}

export class ProtoError extends Error {
  override name = 'ProtoError';
}

function fail(msg: string): never {
  throw new ProtoError(msg);
}

// ---------------------------------------------------------------------------------------------
// Compiled schema: numeric kinds and arrays indexed by field number keep the decode loop cheap.

const K_UINT32 = 0, K_INT32 = 1, K_SINT32 = 2, K_UINT64 = 3, K_INT64 = 4, K_SINT64 = 5,
  K_BOOL = 6, K_ENUM = 7, K_FIXED32 = 8, K_SFIXED32 = 9, K_FLOAT = 10, K_FIXED64 = 11,
  K_SFIXED64 = 12, K_DOUBLE = 13, K_STRING = 14, K_BYTES = 15, K_MESSAGE = 16;

const KIND: Record<FieldType, number> = {
  uint32: K_UINT32, int32: K_INT32, sint32: K_SINT32, uint64: K_UINT64, int64: K_INT64,
  sint64: K_SINT64, bool: K_BOOL, enum: K_ENUM, fixed32: K_FIXED32, sfixed32: K_SFIXED32,
  float: K_FLOAT, fixed64: K_FIXED64, sfixed64: K_SFIXED64, double: K_DOUBLE, string: K_STRING,
  bytes: K_BYTES, message: K_MESSAGE,
};

function wireOf(kind: number): number {
  if (kind <= K_ENUM) return 0;
  if (kind <= K_FLOAT) return 5;
  if (kind <= K_DOUBLE) return 1;
  return 2;
}

interface CField {
  readonly def: FieldDef;
  readonly name: string;
  readonly no: number;
  readonly kind: number;
  readonly wire: number;
  readonly tag: number;
  readonly rep: boolean;
  readonly req: boolean;
  /** full name for error messages: "mm_entry.mm_brk" */
  readonly path: string;
  msg: CMessage | undefined;
  enumDef: EnumDef | undefined;
}

interface CMessage {
  readonly def: MessageDef;
  readonly name: string;
  /** sorted by field number: the order protobuf-c writes */
  readonly fields: CField[];
  readonly byNo: (CField | undefined)[];
  readonly required: CField[];
  readonly repeated: CField[];
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Results of readVarint live here to avoid allocating a pair per varint.
let vlo = 0;
let vhi = 0;
// Start of the top-level message, so errors report offsets relative to it.
let base = 0;
let depth = 0;
const MAX_DEPTH = 100;

function truncated(what: string, pos: number): never {
  fail(`truncated ${what} at byte ${pos - base}`);
}

/**
 * Reads a varint at buf[pos] (not past end) and returns the position after it; the value is
 * then available from varintLo()/varintHi(). Exported for hand-written hot loops (pagemap).
 */
export function readVarint(buf: Buffer, pos: number, end: number): number {
  if (pos < end) {
    const b = buf[pos];
    if (b < 0x80) {
      vlo = b;
      vhi = 0;
      return pos + 1;
    }
  }
  const start = pos;
  let lo = 0;
  let b = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) truncated('varint', start);
    b = buf[pos++];
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      vlo = lo >>> 0;
      vhi = 0;
      return pos;
    }
  }
  if (pos >= end) truncated('varint', start);
  b = buf[pos++];
  lo |= (b & 0x0f) << 28;
  let hi = (b & 0x7f) >> 4;
  if (b < 0x80) {
    vlo = lo >>> 0;
    vhi = hi;
    return pos;
  }
  for (let shift = 3; shift < 38; shift += 7) {
    if (pos >= end) truncated('varint', start);
    b = buf[pos++];
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      vlo = lo >>> 0;
      vhi = hi >>> 0;
      return pos;
    }
  }
  fail(`varint over 10 bytes at byte ${start - base}`);
}

export function varintLo(): number {
  return vlo;
}

export function varintHi(): number {
  return vhi;
}

export function u64(lo: number, hi: number): bigint {
  if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function skipField(buf: Buffer, pos: number, end: number, wire: number, no: number): number {
  switch (wire) {
    case 0:
      return readVarint(buf, pos, end);
    case 1:
      if (end - pos < 8) truncated(`fixed64 field ${no}`, pos);
      return pos + 8;
    case 2: {
      const p = readVarint(buf, pos, end);
      if (vhi !== 0 || vlo > end - p) fail(`length ${u64(vlo, vhi)} of field ${no} past end at byte ${p - base}`);
      return p + vlo;
    }
    case 5:
      if (end - pos < 4) truncated(`fixed32 field ${no}`, pos);
      return pos + 4;
    case 3:
    case 4:
      fail(`unsupported wire type ${wire} (group) for field ${no} at byte ${pos - base}`);
    default:
      fail(`invalid wire type ${wire} for field ${no} at byte ${pos - base}`);
  }
}

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
    } else if (b0 >= 0xe0 && b0 <= 0xef && cont(i + 1) && cont(i + 2)
      && !(b0 === 0xe0 && buf[i + 1] < 0xa0) && !(b0 === 0xed && buf[i + 1] >= 0xa0)) {
      cps.push(((b0 & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f));
      i += 3;
    } else if (b0 >= 0xf0 && b0 <= 0xf4 && cont(i + 1) && cont(i + 2) && cont(i + 3)
      && !(b0 === 0xf0 && buf[i + 1] < 0x90) && !(b0 === 0xf4 && buf[i + 1] >= 0x90)) {
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

function decodeString(buf: Buffer, s: number, e: number): string {
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

/** Decodes one value whose wire type already matched; returns the new position, value in `dv`. */
let dv: ProtoValue = 0;
function readValue(f: CField, buf: Buffer, pos: number, end: number): number {
  switch (f.kind) {
    case K_UINT32:
      pos = readVarint(buf, pos, end);
      dv = vlo;
      return pos;
    case K_INT32:
    case K_ENUM:
      pos = readVarint(buf, pos, end);
      dv = vlo | 0;
      return pos;
    case K_SINT32:
      pos = readVarint(buf, pos, end);
      dv = (vlo >>> 1) ^ -(vlo & 1);
      return pos;
    case K_UINT64:
      pos = readVarint(buf, pos, end);
      dv = u64(vlo, vhi);
      return pos;
    case K_INT64:
      pos = readVarint(buf, pos, end);
      dv = BigInt.asIntN(64, u64(vlo, vhi));
      return pos;
    case K_SINT64: {
      pos = readVarint(buf, pos, end);
      const u = u64(vlo, vhi);
      dv = (u >> 1n) ^ -(u & 1n);
      return pos;
    }
    case K_BOOL:
      pos = readVarint(buf, pos, end);
      dv = (vlo | vhi) !== 0;
      return pos;
    case K_FIXED32:
    case K_SFIXED32:
    case K_FLOAT:
      if (end - pos < 4) truncated(`field ${f.path}`, pos);
      dv = f.kind === K_FIXED32 ? buf.readUInt32LE(pos) : f.kind === K_SFIXED32 ? buf.readInt32LE(pos) : buf.readFloatLE(pos);
      return pos + 4;
    case K_FIXED64:
    case K_SFIXED64:
    case K_DOUBLE:
      if (end - pos < 8) truncated(`field ${f.path}`, pos);
      dv = f.kind === K_FIXED64 ? buf.readBigUInt64LE(pos) : f.kind === K_SFIXED64 ? buf.readBigInt64LE(pos) : buf.readDoubleLE(pos);
      return pos + 8;
    default: {
      pos = readVarint(buf, pos, end);
      if (vhi !== 0 || vlo > end - pos) fail(`length ${u64(vlo, vhi)} of field ${f.path} past end at byte ${pos - base}`);
      const e = pos + vlo;
      if (f.kind === K_STRING) dv = decodeString(buf, pos, e);
      else if (f.kind === K_BYTES) dv = Buffer.from(buf.subarray(pos, e));
      else dv = decodeMsg(f.msg!, buf, pos, e);
      return e;
    }
  }
}

function decodeMsg(cm: CMessage, buf: Buffer, pos: number, end: number): ProtoObject {
  if (++depth > MAX_DEPTH) fail(`messages nested deeper than ${MAX_DEPTH} in ${cm.name}`);
  const obj: ProtoObject = {};
  let unknown: UnknownField[] | undefined;
  const byNo = cm.byNo;
  while (pos < end) {
    const tagPos = pos;
    pos = readVarint(buf, pos, end);
    if (vhi !== 0) fail(`bad tag at byte ${tagPos - base} in ${cm.name}`);
    const no = vlo >>> 3;
    const wire = vlo & 7;
    if (no === 0) fail(`field number 0 at byte ${tagPos - base} in ${cm.name}`);
    const f = no < byNo.length ? byNo[no] : undefined;
    if (f === undefined) {
      pos = skipField(buf, pos, end, wire, no);
      (unknown ??= []).push({ no, wire, raw: Buffer.from(buf.subarray(tagPos, pos)) });
      continue;
    }
    if (wire === f.wire) {
      pos = readValue(f, buf, pos, end);
      if (f.rep) {
        const arr = obj[f.name] as ProtoValue[] | undefined;
        if (arr === undefined) obj[f.name] = [dv];
        else arr.push(dv);
      } else obj[f.name] = dv;
    } else if (wire === 2 && f.rep && f.wire !== 2) {
      // packed repeated scalars: proto2 writers may use either form
      pos = readVarint(buf, pos, end);
      if (vhi !== 0 || vlo > end - pos) fail(`length ${u64(vlo, vhi)} of field ${f.path} past end at byte ${pos - base}`);
      const e = pos + vlo;
      let arr = obj[f.name] as ProtoValue[] | undefined;
      if (arr === undefined) obj[f.name] = arr = [];
      while (pos < e) {
        pos = readValue(f, buf, pos, e);
        arr.push(dv);
      }
    } else {
      fail(`wrong wire type ${wire} for field ${f.path} (expected ${f.wire}) at byte ${tagPos - base}`);
    }
  }
  // repeated fields are always arrays, added last so present fields keep their wire order
  const rep = cm.repeated;
  for (let i = 0; i < rep.length; i++) if (obj[rep[i].name] === undefined) obj[rep[i].name] = [];
  const req = cm.required;
  for (let i = 0; i < req.length; i++) {
    if (obj[req[i].name] === undefined) fail(`missing required field ${req[i].path}`);
  }
  if (unknown !== undefined) setUnknownFields(obj, unknown);
  depth--;
  return obj;
}

/** Unknown fields of a decoded message (in input order), or an empty array. */
export function unknownFields(obj: object): readonly UnknownField[] {
  const u = (obj as { $unknown?: UnknownField[] }).$unknown;
  return Array.isArray(u) ? u : [];
}

/** Attaches unknown fields as a non-enumerable `$unknown`, so JSON and deepEqual ignore them. */
export function setUnknownFields(obj: object, fields: readonly UnknownField[]): void {
  Object.defineProperty(obj, '$unknown', { value: fields, enumerable: false, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Growable output buffer; ImageWriter encodes straight into it. */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const nb = Buffer.allocUnsafe(size);
    this.buf.copy(nb, 0, 0, this.pos);
    this.buf = nb;
  }

  varint32(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  varint64(lo: number, hi: number): void {
    if (hi === 0) return this.varint32(lo);
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < 4; i++) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    // byte 4 carries lo bits 28..31 and hi bits 0..2
    let b = lo | ((hi & 7) << 4);
    hi >>>= 3;
    if (hi === 0) {
      buf[pos++] = b;
    } else {
      buf[pos++] = b | 0x80;
      while (hi > 0x7f) {
        buf[pos++] = (hi & 0x7f) | 0x80;
        hi >>>= 7;
      }
      buf[pos++] = hi;
    }
    this.pos = pos;
  }

  raw(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  u32le(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** A copy of the bytes written so far. */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v >>>= 7;
    n++;
  }
  return n;
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (v === null) return 'null';
  if (typeof v === 'object') return Array.isArray(v) ? 'array' : Buffer.isBuffer(v) ? 'Buffer' : 'object';
  return String(v);
}

function bad(f: CField, v: unknown): never {
  fail(`${f.path}: ${describe(v)} is not a valid ${f.def.type === 'enum' ? `${f.def.ref} value` : f.def.type}`);
}

function int32Of(f: CField, v: unknown, min: number, max: number): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) bad(f, v);
  return n;
}

function int64Of(f: CField, v: unknown, signed: boolean): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else bad(f, v);
  if (signed ? b < -(1n << 63n) || b >= 1n << 63n : b < 0n || b >= 1n << 64n) bad(f, v);
  return b;
}

function writeU64(w: ProtoWriter, b: bigint): void {
  if (b < 0x100000000n) w.varint32(Number(b));
  else w.varint64(Number(b & 0xffffffffn), Number((b >> 32n) & 0xffffffffn));
}

function writeValue(f: CField, v: unknown, w: ProtoWriter): void {
  w.varint32(f.tag);
  switch (f.kind) {
    case K_UINT32:
      // fast path for the common case of a plain number
      if (typeof v === 'number' && v >= 0 && v <= 0xffffffff && Number.isInteger(v)) return w.varint32(v);
      return w.varint32(int32Of(f, v, 0, 0xffffffff));
    case K_ENUM:
    case K_INT32: {
      let n: number;
      if (f.kind === K_ENUM && typeof v === 'string') {
        const e = f.enumDef!.values[v];
        if (e === undefined || !Object.hasOwn(f.enumDef!.values, v)) bad(f, v);
        n = e;
      } else n = int32Of(f, v, -0x80000000, 0x7fffffff);
      // negative int32 is sign-extended to 64 bits on the wire
      return n >= 0 ? w.varint32(n) : w.varint64(n >>> 0, 0xffffffff);
    }
    case K_SINT32: {
      const n = int32Of(f, v, -0x80000000, 0x7fffffff);
      return w.varint32(((n << 1) ^ (n >> 31)) >>> 0);
    }
    case K_UINT64:
      if (typeof v === 'number' && v >= 0 && v <= 0xffffffff && Number.isInteger(v)) return w.varint32(v);
      return writeU64(w, int64Of(f, v, false));
    case K_INT64:
      return writeU64(w, BigInt.asUintN(64, int64Of(f, v, true)));
    case K_SINT64: {
      const b = int64Of(f, v, true);
      return writeU64(w, BigInt.asUintN(64, (b << 1n) ^ (b >> 63n)));
    }
    case K_BOOL:
      if (typeof v !== 'boolean') bad(f, v);
      return w.varint32(v ? 1 : 0);
    case K_FIXED32:
    case K_SFIXED32:
    case K_FLOAT:
      w.ensure(4);
      if (f.kind === K_FLOAT) {
        if (typeof v !== 'number') bad(f, v);
        w.buf.writeFloatLE(v, w.pos);
      } else if (f.kind === K_FIXED32) w.buf.writeUInt32LE(int32Of(f, v, 0, 0xffffffff), w.pos);
      else w.buf.writeInt32LE(int32Of(f, v, -0x80000000, 0x7fffffff), w.pos);
      w.pos += 4;
      return;
    case K_FIXED64:
    case K_SFIXED64:
    case K_DOUBLE:
      w.ensure(8);
      if (f.kind === K_DOUBLE) {
        if (typeof v !== 'number') bad(f, v);
        w.buf.writeDoubleLE(v, w.pos);
      } else if (f.kind === K_FIXED64) w.buf.writeBigUInt64LE(int64Of(f, v, false), w.pos);
      else w.buf.writeBigInt64LE(int64Of(f, v, true), w.pos);
      w.pos += 8;
      return;
    case K_STRING:
      if (typeof v === 'string' && v.isWellFormed()) {
        const n = Buffer.byteLength(v, 'utf8');
        w.varint32(n);
        w.ensure(n);
        w.buf.write(v, w.pos, 'utf8');
        w.pos += n;
        return;
      }
      if (typeof v === 'string') v = stringBytes(v);
      if (!(v instanceof Uint8Array)) bad(f, v);
      w.varint32(v.length);
      return w.raw(v);
    case K_BYTES:
      if (!(v instanceof Uint8Array)) bad(f, v);
      w.varint32(v.length);
      return w.raw(v);
    default: {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) bad(f, v);
      // reserve one length byte, encode, then widen the prefix if the body turned out larger
      w.ensure(1);
      const start = w.pos;
      w.pos += 1;
      encodeMsg(f.msg!, v as ProtoInput, w);
      const len = w.pos - start - 1;
      const n = varintSize(len);
      if (n > 1) {
        w.ensure(n - 1);
        w.buf.copyWithin(start + n, start + 1, w.pos);
        w.pos += n - 1;
      }
      const end = w.pos;
      w.pos = start;
      w.varint32(len);
      w.pos = end;
    }
  }
}

function encodeMsg(cm: CMessage, obj: ProtoInput, w: ProtoWriter): void {
  if (++depth > MAX_DEPTH) fail(`messages nested deeper than ${MAX_DEPTH} in ${cm.name}`);
  const unknown = unknownFields(obj);
  let ui = 0;
  const fields = cm.fields;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    // unknown fields go back where their number puts them, so canonical input re-encodes exactly
    while (ui < unknown.length && unknown[ui].no < f.no) w.raw(unknown[ui++].raw);
    const v = obj[f.name];
    if (v === undefined || v === null) {
      if (f.req) {
        if (f.def.default === undefined) fail(`missing required field ${f.path}`);
        writeValue(f, f.def.default, w);
      }
      continue;
    }
    if (f.rep) {
      if (!Array.isArray(v)) fail(`${f.path}: repeated field needs an array, got ${describe(v)}`);
      for (let k = 0; k < v.length; k++) writeValue(f, v[k], w);
    } else {
      writeValue(f, v, w);
    }
  }
  while (ui < unknown.length) w.raw(unknown[ui++].raw);
  depth--;
}

// ---------------------------------------------------------------------------------------------
// Registry

export class ProtoRegistry {
  private readonly compiled = new Map<string, CMessage>();
  private readonly enums = new Map<string, EnumDef>();

  constructor(messages: Iterable<MessageDef>, enums: Iterable<EnumDef> = []) {
    for (const e of enums) {
      if (this.enums.has(e.name)) throw new ProtoError(`duplicate enum ${e.name}`);
      this.enums.set(e.name, e);
    }
    for (const def of messages) {
      if (this.compiled.has(def.name)) throw new ProtoError(`duplicate message ${def.name}`);
      const fields: CField[] = def.fields
        .map((fd): CField => {
          const kind = KIND[fd.type];
          if (kind === undefined) throw new ProtoError(`${def.name}.${fd.name}: unknown type ${fd.type}`);
          if (!Number.isInteger(fd.no) || fd.no < 1 || fd.no > 0x1fffffff) throw new ProtoError(`${def.name}.${fd.name}: bad field number ${fd.no}`);
          const wire = wireOf(kind);
          return {
            def: fd, name: fd.name, no: fd.no, kind, wire, tag: ((fd.no << 3) | wire) >>> 0,
            rep: fd.label === 'rep', req: fd.label === 'req', path: `${def.name}.${fd.name}`,
            msg: undefined, enumDef: undefined,
          };
        })
        .sort((a, b) => a.no - b.no);
      const maxNo = fields.length ? fields[fields.length - 1].no : 0;
      // a sparse lookup table is fine for CRIU's small field numbers; fall back to none for huge ones
      const byNo: (CField | undefined)[] = new Array(Math.min(maxNo, 4096) + 1).fill(undefined);
      for (const f of fields) {
        if (f.no < byNo.length) {
          if (byNo[f.no]) throw new ProtoError(`${def.name}: duplicate field number ${f.no}`);
          byNo[f.no] = f;
        }
      }
      this.compiled.set(def.name, {
        def, name: def.name, fields, byNo,
        required: fields.filter((f) => f.req),
        repeated: fields.filter((f) => f.rep),
      });
    }
    for (const cm of this.compiled.values()) {
      for (const f of cm.fields) {
        if (f.def.type === 'message') {
          f.msg = this.compiled.get(f.def.ref ?? '');
          if (!f.msg) throw new ProtoError(`${f.path}: unknown message type ${f.def.ref}`);
        } else if (f.def.type === 'enum') {
          f.enumDef = this.enums.get(f.def.ref ?? '');
          if (!f.enumDef) throw new ProtoError(`${f.path}: unknown enum ${f.def.ref}`);
        }
      }
      if (cm.fields.some((f) => f.no >= cm.byNo.length)) throw new ProtoError(`${cm.name}: field numbers above 4096 are not supported`);
    }
  }

  has(name: string): boolean {
    return this.compiled.has(name);
  }

  message(name: string): MessageDef {
    return this.get(name).def;
  }

  enum(name: string): EnumDef {
    const e = this.enums.get(name);
    if (!e) throw new ProtoError(`unknown enum ${name}`);
    return e;
  }

  messageNames(): string[] {
    return [...this.compiled.keys()];
  }

  enumNames(): string[] {
    return [...this.enums.keys()];
  }

  private get(name: string): CMessage {
    const cm = this.compiled.get(name);
    if (!cm) throw new ProtoError(`unknown message ${name}`);
    return cm;
  }

  /** Decodes buf[start, end) as one `name` message. Throws only ProtoError. */
  decode(name: string, buf: Uint8Array, start = 0, end = buf.length): ProtoObject {
    const cm = this.get(name);
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (!(start >= 0 && end <= b.length && start <= end)) throw new ProtoError(`bad range [${start}, ${end}) for a ${b.length}-byte buffer`);
    base = start;
    depth = 0;
    try {
      return decodeMsg(cm, b, start, end);
    } catch (e) {
      if (e instanceof ProtoError) throw e;
      throw new ProtoError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Appends the encoding of `obj` as a `name` message to w. */
  encodeTo(name: string, obj: ProtoInput, w: ProtoWriter): void {
    const cm = this.get(name);
    depth = 0;
    const pos = w.pos;
    try {
      encodeMsg(cm, obj, w);
    } catch (e) {
      w.pos = pos;
      if (e instanceof ProtoError) throw e;
      throw new ProtoError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  encode(name: string, obj: ProtoInput): Buffer {
    const w = new ProtoWriter();
    this.encodeTo(name, obj, w);
    return w.finish();
  }
}
