/**
 * Pairing messages (PROTOCOL.md §9): how two peers that trust each other's keys create a shared PSK
 * through an untrusted signaling server. Pure: WebCrypto only, no sockets.
 *
 * request (A → B): A's public identity, E_B(binding ‖ share_A ‖ token?), ts, nonce — signed by A.
 * accept  (B → A): B's public identity, E_A(binding ‖ share_B), ts, nonce, replyTo = request nonce — signed by B.
 * reject  (B → A): as accept without a secret.
 * PSK = derivePairPsk(share_A, share_B) (see psk.ts).
 *
 * Opening is split in two so that a receiver can decide whether a message deserves private-key work
 * before doing any: {@link verifyPairingMessage} (schema, recipient, time, sender key, signature: public
 * key operations only), then {@link openPairingSecret} (the RSA-OAEP decryption).
 */
import { fail } from '../errors.js';
import { type Identity, PublicIdentity } from '../identity/identity.js';
import { type PeerId, peerIdToBytes } from '../identity/peer-id.js';
import { ByteWriter, concat, equalBytes, fromBase64Url, toBase64Url, utf8 } from '../util/bytes.js';
import type { ReplayCache } from '../util/replay-cache.js';
import { MAX_MESSAGE_AGE_MS, randomNonce } from '../util/wire-schemas.js';
import { INVITE_TOKEN_BYTES } from './invite.js';
import { PSK_BYTES, randomShare } from './psk.js';
import { PAIRING_VERSION, type PairingMessage, PairingMessageSchema } from './schema.js';

/** Context of the pairing message signature. */
export const PAIRING_CONTEXT = 'p2ptls/1 pairing message\0';

const KIND_CODES = { request: 1, accept: 2, reject: 3 } as const;
export type PairingKind = keyof typeof KIND_CODES;

/** Size of the binding that starts a secret's plaintext: u8 kind ‖ from (32) ‖ to (32) ‖ nonce (16). */
export const SECRET_BINDING_BYTES = 1 + 32 + 32 + 16;

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

/**
 * The binding at the start of a secret's RSA-OAEP plaintext: the message it was made for. The signature
 * covers the ciphertext but says nothing about who chose the plaintext; without this, anyone could
 * re-sign a copied secret as their own message (issue 13, point 3). After decryption the receiver
 * compares it with the message that carried it.
 */
function secretBinding(kind: PairingKind, from: PeerId, to: PeerId, nonce: string): Uint8Array {
  return new ByteWriter(SECRET_BINDING_BYTES)
    .u8(KIND_CODES[kind])
    .bytes(peerIdToBytes(from))
    .bytes(peerIdToBytes(to))
    .bytes(fromBase64Url(nonce))
    .finish();
}

async function seal(
  identity: Identity,
  fields: {
    kind: PairingKind;
    to: PublicIdentity | PeerId;
    replyTo?: string;
    /** The plaintext after the binding (share ‖ token); none in a reject. */
    payload?: Uint8Array;
    now?: number;
  },
): Promise<PairingMessage> {
  const to = typeof fields.to === 'string' ? fields.to : fields.to.peerId;
  const nonce = randomNonce();
  const unsigned: Omit<PairingMessage, 'sig'> = {
    v: PAIRING_VERSION,
    kind: fields.kind,
    from: identity.exportPublic(),
    to,
    ts: fields.now ?? Date.now(),
    nonce,
  };
  if (fields.replyTo !== undefined) unsigned.replyTo = fields.replyTo;
  if (fields.payload !== undefined) {
    if (typeof fields.to === 'string') throw fail('invalid_argument', 'a secret needs the receiver’s key');
    const binding = secretBinding(fields.kind, identity.peerId, to, nonce);
    unsigned.secret = toBase64Url(await fields.to.encrypt(concat(binding, fields.payload)));
  }
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
  const message = await seal(init.identity, {
    kind: 'request',
    to: init.to,
    payload: concat(share, token),
    ...(init.now === undefined ? {} : { now: init.now }),
  });
  return { message, share };
}

/** Builds the acceptance of `request` (verified), with a fresh share. */
export async function createPairingAccept(init: {
  identity: Identity;
  request: VerifiedPairing;
  now?: number;
}): Promise<OutgoingPairing> {
  if (init.request.kind !== 'request') throw fail('invalid_argument', 'can only accept a request');
  const share = randomShare();
  const message = await seal(init.identity, {
    kind: 'accept',
    to: init.request.from,
    replyTo: init.request.nonce,
    payload: share,
    ...(init.now === undefined ? {} : { now: init.now }),
  });
  return { message, share };
}

