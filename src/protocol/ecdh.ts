import { fail } from '../errors.js';
import { bs } from '../util/bytes.js';
import { Suite } from './constants.js';

/** WebCrypto parameters of each suite's key exchange. */
function algorithm(suite: Suite): EcKeyImportParams | Algorithm {
  return suite === Suite.P256_AES256GCM_SHA256 ? { name: 'ECDH', namedCurve: 'P-256' } : { name: 'X25519' };
}

/** Length of a key share on the wire (P-256: uncompressed point; X25519: u-coordinate). */
export function keyShareLength(suite: Suite): number {
  return suite === Suite.P256_AES256GCM_SHA256 ? 65 : 32;
}

/** An ephemeral key pair for one handshake. Never stored, so the session keys have forward secrecy. */
export interface Ephemeral {
  keyPair: CryptoKeyPair;
  share: Uint8Array;
}

export async function generateEphemeral(suite: Suite): Promise<Ephemeral> {
  const keyPair = (await crypto.subtle.generateKey(algorithm(suite), true, ['deriveBits'])) as CryptoKeyPair;
  return { keyPair, share: new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey)) };
}

/** Rebuilds a fixed ephemeral from a private JWK (test vectors only). */
export async function importEphemeral(suite: Suite, jwk: JsonWebKey): Promise<Ephemeral> {
  const privateKey = await crypto.subtle.importKey('jwk', jwk, algorithm(suite), true, ['deriveBits']);
  const { d: _d, key_ops: _ops, ...pub } = jwk;
  const publicKey = await crypto.subtle.importKey('jwk', pub, algorithm(suite), true, []);
  return {
    keyPair: { privateKey, publicKey },
    share: new Uint8Array(await crypto.subtle.exportKey('raw', publicKey)),
  };
}

/**
 * The shared secret. An invalid or low-order peer share is rejected by WebCrypto (off-curve point,
 * all-zero X25519 output) and reported as `bad_key`.
 */
export async function deriveShared(suite: Suite, own: Ephemeral, peerShare: Uint8Array): Promise<Uint8Array> {
  if (peerShare.length !== keyShareLength(suite)) throw fail('malformed', 'key share has the wrong length');
  // PROTOCOL.md §3.1: P-256 shares are uncompressed points. WebCrypto would also take the "hybrid" forms
  // 06/07 of the same point, which would make the share malleable.
  if (suite === Suite.P256_AES256GCM_SHA256 && peerShare[0] !== 0x04) {
    throw fail('bad_key', 'P-256 key share must be an uncompressed point (04 ‖ x ‖ y)');
  }
  try {
    const peer = await crypto.subtle.importKey('raw', bs(peerShare), algorithm(suite), false, []);
    const bits = await crypto.subtle.deriveBits(
      { name: (algorithm(suite) as Algorithm).name, public: peer } as EcdhKeyDeriveParams,
      own.keyPair.privateKey,
      256,
    );
    const shared = new Uint8Array(bits);
    if (shared.every((b) => b === 0)) throw new Error('all-zero shared secret');
    return shared;
  } catch (err) {
    throw fail('bad_key', 'invalid ECDH key share', err);
  }
}
