// A small proto2 codec driven by plain schema data.
// Own codec instead of a protobuf library because CRIU images need: required-field checks like
// protobuf-c, unknown fields kept for byte-exact re-encoding, crit's field options in the schema,
// and fast decoding of millions of pagemap entries straight out of a file buffer.
import { decodeTop } from './proto-read.ts';
import { ProtoWriter, encodeTop } from './proto-write.ts';
import { KIND, ProtoError, wireOf } from './proto-types.ts';
import type { CField, CMessage, EnumDef, MessageDef, ProtoInput, ProtoObject } from './proto-types.ts';

export { ProtoWriter } from './proto-write.ts';
export { ProtoError, setUnknownFields, unknownFields } from './proto-types.ts';
export type {
  EnumDef,
  FieldDef,
  FieldLabel,
  FieldOpts,
  FieldType,
  MessageDef,
  ProtoInput,
  ProtoObject,
  ProtoValue,
  ScalarType,
  UnknownField,
} from './proto-types.ts';
export { stringBytes } from './utf8.ts';

export class ProtoRegistry {
  private readonly defs = new Map<string, MessageDef>();
  private readonly compiled = new Map<string, CMessage>();
  private readonly enums = new Map<string, EnumDef>();

  /**
   * `lazy`: each message is checked and compiled when first used (compiling all of CRIU's
   * messages is start-up time of every command, which uses a few dozen); compileAll() checks them all.
   */
  constructor(messages: Iterable<MessageDef>, enums: Iterable<EnumDef> = [], lazy = false) {
    for (const e of enums) {
      if (this.enums.has(e.name)) throw new ProtoError(`duplicate enum ${e.name}`);
      this.enums.set(e.name, e);
    }
    for (const def of messages) {
      if (this.defs.has(def.name)) throw new ProtoError(`duplicate message ${def.name}`);
      this.defs.set(def.name, def);
    }
    if (!lazy) this.compileAll();
  }

  compileAll(): void {
    for (const name of this.defs.keys()) this.get(name);
  }

  private compile(def: MessageDef): CMessage {
    const fields: CField[] = def.fields
      .map((fd): CField => {
        const kind = KIND[fd.type];
        if (kind === undefined) throw new ProtoError(`${def.name}.${fd.name}: unknown type ${fd.type}`);
        if (!Number.isInteger(fd.no) || fd.no < 1 || fd.no > 0x1fffffff)
          throw new ProtoError(`${def.name}.${fd.name}: bad field number ${fd.no}`);
        const wire = wireOf(kind);
        return {
          def: fd,
          name: fd.name,
          no: fd.no,
          kind,
          wire,
          tag: ((fd.no << 3) | wire) >>> 0,
          rep: fd.label === 'rep',
          req: fd.label === 'req',
          path: `${def.name}.${fd.name}`,
          msg: undefined,
          enumDef: undefined,
        };
      })
      .sort((a, b) => a.no - b.no);
    const maxNo = fields.length ? fields[fields.length - 1].no : 0;
    if (maxNo > 4096) throw new ProtoError(`${def.name}: field numbers above 4096 are not supported`);
    const byNo: (CField | undefined)[] = new Array(maxNo + 1).fill(undefined);
    for (const f of fields) {
      if (byNo[f.no]) throw new ProtoError(`${def.name}: duplicate field number ${f.no}`);
      byNo[f.no] = f;
    }
    const cm: CMessage = {
      def,
      name: def.name,
      fields,
      byNo,
      required: fields.filter((f) => f.req),
      repeated: fields.filter((f) => f.rep),
    };
    // In the map before its fields' messages are compiled: a message may contain itself.
    this.compiled.set(def.name, cm);
    try {
      for (const f of fields) {
        if (f.def.type === 'message') {
          const ref = this.defs.get(f.def.ref ?? '');
          if (!ref) throw new ProtoError(`${f.path}: unknown message type ${f.def.ref}`);
          f.msg = this.compiled.get(ref.name) ?? this.compile(ref);
        } else if (f.def.type === 'enum') {
          f.enumDef = this.enums.get(f.def.ref ?? '');
          if (!f.enumDef) throw new ProtoError(`${f.path}: unknown enum ${f.def.ref}`);
        }
      }
    } catch (e) {
      this.compiled.delete(def.name);
      throw e;
    }
    return cm;
  }

  has(name: string): boolean {
    return this.defs.has(name);
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
    return [...this.defs.keys()];
  }

  enumNames(): string[] {
    return [...this.enums.keys()];
  }

  private get(name: string): CMessage {
    const cm = this.compiled.get(name);
    if (cm) return cm;
    const def = this.defs.get(name);
    if (!def) throw new ProtoError(`unknown message ${name}`);
    return this.compile(def);
  }

  /** Decodes buf[start, end) as one `name` message. Throws only ProtoError. */
  decode(name: string, buf: Uint8Array, start = 0, end = buf.length): ProtoObject {
    const cm = this.get(name);
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (!(start >= 0 && end <= b.length && start <= end))
      throw new ProtoError(`bad range [${start}, ${end}) for a ${b.length}-byte buffer`);
    try {
      return decodeTop(cm, b, start, end);
    } catch (e) {
      if (e instanceof ProtoError) throw e;
      throw new ProtoError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Appends the encoding of `obj` as a `name` message to w. */
  encodeTo(name: string, obj: ProtoInput, w: ProtoWriter): void {
    const cm = this.get(name);
    const pos = w.pos;
    try {
      encodeTop(cm, obj, w);
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
