// The registry of all CRIU image messages; encode/decode by CRIU message name.
import { ProtoRegistry } from './proto.ts';
import { enums, messages } from './schema/index.ts';
import type { Message, MessageInput, MessageName } from './types.ts';

export const registry: ProtoRegistry = new ProtoRegistry(Object.values(messages), Object.values(enums), true);

export function encodeMessage<N extends MessageName>(name: N, obj: MessageInput<N>): Buffer {
  return registry.encode(name, obj);
}

/** The decoder builds the object field by field from `name`'s schema, which Message<N> is derived from. */
export function decodeMessage<N extends MessageName>(name: N, buf: Uint8Array, start?: number, end?: number): Message<N> {
  return registry.decode(name, buf, start, end) as Message<N>;
}
