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
 * Layout: v (u8), signingKey and encryptionKey each as a u16-length vector, then binding's bytes to the
 * end (ByteWriter's vec16 and ByteReader's, as on the wire). peerId is not stored: the directory keys by it.
 */
import { fail } from '../src/errors.js';
import type { PublicIdentityJson } from '../src/identity/index.js';
import { ByteReader, ByteWriter, fromBase64Url, toBase64Url } from '../src/util/bytes.js';

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
  const packed = new ByteWriter(5 + signing.length + encryption.length + binding.length)
    .u8(identity.v)
    .vec16(signing)
    .vec16(encryption)
    .bytes(binding)
    .finish();
  return Buffer.from(packed.buffer, packed.byteOffset, packed.length).toString('latin1');
}

export function unpackIdentity(peerId: string, packed: string): PublicIdentityJson {
  const r = new ByteReader(Buffer.from(packed, 'latin1'), 'packed identity');
  const v = r.u8() as 1;
  const signingKey = toBase64Url(r.vec16());
  const encryptionKey = toBase64Url(r.vec16());
  return { v, peerId, signingKey, encryptionKey, binding: toBase64Url(r.rest()) };
}
