// Image magics and the image-file table: which file name holds which messages, behind which header.
import type { MessageInput, MessageName } from './types.ts';

/** First word of every protobuf image except inventory (images v1.1, "Sarov"). */
export const IMG_COMMON_MAGIC = 0x54564319;
/** First word of service files opened with O_SERVICE: stats-*, irmap-cache ("Zlatoust"). */
export const IMG_SERVICE_MAGIC = 0x55105940;
export const RAW_IMAGE_MAGIC = 0;
/** inventory_entry.img_version of current images: every image but inventory has a 2-word header. */
export const CRTOOLS_IMAGES_V1_1 = 2;

/** Type magics (second header word) by CRIU's name; the values are part of the image ABI. */
export const MAGIC = {
  INVENTORY: 0x58313116,
  PSTREE: 0x50273030,
  FDINFO: 0x56213732,
  PAGEMAP: 0x56084025,
  SHMEM_PAGEMAP: 0x56084025,
  PAGES: RAW_IMAGE_MAGIC,
  CORE: 0x55053847,
  IDS: 0x54432030,
  VMAS: 0x54123737,
  PIPES: 0x56513555,
  PIPES_DATA: 0x56453709,
  FIFO: 0x58364939,
  FIFO_DATA: 0x59333054,
  SIGACT: 0x55344201,
  UNIXSK: 0x54373943,
  INETSK: 0x56443851,
  PACKETSK: 0x60454618,
  ITIMERS: 0x57464056,
  POSIX_TIMERS: 0x52603957,
  SK_QUEUES: 0x56264026,
  UTSNS: 0x54473203,
  CREDS: 0x54023547,
  IPC_VAR: 0x53115007,
  IPCNS_SHM: 0x46283044,
  IPCNS_MSG: 0x55453737,
  IPCNS_SEM: 0x59573019,
  REG_FILES: 0x50363636,
  EXT_FILES: 0x59255641,
  FS: 0x51403912,
  MM: 0x57492820,
  REMAP_FPATH: 0x59133954,
  GHOST_FILE: 0x52583605,
  TCP_STREAM: 0x51465506,
  EVENTFD_FILE: 0x44523722,
  EVENTPOLL_FILE: 0x45023858,
  EVENTPOLL_TFD: 0x44433746,
  SIGNALFD: 0x57323820,
  INOTIFY_FILE: 0x48424431,
  INOTIFY_WD: 0x54562009,
  MNTS: 0x55563928,
  NETDEV: 0x57373951,
  NETNS: 0x55933752,
  TTY_FILES: 0x59433025,
  TTY_INFO: 0x59453036,
  TTY_DATA: 0x59413026,
  FILE_LOCKS: 0x54323616,
  RLIMIT: 0x57113925,
  FANOTIFY_FILE: 0x55096122,
  FANOTIFY_MARK: 0x56506035,
  SIGNAL: 0x59255647,
  PSIGNAL: 0x59255647,
  NETLINK_SK: 0x58005614,
  NS_FILES: 0x61394011,
  TUNFILE: 0x57143751,
  CGROUP: 0x59383330,
  TIMERFD: 0x50493712,
  CPUINFO: 0x61404013,
  USERNS: 0x55474906,
  SECCOMP: 0x64413049,
  BINFMT_MISC: 0x67343323,
  BINFMT_MISC_OLD: 0x67343323,
  AUTOFS: 0x49353943,
  FILES: 0x56303138,
  MEMFD_INODE: 0x48453499,
  TIMENS: 0x43114433,
  PIDNS: 0x61157326,
  BPFMAP_FILE: 0x57506142,
  BPFMAP_DATA: 0x64324033,
  APPARMOR: 0x59423047,
  PIDFD: 0x54435556,
  PAGES_OLD: 0x56084025,
  SHM_PAGES_OLD: 0x56084025,
  IFADDR: RAW_IMAGE_MAGIC,
  ROUTE: RAW_IMAGE_MAGIC,
  ROUTE6: RAW_IMAGE_MAGIC,
  RULE: RAW_IMAGE_MAGIC,
  TMPFS_IMG: RAW_IMAGE_MAGIC,
  TMPFS_DEV: RAW_IMAGE_MAGIC,
  IPTABLES: RAW_IMAGE_MAGIC,
  IP6TABLES: RAW_IMAGE_MAGIC,
  NFTABLES: RAW_IMAGE_MAGIC,
  NETNF_CT: RAW_IMAGE_MAGIC,
  NETNF_EXP: RAW_IMAGE_MAGIC,
  STATS: 0x57093306,
  IRMAP_CACHE: 0x57004059,
  /** CRIU's kerndat cache in /run; not an image, listed so tools can recognise it. */
  KDAT: 0x57023458,
} as const;

