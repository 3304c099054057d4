// Messages to crit's JSON objects and back (crit's pb2dict/dict2pb), driven by our schema and its
// (criu) field options. Keys come in field-number order, empty repeated fields and unset
// optional ones are left out, as Python protobuf's ListFields() does.
import { registry } from '../images/index.ts';
import type { FieldDef, ProtoObject, ProtoValue } from '../images/index.ts';
import { base64Lines, fromBase64, fromQuotedPrintable, toQuotedPrintable } from './codecs.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { devText, dictText, flagsText, hasDict, hexText, intOf, ipText, parseDev, parseDict, parseFlags, parseIp } from './options.ts';

interface Field {
  readonly def: FieldDef;
  readonly name: string;
  readonly rep: boolean;
  readonly int: boolean;
  readonly enumNames?: ReadonlyMap<number, string>;
  readonly enumValues?: Readonly<Record<string, number>>;
}

const INT_TYPES = new Set(['uint32', 'uint64', 'int32', 'int64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);
const cache = new Map<string, Field[]>();

function fieldsOf(type: string): Field[] {
  let fs = cache.get(type);
  if (fs) return fs;
  fs = [...registry.message(type).fields]
    .sort((a, b) => a.no - b.no)
    .map((def): Field => {
      const f = { def, name: def.name, rep: def.label === 'rep', int: INT_TYPES.has(def.type) };
      if (def.type !== 'enum') return f;
      const values = registry.enum(def.ref!).values;
      const names = new Map<number, string>();
      // protobuf's values_by_number keeps the first name of an aliased number
      for (const [n, v] of Object.entries(values)) if (!names.has(v)) names.set(v, n);
      return { ...f, enumNames: names, enumValues: values };
    });
  cache.set(type, fs);
  return fs;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

/** JSON has no 64-bit integers: keep those beyond 2^53 as bigint so no digit is lost. */
function num(v: number | bigint): number | bigint {
  return typeof v === 'bigint' && v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

function valueToJson(f: Field, v: ProtoValue, pretty: boolean, hex: boolean): JsonValue {
  const o = f.def.opts;
  const isHex = hex || o?.hex === true;
  switch (f.def.type) {
    case 'message':
      return toDict(v as ProtoObject, f.def.ref!, pretty, isHex);
    case 'bytes':
      return o?.conv === 'unix_name' ? toQuotedPrintable(v as Buffer) : base64Lines(v as Buffer);
    case 'enum':
      // closed proto2 enums: crit's protobuf would drop an unknown number; we keep the number
      return f.enumNames!.get(v as number) ?? (v as number);
    case 'bool':
    case 'string':
      return v as boolean | string;
  }
  const n = v as number | bigint;
  if (pretty) {
    if (isHex) return hexText(n);
    if (o?.dev) return devText(Number(n), o.odev === true);
    if (o?.flags) return flagsText(o.flags, n);
    if (o?.dict && hasDict(o.dict, f.name)) return dictText(o.dict, f.name, Number(n));
  }
  return num(n);
}

/** A decoded message as crit prints it (pretty: with crit's --pretty field formats). */
export function toDict(msg: ProtoObject, type: string, pretty: boolean, hex = false): JsonObject {
  const out: JsonObject = {};
  for (const f of fieldsOf(type)) {
    const v = msg[f.name];
    if (v === undefined) continue;
    if (!f.rep) {
      out[f.name] = valueToJson(f, v, pretty, hex);
      continue;
    }
    const arr = v as ProtoValue[];
    if (arr.length === 0) continue;
    const ip = pretty && f.def.opts?.ipadd ? ipText(arr as number[]) : undefined;
    out[f.name] = ip !== undefined ? [ip] : arr.map((x) => valueToJson(f, x, pretty, hex));
  }
  return out;
}

export class DictError extends Error {
  override name = 'DictError';
}

function bad(path: string, problem: string): never {
  throw new DictError(`${path}: ${problem}`);
}

function describe(v: unknown): string {
  return v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'object'
        ? 'an object'
        : JSON.stringify(typeof v === 'bigint' ? String(v) : v);
}

function intFromJson(f: Field, v: unknown, path: string): number | bigint {
  const o = f.def.opts;
  if (typeof v === 'string') {
    try {
      if (o?.dev) return parseDev(v, o.odev === true);
      if (o?.flags) return parseFlags(o.flags, v);
      if (o?.dict) return parseDict(o.dict, f.name, v);
      return intOf(v);
    } catch (e) {
      bad(path, (e as Error).message);
    }
  }
  if (typeof v === 'bigint') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  // Python's int() truncates a float
  if (typeof v === 'number' && Number.isFinite(v)) return Number.isSafeInteger(Math.trunc(v)) ? Math.trunc(v) : BigInt(Math.trunc(v));
  bad(path, `${describe(v)} is not an integer`);
}

function valueFromJson(f: Field, v: unknown, path: string): unknown {
  switch (f.def.type) {
    case 'message':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(path, `${describe(v)} is not an object`);
      return fromDict(v as JsonObject, f.def.ref!, path);
    case 'bytes':
      if (typeof v !== 'string') bad(path, `${describe(v)} is not a string`);
      try {
        return f.def.opts?.conv === 'unix_name' ? fromQuotedPrintable(v) : fromBase64(v);
      } catch (e) {
        bad(path, (e as Error).message);
      }
    case 'enum':
      if (typeof v === 'string') {
        if (!Object.hasOwn(f.enumValues!, v)) bad(path, `${JSON.stringify(v)} is not a ${f.def.ref} name`);
        return f.enumValues![v];
      }
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      bad(path, `${describe(v)} is not a ${f.def.ref} name`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number' || typeof v === 'bigint') return v !== 0 && v !== 0n;
      bad(path, `${describe(v)} is not a boolean`);
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'bigint') return String(v);
      bad(path, `${describe(v)} is not a string`);
  }
  return intFromJson(f, v, path);
}

/** A crit JSON object to a message the encoder takes; keys the schema does not know are ignored, as by crit. */
export function fromDict(obj: JsonObject, type: string, path: string = type): ProtoObject {
  if (type === 'pagemap_entry' && !Object.hasOwn(obj, 'compat_nr_pages') && Object.hasOwn(obj, 'nr_pages')) {
    // older crits (3.17) call field 2 "nr_pages" and know no field 5
    const { nr_pages: old, ...rest } = obj;
    obj = { ...rest, compat_nr_pages: old };
  }
  const out: { [k: string]: unknown } = {};
  for (const f of fieldsOf(type)) {
    if (!Object.hasOwn(obj, f.name)) continue;
    const v = obj[f.name];
    const p = `${path}.${f.name}`;
    if (!f.rep) {
      out[f.name] = valueFromJson(f, v, p);
      continue;
    }
    if (!Array.isArray(v)) bad(p, `${describe(v)} is not an array`);
    if (f.def.opts?.ipadd && typeof v[0] === 'string') {
      try {
        out[f.name] = parseIp(v[0]);
      } catch (e) {
        bad(p, (e as Error).message);
      }
      continue;
    }
    out[f.name] = v.map((x, i) => valueFromJson(f, x, `${p}[${i}]`));
  }
  return out as ProtoObject;
}
