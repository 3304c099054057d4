// What the dump and the restore of unix sockets share: states, flags and how names read.
import type { KindEntry } from '../files/types.ts';

export type UnixEntry = KindEntry<'usk'>;
export const TCP_ESTABLISHED = 1,
  TCP_LISTEN = 10;
/** unix_sk_entry.uflags: a peer outside the tree, saved without an fd. */
export const USK_EXTERN = 1;

export const isPathName = (name: Uint8Array): boolean => name.length > 0 && name[0] !== 0;
/** A name as people read it: a path, or @ and an abstract name. */
export const showName = (name: Uint8Array): string =>
  isPathName(name) ? Buffer.from(name).toString().replace(/\0$/, '') : `@${Buffer.from(name).subarray(1).toString()}`;

/** What in a unix_sk_entry no socket could be made from, for the restore's image check. */
export function unixEntryProblem(e: UnixEntry): string | undefined {
  if (![1, 2, 5].includes(e.type)) return `type ${e.type} is not stream, datagram or seqpacket`;
  if (![TCP_ESTABLISHED, 7, TCP_LISTEN].includes(e.state)) return `state ${e.state} is not established, close or listen`;
  if (e.name.length > 108) return `name of ${e.name.length} bytes is longer than sun_path`;
  if (isPathName(e.name) && e.name.subarray(0, -1).includes(0)) return 'a path name holds a NUL byte';
  if (e.shutdown !== undefined && (e.shutdown < 0 || e.shutdown > 3)) return `shutdown ${e.shutdown} is not 0..3`;
  if (e.fown.signum > 64) return `fown.signum ${e.fown.signum} is not a signal`;
  return undefined;
}