export type ImageKindId = Exclude<keyof typeof MAGIC, 'KDAT'>;

/**
 * Raw bytes that follow an entry, sized by fields of that entry:
 * - pipe-data: pipe_data_entry.bytes (pipes-data, fifo-data)
 * - sk-queue: sk_packet_entry.length
 * - tcp-stream: tcp_stream_entry.inq_len then outq_len
 * - ghost: after ghost_file_entry, file contents to EOF, or (chunks) ghost_chunk_entry + len bytes
 * - ipc-shm: ipc_shm_entry.size bytes padded to 4, unless in_pagemaps
 * - ipc-sem: nsems u16 values padded to 8
 * - ipc-msg: qnum x (u32 size + ipc_msg + msize bytes padded to 8)
 * - bpfmap-data: keys_bytes + values_bytes
 */
export type ExtraKind = 'pipe-data' | 'sk-queue' | 'tcp-stream' | 'ghost' | 'ipc-shm' | 'ipc-sem' | 'ipc-msg' | 'bpfmap-data';

/** common: IMG_COMMON + magic; service: IMG_SERVICE + magic; inventory: magic only; raw: nothing. */
export type HeadKind = 'common' | 'service' | 'inventory' | 'raw';

export interface ImageKind {
  readonly id: ImageKindId;
  /** printf-style name as in CRIU: %u/%lu/%d decimal, %x lower-case hex, %s text */
  readonly pattern: string;
  readonly magic: number;
  readonly head: HeadKind;
  /** Entry message; pagemap lists [head, entry]; ghost/ipc-msg list the inner message second. */
  readonly entries: readonly MessageName[];
  readonly extra?: ExtraKind;
  /** Read-only: never written by current CRIU (merged into files.img, core, mm, ...). */
  readonly legacy?: boolean;
}

type KindSpec = readonly [ImageKindId, string, HeadKind, readonly MessageName[], ExtraKind?, 'legacy'?];

