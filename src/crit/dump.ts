// crit's {"magic", "entries"} document -> image bytes, the same bytes CRIU and crit write.
// Unlike crit, an extra payload whose size disagrees with its entry is refused: CRIU could not
// restore such an image.
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ProtoError, ProtoWriter, registry } from '../images/index.ts';
import type { ImageKind, MessageName, ProtoObject } from '../images/index.ts';
import { fromBase64 } from './codecs.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { critKind, magicValue } from './magic.ts';
import { DictError, fromDict } from './pb2dict.ts';

export class EncodeError extends Error {
  override name = 'EncodeError';
}

function fail(problem: string): never {
  throw new EncodeError(problem);
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function writeMessage(w: ProtoWriter, type: MessageName, msg: ProtoObject): void {
  const start = w.pos;
  w.u32le(0);
  registry.encodeTo(type, msg, w);
  w.buf.writeUInt32LE(w.pos - start - 4, start);
}

function bytesOf(v: JsonValue | undefined, what: string): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  if (typeof v !== 'string') fail(`${what} is not a base64 string`);
  try {
    return fromBase64(v);
  } catch (e) {
    fail(`${what}: ${(e as Error).message}`);
  }
}

function sized(data: Buffer, want: unknown, what: string, field: string): Buffer {
  if (BigInt(data.length) !== BigInt(want as number | bigint)) fail(`${what} has ${data.length} bytes but ${field} says ${want}`);
  return data;
}

const pad = (w: ProtoWriter, len: number, align: number) => w.raw(Buffer.alloc((align - (len % align)) % align));

function writeExtra(w: ProtoWriter, kind: ImageKind, m: ProtoObject, extra: JsonValue | undefined, first: boolean): void {
  switch (kind.extra) {
    case undefined:
      return;
    case 'pipe-data':
      return w.raw(sized(bytesOf(extra, 'extra'), m.bytes, 'extra', 'bytes'));
    case 'sk-queue':
      return w.raw(sized(bytesOf(extra, 'extra'), m.length, 'extra', 'length'));
    case 'bpfmap-data':
      return w.raw(sized(bytesOf(extra, 'extra'), Number(m.keys_bytes) + Number(m.values_bytes), 'extra', 'keys_bytes + values_bytes'));
    case 'tcp-stream': {
      const x = extra === undefined ? {} : isObject(extra) ? extra : fail('extra is not an object with inq and outq');
      w.raw(sized(bytesOf(x.inq, 'extra.inq'), m.inq_len, 'extra.inq', 'inq_len'));
      return w.raw(sized(bytesOf(x.outq, 'extra.outq'), m.outq_len, 'extra.outq', 'outq_len'));
    }
    case 'ghost':
      if (first && m.chunks === true) return;
      if (!first) return w.raw(sized(bytesOf(extra, 'extra'), m.len, 'extra', 'len'));
      if (extra === undefined) fail('extra (the file contents) is missing');
      return w.raw(bytesOf(extra, 'extra'));
    case 'ipc-shm': {
      if (m.in_pagemaps === true) return;
      const data = sized(bytesOf(extra, 'extra'), m.size, 'extra', 'size');
      w.raw(data);
      return pad(w, data.length, 4);
    }
    case 'ipc-sem': {
      const vals = extra ?? [];
      if (!Array.isArray(vals)) fail('extra is not an array of semaphore values');
      if (vals.length !== Number(m.nsems)) fail(`extra has ${vals.length} semaphore values but nsems says ${m.nsems}`);
      const b = Buffer.alloc(vals.length * 2);
      vals.forEach((v, i) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) fail(`extra[${i}] is not a 16-bit value`);
        b.writeUInt16LE(v, i * 2);
      });
      w.raw(b);
      return pad(w, b.length, 8);
    }
    case 'ipc-msg': {
      const items = extra ?? [];
      if (!Array.isArray(items) || items.length % 2 !== 0) fail('extra is not a list of message, data pairs');
      if (items.length / 2 !== Number(m.qnum)) fail(`extra has ${items.length / 2} messages but qnum says ${m.qnum}`);
      for (let i = 0; i < items.length; i += 2) {
        const im = items[i];
        if (!isObject(im)) fail(`extra[${i}] is not an ipc_msg object`);
        const msg = fromDict(im, 'ipc_msg', `extra[${i}]`);
        writeMessage(w, 'ipc_msg', msg);
        const data = sized(bytesOf(items[i + 1], `extra[${i + 1}]`), msg.msize, `extra[${i + 1}]`, 'msize');
        w.raw(data);
        pad(w, data.length, 8);
      }
      return;
    }
  }
}

/** The image bytes of a crit JSON document. Throws EncodeError naming the entry at fault. */
export function dumpImage(doc: JsonValue): Buffer {
  if (!isObject(doc)) fail('the document is not an object with "magic" and "entries"');
  const name = doc.magic;
  if (typeof name !== 'string') fail('"magic" is missing or not a string');
  const value = magicValue(name);
  if (value === undefined) fail(`unknown magic ${JSON.stringify(name)}`);
  const kind = critKind(name);
  if (!kind) fail(`no image type for magic ${name}`);
  const entries = doc.entries;
  if (!Array.isArray(entries)) fail('"entries" is missing or not an array');

  const w = new ProtoWriter(1 << 16);
  if (kind.head !== 'inventory') w.u32le(kind.head === 'service' ? IMG_SERVICE_MAGIC : IMG_COMMON_MAGIC);
  w.u32le(value);
  // pagemap and ghost images start with one entry of another type
  const twoTypes = kind.id === 'PAGEMAP' || kind.extra === 'ghost';
  let ghostChunks = false;
  entries.forEach((entry, i) => {
    const type = twoTypes && i > 0 ? kind.entries[1] : kind.entries[0];
    try {
      if (!isObject(entry)) fail('not an object');
      if (kind.extra === 'ghost' && i > 0 && !ghostChunks) fail('ghost file contents come in the first entry unless it sets chunks');
      const msg = fromDict(entry, type);
      writeMessage(w, type, msg);
      writeExtra(w, kind, msg, entry.extra, i === 0);
      if (i === 0) ghostChunks = msg.chunks === true;
    } catch (e) {
      if (e instanceof EncodeError || e instanceof DictError || e instanceof ProtoError) fail(`entry ${i}: ${e.message}`);
      throw e;
    }
  });
  return w.finish();
}
