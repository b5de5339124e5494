/**
 * Every message of the signaling protocol, defined once and imported by both the client
 * (src/signaling/client.ts) and the server (signaling-server/). Both sides validate everything they
 * receive against these schemas: the server does not trust clients, and clients do not trust the server.
 */
import { z } from 'zod';
import { PublicIdentityJsonSchema } from '../identity/identity.js';
import { type PairingMessage, PairingMessageSchema } from '../pairing/schema.js';
import {
  b64url,
  MAX_MESSAGE_AGE_MS,
  NonceSchema,
  PeerIdSchema,
  SignatureSchema,
  TimestampSchema,
} from '../util/wire-schemas.js';

export { MAX_MESSAGE_AGE_MS, NonceSchema, PeerIdSchema, SignatureSchema, TimestampSchema };

/** Version of the signaling wire protocol, carried in the challenge and in every signed envelope. */
export const SIGNALING_VERSION = 1;

/**
 * Largest accepted argument of one event, measured as the length of its JSON text. Larger events are
 * answered with `payload_too_large`.
 */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

/**
 * socket.io's `maxHttpBufferSize` on the server. Twice the payload limit so that a message a little too
 * large still gets a clear `payload_too_large` answer; beyond this engine.io drops the connection.
 */
export const MAX_HTTP_BUFFER_BYTES = 2 * MAX_PAYLOAD_BYTES;

/** 32 random bytes, base64url (43 characters). */
export const ChallengeSchema = b64url(43).length(43, 'challenge (32 bytes base64url)');
/** A room name: printable, no spaces, at most 128 characters. */
export const RoomNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:@/+=-]+$/, 'room name');

/**
 * A signal (SDP offer/answer, ICE candidate: any JSON) signed by its sender, so a relaying server can
 * drop it but not forge, alter, redirect or replay it. `payload` is JSON text: the signature covers its
 * exact bytes, which avoids any need for canonical JSON.
 */
export const SignedSignalSchema = z
  .object({
    v: z.literal(SIGNALING_VERSION),
    from: PeerIdSchema,
    to: PeerIdSchema,
    ts: TimestampSchema,
    nonce: NonceSchema,
    payload: z.string().max(MAX_PAYLOAD_BYTES),
    sig: SignatureSchema,
  })
  .strict();
export type SignedSignal = z.infer<typeof SignedSignalSchema>;

// The pairing message itself belongs to the pairing protocol (src/pairing/schema.ts); signaling only
// carries it, validated, between the two peers.
export { type PairingMessage, PairingMessageSchema };

// ---------------------------------------------------------------------------------------------------
// Client → server events. Each takes exactly one argument and an acknowledgement callback.

/** Answer to the server's challenge: who we are and a signature proving it (see `authSignedBytes`). */
export const AuthRequestSchema = z
  .object({
    identity: PublicIdentityJsonSchema,
    origin: z.string().min(1).max(512),
    sig: SignatureSchema,
  })
  .strict();
export const SignalRequestSchema = z.object({ env: SignedSignalSchema }).strict();
export const PairingRequestSchema = z.object({ msg: PairingMessageSchema }).strict();
export const LookupRequestSchema = z.object({ peerId: PeerIdSchema }).strict();
export const RoomRequestSchema = z.object({ room: RoomNameSchema }).strict();

/**
 * Most members one `room:join` or `room:members` answer holds. A page of 64 peerIds is about 3.5 kB of
 * JSON; before paging, every such answer held the whole room (issue 17, point 4: 1.85 MB/s of member
 * lists to 20 spammers of a 61-member room).
 */
export const MAX_MEMBERS_PAGE = 64;

/** Most members a client takes for one room, over all its pages (what one answer held before paging). */
export const MAX_LISTED_MEMBERS = 100_000;

/**
 * `room:members`: one page of the room's members in peerId order, those after `after` (from the first
 * when absent), at most `limit` of them (capped at {@link MAX_MEMBERS_PAGE}, which is also the default).
 */