// Order matters where patterns coincide: the first match wins (pages-%u before the legacy pages-%d).
const SPECS = [
  ['INVENTORY', 'inventory.img', 'inventory', ['inventory_entry']],
  ['PSTREE', 'pstree.img', 'common', ['pstree_entry']],
  ['CORE', 'core-%u.img', 'common', ['core_entry']],
  ['IDS', 'ids-%u.img', 'common', ['task_kobj_ids_entry']],
  ['MM', 'mm-%u.img', 'common', ['mm_entry']],
  ['FS', 'fs-%u.img', 'common', ['fs_entry']],
  ['PAGEMAP', 'pagemap-%lu.img', 'common', ['pagemap_head', 'pagemap_entry']],
  ['SHMEM_PAGEMAP', 'pagemap-shmem-%lu.img', 'common', ['pagemap_head', 'pagemap_entry']],
  ['PAGES', 'pages-%u.img', 'raw', []],
  ['FDINFO', 'fdinfo-%u.img', 'common', ['fdinfo_entry']],
  ['FILES', 'files.img', 'common', ['file_entry']],
  ['PIPES_DATA', 'pipes-data.img', 'common', ['pipe_data_entry'], 'pipe-data'],
  ['FIFO_DATA', 'fifo-data.img', 'common', ['pipe_data_entry'], 'pipe-data'],
  ['SK_QUEUES', 'sk-queues.img', 'common', ['sk_packet_entry'], 'sk-queue'],
  ['TCP_STREAM', 'tcp-stream-%x.img', 'common', ['tcp_stream_entry'], 'tcp-stream'],
  ['TTY_INFO', 'tty-info.img', 'common', ['tty_info_entry']],
  ['TTY_DATA', 'tty-data.img', 'common', ['tty_data_entry']],
  ['REMAP_FPATH', 'remap-fpath.img', 'common', ['remap_file_path_entry']],
  ['GHOST_FILE', 'ghost-file-%x.img', 'common', ['ghost_file_entry', 'ghost_chunk_entry'], 'ghost'],
  ['MEMFD_INODE', 'memfd.img', 'common', ['memfd_inode_entry']],
  ['FILE_LOCKS', 'filelocks.img', 'common', ['file_lock_entry']],
  ['SECCOMP', 'seccomp.img', 'common', ['seccomp_entry']],
  ['CGROUP', 'cgroup.img', 'common', ['cgroup_entry']],
  ['TIMENS', 'timens-%u.img', 'common', ['timens_entry']],
  ['UTSNS', 'utsns-%u.img', 'common', ['utsns_entry']],
  ['IPC_VAR', 'ipcns-var-%u.img', 'common', ['ipc_var_entry']],
  ['IPCNS_SHM', 'ipcns-shm-%u.img', 'common', ['ipc_shm_entry'], 'ipc-shm'],
  ['IPCNS_MSG', 'ipcns-msg-%u.img', 'common', ['ipc_msg_entry', 'ipc_msg'], 'ipc-msg'],
  ['IPCNS_SEM', 'ipcns-sem-%u.img', 'common', ['ipc_sem_entry'], 'ipc-sem'],
  ['MNTS', 'mountpoints-%u.img', 'common', ['mnt_entry']],
  ['NETNS', 'netns-%u.img', 'common', ['netns_entry']],
  ['NETDEV', 'netdev-%u.img', 'common', ['net_device_entry']],
  ['USERNS', 'userns-%u.img', 'common', ['userns_entry']],
  ['PIDNS', 'pidns-%u.img', 'common', ['pidns_entry']],
  ['BINFMT_MISC', 'binfmt-misc.img', 'common', ['binfmt_misc_entry']],
  ['AUTOFS', 'autofs-%u.img', 'common', ['autofs_entry']],
  ['CPUINFO', 'cpuinfo.img', 'common', ['cpuinfo_entry']],
  ['APPARMOR', 'apparmor.img', 'common', ['apparmor_entry']],
  ['BPFMAP_FILE', 'bpfmap-file.img', 'common', ['bpfmap_file_entry']],
  ['BPFMAP_DATA', 'bpfmap-data.img', 'common', ['bpfmap_data_entry'], 'bpfmap-data'],
  ['STATS', 'stats-%s', 'service', ['stats_entry']],
  ['IRMAP_CACHE', 'irmap-cache', 'service', ['irmap_cache_entry']],
  ['IFADDR', 'ifaddr-%u.img', 'raw', []],
  ['ROUTE', 'route-%u.img', 'raw', []],
  ['ROUTE6', 'route6-%u.img', 'raw', []],
  ['RULE', 'rule-%u.img', 'raw', []],
  ['IPTABLES', 'iptables-%u.img', 'raw', []],
  ['IP6TABLES', 'ip6tables-%u.img', 'raw', []],
  ['NFTABLES', 'nftables-%u.img', 'raw', []],
  ['NETNF_CT', 'netns-ct-%u.img', 'raw', []],
  ['NETNF_EXP', 'netns-exp-%u.img', 'raw', []],
  ['TMPFS_DEV', 'tmpfs-dev-%u.tar.gz.img', 'raw', []],
  ['TMPFS_IMG', 'tmpfs-%u.tar.gz.img', 'raw', [], undefined, 'legacy'],
  // pre-files.img per-type images and pre-core per-task images
  ['REG_FILES', 'reg-files.img', 'common', ['reg_file_entry'], undefined, 'legacy'],
  ['EXT_FILES', 'ext-files.img', 'common', ['ext_file_entry'], undefined, 'legacy'],
  ['NS_FILES', 'ns-files.img', 'common', ['ns_file_entry'], undefined, 'legacy'],
  ['EVENTFD_FILE', 'eventfd.img', 'common', ['eventfd_file_entry'], undefined, 'legacy'],
  ['EVENTPOLL_FILE', 'eventpoll.img', 'common', ['eventpoll_file_entry'], undefined, 'legacy'],
  ['EVENTPOLL_TFD', 'eventpoll-tfd.img', 'common', ['eventpoll_tfd_entry'], undefined, 'legacy'],
  ['SIGNALFD', 'signalfd.img', 'common', ['signalfd_entry'], undefined, 'legacy'],
  ['TIMERFD', 'timerfd.img', 'common', ['timerfd_entry'], undefined, 'legacy'],
  ['INOTIFY_FILE', 'inotify.img', 'common', ['inotify_file_entry'], undefined, 'legacy'],
  ['INOTIFY_WD', 'inotify-wd.img', 'common', ['inotify_wd_entry'], undefined, 'legacy'],
  ['FANOTIFY_FILE', 'fanotify.img', 'common', ['fanotify_file_entry'], undefined, 'legacy'],
  ['FANOTIFY_MARK', 'fanotify-mark.img', 'common', ['fanotify_mark_entry'], undefined, 'legacy'],
  ['PIPES', 'pipes.img', 'common', ['pipe_entry'], undefined, 'legacy'],
  ['FIFO', 'fifo.img', 'common', ['fifo_entry'], undefined, 'legacy'],
  ['UNIXSK', 'unixsk.img', 'common', ['unix_sk_entry'], undefined, 'legacy'],
  ['INETSK', 'inetsk.img', 'common', ['inet_sk_entry'], undefined, 'legacy'],
  ['PACKETSK', 'packetsk.img', 'common', ['packet_sock_entry'], undefined, 'legacy'],
  ['NETLINK_SK', 'netlinksk.img', 'common', ['netlink_sk_entry'], undefined, 'legacy'],
  ['TUNFILE', 'tunfile.img', 'common', ['tunfile_entry'], undefined, 'legacy'],
  ['TTY_FILES', 'tty.img', 'common', ['tty_file_entry'], undefined, 'legacy'],
  ['PIDFD', 'pidfd.img', 'common', ['pidfd_entry'], undefined, 'legacy'],
  ['VMAS', 'vmas-%u.img', 'common', ['vma_entry'], undefined, 'legacy'],
  ['SIGACT', 'sigacts-%u.img', 'common', ['sa_entry'], undefined, 'legacy'],
  ['ITIMERS', 'itimers-%u.img', 'common', ['itimer_entry'], undefined, 'legacy'],
  ['POSIX_TIMERS', 'posix-timers-%u.img', 'common', ['posix_timer_entry'], undefined, 'legacy'],
  ['RLIMIT', 'rlimit-%u.img', 'common', ['rlimit_entry'], undefined, 'legacy'],
  ['CREDS', 'creds-%u.img', 'common', ['creds_entry'], undefined, 'legacy'],
  ['SIGNAL', 'signal-s-%u.img', 'common', ['siginfo_entry'], undefined, 'legacy'],
  ['PSIGNAL', 'signal-p-%u.img', 'common', ['siginfo_entry'], undefined, 'legacy'],
  ['BINFMT_MISC_OLD', 'binfmt-misc-%u.img', 'common', ['binfmt_misc_entry'], undefined, 'legacy'],
  // Same name as PAGES; told apart by content (a PAGEMAP header instead of raw page data).
  ['PAGES_OLD', 'pages-%d.img', 'common', ['pagemap_head', 'pagemap_entry'], undefined, 'legacy'],
  ['SHM_PAGES_OLD', 'pages-shmem-%ld.img', 'common', ['pagemap_head', 'pagemap_entry'], undefined, 'legacy'],
] as const satisfies readonly KindSpec[];

