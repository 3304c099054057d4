// The (criu) field options of crit's --pretty JSON: flag tables, value dictionaries, dev_t and IP
// addresses, both ways. The tables are CRIU 4.2's crit tables (not the kernel's full lists), so
// bits crit does not name stay as a hex remainder, as crit prints them.
import { parsePyInt } from './codecs.ts';

type FlagTable = readonly (readonly [string, number])[];

const FLAG_TABLES: Record<string, FlagTable> = {
  'mmap.prot': [
    ['PROT_READ', 0x1],
    ['PROT_WRITE', 0x2],
    ['PROT_EXEC', 0x4],
  ],
  'mmap.flags': [
    ['MAP_SHARED', 0x1],
    ['MAP_PRIVATE', 0x2],
    ['MAP_DROPPABLE', 0x08],
    ['MAP_ANON', 0x20],
    ['MAP_GROWSDOWN', 0x0100],
  ],
  'mmap.status': [
    ['VMA_AREA_NONE', 0],
    ['VMA_AREA_REGULAR', 1 << 0],
    ['VMA_AREA_STACK', 1 << 1],
    ['VMA_AREA_VSYSCALL', 1 << 2],
    ['VMA_AREA_VDSO', 1 << 3],
    ['VMA_AREA_HEAP', 1 << 5],
    ['VMA_FILE_PRIVATE', 1 << 6],
    ['VMA_FILE_SHARED', 1 << 7],
    ['VMA_ANON_SHARED', 1 << 8],
    ['VMA_ANON_PRIVATE', 1 << 9],
    ['VMA_AREA_SYSVIPC', 1 << 10],
    ['VMA_AREA_SOCKET', 1 << 11],
    ['VMA_AREA_VVAR', 1 << 12],
    ['VMA_AREA_AIORING', 1 << 13],
    ['VMA_AREA_MEMFD', 1 << 14],
    ['VMA_AREA_SHSTK', 1 << 15],
    ['VMA_AREA_UPROBES', 1 << 17],
    ['VMA_UNSUPP', 2 ** 31],
  ],
  'rfile.flags': [
    ['O_WRONLY', 0o1],
    ['O_RDWR', 0o2],
    ['O_CREAT', 0o100],
    ['O_EXCL', 0o200],
    ['O_NOCTTY', 0o400],
    ['O_TRUNC', 0o1000],
    ['O_APPEND', 0o2000],
    ['O_NONBLOCK', 0o4000],
    ['O_DSYNC', 0o10000],
    ['FASYNC', 0o20000],
    ['O_DIRECT', 0o40000],
    ['O_LARGEFILE', 0o100000],
    ['O_DIRECTORY', 0o200000],
    ['O_NOFOLLOW', 0o400000],
    ['O_NOATIME', 0o1000000],
    ['O_CLOEXEC', 0o2000000],
  ],
  'pmap.flags': [
    ['PE_PARENT', 1],
    ['PE_LAZY', 2],
    ['PE_PRESENT', 4],
  ],
  'seals.flags': [
    ['F_SEAL_SEAL', 0x1],
    ['F_SEAL_SHRINK', 0x2],
    ['F_SEAL_GROW', 0x4],
    ['F_SEAL_WRITE', 0x8],
    ['F_SEAL_FUTURE_WRITE', 0x10],
  ],
};

// crit keys these by field name; its task_state names predate CRIU's current numbering.
const DICTS: Record<string, Record<string, Record<number, string>>> = {
  gen: { task_state: { 1: 'Alive', 3: 'Zombie', 6: 'Stopped' } },
  sk: {
    family: { 1: 'UNIX', 2: 'INET', 10: 'INET6', 16: 'NETLINK', 17: 'PACKET' },
    type: { 1: 'STREAM', 2: 'DGRAM', 3: 'RAW', 5: 'SEQPACKET', 10: 'PACKET' },
    state: {
      1: 'ESTABLISHED',
      2: 'SYN_SENT',
      3: 'SYN_RECV',
      4: 'FIN_WAIT1',
      5: 'FIN_WAIT2',
      6: 'TIME_WAIT',
      7: 'CLOSE',
      8: 'CLOSE_WAIT',
      9: 'LAST_ACK',
      10: 'LISTEN',
    },
    proto: { 0: 'IP', 6: 'TCP', 17: 'UDP', 136: 'UDPLITE' },
  },
};

/** Python's "0x%x" % v (negative values as "-0x5"). */
export function hexText(v: number | bigint): string {
  return v < 0 ? `-0x${(-BigInt(v)).toString(16)}` : `0x${v.toString(16)}`;
}

