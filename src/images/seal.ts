// Encrypted dumps (--encrypt, a criu-ts extension). Every image but the page data is sealed
// whole with AES-256-GCM; the page data keeps its chunked format (pagecodec.ts). The manifest
// then lists a SHA-256 of every file and is authenticated with an HMAC, so a file that is
// deleted, replaced, swapped with another dump's or left unencrypted is found before any
// process is created. A sealed image is:
//   "CRTSSEAL" | u32 version (1) | 12-byte random nonce | ciphertext | 16-byte GCM tag
// and authenticates its own file name, so two images of one dump cannot trade places.
// Sealing and the HMAC use keys derived from the key file's (HKDF-SHA256), never the key itself.
import path from 'node:path';
import { nodeCrypto } from '../lazy.ts';
import { ImageError } from './image-common.ts';

export const SEAL_MAGIC = Buffer.from('CRTSSEAL');
const VERSION = 1;
const HEAD = 8 + 4 + 12;
const TAG = 16;

const derived = new WeakMap<Buffer, { seal: Buffer; mac: Buffer }>();
function keys(key: Buffer): { seal: Buffer; mac: Buffer } {
  let k = derived.get(key);
  if (!k) {
    const c = nodeCrypto();
    const hkdf = (info: string) => Buffer.from(c.hkdfSync('sha256', key, Buffer.alloc(0), info, 32));
    k = { seal: hkdf('criu-ts image seal v1'), mac: hkdf('criu-ts manifest mac v1') };
    derived.set(key, k);
  }
  return k;
}

function aad(name: string): Buffer {
  const a = Buffer.alloc(12 + Buffer.byteLength(name));
  SEAL_MAGIC.copy(a, 0);
  a.writeUInt32LE(VERSION, 8);
  a.write(name, 12);
  return a;
}

export function isSealed(bytes: Uint8Array): boolean {
  return bytes.length >= HEAD + TAG && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(SEAL_MAGIC);
}

/** The sealed form of an image's whole content, for the file `name` (no directory). */
export function sealImage(key: Buffer, name: string, plain: Uint8Array): Buffer {
  const nonce = nodeCrypto().randomBytes(12);
  const c = nodeCrypto().createCipheriv('aes-256-gcm', keys(key).seal, nonce);
  c.setAAD(aad(name));
  const head = Buffer.alloc(HEAD);
  SEAL_MAGIC.copy(head, 0);
  head.writeUInt32LE(VERSION, 8);
  nonce.copy(head, 12);
  return Buffer.concat([head, c.update(plain), c.final(), c.getAuthTag()]);
}

/** An image's plain content from its sealed bytes; any doubt is an ImageError naming `file`. */
export function openSealed(key: Buffer, file: string, bytes: Buffer): Buffer {
  if (!isSealed(bytes)) throw new ImageError(file, 'not encrypted, in a dump that is; refused');
  if (bytes.readUInt32LE(8) !== VERSION) throw new ImageError(file, `unknown sealed image version ${bytes.readUInt32LE(8)}`);
  const d = nodeCrypto().createDecipheriv('aes-256-gcm', keys(key).seal, bytes.subarray(12, HEAD));
  d.setAAD(aad(path.basename(file)));
  d.setAuthTag(bytes.subarray(bytes.length - TAG));
  try {
    return Buffer.concat([d.update(bytes.subarray(HEAD, bytes.length - TAG)), d.final()]);
  } catch {
    throw new ImageError(file, 'does not authenticate with this key (altered, moved from another name, or another key)');
  }
}

/** HMAC-SHA256 of a manifest's text without its `mac` field. */
export function manifestMac(key: Buffer, manifest: object): string {
  const { mac: _mac, ...rest } = manifest as { mac?: string };
  return nodeCrypto().createHmac('sha256', keys(key).mac).update(JSON.stringify(rest)).digest('hex');
}
