import { fail, isP2PTLSError } from '../errors.js';
import { bs } from '../util/bytes.js';
import { Suite } from './constants.js';

/** Length of a key share on the wire (P-256: uncompressed point; X25519: u-coordinate). */
export function keyShareLength(suite: Suite): number {
  return suite === Suite.P256_AES256GCM_SHA256 ? 65 : 32;
}

/**
 * An ephemeral key pair for one handshake: its share as sent on the wire, and the private half in whatever
 * form its {@link KeyExchange} keeps it. Never stored, so the session keys have forward secrecy.
 */
export interface Ephemeral {
  readonly share: Uint8Array;
}

/**
 * Where the ECDHE of a handshake runs (PROTOCOL.md §3.6). The default is WebCrypto; Node's entry point
 * passes node:crypto (src/runtime/node-handshake.ts). {@link deriveShared} checks what goes in and out,
 * so an implementation only does the arithmetic.
 */
export interface KeyExchange {
  generate(suite: Suite): Promise<Ephemeral>;
  /** The raw shared secret with `peerShare`; rejects if the share is not a valid public key of `suite`. */
  agree(suite: Suite, own: Ephemeral, peerShare: Uint8Array): Promise<Uint8Array>;
}

/** WebCrypto parameters of each suite's key exchange. */
function algorithm(suite: Suite): EcKeyImportParams | Algorithm {
  return suite === Suite.P256_AES256GCM_SHA256 ? { name: 'ECDH', namedCurve: 'P-256' } : { name: 'X25519' };
}

interface WebCryptoEphemeral extends Ephemeral {
  readonly keyPair: CryptoKeyPair;
}

/** ECDHE through WebCrypto: what browsers use. */
export const webCryptoKeyExchange: KeyExchange = {
  async generate(suite) {
    const keyPair = (await crypto.subtle.generateKey(algorithm(suite), true, [
      'deriveBits',
    ])) as CryptoKeyPair;
    const share = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
    const ephemeral: WebCryptoEphemeral = { keyPair, share };
    return ephemeral;
  },
  async agree(suite, own, peerShare) {
    const { keyPair } = own as Partial<WebCryptoEphemeral>;
    if (!keyPair) throw fail('invalid_argument', 'the ephemeral was not made by WebCrypto');
    const peer = await crypto.subtle.importKey('raw', bs(peerShare), algorithm(suite), false, []);
    const bits = await crypto.subtle.deriveBits(
      { name: (algorithm(suite) as Algorithm).name, public: peer } as EcdhKeyDeriveParams,
      keyPair.privateKey,
      256,
    );
    return new Uint8Array(bits);
  },
};

/** A fresh ephemeral key pair (WebCrypto unless another {@link KeyExchange} is given). */
export function generateEphemeral(
  suite: Suite,
  exchange: KeyExchange = webCryptoKeyExchange,
): Promise<Ephemeral> {
  return exchange.generate(suite);
}

/** Rebuilds a fixed ephemeral from a private JWK, for WebCrypto (test vectors only). */
export async function importEphemeral(suite: Suite, jwk: JsonWebKey): Promise<Ephemeral> {
  const privateKey = await crypto.subtle.importKey('jwk', jwk, algorithm(suite), true, ['deriveBits']);
  const { d: _d, key_ops: _ops, ...pub } = jwk;
  const publicKey = await crypto.subtle.importKey('jwk', pub, algorithm(suite), true, []);
  const share = new Uint8Array(await crypto.subtle.exportKey('raw', publicKey));
  const ephemeral: WebCryptoEphemeral = { keyPair: { privateKey, publicKey }, share };
  return ephemeral;
}

/** The private JWK of a WebCrypto ephemeral, the twin of {@link importEphemeral} (test vectors only). */
export async function exportEphemeral(ephemeral: Ephemeral): Promise<JsonWebKey> {
  const { keyPair } = ephemeral as Partial<WebCryptoEphemeral>;
  if (!keyPair) throw fail('invalid_argument', 'the ephemeral was not made by WebCrypto');
  return crypto.subtle.exportKey('jwk', keyPair.privateKey);
}

/**
 * The shared secret. A share of the wrong length or form, an invalid or low-order share (off-curve point,
 * all-zero X25519 output) is reported as `bad_key` (`malformed` for the length), whichever
 * {@link KeyExchange} does the arithmetic.
 */
export async function deriveShared(
  suite: Suite,
  own: Ephemeral,
  peerShare: Uint8Array,
  exchange: KeyExchange = webCryptoKeyExchange,
): Promise<Uint8Array> {
  if (peerShare.length !== keyShareLength(suite)) throw fail('malformed', 'key share has the wrong length');
  // PROTOCOL.md §3.1: P-256 shares are uncompressed points. WebCrypto and OpenSSL would also take the
  // "hybrid" forms 06/07 of the same point (OpenSSL the compressed 02/03 too), which would make the share
  // malleable.
  if (suite === Suite.P256_AES256GCM_SHA256 && peerShare[0] !== 0x04) {
    throw fail('bad_key', 'P-256 key share must be an uncompressed point (04 ‖ x ‖ y)');
  }
  let shared: Uint8Array;
  try {
    shared = await exchange.agree(suite, own, peerShare);
  } catch (err) {
    if (isP2PTLSError(err)) throw err;
    throw fail('bad_key', 'invalid ECDH key share', err);
  }
  if (shared.length !== 32 || shared.every((b) => b === 0)) throw fail('bad_key', 'invalid ECDH key share');
  return shared;
}
