import { fail } from '../errors.js';
import { fromBase32, toBase32 } from '../util/base32.js';
import { bs, equalBytes } from '../util/bytes.js';

/**
 * A peerId is the SHA-256 of the peer's RSA-PSS signing key in SPKI DER form, written as 52 characters of
 * lower-case base32. It is self-certifying: whoever shows a key that hashes to it and signs with it is
 * that peer, so a signaling server cannot hand out someone else's id.
 */
export type PeerId = string;

/** Length of a peerId in characters. */
export const PEER_ID_LENGTH = 52;

const PEER_ID_RE = /^[a-z2-7]{52}$/;

/** True when `s` has the form of a peerId (it says nothing about who holds it). */
export function isPeerId(s: unknown): s is PeerId {
  return typeof s === 'string' && PEER_ID_RE.test(s);
}

/** The 32 raw bytes behind a peerId, as carried in handshake messages. */
export function peerIdToBytes(peerId: string): Uint8Array {
  if (!isPeerId(peerId)) throw fail('invalid_argument', 'not a peerId (52 lower-case base32 characters)');
  return fromBase32(peerId);
}

export function peerIdFromBytes(b: Uint8Array): PeerId {
  if (b.length !== 32) throw fail('malformed', 'peerId must be 32 bytes');
  return toBase32(b);
}

/** Computes the peerId of an RSA-PSS public key given as SPKI DER bytes or as a CryptoKey. */
export async function peerIdOf(signingKey: CryptoKey | Uint8Array): Promise<PeerId> {
  const spki =
    signingKey instanceof Uint8Array
      ? signingKey
      : new Uint8Array(await crypto.subtle.exportKey('spki', signingKey));
  return peerIdFromBytes(new Uint8Array(await crypto.subtle.digest('SHA-256', bs(spki))));
}

/**
 * Checks that `signingKey` hashes to `peerId`. Throws `peer_id_mismatch` if it does not, so a key that
 * somebody merely claims belongs to a peer is never trusted.
 */
export async function verifyPeerId(peerId: PeerId, signingKey: CryptoKey | Uint8Array): Promise<void> {
  const actual = await peerIdOf(signingKey);
  if (!equalBytes(peerIdToBytes(peerId), peerIdToBytes(actual))) {
    throw fail('peer_id_mismatch', `key hashes to ${actual}, not to the claimed peerId ${peerId}`);
  }
}
