import { z } from 'zod';
import { fail } from '../errors.js';
import { bs, concat, equalBytes, fromBase64Url, toBase64Url, utf8 } from '../util/bytes.js';
import { type Sealed, SealedSchema, STORE_SCHEMA_VERSION } from './types.js';

/**
 * How a store protects secrets (PSKs, private identity keys) at rest. Public fields (peerIds, public keys,
 * labels, times) are never encrypted, so a store can be inspected without the key.
 *
 * - `passphrase`: AES-256-GCM under a key derived with PBKDF2-SHA-256 (≥ 600,000 iterations) and a random
 *   salt kept in the store.
 * - `device-key`: a random, non-extractable WebCrypto AES-256-GCM key generated on first open and kept in
 *   the store itself (IndexedDB and memory only). Page scripts can use it but never read it; it does not
 *   protect against someone who copies the browser profile.
 * - `unencrypted`: secrets stored in plain base64. For benchmarks and throwaway tests only.
 */
export type StoreEncryption =
  | { readonly mode: 'passphrase'; readonly passphrase: string; readonly iterations?: number }
  | { readonly mode: 'device-key' }
  | { readonly mode: 'unencrypted' };

/** OWASP 2023 recommendation for PBKDF2-HMAC-SHA-256; lower counts are refused. */
export const MIN_PBKDF2_ITERATIONS = 600_000;

const SALT_LENGTH = 16;
const IV_LENGTH = 12;
const CHECK_LENGTH = 32;

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;

// Domain-separation labels: a value made for one purpose can never be accepted for another.
const HKDF_INFO_KEY = utf8('p2ptls/1 store aes-256-gcm key');
const HKDF_INFO_CHECK = utf8('p2ptls/1 store key check');
const DEVICE_KEY_CHECK_AAD = utf8('p2ptls/1 store device key check');
const DEVICE_KEY_CHECK_PLAINTEXT = utf8('p2ptls/1 key check');

/** Seals and opens secret fields. `aad` binds each ciphertext to the record it belongs to. */
export interface RecordCipher {
  readonly encrypted: boolean;
  seal(plaintext: Uint8Array, aad: Uint8Array): Promise<Sealed>;
  /** Rejects (with a non-p2ptls error) when the tag does not verify; callers report the record as corrupt. */
  open(sealed: Sealed, aad: Uint8Array): Promise<Uint8Array>;
}

/** AES-256-GCM with a random 96-bit IV per seal. */
export class AesGcmCipher implements RecordCipher {
  readonly encrypted = true;
  constructor(private readonly key: CryptoKey) {}

  async seal(plaintext: Uint8Array, aad: Uint8Array): Promise<Sealed> {
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_LENGTH));
    const ct = await subtle().encrypt(
      { name: 'AES-GCM', iv: bs(iv), additionalData: bs(aad) },
      this.key,
      bs(plaintext),
    );
    return { alg: 'A256GCM', iv: toBase64Url(iv), data: toBase64Url(new Uint8Array(ct)) };
  }

  async open(sealed: Sealed, aad: Uint8Array): Promise<Uint8Array> {
    if (sealed.alg !== 'A256GCM') throw new Error('secret is not encrypted but the store is');
    const pt = await subtle().decrypt(
      { name: 'AES-GCM', iv: bs(fromBase64Url(sealed.iv)), additionalData: bs(aad) },
      this.key,
      bs(fromBase64Url(sealed.data)),
    );
    return new Uint8Array(pt);
  }
}

/** The explicitly unencrypted mode: secrets in plain base64, no integrity beyond schema checks. */
export class UnencryptedCipher implements RecordCipher {
  readonly encrypted = false;
  async seal(plaintext: Uint8Array): Promise<Sealed> {
    return { alg: 'none', data: toBase64Url(plaintext) };
  }
  async open(sealed: Sealed): Promise<Uint8Array> {
    if (sealed.alg !== 'none') throw new Error('secret is encrypted but the store is opened unencrypted');
    return fromBase64Url(sealed.data);
  }
}

/** A passphrase-derived AES key and its check value (stored so a wrong passphrase is recognised). */
export interface DerivedKey {
  readonly key: CryptoKey;
  readonly check: Uint8Array;
}

/**
 * PBKDF2-SHA-256 → 256-bit master → HKDF to the AES key and, separately, to a check value. The check value
 * lets us say "wrong passphrase" without trying to decrypt anything, and reveals nothing that is cheaper
 * to attack than PBKDF2 itself.
 */
export async function deriveKeyFromPassphrase(
  passphrase: string,
  salt: Uint8Array,
  iterations: number,
): Promise<DerivedKey> {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw fail('invalid_argument', 'passphrase must be a non-empty string');
  }
  if (!Number.isSafeInteger(iterations) || iterations < MIN_PBKDF2_ITERATIONS) {
    throw fail('invalid_argument', `PBKDF2 iterations must be an integer ≥ ${MIN_PBKDF2_ITERATIONS}`);
  }
  const pw = await subtle().importKey('raw', bs(utf8(passphrase.normalize('NFC'))), 'PBKDF2', false, [
    'deriveBits',
  ]);
  const master = await subtle().deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: bs(salt), iterations },
    pw,
    256,
  );
  const hkdf = await subtle().importKey('raw', master, 'HKDF', false, ['deriveKey', 'deriveBits']);
  const hkdfParams = (info: Uint8Array) => ({
    name: 'HKDF',
    hash: 'SHA-256',
    salt: new Uint8Array(0),
    info: bs(info),
  });
  const key = await subtle().deriveKey(
    hkdfParams(HKDF_INFO_KEY),
    hkdf,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
  const check = new Uint8Array(
    await subtle().deriveBits(hkdfParams(HKDF_INFO_CHECK), hkdf, CHECK_LENGTH * 8),
  );
  return { key, check };
}

