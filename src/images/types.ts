// Static types of decoded and to-be-encoded messages, derived from the schema data so the two
// cannot drift apart.
import type { enums, messages } from './schema/index.ts';

type Defs = typeof messages;
type EnumDefs = typeof enums;

export type MessageName = keyof Defs & string;
export type EnumName = keyof EnumDefs & string;

type FieldOf<N extends MessageName> = Defs[N]['fields'][number];
type Int64Type = 'uint64' | 'int64' | 'sint64' | 'fixed64' | 'sfixed64';

type ScalarOut<T> = T extends Int64Type
  ? bigint
  : T extends 'bool'
    ? boolean
    : T extends 'string'
      ? string
      : T extends 'bytes'
        ? Buffer
        : number;

type ScalarIn<T> = T extends Int64Type
  ? bigint | number
  : T extends 'bool'
    ? boolean
    : T extends 'string'
      ? string | Uint8Array
      : T extends 'bytes'
        ? Uint8Array
        : number;

type EnumKey<R> = R extends EnumName ? keyof EnumDefs[R]['values'] & string : never;

type ValueOut<F> = F extends { type: 'message'; ref: infer R extends MessageName }
  ? Message<R>
  : F extends { type: 'enum' }
    ? number
    : F extends { type: infer T }
      ? ScalarOut<T>
      : never;

type ValueIn<F> = F extends { type: 'message'; ref: infer R extends MessageName }
  ? MessageInput<R>
  : F extends { type: 'enum'; ref: infer R }
    ? number | EnumKey<R>
    : F extends { type: infer T }
      ? ScalarIn<T>
      : never;

type Out<F> = F extends { label: 'rep' } ? ValueOut<F>[] : ValueOut<F>;
type In<F> = F extends { label: 'rep' } ? readonly ValueIn<F>[] : ValueIn<F>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/**
 * A decoded message: required fields and repeated fields (possibly empty arrays) are always
 * present; optional fields are undefined when absent (defaults are not filled in).
 */
export type Message<N extends MessageName> = Simplify<
  { [F in FieldOf<N> as F extends { label: 'opt' } ? never : F['name']]: Out<F> } & {
    [F in FieldOf<N> as F extends { label: 'opt' } ? F['name'] : never]?: Out<F>;
  }
>;

/**
 * What ImageWriter.write / encodeMessage accept: required fields without a schema default must
 * be given; repeated fields may be omitted (= empty).
 */
export type MessageInput<N extends MessageName> = Simplify<
  { [F in FieldOf<N> as F extends { label: 'req' } ? (F extends { default: unknown } ? never : F['name']) : never]: In<F> } & {
    [F in FieldOf<N> as F extends { label: 'req' } ? (F extends { default: unknown } ? F['name'] : never) : F['name']]?: In<F>;
  }
>;

/** Enum values by name, e.g. EnumValues<'fd_types'>['REG'] is 1. */
export type EnumValues<E extends EnumName> = EnumDefs[E]['values'];
