/**
 * RSA identities with a public exponent other than 65537, built with node:crypto because WebCrypto (and
 * so `Identity.generate`) only makes the keys p2ptls accepts. Used by the tests that check every entry
 * point refuses them (PROTOCOL.md §2).
 *
 *   const weak = await weakIdentity({ signing: 3n });          // e = 3 signing key, normal OAEP key
 *   const huge = await weakIdentity({ encryption: 'huge' });    // 2038-bit exponent on the OAEP key
 *   weak.json; weak.sign(bytes); weak.secretJson
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  generatePrimeSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import type { PublicIdentityJson, SecretIdentityJson } from '../../src/identity/index.js';
import { peerIdOf } from '../../src/identity/index.js';
import { concat, toBase64Url, utf8 } from '../../src/util/bytes.js';

/** An exponent: a small one node:crypto can generate, or `huge` (2038 bits, built by hand). */
export type Exponent = bigint | 'huge';

const b64u = (x: bigint) => {
  let h = x.toString(16);
  if (h.length % 2) h = `0${h}`;
  return Buffer.from(h, 'hex').toString('base64url');
};

function modInverse(a: bigint, m: bigint): bigint | undefined {
  let [r0, r1, x0, x1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [x0, x1] = [x1, x0 - q * x1];
  }
  return r0 === 1n ? ((x0 % m) + m) % m : undefined;
}

/**
 * The RSA private key with primes `p`, `q` and public exponent `e`, imported as a JWK; undefined when
 * they make none (`e` shares a factor with φ(n), or p = q). Also bench/signaling-clients.ts's way to
 * many identities from a small pool of primes.
 */
export function rsaKeyFromPrimes(p: bigint, q: bigint, e: bigint): KeyObject | undefined {
  const d = modInverse(e, (p - 1n) * (q - 1n));
  const qi = modInverse(q, p);
  if (d === undefined || qi === undefined || p === q) return undefined;
  return createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'RSA',
      n: b64u(p * q),
      e: b64u(e),
      d: b64u(d),
      p: b64u(p),
      q: b64u(q),
      dp: b64u(d % (p - 1n)),
      dq: b64u(d % (q - 1n)),
      qi: b64u(qi),
    },
  });
}

/**
 * A 2048-bit RSA key whose public exponent has 2038 bits. OpenSSL will not generate one, so pick two
 * primes and an odd exponent coprime to φ(n), and import the result as a JWK.
 */
function hugeExponentKey(): KeyObject {
  for (;;) {
    const p = generatePrimeSync(1024, { bigint: true });
    const q = generatePrimeSync(1024, { bigint: true });
    const random = BigInt(`0x${Buffer.from(crypto.getRandomValues(new Uint8Array(255))).toString('hex')}`);
    const key = rsaKeyFromPrimes(p, q, (random & ((1n << 2038n) - 1n)) | (1n << 2037n) | 1n);
    if (key) return key;
  }
}

/** An RSA private key with public exponent `e`, of `bits` (2048 by default; the huge exponent's is 2048). */
export function rsaKey(e: Exponent = 65537n, bits = 2048): KeyObject {
  if (e === 'huge') return hugeExponentKey();
  return generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: Number(e) }).privateKey;
}

const spkiOf = (key: KeyObject) =>
  new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }) as Buffer);
const pkcs8Of = (key: KeyObject) => new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }) as Buffer);

/** RSA-PSS-SHA256, salt 32: what `Identity.sign` makes (PROTOCOL.md §2). */
export const pssSign = (key: KeyObject, data: Uint8Array): Uint8Array =>
  new Uint8Array(sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }));

/** A complete, correctly bound identity made outside WebCrypto, with the exponents asked for. */
export interface CustomIdentity {
  readonly json: PublicIdentityJson;
  readonly secretJson: SecretIdentityJson;
  readonly signingKey: KeyObject;
  readonly encryptionKey: KeyObject;
  sign(data: Uint8Array): Uint8Array;
}

/**
 * An identity whose signing and/or encryption key has a non-standard exponent (default 65537 each) or
 * modulus size (default 2048 bits each).
 */
export async function weakIdentity(e: {
  signing?: Exponent;
  encryption?: Exponent;
  signingBits?: number;
  encryptionBits?: number;
}): Promise<CustomIdentity> {
  const signingKey = rsaKey(e.signing, e.signingBits);
  const encryptionKey = rsaKey(e.encryption, e.encryptionBits);
  const signingSpki = spkiOf(signingKey);
  const encryptionSpki = spkiOf(encryptionKey);
  const binding = pssSign(signingKey, concat(utf8('p2ptls/1 encryption key binding\0'), encryptionSpki));
  const peerId = await peerIdOf(signingSpki);
  return {
    json: {
      v: 1,
      peerId,
      signingKey: toBase64Url(signingSpki),
      encryptionKey: toBase64Url(encryptionSpki),
      binding: toBase64Url(binding),
    },
    secretJson: {
      v: 1,
      kind: 'p2ptls-secret-identity',
      peerId,
      signingKey: toBase64Url(pkcs8Of(signingKey)),
      encryptionKey: toBase64Url(pkcs8Of(encryptionKey)),
      binding: toBase64Url(binding),
    },
    signingKey,
    encryptionKey,
    sign: (data) => pssSign(signingKey, data),
  };
}

/** The four identities the exponent tests try at every entry point. */
export async function weakIdentities(): Promise<Array<{ name: string; identity: CustomIdentity }>> {
  return [
    { name: 'signing e=3', identity: await weakIdentity({ signing: 3n }) },
    { name: 'encryption e=3', identity: await weakIdentity({ encryption: 3n }) },
    { name: 'signing e of 2038 bits', identity: await weakIdentity({ signing: 'huge' }) },
    { name: 'encryption e of 2038 bits', identity: await weakIdentity({ encryption: 'huge' }) },
  ];
}
