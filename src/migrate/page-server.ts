// criu-ts page-server: receives the page data of a dump (CRIU's or criu-ts's `dump
// --page-server`) and writes pagemap-N.img and pages-N.img into its images directory, as
// CRIU's page server does. It writes a checksum manifest of its own files
// (PAGE_SERVER_MANIFEST) once the client has closed the session properly. Until then the files
// grow in a hidden directory beside them, moved into place at the end: a session that ends any
// other way (garbage, a truncated stream, a client gone, the page server killed) leaves nothing
// that looks like images.
import fs from 'node:fs';
import path from 'node:path';
import { CriuError } from '../errors.ts';
import { ManifestBuilder, PAGE_SERVER_MANIFEST, PagemapWriter, PE_LAZY, PE_PARENT, PE_PRESENT, imageFileName } from '../images/index.ts';
import { close, tcp } from '../kernel/index.ts';
import type { Logger } from '../resources/types.ts';
import { PS, PS_IOV_SIZE, SERVER_PAGES_ID_BASE, decodeDst, decodeIov, type PsIov } from './protocol.ts';

const PAGE = 4096;
const CHUNK = 1 << 20;
/** More pages than any address space holds (2^47 bytes): a garbage count, not a run. */
const MAX_RUN_PAGES = 1n << 35n;

/** A listening socket for `page-server --address A --port P` (no address: every address, IPv6 and IPv4). */
export function listenPageServer(address: string | undefined, port: number): { fd: number; port: number } {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CriuError(`bad port ${port}`);
  let addr: Buffer;
  try {
    addr = tcp.inetSockaddr(address ?? '::', port);
  } catch {
    throw new CriuError(`bad address ${address}: a numeric IPv4 or IPv6 address`);
  }
  const fd = tcp.tcpListen(addr);
  return { fd, port: tcp.boundPort(fd) };
}

/** Serve one client on the listening socket, then close it (CRIU's page server serves one session). */
export function servePageServer(listenFd: number, dir: string, log: Logger): { pages: number; files: string[] } {
  let sk: number;
  try {
    sk = tcp.tcpAccept(listenFd);
  } finally {
    close(listenFd);
  }
  log.info('page server: a client connected');
  const s = new Session(sk, dir, log);
  try {
    return s.run();
  } catch (e) {
    s.discard();
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new CriuError(`page server: ${msg}; the images it received are removed`);
  } finally {
    close(sk);
  }
}

const STAGE_PREFIX = '.criu-ts-page-server.';

