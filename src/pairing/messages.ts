/**
 * Pairing messages (DESIGN.md "Pairing"): how two peers that trust each other's keys create a shared
 * PSK through an untrusted signaling server. Pure: WebCrypto only, no sockets.
 *
 * request (A → B): A's public identity, E_B(share_A ‖ token?), ts, nonce — signed by A.
 * accept  (B → A): B's public identity, E_A(share_B), ts, nonce, replyTo = request nonce — signed by B.
 * reject  (B → A): as accept without a secret.
 * PSK = derivePairPsk(share_A, share_B) (see psk.ts).
 */
import { fail } from '../errors.js';
import { type Identity, PublicIdentity } from '../identity/identity.js';
import { type PeerId, peerIdToBytes } from '../identity/peer-id.js';
import { MAX_MESSAGE_AGE_MS, type PairingMessage, PairingMessageSchema } from '../signaling/messages.js';
import { randomNonce } from '../signaling/wire.js';
import { ByteWriter, concat, fromBase64Url, toBase64Url, utf8 } from '../util/bytes.js';
import { INVITE_TOKEN_BYTES } from './invite.js';
import { PSK_BYTES, randomShare } from './psk.js';
import type { ReplayCache } from './replay.js';

/** Context of the pairing message signature. */
export const PAIRING_CONTEXT = 'p2ptls/1 pairing message\0';

const KIND_CODES = { request: 1, accept: 2, reject: 3 } as const;
export type PairingKind = keyof typeof KIND_CODES;

/**
 * Bytes signed by the sender: context ‖ version ‖ u8 kind ‖ from (32 B) ‖ to (32 B) ‖ u64 ts ‖
 * u8-len nonce ‖ u8-len replyTo (empty in a request) ‖ u16-len secret (empty in a reject).
 * The sender's keys are covered through `from`: the peerId is the hash of the signing key, and the
 * encryption key is bound to it by the identity's binding signature.
 */
export function pairingSignedBytes(msg: Omit<PairingMessage, 'sig'>): Uint8Array {
  return new ByteWriter(512)
    .bytes(utf8(PAIRING_CONTEXT))
    .u8(msg.v)
    .u8(KIND_CODES[msg.kind])
    .bytes(peerIdToBytes(msg.from.peerId))
    .bytes(peerIdToBytes(msg.to))
    .u64(BigInt(msg.ts))
    .vec8(fromBase64Url(msg.nonce))
    .vec8(msg.replyTo === undefined ? new Uint8Array(0) : fromBase64Url(msg.replyTo))
    .vec16(msg.secret === undefined ? new Uint8Array(0) : fromBase64Url(msg.secret))
    .finish();
}

async function seal(
  identity: Identity,
  fields: Omit<PairingMessage, 'sig' | 'v' | 'from' | 'nonce' | 'ts'> & { now?: number },
): Promise<PairingMessage> {
  const { now, ...rest } = fields;
  const unsigned: Omit<PairingMessage, 'sig'> = {
    v: 1,
    ...rest,
    from: identity.exportPublic(),
    ts: now ?? Date.now(),
    nonce: randomNonce(),
  };
  const sig = await identity.sign(pairingSignedBytes(unsigned));
  return { ...unsigned, sig: toBase64Url(sig) };
}

/** A pairing message built by this side, with the secret share it carries (keep it to derive the PSK). */
export interface OutgoingPairing {
  message: PairingMessage;
  share: Uint8Array;
}

/**
 * Builds a pairing request from `identity` to `to`. `token` is the one-time token of the invite the
 * request answers, if any; it travels encrypted with the share so the server never sees it.
 */
export async function createPairingRequest(init: {
  identity: Identity;
  to: PublicIdentity;
  token?: Uint8Array;
  now?: number;
}): Promise<OutgoingPairing> {
  const token = init.token ?? new Uint8Array(0);
  if (token.length !== 0 && token.length !== INVITE_TOKEN_BYTES) {
    throw fail('invalid_argument', `an invite token is ${INVITE_TOKEN_BYTES} bytes`);
  }
  const share = randomShare();
  const secret = await init.to.encrypt(concat(share, token));
  const message = await seal(init.identity, {
    kind: 'request',
    to: init.to.peerId,
    secret: toBase64Url(secret),
    ...(init.now === undefined ? {} : { now: init.now }),
  });
  return { message, share };
}

/** Builds the acceptance of `request` (returned by {@link openPairingMessage}), with a fresh share. */
export async function createPairingAccept(init: {
  identity: Identity;
  request: OpenedPairing;
  now?: number;
}): Promise<OutgoingPairing> {
  if (init.request.kind !== 'request') throw fail('invalid_argument', 'can only accept a request');
  const share = randomShare();
  const secret = await init.request.from.encrypt(share);
  const message = await seal(init.identity, {
    kind: 'accept',
    to: init.request.from.peerId,
    replyTo: init.request.nonce,
    secret: toBase64Url(secret),
    ...(init.now === undefined ? {} : { now: init.now }),
  });
  return { message, share };
}

