// Decoding: a hand-written loop over the compiled schema, with no per-byte allocation.
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
  setUnknownFields,
} from './proto-types.ts';
import type { CField, CMessage, ProtoObject, ProtoValue, UnknownField } from './proto-types.ts';
import { decodeString } from './utf8.ts';

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

/** Decodes buf[start, end) as one cm message; offsets in errors are relative to start. */
export function decodeTop(cm: CMessage, buf: Buffer, start: number, end: number): ProtoObject {
  base = start;
  depth = 0;
  return decodeMsg(cm, buf, start, end);
}
