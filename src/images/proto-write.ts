// Encoding: fields in ascending number order like protobuf-c, unknown fields put back in place.
import {
  K_BOOL,
  K_BYTES,
  K_DOUBLE,
  K_ENUM,
  K_FIXED32,
  K_FIXED64,
  K_FLOAT,
  K_INT32,
  K_INT64,
  K_SFIXED32,
  K_SFIXED64,
  K_SINT32,
  K_SINT64,
  K_STRING,
  K_UINT32,
  K_UINT64,
  fail,
  unknownFields,
} from './proto-types.ts';
import type { CField, CMessage, ProtoInput } from './proto-types.ts';
import { stringBytes } from './utf8.ts';

const MAX_DEPTH = 100;
let depth = 0;

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
    const b = lo | ((hi & 7) << 4);
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

/** Appends the encoding of obj as a cm message. */
export function encodeTop(cm: CMessage, obj: ProtoInput, w: ProtoWriter): void {
  depth = 0;
  encodeMsg(cm, obj, w);
}
