import { z } from 'zod';
import { fail } from '../errors.js';
import { bs, concat, equalBytes, fromBase64Url, toBase64Url, utf8 } from '../util/bytes.js';
import { b64url, PeerIdSchema } from '../util/wire-schemas.js';
import { type PeerId, peerIdOf, verifyPeerId } from './peer-id.js';

/** RSA modulus sizes an identity may use. 2048 is the default: key generation for 4096 takes seconds. */
export type ModulusLength = 2048 | 3072 | 4096;
const MODULUS_LENGTHS: readonly number[] = [2048, 3072, 4096];

/**
 * 65537, the only public exponent an identity key may have (PROTOCOL.md §2), on generation and on every
 * import. e = 3 is what low-exponent attacks on sloppy verifiers and padding need, and a huge exponent (a
 * 2038-bit one passes a plain import) makes each verification ~20× slower for everyone who checks that
 * peer's signatures: the signaling server at login, every peer at pairing and at each handshake.
 */
const PUBLIC_EXPONENT = new Uint8Array([1, 0, 1]);
/** RSA-PSS with SHA-256 and a 32-byte salt (RFC 8017 §8.1, salt length = hash length). */
export const PSS_PARAMS = { name: 'RSA-PSS', saltLength: 32 } as const;
const PSS_IMPORT = { name: 'RSA-PSS', hash: 'SHA-256' } as const;
const OAEP_IMPORT = { name: 'RSA-OAEP', hash: 'SHA-256' } as const;

/** Context string of the signature that binds the OAEP (pairing) key to the signing key. */
const BINDING_CONTEXT = utf8('p2ptls/1 encryption key binding\0');

/** JSON form of a public identity: what other peers store and what signaling relays. */
export const PublicIdentityJsonSchema = z.object({
  v: z.literal(1),
  peerId: PeerIdSchema,
  signingKey: b64url(1200),
  encryptionKey: b64url(1200),
  binding: b64url(1200),
});
export type PublicIdentityJson = z.infer<typeof PublicIdentityJsonSchema>;

/** JSON form of a whole identity including private keys. Treat it as a password. */
export const SecretIdentityJsonSchema = z.object({
  v: z.literal(1),
  kind: z.literal('p2ptls-secret-identity'),
  peerId: PeerIdSchema,
  signingKey: b64url(4000),
  encryptionKey: b64url(4000),
  binding: b64url(1200),
});
export type SecretIdentityJson = z.infer<typeof SecretIdentityJsonSchema>;

