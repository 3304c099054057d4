// Schema types, errors and the compiled form the codec runs on.
export type ScalarType =
  | 'uint32'
  | 'uint64'
  | 'int32'
  | 'int64'
  | 'sint32'
  | 'sint64'
  | 'bool'
  | 'string'
  | 'bytes'
  | 'fixed32'
  | 'fixed64'
  | 'sfixed32'
  | 'sfixed64'
  | 'float'
  | 'double';
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

export function fail(msg: string): never {
  throw new ProtoError(msg);
}

// ---------------------------------------------------------------------------------------------
// Compiled schema: numeric kinds and arrays indexed by field number keep the decode loop cheap.

export const K_UINT32 = 0,
  K_INT32 = 1,
  K_SINT32 = 2,
  K_UINT64 = 3,
  K_INT64 = 4,
  K_SINT64 = 5,
  K_BOOL = 6,
  K_ENUM = 7,
  K_FIXED32 = 8,
  K_SFIXED32 = 9,
  K_FLOAT = 10,
  K_FIXED64 = 11,
  K_SFIXED64 = 12,
  K_DOUBLE = 13,
  K_STRING = 14,
  K_BYTES = 15,
  K_MESSAGE = 16;

export const KIND: Record<FieldType, number> = {
  uint32: K_UINT32,
  int32: K_INT32,
  sint32: K_SINT32,
  uint64: K_UINT64,
  int64: K_INT64,
  sint64: K_SINT64,
  bool: K_BOOL,
  enum: K_ENUM,
  fixed32: K_FIXED32,
  sfixed32: K_SFIXED32,
  float: K_FLOAT,
  fixed64: K_FIXED64,
  sfixed64: K_SFIXED64,
  double: K_DOUBLE,
  string: K_STRING,
  bytes: K_BYTES,
  message: K_MESSAGE,
};

export function wireOf(kind: number): number {
  if (kind <= K_ENUM) return 0;
  if (kind <= K_FLOAT) return 5;
  if (kind <= K_DOUBLE) return 1;
  return 2;
}

export interface CField {
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

export interface CMessage {
  readonly def: MessageDef;
  readonly name: string;
  /** sorted by field number: the order protobuf-c writes */
  readonly fields: CField[];
  readonly byNo: (CField | undefined)[];
  readonly required: CField[];
  readonly repeated: CField[];
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