/** Staging directories of page servers that died (their pid gone) in `dir`. */
function removeStale(dir: string): void {
  for (const n of fs.readdirSync(dir)) {
    if (!n.startsWith(STAGE_PREFIX)) continue;
    const pid = Number(n.slice(STAGE_PREFIX.length));
    if (Number.isInteger(pid) && pid !== process.pid && !fs.existsSync(`/proc/${pid}`))
      fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}

class Session {
  /** Where the files grow until CLOSE. */
  private readonly stage: string;
  private readonly created: string[] = [];
  private readonly manifest = new ManifestBuilder();
  private readonly dones: Array<() => void> = [];
  private cur?: { dst: bigint; w: PagemapWriter };
  private pagesId = SERVER_PAGES_ID_BASE;
  private pages = 0;
  private readonly hdr = Buffer.alloc(PS_IOV_SIZE);
  private readonly buf = Buffer.allocUnsafe(CHUNK);

  private readonly sk: number;
  private readonly dir: string;
  private readonly log: Logger;

  constructor(sk: number, dir: string, log: Logger) {
    this.sk = sk;
    this.dir = dir;
    this.log = log;
    removeStale(dir);
    this.stage = path.join(dir, `${STAGE_PREFIX}${process.pid}`);
    fs.rmSync(this.stage, { recursive: true, force: true });
    fs.mkdirSync(this.stage, { mode: 0o700 });
  }

  run(): { pages: number; files: string[] } {
    tcp.setNodelay(this.sk, true);
    for (;;) {
      const n = tcp.recvFull(this.sk, this.hdr);
      if (n === 0) throw new Error('the client closed the connection before the end of the session (no CLOSE)');
      if (n < PS_IOV_SIZE) throw new Error(`the stream ends in the middle of a command (${n} of ${PS_IOV_SIZE} bytes)`);
      const pi = decodeIov(this.hdr);
      switch (pi.cmd) {
        case PS.OPEN:
        case PS.OPEN2:
          this.open(pi.dstId);
          if (pi.cmd === PS.OPEN2) tcp.sendFull(this.sk, Buffer.from([this.hasParent(pi.dstId) ? 1 : 0]));
          break;
        case PS.PARENT: {
          const b = Buffer.alloc(4);
          b.writeInt32LE(this.hasParent(pi.dstId) ? 1 : 0);
          tcp.sendFull(this.sk, b);
          break;
        }
        case PS.ADD_F:
        case PS.ADD:
        case PS.HOLE:
          this.add(pi, pi.cmd === PS.ADD_F ? pi.flags : pi.cmd === PS.ADD ? PE_PRESENT : PE_PARENT);
          break;
        case PS.CLOSE:
        case PS.FORCE_CLOSE:
          return this.finish(pi.cmd === PS.CLOSE);
        case PS.GET:
          throw new Error('PS_IOV_GET (lazy pages) is not supported by criu-ts');
        default:
          throw new Error(`unknown command 0x${(this.hdr.readUInt32LE(0) >>> 0).toString(16)} (not CRIU's page server protocol)`);
      }
    }
  }

  private target(dst: bigint): { id: bigint; shmem: boolean } {
    const t = decodeDst(dst);
    if (!t) throw new Error(`unknown pagemap type ${dst & 0xffn} in destination 0x${dst.toString(16)}`);
    if (t.id > 0xffffffffn) throw new Error(`pagemap id ${t.id} out of range`);
    return t;
  }

  private open(dst: bigint): void {
    const { id, shmem } = this.target(dst);
    this.closeCurrent();
    const pagesId = this.pagesId++;
    const pmName = shmem ? imageFileName('SHMEM_PAGEMAP', id) : imageFileName('PAGEMAP', id);
    const pagesName = imageFileName('PAGES', pagesId);
    if (this.created.includes(pmName)) throw new Error(`${pmName} sent twice`);
    this.log.debug(`page server: ${pmName} and ${pagesName}`);
    this.created.push(pmName, pagesName);
    const w = new PagemapWriter(this.stage, id, pagesId, {
      shmem,
      merge: false,
      pagemapTap: this.tap(pmName),
      pagesTap: this.tap(pagesName),
    });
    this.cur = { dst, w };
  }

  private tap(name: string): (d: Uint8Array) => void {
    const t = this.manifest.tap(name);
    this.dones.push(t.done);
    return t.tap;
  }

  /** Whether this pagemap has a parent in the parent images (`parent` link) for PE_PARENT runs. */
  private hasParent(dst: bigint): boolean {
    const { id, shmem } = this.target(dst);
    const name = shmem ? imageFileName('SHMEM_PAGEMAP', id) : imageFileName('PAGEMAP', id);
    return fs.existsSync(path.join(this.dir, 'parent', name));
  }

  private add(pi: PsIov, flags: number): void {
    if (!this.cur || this.cur.dst !== pi.dstId) this.open(pi.dstId);
    if (flags & ~(PE_PARENT | PE_LAZY | PE_PRESENT)) throw new Error(`bad pagemap flags 0x${flags.toString(16)}`);
    if (pi.nrPages === 0n || pi.nrPages > MAX_RUN_PAGES) throw new Error(`bad page count ${pi.nrPages} at 0x${pi.vaddr.toString(16)}`);
    if (flags & PE_PARENT && !this.hasParent(pi.dstId))
      throw new Error(
        `pages at 0x${pi.vaddr.toString(16)} are said to be in the parent images, but there are none (page-server --prev-images-dir)`,
      );
    const w = this.cur!.w;
    const nr = Number(pi.nrPages);
    w.addRun(pi.vaddr, nr, flags);
    if (!(flags & PE_PRESENT)) return;
    let left = nr * PAGE;
    while (left > 0) {
      const want = Math.min(left, CHUNK);
      const got = tcp.recvFull(this.sk, this.buf.subarray(0, want));
      if (got < want)
        throw new Error(
          `the stream ends in the middle of page data at 0x${pi.vaddr.toString(16)} (${nr * PAGE - left + got} of ${nr * PAGE} bytes)`,
        );
      w.writePages(this.buf.subarray(0, want));
      left -= want;
    }
    this.pages += nr;
  }

  private closeCurrent(): void {
    const c = this.cur;
    this.cur = undefined;
    c?.w.close();
  }

  private finish(waitEof: boolean): { pages: number; files: string[] } {
    this.closeCurrent();
    for (const d of this.dones) d();
    // Into place, then the manifest that vouches for them, last (an older one goes first).
    fs.rmSync(path.join(this.dir, PAGE_SERVER_MANIFEST), { force: true });
    for (const n of this.created) fs.renameSync(path.join(this.stage, n), path.join(this.dir, n));
    fs.rmdirSync(this.stage);
    this.manifest.write(this.dir, PAGE_SERVER_MANIFEST);
    const st = Buffer.alloc(4);
    tcp.sendFull(this.sk, st);
    // The client closes first (no TIME_WAIT here); anything more is garbage.
    if (waitEof && tcp.recvFull(this.sk, Buffer.alloc(1)) !== 0) this.log.warn('page server: data after the end of the session, ignored');
    this.log.info(`page server: ${this.pages} pages received`);
    return { pages: this.pages, files: [...this.created, PAGE_SERVER_MANIFEST] };
  }

  discard(): void {
    try {
      this.cur?.w.close();
    } catch {
      /* already failing */
    }
    fs.rmSync(this.stage, { recursive: true, force: true });
  }
}