export const RoomMembersRequestSchema = z
  .object({
    room: RoomNameSchema,
    after: PeerIdSchema.optional(),
    limit: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();

/** The client → server events and the schema of each one's argument. */
export const ClientEvents = {
  auth: AuthRequestSchema,
  signal: SignalRequestSchema,
  pairing: PairingRequestSchema,
  lookup: LookupRequestSchema,
  'room:join': RoomRequestSchema,
  'room:leave': RoomRequestSchema,
  'room:members': RoomMembersRequestSchema,
} as const;
export type ClientEventName = keyof typeof ClientEvents;

// ---------------------------------------------------------------------------------------------------
// Acknowledgements: `{ ok: true, ... }` or `{ ok: false, error: { code, message } }`.

export const AckErrorSchema = z
  .object({
    ok: z.literal(false),
    error: z.object({ code: z.string().max(64), message: z.string().max(1024) }),
  })
  .strict();
export type AckError = z.infer<typeof AckErrorSchema>;

export const AuthAckSchema = z.object({ ok: z.literal(true), peerId: PeerIdSchema }).strict();
export const EmptyAckSchema = z.object({ ok: z.literal(true) }).strict();
export const LookupAckSchema = z
  .object({ ok: z.literal(true), identity: PublicIdentityJsonSchema.nullable(), online: z.boolean() })
  .strict();
/**
 * A page of a room's members, in peerId order. `count` (the room's size) and `next` (the cursor to pass
 * as `after` for the following page; absent on the last page) are present only when the list is paged,
 * that is, when it does not fit one page or the request named `after`: so the answer for a room that
 * fits one page is `{ok, members}` exactly as before paging, which clients from before accept. A server
 * from before paging sends the whole list and neither field.
 */
export const MembersAckSchema = z
  .object({
    ok: z.literal(true),
    members: z.array(PeerIdSchema).max(MAX_LISTED_MEMBERS),
    count: z.number().int().min(0).max(1_000_000).optional(),
    next: PeerIdSchema.optional(),
  })
  .strict();

/** The success acknowledgement schema of each client event. */
export const ClientAcks = {
  auth: AuthAckSchema,
  signal: EmptyAckSchema,
  pairing: EmptyAckSchema,
  lookup: LookupAckSchema,
  'room:join': MembersAckSchema,
  'room:leave': EmptyAckSchema,
  'room:members': MembersAckSchema,
} as const satisfies Record<ClientEventName, z.ZodType>;

export type ClientAck<E extends ClientEventName> = z.infer<(typeof ClientAcks)[E]>;
export type ClientRequest<E extends ClientEventName> = z.infer<(typeof ClientEvents)[E]>;

// ---------------------------------------------------------------------------------------------------
// Server → client events.

/** Sent once right after connecting: the client must sign it before anything else is accepted. */
export const ChallengeEventSchema = z
  .object({ v: z.literal(SIGNALING_VERSION), nonce: ChallengeSchema })
  .strict();
/** A relayed signal; `from` is the sender the server authenticated (the envelope proves it again). */
export const SignalEventSchema = z.object({ from: PeerIdSchema, env: SignedSignalSchema }).strict();
export const PairingEventSchema = z.object({ from: PeerIdSchema, msg: PairingMessageSchema }).strict();
export const RoomMemberEventSchema = z.object({ room: RoomNameSchema, peerId: PeerIdSchema }).strict();
/** Another connection authenticated with our peerId; this one is closed and must not reconnect. */
export const ReplacedEventSchema = z.object({ reason: z.string().max(256) }).strict();

/** The server → client events and the schema of each one's argument. */
export const ServerEvents = {
  challenge: ChallengeEventSchema,
  signal: SignalEventSchema,
  pairing: PairingEventSchema,
  'room:joined': RoomMemberEventSchema,
  'room:left': RoomMemberEventSchema,
  replaced: ReplacedEventSchema,
} as const;
export type ServerEventName = keyof typeof ServerEvents;
export type ServerEvent<E extends ServerEventName> = z.infer<(typeof ServerEvents)[E]>;

/** Short human-readable summary of a zod failure, for error acks (never echoes the input). */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}