// The table at the type level: each kind fixes its file name pattern and its entry message,
// so that what is written to or read from an image is checked against that message.
type Spec<K extends ImageKindId> = Extract<(typeof SPECS)[number], readonly [K, ...unknown[]]>;
/** Kinds that hold protobuf entries (not raw data), as written by current CRIU. */
export type EntryKind = {
  [K in ImageKindId]: Spec<K> extends readonly [K, string, HeadKind, readonly [MessageName, ...MessageName[]], ...unknown[]] ? K : never;
}[ImageKindId];
/** The (first) entry message of a kind: IMG.CORE holds core_entry. */
export type EntryOf<K extends EntryKind> = Spec<K>[3][0];
/** What fills the placeholder of a kind's file name: none for "pstree.img", one for "core-%u.img". */
export type ImageArgs<K extends ImageKindId> = Spec<K>[1] extends `${string}%s${string}`
  ? [name: string]
  : Spec<K>[1] extends `${string}%${string}`
    ? [id: number | bigint]
    : [];

/** What adds an entry to an image of kind K: the file name's argument, the entry, any raw payload. */
export type AddArgs<K extends EntryKind> = [...ImageArgs<K>, entry: MessageInput<EntryOf<K>>, extra?: Buffer];

/** Image kinds by name, as CRIU's CR_FD_* and pycriu's handler table name them: IMG.CORE. */
export const IMG = Object.fromEntries(SPECS.map(([id]) => [id, id])) as { readonly [K in ImageKindId]: K };

