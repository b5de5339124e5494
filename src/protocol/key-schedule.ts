/**
 * The p2ptls key schedule: HKDF-SHA256 (RFC 5869) with TLS 1.3-style labels (RFC 8446 §7.1).
 * docs/PROTOCOL.md §4 lists every label and what it derives; this file follows it line by line.
 */
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { fail } from '../errors.js';
import { ByteWriter, concat, utf8 } from '../util/bytes.js';
import { HASH_LEN, IV_LEN, KEY_LEN } from './constants.js';

/** Prefix of every HKDF label, so no p2ptls derivation can collide with another protocol's. */
const LABEL_PREFIX = 'p2ptls1 ';

/** Labels of the key schedule (PROTOCOL.md §4). */
export const Label = {
  BINDER: 'psk binder',
  DERIVED: 'derived',
  I_HS_TRAFFIC: 'i hs traffic',
  R_HS_TRAFFIC: 'r hs traffic',
  I_TCP_TRAFFIC: 'i tcp traffic',
  R_TCP_TRAFFIC: 'r tcp traffic',
  I_SLLP_TRAFFIC: 'i sllp traffic',
  R_SLLP_TRAFFIC: 'r sllp traffic',
  EXPORTER: 'exporter',
  FINISHED: 'finished',
  KEY: 'key',
  IV: 'iv',
  TRAFFIC_UPDATE: 'traffic upd',
} as const;

/*
 * SHA-256 and HMAC are computed in JavaScript (@noble/hashes), synchronously: every input here is a few
 * hundred bytes, and each WebCrypto call is a trip through the thread pool. A handshake makes about 35
 * of them per side; on the 2-core bench machine they were most of the initiator's 9 ms between the
 * answer and InitiatorAuth, which is the set-up's critical path (bench:transport --only setup).
 * node:crypto's createHash/createHmac in their place (a scratch build, 2026-12-02) saved nothing: the
 * JavaScript thread ran 13.1–14.2 ms per set-up against 13.0–13.8, four alternating runs each.
 * The promise-returning signatures stay: callers need not care where the hashing runs.
 */

/** SHA-256. */
export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return nobleSha256(parts.length === 1 ? parts[0]! : concat(...parts));
}

/** HMAC-SHA256(key, data). */
export async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return nobleHmac(nobleSha256, key, data);
}

/** HKDF-Extract(salt, IKM) = HMAC(salt, IKM) (RFC 5869 §2.2). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Promise<Uint8Array> {
  return hmac(salt, ikm);
}

/** HKDF-Expand (RFC 5869 §2.3), limited to one hash block: every p2ptls output is ≤ 32 bytes. */
export async function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  if (length < 1 || length > HASH_LEN) throw fail('invalid_argument', 'HKDF-Expand length must be 1..32');
  const t1 = await hmac(prk, concat(info, new Uint8Array([1])));
  return t1.subarray(0, length);
}

/**
 * HKDF-Expand-Label (RFC 8446 §7.1 shape):
 * info = length (u16) ‖ vec8("p2ptls1 " ‖ label) ‖ vec8(context).
 */
export function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number) {
  const info = new ByteWriter(64)
    .u16(length)
    .vec8(utf8(LABEL_PREFIX + label))
    .vec8(context)
    .finish();
  return hkdfExpand(secret, info, length);
}

const ZEROS = new Uint8Array(HASH_LEN);
let emptyHash: Promise<Uint8Array> | undefined;
/** SHA-256 of the empty string, the context of "derived" and "psk binder". */
export function hashOfEmpty(): Promise<Uint8Array> {
  emptyHash ??= sha256(new Uint8Array(0));
  return emptyHash;
}

/** Early secret and binder key, from the pair's pre-shared key alone (PROTOCOL.md §4.1). */
export async function earlySecrets(psk: Uint8Array) {
  if (psk.length !== 32) throw fail('invalid_argument', 'the pair PSK must be 32 bytes');
  const early = await hkdfExtract(ZEROS, psk);
  const empty = await hashOfEmpty();
  const binderKey = await expandLabel(early, Label.BINDER, empty, HASH_LEN);
  return { early, binderKey };
}

