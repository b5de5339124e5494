/**
 * Field schemas shared by the signed messages of signaling (src/signaling) and pairing (src/pairing).
 * They live here so that neither folder has to import the other for them.
 */
import { z } from 'zod';
import { isBase64Url, toBase64Url } from './bytes.js';

/** How far a signed signal or pairing message's timestamp may be from the receiver's clock. */
export const MAX_MESSAGE_AGE_MS = 5 * 60_000;

/**
 * A base64url string of at most `max` characters that `fromBase64Url` decodes: the alphabet alone
 * let `'A'` and `'AB'` through, and their decode threw where the schema had promised a string it accepts.
 */
export const b64url = (max: number) => z.string().max(max).refine(isBase64Url, 'base64url');

/** A peerId: 52 lower-case base32 characters (SHA-256 of the signing key). */
export const PeerIdSchema = z.string().regex(/^[a-z2-7]{52}$/, 'peerId');
/** 16 random bytes, base64url (22 characters). */
export const NonceSchema = b64url(22).length(22, 'nonce (16 bytes base64url)');
/** An RSA-PSS signature (up to 4096-bit keys). */
export const SignatureSchema = b64url(700).min(16);
/** Milliseconds since the Unix epoch. */
export const TimestampSchema = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 48);

/** 16 fresh random bytes as base64url: the nonce of signed messages. */
export function randomNonce(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}