/** Builds the refusal of `request`. It carries no secret; nothing is derived on either side. */
export async function createPairingReject(init: {
  identity: Identity;
  request: VerifiedPairing;
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

/** A pairing message whose schema, recipient, freshness, sender key and signature were checked. */
export interface VerifiedPairing {
  kind: PairingKind;
  /** The sender; its key hashes to its peerId and it signed the message. */
  from: PublicIdentity;
  nonce: string;
  replyTo?: string;
  ts: number;
  /** The encrypted secret, still sealed (request and accept); see {@link openPairingSecret}. */
  secret?: Uint8Array;
}

/** The contents of a secret, once decrypted and checked against its message. */
export interface PairingSecret {
  /** The sender's PSK share. */
  share: Uint8Array;
  /** The invite token the requester presented (request only, when it had an invite). */
  token?: Uint8Array;
}

/** A pairing message that passed every check in {@link openPairingMessage}. */
export interface OpenedPairing extends VerifiedPairing, Partial<PairingSecret> {}

/** Options of {@link verifyPairingMessage}. */
export interface VerifyPairingOptions {
  /** When set, the message must come from this peer (e.g. the sender the server authenticated). */
  expectedFrom?: PeerId;
  now?: number;
  /** Largest accepted |now − ts|; default 5 minutes. */
  maxAgeMs?: number;
}

/**
 * Checks a received pairing message addressed to `identity` without any private-key work: schema,
 * recipient, time window, sender key (hashes to its peerId, encryption key bound), signature. Cheapest
 * checks first. Throws `malformed`, `wrong_peer`, `pairing_expired`, `peer_id_mismatch`, `bad_key` or
 * `bad_signature`; a message that throws must be ignored entirely. Replay is the caller's business.
 */
export async function verifyPairingMessage(
  identity: Identity,
  input: unknown,
  opts: VerifyPairingOptions = {},
): Promise<VerifiedPairing> {
  const parsed = PairingMessageSchema.safeParse(input);
  if (!parsed.success) throw fail('malformed', 'pairing message does not match the schema');
  const msg = parsed.data;
  const now = opts.now ?? Date.now();
  if (msg.to !== identity.peerId) throw fail('wrong_peer', 'pairing message is addressed to another peer');
  if (opts.expectedFrom !== undefined && msg.from.peerId !== opts.expectedFrom) {
    throw fail('peer_id_mismatch', 'pairing message is not from the expected peer');
  }
  if (Math.abs(now - msg.ts) > (opts.maxAgeMs ?? MAX_MESSAGE_AGE_MS)) {
    throw fail('pairing_expired', 'pairing message timestamp is outside the accepted window');
  }
  if ((msg.kind === 'request') !== (msg.replyTo === undefined)) {
    throw fail('malformed', 'replyTo must be present exactly in responses');
  }
  if ((msg.kind === 'reject') !== (msg.secret === undefined)) {
    throw fail('malformed', 'a secret must be present exactly in request and accept');
  }
  if (msg.from.peerId === identity.peerId) throw fail('malformed', 'pairing message from ourselves');
  const from = await PublicIdentity.import(msg.from);
  if (opts.expectedFrom !== undefined && from.peerId !== opts.expectedFrom) {
    throw fail('peer_id_mismatch', 'pairing message is not from the expected peer');
  }
  let signed: Uint8Array;
  let sig: Uint8Array;
  let secret: Uint8Array | undefined;
  try {
    signed = pairingSignedBytes(msg);
    sig = fromBase64Url(msg.sig);
    if (msg.secret !== undefined) secret = fromBase64Url(msg.secret);
  } catch (err) {
    throw fail('malformed', 'pairing message fields are not valid base64url', err);
  }
  if (!(await from.verify(sig, signed))) throw fail('bad_signature', 'pairing message signature is invalid');
  const verified: VerifiedPairing = { kind: msg.kind, from, nonce: msg.nonce, ts: msg.ts };
  if (msg.replyTo !== undefined) verified.replyTo = msg.replyTo;
  if (secret !== undefined) verified.secret = secret;
  return verified;
}

/**
 * Decrypts the secret of a verified request or accept (one RSA-OAEP private-key operation) and checks
 * that it was made for this very message. Throws `bad_key` (not for us, or tampered),
 * `pairing_secret_mismatch` (made for another message: a re-signed copy) or `malformed`.
 */
export async function openPairingSecret(identity: Identity, msg: VerifiedPairing): Promise<PairingSecret> {
  if (msg.secret === undefined) throw fail('malformed', 'this pairing message carries no secret');
  const plain = await identity.decrypt(msg.secret);
  const binding = secretBinding(msg.kind, msg.from.peerId, identity.peerId, msg.nonce);
  if (plain.length < SECRET_BINDING_BYTES || !equalBytes(plain.subarray(0, binding.length), binding)) {
    throw fail(
      'pairing_secret_mismatch',
      `the secret in ${msg.from.peerId}'s pairing ${msg.kind} was made for another message`,
    );
  }
  const body = plain.subarray(SECRET_BINDING_BYTES);
  const tokenBytes = body.length - PSK_BYTES;
  const okSize =
    msg.kind === 'request' ? tokenBytes === 0 || tokenBytes === INVITE_TOKEN_BYTES : tokenBytes === 0;
  if (!okSize) throw fail('malformed', 'pairing secret has the wrong size');
  const out: PairingSecret = { share: body.slice(0, PSK_BYTES) };
  if (tokenBytes > 0) out.token = body.slice(PSK_BYTES);
  return out;
}

/** Options of {@link openPairingMessage}. */
export interface OpenPairingOptions extends VerifyPairingOptions {
  /** Nonces already seen (shared across messages of this receiver): a {@link ReplayCache}. */
  replay: Pick<ReplayCache, 'remember'>;
}

/**
 * {@link verifyPairingMessage}, a replay check, then {@link openPairingSecret}: everything at once, for
 * callers that do not need to decide in between. Throws what those throw, `replay`, and `rate_limited`
 * when the replay cache is full.
 */
export async function openPairingMessage(
  identity: Identity,
  input: unknown,
  opts: OpenPairingOptions,
): Promise<OpenedPairing> {
  const now = opts.now ?? Date.now();
  const verified = await verifyPairingMessage(identity, input, { ...opts, now });
  const seen = opts.replay.remember(verified.from.peerId, `pairing:${verified.nonce}`, verified.ts, now);
  if (seen === 'replay') throw fail('replay', 'pairing message was seen before');
  if (seen === 'full') throw fail('rate_limited', 'too many pairing messages to remember; try later');
  if (verified.secret === undefined) return verified;
  return { ...verified, ...(await openPairingSecret(identity, verified)) };
}
