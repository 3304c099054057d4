// What the dump and the restore of unix sockets share: states, flags and how names read.
import type { KindEntry } from '../files/types.ts';

export type UnixEntry = KindEntry<'usk'>;
export const TCP_ESTABLISHED = 1, TCP_LISTEN = 10;
/** unix_sk_entry.uflags: a peer outside the tree, saved without an fd. */
export const USK_EXTERN = 1;

export const isPathName = (name: Uint8Array): boolean => name.length > 0 && name[0] !== 0;
/** A name as people read it: a path, or @ and an abstract name. */
export const showName = (name: Uint8Array): string =>
  isPathName(name) ? Buffer.from(name).toString().replace(/\0$/, '') : `@${Buffer.from(name).subarray(1).toString()}`;
