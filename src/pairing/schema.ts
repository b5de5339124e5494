/**
 * The pairing message (PROTOCOL.md §9), defined by the pairing protocol itself. Signaling carries it
 * between peers (and its server validates it against this schema) without knowing what it means.
 */
import { z } from 'zod';
import { PublicIdentityJsonSchema } from '../identity/identity.js';
import { b64url, NonceSchema, PeerIdSchema, SignatureSchema, TimestampSchema } from '../util/wire-schemas.js';

/**
 * Version of the pairing message. 2: the encrypted secret names its message (kind, sender, recipient,
 * nonce) inside the RSA-OAEP plaintext, so a re-signed copy cannot reuse it (issue 13, point 3).
 * Version 1 messages are refused by the schema.
 */
export const PAIRING_VERSION = 2;

/**
 * A pairing message: `request` from the initiator, then `accept` or `reject` from the responder.
 * `secret` is RSA-OAEP-encrypted to the receiver (see `secretPlaintext` in messages.ts); a `reject` has
 * none. Everything is signed by `from`'s RSA-PSS key.
 */
export const PairingMessageSchema = z
  .object({
    v: z.literal(PAIRING_VERSION),
    kind: z.enum(['request', 'accept', 'reject']),
    from: PublicIdentityJsonSchema,
    to: PeerIdSchema,
    ts: TimestampSchema,
    nonce: NonceSchema,
    replyTo: NonceSchema.optional(),
    secret: b64url(700).optional(),
    sig: SignatureSchema,
  })
  .strict();
export type PairingMessage = z.infer<typeof PairingMessageSchema>;