/** Handshake secret and the two handshake traffic secrets (PROTOCOL.md §4.2). */
export async function handshakeSecrets(early: Uint8Array, ecdh: Uint8Array, helloHash: Uint8Array) {
  const empty = await hashOfEmpty();
  const hs = await hkdfExtract(await expandLabel(early, Label.DERIVED, empty, HASH_LEN), ecdh);
  return {
    hs,
    initiator: await expandLabel(hs, Label.I_HS_TRAFFIC, helloHash, HASH_LEN),
    responder: await expandLabel(hs, Label.R_HS_TRAFFIC, helloHash, HASH_LEN),
  };
}

/** The four application traffic secrets and the exporter secret (PROTOCOL.md §4.3). */
export async function applicationSecrets(
  hs: Uint8Array,
  transcriptHash: Uint8Array,
): Promise<ApplicationSecrets> {
  const empty = await hashOfEmpty();
  const master = await hkdfExtract(await expandLabel(hs, Label.DERIVED, empty, HASH_LEN), ZEROS);
  const [iTcp, rTcp, iSllp, rSllp, exporter] = await Promise.all(
    [
      Label.I_TCP_TRAFFIC,
      Label.R_TCP_TRAFFIC,
      Label.I_SLLP_TRAFFIC,
      Label.R_SLLP_TRAFFIC,
      Label.EXPORTER,
    ].map((l) => expandLabel(master, l, transcriptHash, HASH_LEN)),
  );
  return {
    initiatorTcp: iTcp!,
    responderTcp: rTcp!,
    initiatorSllp: iSllp!,
    responderSllp: rSllp!,
    exporter: exporter!,
  };
}

export interface ApplicationSecrets {
  initiatorTcp: Uint8Array;
  responderTcp: Uint8Array;
  initiatorSllp: Uint8Array;
  responderSllp: Uint8Array;
  exporter: Uint8Array;
}

/** AES key and IV base of a traffic secret (PROTOCOL.md §4.4). */
export async function trafficKey(secret: Uint8Array): Promise<{ key: Uint8Array; iv: Uint8Array }> {
  const [key, iv] = await Promise.all([
    expandLabel(secret, Label.KEY, new Uint8Array(0), KEY_LEN),
    expandLabel(secret, Label.IV, new Uint8Array(0), IV_LEN),
  ]);
  return { key, iv };
}

/** The next generation of a traffic secret, used by key updates and datagram epochs (PROTOCOL.md §4.5). */
export function nextTrafficSecret(secret: Uint8Array): Promise<Uint8Array> {
  return expandLabel(secret, Label.TRAFFIC_UPDATE, new Uint8Array(0), HASH_LEN);
}

/** Finished MAC: HMAC(Expand-Label(secret, "finished"), transcript hash) (PROTOCOL.md §3.5). */
export async function finishedMac(
  trafficSecret: Uint8Array,
  transcriptHash: Uint8Array,
): Promise<Uint8Array> {
  const key = await expandLabel(trafficSecret, Label.FINISHED, new Uint8Array(0), HASH_LEN);
  return hmac(key, transcriptHash);
}

/**
 * Per-record nonce: the IV base XOR the 64-bit sequence number, right-aligned (RFC 8446 §5.3).
 * Distinct keys per direction and channel plus a strictly increasing sequence number mean a
 * (key, nonce) pair is never used twice.
 */
export function recordNonce(iv: Uint8Array, seq: number): Uint8Array {
  const nonce = iv.slice();
  let s = seq;
  for (let i = nonce.length - 1; i >= nonce.length - 7 && s > 0; i--) {
    nonce[i]! ^= s & 0xff;
    s = Math.floor(s / 256);
  }
  return nonce;
}
