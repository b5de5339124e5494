/**
 * The dial signals hosts exchange through the signaling server (PROTOCOL.md §8, "Dial signals"): their
 * schemas, checked on every relayed payload before the host acts on it. The server only signs and relays,
 * and a stranger can send anything, so a payload that passes here must decode without throwing.
 */
import { z } from 'zod';
import { fromBase64Url } from '../util/bytes.js';
import { b64url } from '../util/wire-schemas.js';

/**
 * Version of the dial signals (PROTOCOL.md §8). Version 2 carries the handshake records with the offer
 * and the answer (protocol version 3); a paired peer's version-1 offer is answered `unsupported_version`.
 */
export const DIAL_SIGNAL_VERSION = 2;

/**
 * A handshake record in a dial signal: canonical base64url (the longest, a ResponderAuth with a 4096-bit
 * key, is under 1024 characters), decoded here. Checked by the alphabet alone, `'A'` and `'AB'` passed
 * and their decode threw inside the signaling client's listener, which ended the process.
 */
const HandshakeRecord = b64url(1024).transform((s) => fromBase64Url(s));

const DialId = z.string().min(8).max(64);

/** A relayed dial signal, as received. */
export const DialSignal = z.discriminatedUnion('kind', [
  z.object({
    p2ptls: z.literal(DIAL_SIGNAL_VERSION),
    kind: z.literal('signal'),
    dial: DialId,
    signal: z.unknown(),
    handshake: z.array(HandshakeRecord).min(1).max(2).optional(),
  }),
  z.object({
    p2ptls: z.literal(DIAL_SIGNAL_VERSION),
    kind: z.literal('abort'),
    dial: DialId,
    reason: z.string().max(200),
  }),
]);

/** A dial signal as sent (the version is added by the sender). */
export type DialSignalOut =
  | { kind: 'signal'; dial: string; signal: unknown; handshake?: string[] }
  | { kind: 'abort'; dial: string; reason: string };

/** A version-1 dial's offer (protocol version 2): enough to tell a paired dialer `unsupported_version`. */
export const LegacyOffer = z.object({
  p2ptls: z.literal(1),
  kind: z.literal('signal'),
  dial: DialId,
  signal: z.object({ type: z.literal('offer') }),
});

/**
 * The one signal a responder keeps before it knows who is dialing (§8): simple-peer's ICE candidate, its
 * fields bounded (a host candidate line with an mDNS name is under 200 characters) and any others dropped,
 * so one costs at most about 1.2 KiB held, not the 64 KiB a relayed payload may carry.
 */
export const HeldCandidate = z.object({
  type: z.literal('candidate'),
  candidate: z.object({
    candidate: z.string().max(1024),
    sdpMLineIndex: z.number().int().min(0).max(255).nullish(),
    sdpMid: z.string().max(64).nullish(),
  }),
});
