import { fail } from '../errors.js';
import { type PeerId, peerIdToBytes } from '../identity/peer-id.js';
import { bs, compareBytes, concat, utf8 } from '../util/bytes.js';

/** Size of a PSK share and of the final pair PSK. */
export const PSK_BYTES = 32;

/** HKDF salt of the pair PSK derivation. */
export const PSK_SALT = 'p2ptls/1 pair psk salt';
/** HKDF info prefix of the pair PSK derivation; both peerIds (sorted) follow it. */
export const PSK_INFO = 'p2ptls/1 pair psk\0';

/** One side's contribution to the pair PSK. */
export interface PskShare {
  peerId: PeerId;
  share: Uint8Array;
}

/**
 * The pair PSK: HKDF-SHA256(salt = PSK_SALT, IKM = share_lo ‖ share_hi, info = PSK_INFO ‖ id_lo ‖ id_hi),
 * 32 bytes, where lo/hi order the two peers by the raw bytes of their peerIds. Both sides compute the
 * same value whatever their role, and the PSK is bound to this pair of identities. It is secret as long
 * as either share is (each travels only RSA-OAEP-encrypted to the other peer).
 */
export async function derivePairPsk(a: PskShare, b: PskShare): Promise<Uint8Array> {
  for (const s of [a, b]) {
    if (s.share.length !== PSK_BYTES)
      throw fail('invalid_argument', `a PSK share must be ${PSK_BYTES} bytes`);
  }
  const ia = peerIdToBytes(a.peerId);
  const ib = peerIdToBytes(b.peerId);
  const order = compareBytes(ia, ib);
  if (order === 0) throw fail('invalid_argument', 'cannot pair a peer with itself');
  const [lo, hi] = order < 0 ? [a, b] : [b, a];
  const [idLo, idHi] = order < 0 ? [ia, ib] : [ib, ia];
  const ikm = await crypto.subtle.importKey('raw', bs(concat(lo.share, hi.share)), 'HKDF', false, [
    'deriveBits',
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: bs(utf8(PSK_SALT)), info: bs(concat(utf8(PSK_INFO), idLo, idHi)) },
    ikm,
    PSK_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** A fresh random PSK share. */
export function randomShare(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(PSK_BYTES));
}
