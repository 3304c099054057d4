// Clients that hold one TCP connection open across a dump: a RESP (redis) client and an
// HTTP/1.1 keep-alive client. Each says so when its connection ends, so that a test can tell
// "the same connection kept working" from "it reconnected".
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { SLOW } from './slow.ts';
import { startTarget, type Target } from './targets.ts';

/** One TCP connection, with the bytes it received and whether it ended. */
class Held {
  readonly sock: net.Socket;
  protected buf = Buffer.alloc(0);
  ended: string | null = null;
  readonly localPort: number;

  protected constructor(sock: net.Socket) {
    this.sock = sock;
    this.localPort = sock.localPort!;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
    });
    sock.on('end', () => {
      this.ended ??= 'the server closed the connection';
    });
    sock.on('error', (e) => {
      this.ended ??= e.message;
    });
  }

  /** Connects, trying again for `waitMs` while nothing listens yet (a server starting). */
  protected static async open(port: number, waitMs: number): Promise<net.Socket> {
    const end = Date.now() + waitMs * SLOW;
    for (;;) {
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ port, host: '127.0.0.1' });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch (e) {
        if ((e as { code?: string }).code !== 'ECONNREFUSED' || Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Waits until `complete` finds a whole reply at the start of the buffer, and takes it. */
  protected async reply(what: string, complete: (b: Buffer) => number): Promise<Buffer> {
    const end = Date.now() + 10_000 * SLOW;
    for (;;) {
      const n = complete(this.buf);
      if (n > 0) {
        const r = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return r;
      }
      if (this.ended) throw new Error(`${what}: the connection from port ${this.localPort} ended: ${this.ended}`);
      if (Date.now() > end) throw new Error(`${what}: no reply on the connection from port ${this.localPort}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Length of one whole RESP reply at the start of b, or 0. Arrays are not needed here. */
function respLength(b: Buffer): number {
  const eol = b.indexOf('\r\n');
  if (eol < 0) return 0;
  if (b[0] !== 0x24 /* $ */) return eol + 2;
  const n = Number(b.subarray(1, eol).toString());
  if (n < 0) return eol + 2;
  return b.length >= eol + 2 + n + 2 ? eol + 2 + n + 2 : 0;
}

/** A redis client on one connection. */
export class Resp extends Held {
  static async connect(port: number, waitMs = 0): Promise<Resp> {
    return new Resp(await Held.open(port, waitMs));
  }

  /** Sends a command; returns the reply: "+OK", ":3", "-ERR ...", or a bulk string's text. */
  async cmd(...args: string[]): Promise<string> {
    this.sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    const r = (await this.reply(args.join(' '), respLength)).toString();
    if (r[0] !== '$') return r.trimEnd();
    return r.slice(r.indexOf('\r\n') + 2, -2);
  }
}

export interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Length of one whole HTTP response (with Content-Length) at the start of b, or 0. */
function httpLength(b: Buffer): number {
  const head = b.indexOf('\r\n\r\n');
  if (head < 0) return 0;
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(b.subarray(0, head).toString());
  if (!m) throw new Error(`a response without Content-Length: ${b.subarray(0, head).toString()}`);
  const n = head + 4 + Number(m[1]);
  return b.length >= n ? n : 0;
}

/** An HTTP/1.1 client that keeps its one connection alive. */
export class KeepAlive extends Held {
  static async connect(port: number, waitMs = 0): Promise<KeepAlive> {
    return new KeepAlive(await Held.open(port, waitMs));
  }

  async get(path: string): Promise<HttpReply> {
    this.sock.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`);
    const r = (await this.reply(`GET ${path}`, httpLength)).toString();
    const head = r.indexOf('\r\n\r\n');
    const [status, ...lines] = r.slice(0, head).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    return { status: Number(status.split(' ')[1]), headers, body: r.slice(head + 4) };
  }
}

/** The pid holding the server end of the loopback connection from client port `cport` to `port`. */
export function serverEnd(port: number, cport: number): number | null {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} and dport = :${cport} )`], {
    encoding: 'utf8',
  });
  const m = /pid=(\d+),/.exec(out);
  return m ? Number(m[1]) : null;
}

/** redis-server on `port`, its files and log in `dir`, nothing saved to disk; and a client connected to it. */
export async function startRedis(dir: string, port: number): Promise<{ srv: Target; r: Resp }> {
  const srv = startTarget(
    ['/usr/bin/redis-server', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { logFile: join(dir, 'redis.log') },
  );
  return { srv, r: await Resp.connect(port, 10_000) };
}
