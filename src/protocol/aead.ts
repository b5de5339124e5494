import { fail } from '../errors.js';
import { bs } from '../util/bytes.js';
import { KEY_LEN, TAG_LEN } from './constants.js';

/**
 * AES-256-GCM behind a small interface, so the Node entry point can plug in node:crypto (2–3× faster for
 * small records than WebCrypto's per-call overhead) while the protocol code stays runtime-neutral.
 */
export interface AeadProvider {
  readonly name: string;
  /** Prepares a 32-byte key for repeated use. */
  importKey(raw: Uint8Array): Promise<AeadKey>;
  /** Returns ciphertext ‖ 16-byte tag. */
  seal(key: AeadKey, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Returns the plaintext, or null if authentication fails. Never throws for bad input. */
  open(key: AeadKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array | null>;
  /**
   * Optional: `header ‖ seal(key, nonce, aad = header, plaintext)` in one buffer, for providers that can
   * write there directly and save a copy of every record (and seal a {@link Plaintext}'s pieces unjoined).
   * Reads the pieces before it returns: a datagram's sender may reuse its payload's buffer then.
   */
  sealWithHeader?(
    key: AeadKey,
    nonce: Uint8Array,
    header: Uint8Array,
    plaintext: Plaintext,
  ): Promise<Uint8Array>;
  /**
   * Optional synchronous forms, for providers whose AES-GCM runs on the calling thread (node:crypto).
   * With them the record layers seal and open a record within the call that hands it over, instead of
   * a chain of promises per record: that chain cost as much as the AES-GCM of a 16 KiB record
   * (bench:protocol, node:crypto: 0.68 of raw before, see the commit that added these).
   */
  readonly sync?: SyncAead;
  /**
   * Optional: a buffer of `length` bytes the caller writes in full before anyone reads it, so the
   * runtime need not zero it first (a reassembled message, PROTOCOL.md §5.2).
   */
  allocate?(length: number): Uint8Array;
}

/**
 * A plaintext given as pieces sealed back to back, as if joined: a batch of messages with their length
 * prefixes, or a message's first fragment behind its length, need not be copied into one buffer first.
 */
export type Plaintext = Uint8Array | readonly Uint8Array[];

/** Total bytes of a {@link Plaintext}. */
export function plaintextLength(plaintext: Plaintext): number {
  if (plaintext instanceof Uint8Array) return plaintext.length;
  let n = 0;
  for (const piece of plaintext) n += piece.length;
  return n;
}

/** A {@link Plaintext} as one buffer (a copy only when it has several pieces). */
export function joinPlaintext(plaintext: Plaintext): Uint8Array {
  if (plaintext instanceof Uint8Array) return plaintext;
  if (plaintext.length === 1) return plaintext[0]!;
  const out = new Uint8Array(plaintextLength(plaintext));
  let at = 0;
  for (const piece of plaintext) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** Synchronous AES-256-GCM: the same operations as {@link AeadProvider}, for in-thread implementations. */
export interface SyncAead {
  /**
   * `header ‖ seal(key, nonce, aad = header, plaintext)` in one buffer. With `into` (at least header +
   * plaintext + tag bytes long), the record is written at its start and a view of it returned, so a
   * caller that hands each record over before sealing the next can keep one buffer for all of them.
   */
  sealWithHeader(
    key: AeadKey,
    nonce: Uint8Array,
    header: Uint8Array,
    plaintext: Plaintext,
    into?: Uint8Array,
  ): Uint8Array;
  /** The plaintext, or null if authentication fails. Never throws for bad input. */
  open(key: AeadKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null;
}

/** A whole record: its header, authenticated as AAD, followed by the ciphertext and tag. */
export function sealWithHeader(
  aead: AeadProvider,
  key: AeadKey,
  nonce: Uint8Array,
  header: Uint8Array,
  plaintext: Plaintext,
): Promise<Uint8Array> {
  if (aead.sealWithHeader) return aead.sealWithHeader(key, nonce, header, plaintext);
  return aead.seal(key, nonce, header, joinPlaintext(plaintext)).then((ct) => prepend(header, ct));
}

/** A datagram sealed but not yet joined: its header, and its ciphertext ‖ tag (records have none, §5.1). */
export interface SealedParts {
  header: Uint8Array;
  body: Uint8Array;
}

/**
 * `seal(key, nonce, aad, plaintext)` of a {@link Plaintext}: ciphertext ‖ tag. The pieces are joined into
 * the WebCrypto provider's {@link JoinBuffer} when that is the provider (it copies them within the call),
 * into a new buffer for any other. For callers that put the header in front themselves, in a buffer of
 * their own (see Session's datagrams for a copying output). Rejects, never throws.
 */
export function sealJoined(
  aead: AeadProvider,
  key: AeadKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Plaintext,
): Promise<Uint8Array> {
  try {
    const joined = aead === webCryptoAead ? webCryptoJoin.join(plaintext) : joinPlaintext(plaintext);
    return aead.seal(key, nonce, aad, joined);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** `header ‖ body` in a new buffer; `body` itself when there is no header (a reliable record, §5.1). */
function prepend(header: Uint8Array, body: Uint8Array): Uint8Array {
  if (header.length === 0) return body;
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

/** Opaque provider-specific key handle. */
export interface AeadKey {
  readonly provider: string;
}

interface WebCryptoAeadKey extends AeadKey {
  readonly key: CryptoKey;
}

function gcm(nonce: Uint8Array, aad: Uint8Array): AesGcmParams {
  return { name: 'AES-GCM', iv: bs(nonce), additionalData: bs(aad), tagLength: TAG_LEN * 8 };
}

/** WebCrypto's AES-GCM encryption: ciphertext ‖ tag. Rejects, never throws. */
function encrypt(key: AeadKey, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) {
  try {
    return crypto.subtle.encrypt(gcm(nonce, aad), (key as WebCryptoAeadKey).key, bs(plaintext));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Largest plaintext {@link JoinBuffer} keeps a buffer for: a record of the largest record size a session
 * allows (maxRecordBytes, 256 KiB) and any datagram fit; anything larger is joined into a buffer of its own.
 */
const MAX_JOIN_BUFFER = 256 * 1024;

/**
 * Joins a {@link Plaintext}'s pieces into one buffer kept for the next call, for a callee that copies its
 * input before it returns. WebCrypto does: encrypt() takes "a copy of the bytes held by the data
 * parameter" before it returns its promise (WebCrypto §14.3.1 step 2; protocol-join-buffer.test.ts
 * checks it), so the joined bytes are the cipher's own before the next record is joined. A fresh buffer
 * per record was one more record-sized allocation beside the two WebCrypto makes. Measured alone (seal
 * and open of a 16 KiB record from two pieces, 10 alternating pairs, two runs) it gained 4–7 % of raw
 * AES-GCM (0.85 → 0.89, 0.87 → 0.94); in bench:protocol's whole rows the gain is inside this machine's
 * run-to-run spread.
 */
export class JoinBuffer {
  private buffer = new Uint8Array(0);

  /** The pieces as one buffer, valid until the next call (a piece itself when there is only one). */
  join(plaintext: Plaintext): Uint8Array {
    if (plaintext instanceof Uint8Array) return plaintext;
    if (plaintext.length === 1) return plaintext[0]!;
    const length = plaintextLength(plaintext);
    if (length > MAX_JOIN_BUFFER) return joinPlaintext(plaintext);
    if (this.buffer.length < length)
      this.buffer = new Uint8Array(Math.min(MAX_JOIN_BUFFER, Math.max(length, 2 * this.buffer.length)));
    let at = 0;
    for (const piece of plaintext) {
      this.buffer.set(piece, at);
      at += piece.length;
    }
    return this.buffer.subarray(0, length);
  }
}

/** The joined plaintext of the WebCrypto provider's records and datagrams (see {@link JoinBuffer}). */
const webCryptoJoin = new JoinBuffer();

/**
 * The default provider: WebCrypto, identical in browsers and Node. Written with `then`, not `async` and
 * `await`: each of those is one more promise reaction per record (see in-order.ts for what they cost).
 */
export const webCryptoAead: AeadProvider = {
  name: 'webcrypto',
  async importKey(raw) {
    if (raw.length !== KEY_LEN) throw fail('invalid_argument', 'AES-256-GCM key must be 32 bytes');
    const key = await crypto.subtle.importKey('raw', bs(raw), { name: 'AES-GCM' }, false, [
      'encrypt',
      'decrypt',
    ]);
    return { provider: 'webcrypto', key } as WebCryptoAeadKey;
  },
  seal(key, nonce, aad, plaintext) {
    return encrypt(key, nonce, aad, plaintext).then(toBytes);
  },
  // One reaction per record instead of the generic sealWithHeader's two (seal's, then the header's).
  sealWithHeader(key, nonce, header, plaintext) {
    return encrypt(key, nonce, header, webCryptoJoin.join(plaintext)).then((ct) =>
      prepend(header, new Uint8Array(ct)),
    );
  },
  open(key, nonce, aad, ciphertext) {
    if (ciphertext.length < TAG_LEN) return Promise.resolve(null);
    try {
      return crypto.subtle
        .decrypt(gcm(nonce, aad), (key as WebCryptoAeadKey).key, bs(ciphertext))
        .then(toBytes, noPlaintext);
    } catch {
      return Promise.resolve(null);
    }
  },
};

function toBytes(buffer: ArrayBuffer): Uint8Array {
  return new Uint8Array(buffer);
}

function noPlaintext(): null {
  return null;
}