/** Builds the refusal of `request`. It carries no secret; nothing is derived on either side. */
export async function createPairingReject(init: {
  identity: Identity;
  request: OpenedPairing;
  now?: number;
}): Promise<PairingMessage> {
  if (init.request.kind !== 'request') throw fail('invalid_argument', 'can only reject a request');
  return seal(init.identity, {
    kind: 'reject',
    to: init.request.from.peerId,
    replyTo: init.request.nonce,
    ...(init.now === undefined ? {} : { now: init.now }),
  });
}

/** A pairing message that passed every check in {@link openPairingMessage}. */
export interface OpenedPairing {
  kind: PairingKind;
  /** The sender; its key hashes to its peerId and it signed the message. */
  from: PublicIdentity;
  nonce: string;
  replyTo?: string;
  ts: number;
  /** The sender's PSK share (request and accept). */
  share?: Uint8Array;
  /** The invite token the requester presented (request only, when it had an invite). */
  token?: Uint8Array;
}

/** Options of {@link openPairingMessage}. */
export interface OpenPairingOptions {
  /** Nonces already seen (shared across messages of this receiver). */
  replay: ReplayCache;
  /** When set, the message must come from this peer. */
  expectedFrom?: PeerId;
  now?: number;
  /** Largest accepted |now − ts|; default 5 minutes. */
  maxAgeMs?: number;
}

/**
 * Validates and opens a received pairing message addressed to `identity`: schema, recipient, time window,
 * sender key (hashes to its peerId, encryption key bound), signature, replay, then decrypts the share.
 * Throws `malformed`, `wrong_peer`, `pairing_expired`, `peer_id_mismatch`, `bad_key`, `bad_signature`
 * or `replay`; a message that throws must be ignored entirely.
 */
export async function openPairingMessage(
  identity: Identity,
  input: unknown,
  opts: OpenPairingOptions,
): Promise<OpenedPairing> {
  const parsed = PairingMessageSchema.safeParse(input);
  if (!parsed.success) throw fail('malformed', 'pairing message does not match the schema');
  const msg = parsed.data;
  const now = opts.now ?? Date.now();
  if (msg.to !== identity.peerId) throw fail('wrong_peer', 'pairing message is addressed to another peer');
  if (Math.abs(now - msg.ts) > (opts.maxAgeMs ?? MAX_MESSAGE_AGE_MS)) {
    throw fail('pairing_expired', 'pairing message timestamp is outside the accepted window');
  }
  if ((msg.kind === 'request') !== (msg.replyTo === undefined)) {
    throw fail('malformed', 'replyTo must be present exactly in responses');
  }
  if ((msg.kind === 'reject') !== (msg.secret === undefined)) {
    throw fail('malformed', 'a secret must be present exactly in request and accept');
  }
  const from = await PublicIdentity.import(msg.from);
  if (opts.expectedFrom !== undefined && from.peerId !== opts.expectedFrom) {
    throw fail('peer_id_mismatch', 'pairing message is not from the expected peer');
  }
  if (from.peerId === identity.peerId) throw fail('malformed', 'pairing message from ourselves');
  let signed: Uint8Array;
  let sig: Uint8Array;
  try {
    signed = pairingSignedBytes(msg);
    sig = fromBase64Url(msg.sig);
  } catch (err) {
    throw fail('malformed', 'pairing message fields are not valid base64url', err);
  }
  if (!(await from.verify(sig, signed))) throw fail('bad_signature', 'pairing message signature is invalid');
  if (!opts.replay.checkAndRemember(`pairing:${from.peerId}:${msg.nonce}`, msg.ts, now)) {
    throw fail('replay', 'pairing message was seen before');
  }
  const opened: OpenedPairing = { kind: msg.kind, from, nonce: msg.nonce, ts: msg.ts };
  if (msg.replyTo !== undefined) opened.replyTo = msg.replyTo;
  if (msg.secret !== undefined) {
    const plain = await identity.decrypt(fromBase64Url(msg.secret));
    const tokenBytes = plain.length - PSK_BYTES;
    const okSize =
      msg.kind === 'request' ? tokenBytes === 0 || tokenBytes === INVITE_TOKEN_BYTES : tokenBytes === 0;
    if (!okSize) throw fail('malformed', 'pairing secret has the wrong size');
    opened.share = plain.slice(0, PSK_BYTES);
    if (tokenBytes > 0) opened.token = plain.slice(PSK_BYTES);
  }
  return opened;
}
