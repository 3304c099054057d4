// The client side of the page server protocol: a dump with --page-server sends each pagemap's
// runs and page bytes to the page server instead of writing pagemap-N.img and pages-N.img.
// Runs are announced before their bytes are read (dumpPages batches many runs per read), so a
// run's header goes out when the bytes before it have gone.
import { CriuError } from '../errors.ts';
import { PE_PARENT, PE_PRESENT } from '../images/index.ts';
import { SysError, close, tcp } from '../kernel/index.ts';
import type { PageSink } from '../resources/types.ts';
import { PS, encodeDst, encodeIov } from './protocol.ts';

const PAGE = 4096;
/** How long a refused connection is tried again. */
const CONNECT_WAIT_MS = 3000;

export interface PageServerAddress {
  address: string;
  port: number;
}

export class PageServerClient {
  /** The pagemap images sent, by their names in the page server's directory. */
  readonly pagemaps: string[] = [];
  /**
   * Per pagemap sent, the ranges the page server now has (present, or in its parent images):
   * what a next incremental dump may leave to this one (PAGE_SERVER_RUNS).
   */
  readonly runs: Record<string, Array<[string, string]>> = {};
  private fd: number | undefined;
  private readonly where: string;

  constructor(to: PageServerAddress) {
    this.where = `${to.address.includes(':') ? `[${to.address}]` : to.address}:${to.port}`;
    let addr: Buffer;
    try {
      addr = tcp.inetSockaddr(to.address, to.port);
    } catch {
      throw new CriuError(`bad --address ${to.address}: a numeric IPv4 or IPv6 address`);
    }
    // A page server started just before the dump (ZDTM starts both at once) may not listen yet.
    const until = Date.now() + CONNECT_WAIT_MS;
    for (;;) {
      try {
        this.fd = tcp.tcpConnect(addr);
        break;
      } catch (e) {
        if (!(e instanceof SysError && e.code === 'ECONNREFUSED' && Date.now() < until))
          throw new CriuError(`cannot connect to the page server at ${this.where}: ${(e as Error).message}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      }
    }
    // Corked: headers and holes leave in full frames; NODELAY flushes before each wait for an answer.
    tcp.setCork(this.fd, true);
  }

  private sock(): number {
    if (this.fd === undefined) throw new CriuError('the page server connection is closed');
    return this.fd;
  }

  send(b: Uint8Array): void {
    try {
      tcp.sendFull(this.sock(), b);
    } catch (e) {
      throw new CriuError(`the page server at ${this.where} went away: ${(e as Error).message}`);
    }
  }

  private answer(n: number, what: string): Buffer {
    const fd = this.sock();
    tcp.setNodelay(fd, true);
    const b = Buffer.alloc(n);
    let got = 0;
    try {
      got = tcp.recvFull(fd, b);
    } catch (e) {
      throw new CriuError(`the page server at ${this.where} does not answer ${what}: ${(e as Error).message}`);
    }
    if (got !== n) throw new CriuError(`the page server at ${this.where} closed the connection instead of answering ${what}`);
    return b;
  }

  /**
   * pagemap-ID.img (or pagemap-shmem-ID.img) on the page server. PS_IOV_OPEN2 goes with its
   * first run: the server writes one pagemap at a time (an OPEN ends the previous one), and a
   * task's shared memory is saved between the creation of its pagemap and its first run.
   */
  open(id: number | bigint, shmem: boolean, name: string): RemotePagemap {
    const dst = encodeDst(id, shmem);
    const ranges: Array<[string, string]> = [];
    const start = (): boolean => {
      if (this.active !== undefined) throw new CriuError(`page server: ${name} while ${this.active} is being sent`);
      this.send(encodeIov(PS.OPEN2, 0, 0n, 0n, dst));
      const hasParent = this.answer(1, 'the opening of a pagemap')[0] !== 0;
      this.active = name;
      this.pagemaps.push(name);
      this.runs[name] = ranges;
      return hasParent;
    };
    const done = () => {
      if (this.active === name) this.active = undefined;
    };
    return new RemotePagemap(this, dst, start, done, (a, b) => ranges.push([a.toString(16), b.toString(16)]));
  }

  /** The pagemap being sent (opened, not yet closed). */
  private active?: string;

  /** PS_IOV_CLOSE, and the page server's status: it has every byte. */
  close(): void {
    this.send(encodeIov(PS.CLOSE, 0, 0n, 0n, 0n));
    const st = this.answer(4, 'the end of the session').readInt32LE(0);
    this.abort();
    if (st !== 0) throw new CriuError(`the page server at ${this.where} failed (status ${st})`);
  }

  /** Drop the connection: the page server sees a session without CLOSE and discards it. */
  abort(): void {
    if (this.fd !== undefined) close(this.fd);
    this.fd = undefined;
  }
}

interface Run {
  header: Buffer;
  left: number;
  sent: boolean;
}

/** One pagemap on its way to the page server (PS_IOV_ADD_F per run). */
export class RemotePagemap implements PageSink {
  private readonly queue: Run[] = [];
  private closed = false;
  private readonly ps: PageServerClient;
  private readonly dst: bigint;
  private readonly start: () => boolean;
  private readonly done: () => void;
  private readonly note: (start: bigint, end: bigint) => void;
  /** The page server's has_parent answer, once opened. */
  private hasParent?: boolean;

  constructor(ps: PageServerClient, dst: bigint, start: () => boolean, done: () => void, note: (start: bigint, end: bigint) => void) {
    this.ps = ps;
    this.dst = dst;
    this.start = start;
    this.done = done;
    this.note = note;
  }

  addRun(vaddr: bigint, nrPages: number, flags: number): void {
    if (this.closed) throw new CriuError('page server: addRun after close');
    // The protocol carries 16 bits of flags: criu-ts's PE_COW_PARENT cannot go (task-dump
    // does not use it with a page server).
    if (flags > 0xffff) throw new CriuError(`page server: pagemap flags 0x${flags.toString(16)} do not fit CRIU's protocol`);
    this.hasParent ??= this.start();
    const present = (flags & PE_PRESENT) !== 0;
    if (flags & PE_PARENT && !this.hasParent)
      throw new CriuError('the page server has no parent images for pages left to the previous dump (start it with --prev-images-dir)');
    if (flags & (PE_PRESENT | PE_PARENT)) this.note(vaddr, vaddr + BigInt(nrPages * PAGE));
    this.queue.push({
      header: encodeIov(PS.ADD_F, flags, BigInt(nrPages), vaddr, this.dst),
      left: present ? nrPages * PAGE : 0,
      sent: false,
    });
    this.pump();
  }

  writePages(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const head = this.queue[0];
      if (!head) throw new CriuError('page server: more page data than the runs announce');
      const n = Math.min(head.left, buf.length - off);
      this.ps.send(buf.subarray(off, off + n));
      head.left -= n;
      off += n;
      this.pump();
    }
  }

  /** Send the headers due: the head run's, and those after it once the bytes before them went. */
  private pump(): void {
    while (this.queue.length) {
      const head = this.queue[0];
      if (!head.sent) {
        this.ps.send(head.header);
        head.sent = true;
      }
      if (head.left > 0) return;
      this.queue.shift();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // An empty pagemap is still a pagemap image (CRIU's page server writes one at OPEN).
    this.hasParent ??= this.start();
    this.done();
    const short = this.queue.reduce((s, r) => s + r.left, 0);
    if (short) throw new CriuError(`page server: the runs announce ${short} more bytes of page data than were sent`);
  }
}
