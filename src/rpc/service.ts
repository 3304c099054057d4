// `criu-ts service`: a unix SEQPACKET socket at --address, clients served one after another
// in this process (CRIU forks one worker each). A client's bad request or failed operation
// ends its connection only; the service stays up.
import fs from 'node:fs';
import { acceptConn, close, seqpacketListen, waitpid, SysError } from '../kernel/index.ts';
import type { Logger } from '../resources/types.ts';
import { RpcConn } from './conn.ts';
import { serveConnection, type ServeOptions } from './server.ts';

export interface ServiceOptions {
  address: string;
  pidfile?: string;
  /** Written one zero byte, then closed, once clients can connect (CRIU's --status-fd). */
  statusFd?: number;
  log: Logger;
  serve: ServeOptions;
}

const WNOHANG = 1;

export function runService(o: ServiceOptions): void {
  try {
    fs.unlinkSync(o.address);
  } catch {
    /* none there */
  }
  const sk = seqpacketListen(o.address);
  fs.chmodSync(o.address, 0o666);
  if (o.pidfile) fs.writeFileSync(o.pidfile, `${process.pid}`);
  if (o.statusFd !== undefined) {
    fs.writeSync(o.statusFd, Buffer.alloc(1));
    fs.closeSync(o.statusFd);
  }
  o.log.info(`service listening on ${o.address}`);
  try {
    for (let n = 0; ; n++) {
      const fd = acceptConn(sk);
      try {
        const rc = serveConnection(new RpcConn(fd), o.serve);
        o.log.debug(`connection ${n} served: ${rc}`);
      } catch (e) {
        o.log.error(`connection ${n}: ${(e as Error).message}`);
      } finally {
        close(fd);
      }
      reapChildren();
    }
  } finally {
    close(sk);
  }
}

/** Restored trees are the service's children (it is their subreaper): reap those that ended. */
function reapChildren(): void {
  for (;;) {
    try {
      if (waitpid(-1, WNOHANG).pid <= 0) return;
    } catch (e) {
      if (e instanceof SysError) return;
      throw e;
    }
  }
}
