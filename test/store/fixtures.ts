// Shared test data for the peer store tests. Real identities are slow to generate (RSA), so bulk tests use
// fake public identities whose peerId is still the SHA-256 of the (random) signing key bytes.
import type { PublicIdentityJson } from '../../src/identity/identity.js';
import { peerIdOf } from '../../src/identity/peer-id.js';
import { toBase64Url } from '../../src/util/bytes.js';

const random = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** A schema-valid public identity with a correct peerId hash (the keys are not real RSA keys). */
export async function fakePublicIdentity(): Promise<PublicIdentityJson> {
  const signing = random(294);
  return {
    v: 1,
    peerId: await peerIdOf(signing),
    signingKey: toBase64Url(signing),
    encryptionKey: toBase64Url(random(294)),
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
