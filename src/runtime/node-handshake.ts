/**
 * The handshake's public-key work through node:crypto, mostly synchronously. Only the Node entry point
 * imports this file.
 *
 * Why: on the 2-core bench machine, with both peers, the signaling server and WebRTC's threads busy in a
 * set-up, each WebCrypto call waited for the thread pool and then for the event loop: the initiator's
 * X25519 (import + deriveBits) took 3.0 ms and its RSA-PSS signature 1.8 ms, against 0.1 and 0.5 ms of
 * actual work (`.tmp/setuptrace.ts` marks, bench:transport --only setup). Done here, a dial's key
 * exchange costs ~0.1 ms and a 2048-bit signature 0.4 ms of the event loop.
 */
import {
  constants,
  createECDH,
  createPublicKey,
  diffieHellman,
  type ECDH,
  generateKeyPairSync,
  KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { fail } from '../errors.js';
import type { HandshakeCrypto } from '../host/types.js';
import type { Identity, PublicIdentity } from '../identity/identity.js';
import { type Ephemeral, type KeyExchange, Suite } from '../protocol/index.js';

/** PROTOCOL.md §3.6: RSA-PSS with SHA-256 and a 32-byte salt, as WebCrypto's `PSS_PARAMS`. */
const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } as const;

/**
 * Signatures with bigger keys go to the thread pool: 3072 bits take 2.0 ms and 4096 bits 5.1 ms to sign
 * (this machine), long enough to hold up every other connection's records on the event loop; 2048 bits
 * (the default) take 0.4 ms, less than a trip through the pool costs under load.
 */
const MAX_SYNC_SIGNING_BITS = 2048;

interface NodeEphemeral extends Ephemeral {
  /** X25519: the private key. */
  readonly x25519?: KeyObject;
  /** P-256: the key pair. */
  readonly p256?: ECDH;
}

const nodeKeyExchange: KeyExchange = {
  async generate(suite) {
    if (suite === Suite.P256_AES256GCM_SHA256) {
      const p256 = createECDH('prime256v1');
      const share = new Uint8Array(p256.generateKeys()); // uncompressed: 04 ‖ x ‖ y
      const ephemeral: NodeEphemeral = { p256, share };
      return ephemeral;
    }
    // Raw X25519 keys go in and out as JWK: 1 and 7 µs, against 82 and 97 µs as DER (this machine).
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    const share = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url'));
    const ephemeral: NodeEphemeral = { x25519: privateKey, share };
    return ephemeral;
  },
  async agree(suite, own, peerShare) {
    const { x25519, p256 } = own as NodeEphemeral;
    // computeSecret refuses a point that is not on the curve.
    if (suite === Suite.P256_AES256GCM_SHA256 && p256) return new Uint8Array(p256.computeSecret(peerShare));
    if (suite === Suite.X25519_AES256GCM_SHA256 && x25519) {
      const x = Buffer.from(peerShare).toString('base64url');
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
      return new Uint8Array(diffieHellman({ privateKey: x25519, publicKey }));
    }
    throw fail('invalid_argument', 'the ephemeral was not made by node:crypto for this suite');
  },
};

function signWith(key: KeyObject, data: Uint8Array): Promise<Uint8Array> {
  if ((key.asymmetricKeyDetails?.modulusLength ?? Infinity) <= MAX_SYNC_SIGNING_BITS) {
    return Promise.resolve(new Uint8Array(sign('sha256', data, { key, ...PSS })));
  }
  return new Promise((resolve, reject) =>
    sign('sha256', data, { key, ...PSS }, (err, signature) =>
      err ? reject(err) : resolve(new Uint8Array(signature)),
    ),
  );
}

/** ECDHE and RSA-PSS through node:crypto, for {@link HostOptions.handshakeCrypto}. */
export const nodeHandshakeCrypto: HandshakeCrypto = {
  keyExchange: nodeKeyExchange,
  signer(identity: Identity) {
    const key = KeyObject.from(identity.privateKeys.signingPrivateKey);
    return { peerId: identity.peerId, sign: async (data) => signWith(key, data) };
  },
  verifier(peer: PublicIdentity) {
    const key = KeyObject.from(peer.signingKey);
    return {
      peerId: peer.peerId,
      async verify(signature, data) {
        try {
          return verify('sha256', data, { key, ...PSS }, signature);
        } catch {
          return false; // as PublicIdentity.verify: a malformed signature is a wrong one
        }
      },
    };
  },
};