function parseJson<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw fail('malformed', `${what}: not JSON`, err);
    }
  }
  const r = schema.safeParse(value);
  if (!r.success) throw fail('malformed', `${what}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

async function importKey(
  format: 'spki' | 'pkcs8',
  der: Uint8Array,
  alg: typeof PSS_IMPORT | typeof OAEP_IMPORT,
  usages: KeyUsage[],
  extractable = true,
): Promise<CryptoKey> {
  try {
    const key = await crypto.subtle.importKey(format, bs(der), alg, extractable, usages);
    const { modulusLength: bits, publicExponent } = key.algorithm as RsaHashedKeyAlgorithm;
    if (!MODULUS_LENGTHS.includes(bits)) throw fail('bad_key', `RSA modulus of ${bits} bits is not allowed`);
    checkPublicExponent(publicExponent);
    return key;
  } catch (err) {
    if (err instanceof Error && err.name === 'P2PTLSError') throw err;
    throw fail('bad_key', `cannot import ${alg.name} ${format} key`, err);
  }
}

/** Throws `bad_key` unless `e` (big-endian, as WebCrypto reports it) is 65537; leading zeros are allowed. */
function checkPublicExponent(e: Uint8Array | undefined): void {
  // Fail closed: WebCrypto always reports the exponent of an RSA key; a runtime that does not cannot be
  // trusted to have checked it either.
  if (!(e instanceof Uint8Array)) throw fail('bad_key', 'the RSA public exponent is unknown');
  let start = 0;
  while (start < e.length && e[start] === 0) start++;
  const digits = e.subarray(start);
  if (equalBytes(digits, PUBLIC_EXPONENT)) return;
  const shown =
    digits.length <= 6
      ? String(digits.reduce((n, b) => n * 256 + b, 0))
      : `a ${digits.length * 8}-bit number`;
  throw fail('bad_key', `RSA public exponent ${shown} is not allowed (only 65537)`);
}

/** Verifies an RSA-PSS signature; never throws for a wrong signature, only returns false. */
export async function verifySignature(
  key: CryptoKey,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  try {
    return await crypto.subtle.verify(PSS_PARAMS, key, bs(signature), bs(data));
  } catch {
    return false;
  }
}

/**
 * The public half of an identity: the signing key (whose hash is the peerId) and the RSA-OAEP key used
 * to receive pairing secrets, bound to it by a signature. Construct with {@link PublicIdentity.import}
 * or {@link PublicIdentity.fromKeys}; both check the peerId and the binding.
 */
export class PublicIdentity {
  private constructor(
    readonly peerId: PeerId,
    readonly signingKey: CryptoKey,
    readonly encryptionKey: CryptoKey,
    readonly signingSpki: Uint8Array,
    readonly encryptionSpki: Uint8Array,
    readonly binding: Uint8Array,
  ) {}

  /** Builds and checks a public identity from DER keys and the binding signature. */
  static async fromKeys(
    spki: { signing: Uint8Array; encryption: Uint8Array; binding: Uint8Array },
    peerId?: PeerId,
  ) {
    const signingKey = await importKey('spki', spki.signing, PSS_IMPORT, ['verify']);
    const encryptionKey = await importKey('spki', spki.encryption, OAEP_IMPORT, ['encrypt']);
    const actual = await peerIdOf(spki.signing);
    if (peerId !== undefined) await verifyPeerId(peerId, spki.signing);
    if (!(await verifySignature(signingKey, spki.binding, concat(BINDING_CONTEXT, spki.encryption)))) {
      throw fail('bad_signature', 'the encryption key is not bound to this identity');
    }
    return new PublicIdentity(actual, signingKey, encryptionKey, spki.signing, spki.encryption, spki.binding);
  }

  /**
   * Imports both keys of the JSON form the way {@link PublicIdentity.import} does (algorithm, modulus size,
   * exponent 65537) but checks neither the peerId hash nor the binding signature. For stores that file a
   * key now and verify it completely when it is used; throws `malformed` or `bad_key`.
   */
  static async checkKeys(json: PublicIdentityJson | string | unknown): Promise<void> {
    const j = parseJson(PublicIdentityJsonSchema, json, 'public identity');
    await importKey('spki', fromBase64Url(j.signingKey), PSS_IMPORT, ['verify']);
    await importKey('spki', fromBase64Url(j.encryptionKey), OAEP_IMPORT, ['encrypt']);
  }

  /** Imports the JSON form (object or string). Rejects keys that do not hash to the stated peerId. */
  static async import(json: PublicIdentityJson | string | unknown): Promise<PublicIdentity> {
    const j = parseJson(PublicIdentityJsonSchema, json, 'public identity');
    return PublicIdentity.fromKeys(
      {
        signing: fromBase64Url(j.signingKey),
        encryption: fromBase64Url(j.encryptionKey),
        binding: fromBase64Url(j.binding),
      },
      j.peerId,
    );
  }

  /** The JSON form, safe to publish. */
  export(): PublicIdentityJson {
    return {
      v: 1,
      peerId: this.peerId,
      signingKey: toBase64Url(this.signingSpki),
      encryptionKey: toBase64Url(this.encryptionSpki),
      binding: toBase64Url(this.binding),
    };
  }

  /** Verifies an RSA-PSS signature made by this identity. */
  verify(signature: Uint8Array, data: Uint8Array): Promise<boolean> {
    return verifySignature(this.signingKey, signature, data);
  }

  /** Encrypts a short secret (≤ 190 bytes for 2048-bit keys) to this identity's RSA-OAEP key. */
  async encrypt(data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, this.encryptionKey, bs(data)));
  }
}

/**
 * A peer's own identity: RSA-PSS signing key pair (the peerId is its hash) and RSA-OAEP key pair for
 * pairing, made with WebCrypto so the same code runs in browsers and Node.
 */
export class Identity {
  private constructor(
    readonly publicIdentity: PublicIdentity,
    private readonly signingPrivate: CryptoKey,
    private readonly encryptionPrivate: CryptoKey,
  ) {}

  get peerId(): PeerId {
    return this.publicIdentity.peerId;
  }

  /**
   * Generates a new identity. `extractable: false` keeps the private keys inside WebCrypto (they can then
   * be stored as CryptoKey objects in IndexedDB but never exported with {@link Identity.exportSecret}).
   */
  static async generate(
    options: { modulusLength?: ModulusLength; extractable?: boolean } = {},
  ): Promise<Identity> {
    const modulusLength = options.modulusLength ?? 2048;
    if (!MODULUS_LENGTHS.includes(modulusLength)) {
      throw fail('invalid_argument', 'modulusLength must be 2048, 3072 or 4096');
    }
    const extractable = options.extractable ?? true;
    const common = { modulusLength, publicExponent: PUBLIC_EXPONENT, hash: 'SHA-256' };
    const [sign, enc] = await Promise.all([
      crypto.subtle.generateKey({ name: 'RSA-PSS', ...common }, extractable, ['sign', 'verify']),
      crypto.subtle.generateKey({ name: 'RSA-OAEP', ...common }, extractable, ['encrypt', 'decrypt']),
    ]);
    const signingSpki = new Uint8Array(await crypto.subtle.exportKey('spki', sign.publicKey));
    const encryptionSpki = new Uint8Array(await crypto.subtle.exportKey('spki', enc.publicKey));
    const binding = new Uint8Array(
      await crypto.subtle.sign(PSS_PARAMS, sign.privateKey, bs(concat(BINDING_CONTEXT, encryptionSpki))),
    );
    const pub = await PublicIdentity.fromKeys({ signing: signingSpki, encryption: encryptionSpki, binding });
    return new Identity(pub, sign.privateKey, enc.privateKey);
  }

  /** Rebuilds an identity from private CryptoKeys (e.g. non-extractable keys kept in IndexedDB). */
  static async fromCryptoKeys(keys: {
    publicIdentity: PublicIdentity;
    signingPrivateKey: CryptoKey;
    encryptionPrivateKey: CryptoKey;
  }): Promise<Identity> {
    const id = new Identity(keys.publicIdentity, keys.signingPrivateKey, keys.encryptionPrivateKey);
    // A private key that does not match the public identity would make every handshake fail later with a
    // confusing error; check it now.
    const probe = utf8('p2ptls/1 key check');
    if (!(await id.publicIdentity.verify(await id.sign(probe), probe))) {
      throw fail('bad_key', 'the signing private key does not belong to this public identity');
    }
    return id;
  }

  /** The private CryptoKeys, for stores that keep them as WebCrypto objects. */
  get privateKeys(): { signingPrivateKey: CryptoKey; encryptionPrivateKey: CryptoKey } {
    return { signingPrivateKey: this.signingPrivate, encryptionPrivateKey: this.encryptionPrivate };
  }

  /** RSA-PSS signature over `data`. */
  async sign(data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign(PSS_PARAMS, this.signingPrivate, bs(data)));
  }

  /** Decrypts a secret that was encrypted to this identity's RSA-OAEP key. */
  async decrypt(data: Uint8Array): Promise<Uint8Array> {
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, this.encryptionPrivate, bs(data)),
      );
    } catch (err) {
      throw fail('bad_key', 'RSA-OAEP decryption failed (wrong key or tampered ciphertext)', err);
    }
  }

  /** The public part, as JSON: what you give to others. */
  exportPublic(): PublicIdentityJson {
    return this.publicIdentity.export();
  }

  /**
   * Exports the private keys. The result is as sensitive as a password: store it encrypted (the
   * PeerStore does) and never send it anywhere.
   */
  async exportSecret(): Promise<SecretIdentityJson> {
    if (!this.signingPrivate.extractable || !this.encryptionPrivate.extractable) {
      throw fail('invalid_argument', 'this identity was created non-extractable and cannot be exported');
    }
    const pub = this.publicIdentity;
    return {
      v: 1,
      kind: 'p2ptls-secret-identity',
      peerId: pub.peerId,
      signingKey: toBase64Url(new Uint8Array(await crypto.subtle.exportKey('pkcs8', this.signingPrivate))),
      encryptionKey: toBase64Url(
        new Uint8Array(await crypto.subtle.exportKey('pkcs8', this.encryptionPrivate)),
      ),
      binding: toBase64Url(pub.binding),
    };
  }

  /** Imports {@link Identity.exportSecret}'s output; checks that the keys, the binding and the peerId agree. */
  static async importSecret(
    json: SecretIdentityJson | string | unknown,
    options: { extractable?: boolean } = {},
  ) {
    const j = parseJson(SecretIdentityJsonSchema, json, 'secret identity');
    const signingDer = fromBase64Url(j.signingKey);
    const encDer = fromBase64Url(j.encryptionKey);
    const signingPrivate = await importKey('pkcs8', signingDer, PSS_IMPORT, ['sign']);
    const encPrivate = await importKey('pkcs8', encDer, OAEP_IMPORT, ['decrypt']);
    // WebCrypto cannot derive a public key from a private one, but a JWK export of an RSA private key
    // carries n and e; re-import those as the public key.
    const publicFrom = async (
      key: CryptoKey,
      alg: typeof PSS_IMPORT | typeof OAEP_IMPORT,
      usage: KeyUsage,
    ) => {
      const jwk = await crypto.subtle.exportKey('jwk', key);
      const pub = await crypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e }, alg, true, [
        usage,
      ]);
      return new Uint8Array(await crypto.subtle.exportKey('spki', pub));
    };
    const pub = await PublicIdentity.fromKeys(
      {
        signing: await publicFrom(signingPrivate, PSS_IMPORT, 'verify'),
        encryption: await publicFrom(encPrivate, OAEP_IMPORT, 'encrypt'),
        binding: fromBase64Url(j.binding),
      },
      j.peerId,
    );
    const keep = options.extractable ?? true;
    return Identity.fromCryptoKeys({
      publicIdentity: pub,
      signingPrivateKey: keep
        ? signingPrivate
        : await importKey('pkcs8', signingDer, PSS_IMPORT, ['sign'], false),
      encryptionPrivateKey: keep
        ? encPrivate
        : await importKey('pkcs8', encDer, OAEP_IMPORT, ['decrypt'], false),
    });
  }
}