/** A fresh random salt for {@link deriveKeyFromPassphrase}. */
export function randomSalt(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
}

const b64 = z.string().regex(/^[A-Za-z0-9_-]*$/, 'base64url');

/** The store's key-derivation parameters and key-check value (record `meta:crypto`). */
export const CryptoMetaSchema = z.discriminatedUnion('mode', [
  z.object({
    v: z.literal(STORE_SCHEMA_VERSION),
    mode: z.literal('passphrase'),
    kdf: z.literal('PBKDF2-SHA-256'),
    iterations: z.number().int().min(MIN_PBKDF2_ITERATIONS).max(1e9),
    salt: b64.min(16).max(128),
    check: b64.length(43),
  }),
  z.object({
    v: z.literal(STORE_SCHEMA_VERSION),
    mode: z.literal('device-key'),
    key: z.custom<CryptoKey>((v) => typeof CryptoKey !== 'undefined' && v instanceof CryptoKey, 'CryptoKey'),
    check: SealedSchema,
  }),
  z.object({ v: z.literal(STORE_SCHEMA_VERSION), mode: z.literal('unencrypted') }),
]);
export type CryptoMeta = z.infer<typeof CryptoMetaSchema>;

/**
 * Builds the cipher for a store from its stored parameters (`meta`, undefined for a new store) and the
 * caller's choice. Returns the meta record to write when the store is new. Never returns a cipher for a
 * wrong passphrase: that is a `wrong_passphrase` error, and nothing is written.
 */
export async function openCipher(
  meta: unknown,
  encryption: StoreEncryption,
  canStoreCryptoKeys: boolean,
): Promise<{ cipher: RecordCipher; newMeta?: CryptoMeta }> {
  if (encryption.mode === 'device-key' && !canStoreCryptoKeys) {
    throw fail('invalid_argument', "this store cannot keep CryptoKeys: use mode 'passphrase'");
  }
  if (meta === undefined) return createCipher(encryption);
  const version = (meta as { v?: unknown } | null)?.v;
  if (typeof version === 'number' && version > STORE_SCHEMA_VERSION) {
    throw fail('unsupported_version', `this store was written by a newer p2ptls (schema v${version})`);
  }
  const parsed = CryptoMetaSchema.safeParse(meta);
  if (!parsed.success) {
    throw fail('corrupt_record', `store key parameters (meta:crypto) are damaged: ${parsed.error.message}`);
  }
  const m = parsed.data;
  if (m.mode !== encryption.mode) {
    throw fail(
      'wrong_passphrase',
      `this store was created with encryption mode '${m.mode}', not '${encryption.mode}'`,
    );
  }
  if (m.mode === 'unencrypted') return { cipher: new UnencryptedCipher() };
  if (m.mode === 'device-key') {
    const cipher = new AesGcmCipher(m.key);
    let plain: Uint8Array;
    try {
      plain = await cipher.open(m.check, DEVICE_KEY_CHECK_AAD);
    } catch (err) {
      throw fail('wrong_passphrase', 'the stored device key does not open this store', err);
    }
    if (!equalBytes(plain, DEVICE_KEY_CHECK_PLAINTEXT)) {
      throw fail('wrong_passphrase', 'the stored device key does not open this store');
    }
    return { cipher };
  }
  if (encryption.mode !== 'passphrase') throw fail('invalid_argument', 'unreachable encryption mode');
  const derived = await deriveKeyFromPassphrase(encryption.passphrase, fromBase64Url(m.salt), m.iterations);
  if (!equalBytes(derived.check, fromBase64Url(m.check))) {
    throw fail('wrong_passphrase', 'wrong passphrase for this store');
  }
  return { cipher: new AesGcmCipher(derived.key) };
}

async function createCipher(
  encryption: StoreEncryption,
): Promise<{ cipher: RecordCipher; newMeta: CryptoMeta }> {
  const v = STORE_SCHEMA_VERSION;
  switch (encryption.mode) {
    case 'unencrypted':
      return { cipher: new UnencryptedCipher(), newMeta: { v, mode: 'unencrypted' } };
    case 'device-key': {
      const key = await subtle().generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      const cipher = new AesGcmCipher(key);
      const check = await cipher.seal(DEVICE_KEY_CHECK_PLAINTEXT, DEVICE_KEY_CHECK_AAD);
      return { cipher, newMeta: { v, mode: 'device-key', key, check } };
    }
    case 'passphrase': {
      const iterations = encryption.iterations ?? MIN_PBKDF2_ITERATIONS;
      const salt = randomSalt();
      const derived = await deriveKeyFromPassphrase(encryption.passphrase, salt, iterations);
      return {
        cipher: new AesGcmCipher(derived.key),
        newMeta: {
          v,
          mode: 'passphrase',
          kdf: 'PBKDF2-SHA-256',
          iterations,
          salt: toBase64Url(salt),
          check: toBase64Url(derived.check),
        },
      };
    }
    default:
      throw fail('invalid_argument', 'unknown encryption mode');
  }
}

/**
 * Additional authenticated data of a sealed field: the record key (so a ciphertext moved to another
 * peer's record fails) and the record's public fields (so they cannot be edited without detection).
 */
export function recordAad(recordKey: string, publicFields: unknown): Uint8Array {
  return concat(utf8(`p2ptls/1 store record\0${recordKey}\0`), utf8(JSON.stringify(publicFields)));
}
