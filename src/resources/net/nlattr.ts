// Netlink attributes (struct nlattr): 16-bit length and type, payload padded to 4 bytes; and
// the message header's flags and types every netlink family shares (linux/netlink.h).

/** struct nlmsghdr's size. */
export const NLMSG_HDRLEN = 16;
export const NLM_F = { REQUEST: 1, ACK: 4, DUMP: 0x300, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800 } as const;
export const NLMSG = { ERROR: 2, DONE: 3 } as const;

export const align4 = (n: number): number => (n + 3) & ~3;

/**
 * The attributes in `b` from `at` to `end` (default: all of it), by type without its flags:
 * each payload as a view of `b`, so writing into it writes the message.
 */
export function nlAttrs(b: Buffer, at: number, end = b.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  while (at + 4 <= end) {
    const len = b.readUInt16LE(at);
    if (len < 4 || at + len > end) throw new Error(`a netlink attribute of ${len} bytes`);
    out.set(b.readUInt16LE(at + 2) & 0x3fff, b.subarray(at + 4, at + len));
    at += align4(len);
  }
  return out;
}
