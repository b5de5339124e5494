/**
 * A public identity as the in-memory directory keeps it: its three keys' bytes in one one-byte string,
 * for as long as the server runs, for every peer it has seen (online or not, up to its bound).
 *
 * As `PublicIdentityJson` an RSA-2048 identity is three base64url strings and an object: 1.24 KB a peer
 * in a heap snapshot of 4,000 connected clients, the largest thing a connection kept beyond what a bare
 * socket.io relay keeps. Packed, it is the 844 bytes themselves plus one string header (~0.87 KB). A
 * latin1 string is V8's most compact heap form for bytes: it takes one byte a character and no
 * ArrayBuffer, backing store or typed-array view (estimated ~200 B more for a Uint8Array of this size).
 *
 * Layout: v (1 byte), then signingKey and encryptionKey each as a 2-byte big-endian length and the
 * bytes, then binding's bytes to the end. peerId is not stored: the directory keys by it.
 */
import { fail } from '../src/errors.js';
import type { PublicIdentityJson } from '../src/identity/index.js';
import { fromBase64Url, toBase64Url } from '../src/util/bytes.js';

/**
 * Packs an identity; `malformed` when a field is not canonical base64url, which `PublicIdentity.import`
 * (the server's check at `auth`) rejects the same way, so that {@link unpackIdentity} gives back the very
 * strings that were packed, or when a key is over 65,535 bytes (the schema allows 900).
 */
export function packIdentity(identity: PublicIdentityJson): string {
  const signing = fromBase64Url(identity.signingKey);
  const encryption = fromBase64Url(identity.encryptionKey);
  const binding = fromBase64Url(identity.binding);
  if (signing.length > 0xffff || encryption.length > 0xffff) throw fail('malformed', 'identity key too long');
  const out = Buffer.allocUnsafe(5 + signing.length + encryption.length + binding.length);
  let o = out.writeUInt8(identity.v, 0);
  o = out.writeUInt16BE(signing.length, o);
  out.set(signing, o);
  o = out.writeUInt16BE(encryption.length, o + signing.length);
  out.set(encryption, o);
  out.set(binding, o + encryption.length);
  return out.toString('latin1');
}

export function unpackIdentity(peerId: string, packed: string): PublicIdentityJson {
  const b = Buffer.from(packed, 'latin1');
  const signingEnd = 3 + b.readUInt16BE(1);
  const encryptionEnd = signingEnd + 2 + b.readUInt16BE(signingEnd);
  return {
    v: b[0] as 1,
    peerId,
    signingKey: toBase64Url(b.subarray(3, signingEnd)),
    encryptionKey: toBase64Url(b.subarray(signingEnd + 2, encryptionEnd)),
    binding: toBase64Url(b.subarray(encryptionEnd)),
  };
}
