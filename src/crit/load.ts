// Image file -> crit's {"magic", "entries"} document. The type comes from the magic, as in crit;
// framing, extras and every check are ImageReader's, so a bad file fails with one ImageError line.
import * as fs from 'node:fs';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageError, ImageReader, registry } from '../images/index.ts';
import type { ImageEntry, ImageKind } from '../images/index.ts';
import { base64Lines, humanReadable } from './codecs.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { critKind, magicName } from './magic.ts';
import { toDict } from './pb2dict.ts';

export interface DecodeOptions {
  /** crit --pretty: hex, flag names, dev_t and IP text. */
  readonly pretty?: boolean;
  /** crit show --nopl: extra payloads as "... <size>" instead of their bytes. */
  readonly nopl?: boolean;
}

export interface CritImage extends JsonObject {
  magic: string;
  entries: JsonObject[];
}

/** base64 of a payload larger than this would not fit in a JavaScript string. */
export const MAX_EXTRA = 256 * 1024 * 1024;
/** Larger images would make JSON beyond what one process can hold (crit holds it all too). */
export const MAX_IMAGE = 1024 * 1024 * 1024;

/** Which image a file holds, from its first one or two words, as crit decides it. */
export function detectImage(file: string): { magic: string; kind: ImageKind } {
  const head = Buffer.alloc(8);
  let got = 0;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new ImageError(file, 'is a directory');
    if (st.size > MAX_IMAGE) throw new ImageError(file, `${st.size} bytes is too big to show as JSON (limit ${MAX_IMAGE})`);
    got = fs.readSync(fd, head, 0, 8, 0);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(file, `cannot read: ${(e as Error).message.replace(/, \w+ '.*'$/, '')}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  if (got < 4) throw new ImageError(file, got === 0 ? 'empty file: no magic to tell the image type' : `truncated header (${got} bytes)`);
  let magic = head.readUInt32LE(0);
  if (magic === IMG_COMMON_MAGIC || magic === IMG_SERVICE_MAGIC) {
    if (got < 8) throw new ImageError(file, `truncated header (need 8 bytes, have ${got})`);
    magic = head.readUInt32LE(4);
  }
  const name = magicName(magic);
  const hex = `0x${magic.toString(16).padStart(8, '0')}`;
  if (name === undefined) throw new ImageError(file, `unknown magic ${hex}: not a CRIU image, or one with raw data such as pages-N.img`);
  const kind = critKind(name);
  if (!kind) throw new ImageError(file, `no image type for magic ${name} (${hex})`);
  return { magic: name, kind };
}

function payloadSize(r: ImageReader, e: ImageEntry): number {
  if (e.type === 'ipc_msg_entry') {
    // crit counts each message's protobuf size and data, without size words and padding
    let n = 0;
    for (const m of e.ipcMsgs ?? []) n += registry.encode('ipc_msg', m.msg).length + m.msg.msize;
    return n;
  }
  const n = e.extraLength ?? 0;
  if (n > MAX_EXTRA) throw new ImageError(r.path, `extra payload of ${n} bytes at offset ${e.extraOffset} is too big for JSON`);
  return n;
}

function extraOf(r: ImageReader, e: ImageEntry, nopl: boolean): JsonValue | undefined {
  const kind = r.kind.extra;
  if (kind === undefined || e.extraOffset === undefined) return undefined;
  const size = payloadSize(r, e);
  if (nopl) return kind === 'ghost' ? undefined : `... <${humanReadable(size)}>`;
  if (kind === 'ipc-msg') return (e.ipcMsgs ?? []).flatMap((m) => [toDict(m.msg, 'ipc_msg', false), base64Lines(m.data)]);
  const data = r.readAtOffset(e.extraOffset, size);
  switch (kind) {
    case 'tcp-stream': {
      const inq = Number(e.msg.inq_len);
      return { inq: base64Lines(data.subarray(0, inq)), outq: base64Lines(data.subarray(inq)) };
    }
    case 'ipc-sem': {
      const vals: number[] = [];
      for (let i = 0; i + 1 < data.length; i += 2) vals.push(data.readUInt16LE(i));
      return vals;
    }
    default:
      return base64Lines(data);
  }
}

/**
 * The entries of an image one by one, as crit shows them. An error can come after some entries
 * were produced; checkImage() first if nothing may be printed for a bad file.
 */
export function* critEntries(file: string, kind: ImageKind, opts: DecodeOptions = {}): Generator<JsonObject> {
  const r = new ImageReader(file, { kind, required: true, loadExtra: false });
  try {
    for (const e of r) {
      const d = toDict(e.msg, e.type, opts.pretty === true);
      const extra = extraOf(r, e, opts.nopl === true);
      if (extra !== undefined) d.extra = extra;
      yield d;
    }
  } finally {
    r.close();
  }
}

/** Reads the whole image the way critEntries does, without building JSON; returns the entry count. */
export function checkImage(file: string, kind: ImageKind): number {
  const r = new ImageReader(file, { kind, required: true, loadExtra: false });
  let n = 0;
  try {
    for (const e of r) {
      payloadSize(r, e);
      n++;
    }
  } finally {
    r.close();
  }
  return n;
}

/** crit decode: the whole document in memory. */
export function loadImage(file: string, opts: DecodeOptions = {}): CritImage {
  const { magic, kind } = detectImage(file);
  return { magic, entries: [...critEntries(file, kind, opts)] };
}

/** crit info: magic name and number of entries (pagemap: without its head, as crit counts). */
export function imageInfo(file: string): { magic: string; count: number } {
  const { magic, kind } = detectImage(file);
  const n = checkImage(file, kind);
  return { magic, count: kind.id === 'PAGEMAP' ? Math.max(0, n - 1) : n };
}
