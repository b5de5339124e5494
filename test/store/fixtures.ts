// Shared test data for the peer store tests. Real identities are slow to generate (RSA), so bulk tests use
// fake public identities whose peerId is still the SHA-256 of the (random) signing key bytes.
import type { PublicIdentityJson } from '../../src/identity/identity.js';
import { peerIdOf } from '../../src/identity/peer-id.js';
import { concat, toBase64Url } from '../../src/util/bytes.js';

const random = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

// DER of SubjectPublicKeyInfo{rsaEncryption, RSAPublicKey{n (2048 bits), e}} around the modulus bytes.
const SPKI_HEAD = Uint8Array.from([
  0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
  0x00, 0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00,
]);
const SPKI_TAIL_E65537 = Uint8Array.from([0x02, 0x03, 0x01, 0x00, 0x01]);

/**
 * An RSA-2048 public key in SPKI form with a random odd modulus and e = 65537. Not a real key (nobody
 * knows its factors), but it imports: the store refuses keys that do not (PROTOCOL.md §2).
 */
function fakeRsaSpki(): Uint8Array {
  const n = random(256);
  n[0]! |= 0x80;
  n[255]! |= 0x01;
  return concat(SPKI_HEAD, n, SPKI_TAIL_E65537);
}

/** A public identity with a correct peerId hash and importable keys, but not real ones (binding invalid). */
export async function fakePublicIdentity(): Promise<PublicIdentityJson> {
  const signing = fakeRsaSpki();
  return {
    v: 1,
    peerId: await peerIdOf(signing),
    signingKey: toBase64Url(signing),
    encryptionKey: toBase64Url(fakeRsaSpki()),
    binding: toBase64Url(random(256)),
  };
}

/** A fresh 32-byte PSK. */
export const randomPsk = (): Uint8Array => random(32);

/** Predicate for assert.rejects: a P2PTLSError with this code. */
export const withCode =
  (code: string) =>
  (err: unknown): boolean => {
    if (err instanceof Error && (err as { code?: unknown }).code === code) return true;
    throw err;
  };
