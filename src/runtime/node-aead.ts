/**
 * AES-256-GCM through node:crypto. WebCrypto in Node costs ~50 µs per call whatever the size; node:crypto
 * does small records 2–3× faster. Only the Node entry point imports this file.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import {
  type AeadKey,
  type AeadProvider,
  JoinBuffer,
  type Plaintext,
  plaintextLength,
} from '../protocol/aead.js';
import { KEY_LEN, TAG_LEN } from '../protocol/constants.js';

interface NodeAeadKey extends AeadKey {
  readonly key: KeyObject;
}

/**
 * The pieces to feed the cipher one by one. Small ones are joined first, into a buffer kept for the next
 * call (update() has copied them before it returns): each update() is a call into OpenSSL and a new
 * Buffer, so a batch of 64 messages of 64 B sealed piece by piece ran at 22.6 MB/s against 111 MB/s
 * joined (bench:protocol --quick), and a record's 2-byte inner header (PROTOCOL.md §5.1) sealed apart
 * from a 1 KiB message was one more such call per record. Pieces of a few KiB and more (mesh chunks,
 * fragments, 16 KiB messages) are sealed where they are, which spares a copy of the whole record.
 */
function pieces(plaintext: Plaintext): readonly Uint8Array[] {
  if (plaintext instanceof Uint8Array) return [plaintext];
  const small = plaintextLength(plaintext) < 4096 * plaintext.length;
  return small ? [joined.join(plaintext)] : plaintext;
}

/** Where {@link pieces} joins small pieces. */
const joined = new JoinBuffer();

/**
 * Encrypts into one buffer: `aad` itself first when `prefix` > 0 (the record header), then ciphertext ‖
 * tag; the plaintext's pieces back to back. Into `into` when given (it is long enough: the caller sized it).
 */
function sealInto(
  key: AeadKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Plaintext,
  prefix: number,
  into?: Uint8Array,
) {
  const c = createCipheriv('aes-256-gcm', (key as NodeAeadKey).key, nonce, { authTagLength: TAG_LEN });
  c.setAAD(aad);
  const size = prefix + plaintextLength(plaintext) + TAG_LEN;
  const out = into ? into.subarray(0, size) : new Uint8Array(size);
  if (prefix > 0) out.set(aad);
  let at = prefix;
  for (const piece of pieces(plaintext)) {
    const ct = c.update(piece);
    out.set(ct, at);
    at += ct.length;
  }
  c.final(); // GCM is a stream mode: final() produces no bytes, it computes the tag
  out.set(c.getAuthTag(), at);
  return out;
}

/**
 * A buffer of `length` bytes that are not zeroed first, for callers that write every byte of it (a
 * reassembled message, whose fragments must add up to its length); a zeroed one is written twice, by the
 * zeroing and by the message. bench:protocol, node:crypto, 1 MiB messages, four runs each interleaved
 * with the version before: in 16 KiB records 0.83 (0.80–0.83) of the raw stream against 0.805
 * (0.79–0.82); in 64 KiB records 0.75 (0.74–0.84) against 0.745 (0.71–0.79), which it does not resolve.
 */
function uninitialized(length: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

function openSync(key: AeadKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array) {
  if (ciphertext.length < TAG_LEN) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', (key as NodeAeadKey).key, nonce, { authTagLength: TAG_LEN });
    d.setAAD(aad);
    d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_LEN));
    const pt = d.update(ciphertext.subarray(0, ciphertext.length - TAG_LEN));
    d.final(); // throws when the tag does not verify
    // A plain Uint8Array view of node's Buffer: no copy, and no Buffer methods leaking to callers.
    return new Uint8Array(pt.buffer, pt.byteOffset, pt.length);
  } catch {
    return null;
  }
}

export const nodeCryptoAead: AeadProvider = {
  name: 'node:crypto',
  async importKey(raw) {
    if (raw.length !== KEY_LEN) throw fail('invalid_argument', 'AES-256-GCM key must be 32 bytes');
    return { provider: 'node:crypto', key: createSecretKey(raw) } as NodeAeadKey;
  },
  async seal(key, nonce, aad, plaintext) {
    return sealInto(key, nonce, aad, plaintext, 0);
  },
  async sealWithHeader(key, nonce, header, plaintext) {
    return sealInto(key, nonce, header, plaintext, header.length);
  },
  async open(key, nonce, aad, ciphertext) {
    return openSync(key, nonce, aad, ciphertext);
  },
  allocate: uninitialized,
  sync: {
    sealWithHeader: (key, nonce, header, plaintext, into) =>
      sealInto(key, nonce, header, plaintext, header.length, into),
    open: openSync,
  },
};
