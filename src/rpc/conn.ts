// One RPC connection: a criu_req per datagram in, a criu_resp per datagram out, no length
// prefix (unlike image files). A request that does not decode is answered, never dropped.
import { peerCred, peerGone, recvDatagram, sendDatagram } from '../kernel/index.ts';
import { decodeMessage, encodeMessage, enums, type Message, type MessageInput } from '../images/index.ts';

export type CriuReq = Message<'criu_req'>;
export type CriuResp = MessageInput<'criu_resp'>;
export const REQ = enums.criu_req_type.values;
export type ReqType = keyof typeof REQ;

/** Larger requests are refused: the biggest real one (runc's dump) is a few KiB. */
export const MAX_REQUEST = 1 << 20;
const EBADMSG = 74,
  E2BIG = 7;

/** A datagram that is not a request criu-ts can read, with the errno of its reply. */
export class BadRequest extends Error {
  readonly crErrno: number;
  constructor(message: string, crErrno: number) {
    super(message);
    this.crErrno = crErrno;
  }
}

export class RpcConn {
  /** The client: SO_PEERCRED's pid, whose fds the request's *_fd fields name. */
  readonly peer: number;
  readonly fd: number;
  /** A first request already taken off the socket (by bin/criu-ts, for swrk). */
  private first: Buffer | undefined;
  constructor(fd: number, first?: Buffer) {
    this.fd = fd;
    this.peer = peerCred(fd).pid;
    this.first = first;
  }

  /** The next request, undefined when the client has closed its end. */
  recv(): CriuReq | undefined {
    const first = this.first;
    this.first = undefined;
    const d = first
      ? first.length
        ? { bytes: first.subarray(0, MAX_REQUEST), size: first.length }
        : undefined
      : recvDatagram(this.fd, MAX_REQUEST);
    if (!d) return undefined;
    if (d.size > MAX_REQUEST) throw new BadRequest(`request of ${d.size} bytes is larger than ${MAX_REQUEST}`, E2BIG);
    let req: CriuReq;
    try {
      req = decodeMessage('criu_req', d.bytes);
    } catch (e) {
      throw new BadRequest(`bad request: ${(e as Error).message}`, EBADMSG);
    }
    if (!(Object.values(REQ) as number[]).includes(req.type)) throw new BadRequest(`Invalid req: unknown type ${req.type}`, EBADMSG);
    return req;
  }

  send(resp: CriuResp): void {
    sendDatagram(this.fd, encodeMessage('criu_resp', resp));
  }

  /** Whether the client has gone (its end closed), without waiting. */
  gone(): boolean {
    return peerGone(this.fd);
  }
}

export const typeName = (t: number): string => Object.entries(REQ).find(([, v]) => v === t)?.[0] ?? String(t);