export const IMAGE_KINDS: readonly ImageKind[] = SPECS.map((spec: KindSpec) => {
  const [id, pattern, head, entries, extra, legacy] = spec;
  const k: ImageKind = { id, pattern, magic: MAGIC[id], head, entries, extra, legacy: legacy === 'legacy' };
  return Object.freeze(k);
});

const BY_ID = new Map<string, ImageKind>(IMAGE_KINDS.map((k) => [k.id, k]));

const ESC = /[.*+?^${}()|[\]\\]/g;
const MATCHERS = IMAGE_KINDS.map((k) => {
  const src = k.pattern
    .replace(ESC, '\\$&')
    .replace(/%(l?u|l?d|x|s)/g, (_m, c: string) =>
      c === 'x' ? '([0-9a-f]+)' : c === 's' ? '(.+)' : c.endsWith('d') ? '(-?\\d+)' : '(\\d+)',
    );
  return { kind: k, re: new RegExp(`^${src}$`) };
});

export function imageKind(id: ImageKindId | string): ImageKind {
  const k = BY_ID.get(id);
  if (!k) throw new Error(`unknown image kind ${id}`);
  return k;
}

/** The image kind a file name denotes, e.g. "core-5.img" -> CORE; undefined for unknown names. */
export function imageKindForFile(basename: string): ImageKind | undefined {
  return parseImageName(basename)?.kind;
}

/** The entry message of a kind, as EntryOf<K> names it. */
export function entryMessage<K extends EntryKind>(id: K): EntryOf<K> {
  // BY_ID holds SPECS row by row, which is what EntryOf<K> reads.
  return imageKind(id).entries[0] as EntryOf<K>;
}

const PLACEHOLDER = /%(l?u|l?d|x|s)/g;

/**
 * The file name of `kind` from the front of `a` (as many arguments as its pattern has
 * placeholders, which ImageArgs<K> counts the same way), and what follows them.
 */
export function splitImageArgs<K extends ImageKindId, R extends unknown[]>(kind: K, a: [...ImageArgs<K>, ...R]): { name: string; rest: R } {
  const n = imageKind(kind).pattern.match(PLACEHOLDER)?.length ?? 0;
  // ImageArgs<K> is made of numbers and strings, and the rest is R: the compiler cannot split
  // a generic tuple at a runtime length.
  return { name: imageFileName(kind, ...(a.slice(0, n) as (number | bigint | string)[])), rest: a.slice(n) as R };
}

/** Kind plus the numbers/text filled into its pattern: "tcp-stream-1f.img" -> [0x1f]. */
export function parseImageName(basename: string): { kind: ImageKind; args: (number | string)[] } | undefined {
  for (const { kind, re } of MATCHERS) {
    const m = re.exec(basename);
    if (!m) continue;
    const conv = [...kind.pattern.matchAll(/%(l?u|l?d|x|s)/g)].map((c) => c[1]);
    const args = m.slice(1).map((s, i) => (conv[i] === 's' ? s : conv[i] === 'x' ? parseInt(s, 16) : Number(s)));
    return { kind, args };
  }
  return undefined;
}

/** File name of an image: imageFileName('CORE', 5) -> "core-5.img". */
export function imageFileName(id: ImageKindId, ...args: (number | bigint | string)[]): string {
  const k = imageKind(id);
  let i = 0;
  const name = k.pattern.replace(/%(l?u|l?d|x|s)/g, (_m, c: string) => {
    if (i >= args.length) throw new Error(`${k.pattern}: missing argument ${i + 1}`);
    const a = args[i++];
    if (c === 's') return String(a);
    if (typeof a === 'string') throw new Error(`${k.pattern}: argument ${i} must be a number`);
    return c === 'x' ? a.toString(16) : a.toString(10);
  });
  if (i !== args.length) throw new Error(`${k.pattern}: ${args.length} arguments for ${i} placeholders`);
  return name;
}

/** Kinds whose 2-word header carries this type magic (several kinds share PAGEMAP/SIGNAL magics). */
export function imageKindsForMagic(magic: number, head: HeadKind = 'common'): ImageKind[] {
  return IMAGE_KINDS.filter((k) => k.magic === magic && k.head === head && magic !== RAW_IMAGE_MAGIC);
}