/** "A | B | 0x40": named bits in table order, then any unnamed rest in hex; "" for 0. */
export function flagsText(table: string, v: number | bigint): string {
  const t = FLAG_TABLES[table];
  if (!t) return hexText(v);
  if (typeof v === 'number' && v >= 0 && v <= 0xffffffff) {
    // the usual case, a u32 field: no bigints
    let s = '';
    let named = 0;
    for (const [name, bit] of t) {
      if ((v & bit) !== 0) s += (s ? ' | ' : '') + name;
      named |= bit;
    }
    const rest = (v & ~named) >>> 0;
    return rest ? s + (s ? ' | ' : '') + hexText(rest) : s;
  }
  let rest = BigInt(v);
  const names: string[] = [];
  let all = 0n;
  for (const [name, bit] of t) {
    if ((rest & BigInt(bit)) !== 0n) names.push(name);
    all |= BigInt(bit);
  }
  rest &= ~all;
  if (rest !== 0n) names.push(hexText(rest));
  return names.join(' | ');
}

export function parseFlags(table: string, text: string): bigint {
  const t = FLAG_TABLES[table];
  if (!t) return intOf(text);
  if (text === '') return 0n;
  let v = 0n;
  for (const part of text.split('|').map((s) => s.trim())) {
    const named = t.find(([n]) => n === part);
    // crit adds the parts up; the same bit twice would carry into the next
    v += named ? BigInt(named[1]) : intOf(part);
  }
  return v;
}

export function hasDict(dict: string, field: string): boolean {
  return DICTS[dict]?.[field] !== undefined;
}

export function dictText(dict: string, field: string, v: number): string | number {
  return DICTS[dict]?.[field]?.[v] ?? v;
}

export function parseDict(dict: string, field: string, text: string): bigint {
  const m = DICTS[dict]?.[field] ?? {};
  for (const [k, name] of Object.entries(m)) if (name === text) return BigInt(k);
  return intOf(text);
}

export function intOf(text: string): bigint {
  const v = parsePyInt(text);
  if (v === undefined) throw new Error(`${JSON.stringify(text)} is not a number`);
  return v;
}

// dev_t: the kernel's new encoding (major << 20 | minor), or glibc's makedev() for "odev" fields.
export function devText(v: number, old: boolean): string {
  if (!old) return `${Math.floor(v / 2 ** 20)}:${v % 2 ** 20}`;
  const d = BigInt(v);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export function parseDev(text: string, old: boolean): bigint {
  const parts = text.split(':');
  if (parts.length !== 2) throw new Error(`${JSON.stringify(text)} is not a "major:minor" device`);
  const [major, minor] = parts.map((p) => intOf(p));
  if (!old) return (major << 20n) | minor;
  return ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
}

// IP addresses are kept as u32 words in network byte order; on this little-endian host that is
// the word's low byte first.
const bytesOf = (w: number) => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24];
const wordOf = (b: number[], i: number) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** Text of a 1-word (IPv4) or 4-word (IPv6) address, as Python's ipaddress `compressed`. */
export function ipText(words: readonly number[]): string | undefined {
  if (words.length === 1) return bytesOf(words[0]).join('.');
  if (words.length !== 4) return undefined;
  const b = words.flatMap(bytesOf);
  const h: number[] = [];
  for (let i = 0; i < 16; i += 2) h.push((b[i] << 8) | b[i + 1]);
  // the first longest run of two or more zero groups becomes "::"
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (h[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && h[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = h.map((x) => x.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function parseV4(s: string): number[] | undefined {
  const p = s.split('.');
  if (p.length !== 4 || !p.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255)) return undefined;
  return p.map(Number);
}

/** Words of an IPv4 or IPv6 address text (ipaddress.ip_address syntax). */
export function parseIp(text: string): number[] {
  const v4 = parseV4(text);
  if (v4) return [wordOf(v4, 0)];
  const bad = () => new Error(`${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) throw bad();
  let s = text;
  if (s.includes('.')) {
    // a trailing dotted quad stands for the last two groups
    const colon = s.lastIndexOf(':');
    const t = parseV4(s.slice(colon + 1));
    if (!t || colon < 0) throw bad();
    s = `${s.slice(0, colon + 1)}${((t[0] << 8) | t[1]).toString(16)}:${((t[2] << 8) | t[3]).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) throw bad();
  const groups = (x: string) => (x === '' ? [] : x.split(':'));
  const head = groups(halves[0]);
  const back = halves.length === 2 ? groups(halves[1]) : [];
  if (![...head, ...back].every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) throw bad();
  const given = head.length + back.length;
  let h: number[];
  if (halves.length === 2) {
    if (given > 7) throw bad();
    h = [...head.map((g) => parseInt(g, 16)), ...new Array(8 - given).fill(0), ...back.map((g) => parseInt(g, 16))];
  } else {
    if (given !== 8) throw bad();
    h = head.map((g) => parseInt(g, 16));
  }
  const b = h.flatMap((x) => [x >> 8, x & 0xff]);
  return [0, 4, 8, 12].map((i) => wordOf(b, i));
}
