/**
 * The signed parts of the signaling protocol: the authentication proof and signed signal envelopes.
 * Pure (WebCrypto only), shared by the client and the server.
 *
 * Every signed byte string starts with a NUL-terminated context string, so a signature made for one
 * purpose can never be accepted for another (auth vs. signal vs. pairing vs. the identity key binding).
 */
import { fail } from '../errors.js';
import type { Identity, PublicIdentity } from '../identity/identity.js';
import { type PeerId, peerIdToBytes } from '../identity/peer-id.js';
import { ByteWriter, fromBase64Url, toBase64Url, utf8 } from '../util/bytes.js';
import type { ReplayVerdict } from '../util/replay-cache.js';
import { randomNonce } from '../util/wire-schemas.js';
import { MAX_MESSAGE_AGE_MS, SIGNALING_VERSION, type SignedSignal } from './messages.js';

/** Context of the authentication signature. */
export const AUTH_CONTEXT = 'p2ptls/1 signaling auth\0';
/** Context of a signed signal envelope. */
export const SIGNAL_CONTEXT = 'p2ptls/1 signal\0';

export { randomNonce } from '../util/wire-schemas.js';

/**
 * Normalises the URL a client connected to into the origin it signs (`scheme://host[:port]`), so the
 * server can check the proof was made for it and not for another server that relayed its challenge.
 */
export function signalingOrigin(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw fail('invalid_argument', `not a URL: ${url}`, err);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw fail('invalid_argument', `signaling URL must be http(s) or ws(s): ${url}`);
  }
  return `${u.protocol}//${u.host}`.toLowerCase();
}

/**
 * Bytes signed to authenticate: context ‖ version ‖ peerId (32 B) ‖ u8-len challenge ‖ u16-len origin.
 * The fresh challenge makes the proof single-use; the origin stops a malicious server from relaying
 * another server's challenge and logging in there as us; the peerId ties the proof to the claimed id.
 */
export function authSignedBytes(peerId: PeerId, challenge: Uint8Array, origin: string): Uint8Array {
  return new ByteWriter(160)
    .bytes(utf8(AUTH_CONTEXT))
    .u8(SIGNALING_VERSION)
    .bytes(peerIdToBytes(peerId))
    .vec8(challenge)
    .vec16(utf8(origin))
    .finish();
}

/**
 * Bytes signed in a signal envelope: context ‖ version ‖ from (32 B) ‖ to (32 B) ‖ u64 ts ‖ u8-len nonce ‖
 * u32 payload length ‖ payload (UTF-8 JSON). Recipient, time and nonce are inside so the server cannot
 * redirect the envelope to someone else or replay it.
 */
export function signalSignedBytes(env: Omit<SignedSignal, 'sig'>): Uint8Array {
  const payload = utf8(env.payload);
  return new ByteWriter(128 + payload.length)
    .bytes(utf8(SIGNAL_CONTEXT))
    .u8(env.v)
    .bytes(peerIdToBytes(env.from))
    .bytes(peerIdToBytes(env.to))
    .u64(BigInt(env.ts))
    .vec8(fromBase64Url(env.nonce))
    .u32(payload.length)
    .bytes(payload)
    .finish();
}

/** Builds and signs a signal envelope carrying `payload` (any JSON value) from `identity` to `to`. */
export async function createSignedSignal(
  identity: Identity,
  to: PeerId,
  payload: unknown,
  now = Date.now(),
): Promise<SignedSignal> {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw fail('invalid_argument', 'signal payload is not JSON-serialisable', err);
  }
  if (text === undefined) throw fail('invalid_argument', 'signal payload is not JSON-serialisable');
  const unsigned = {
    v: SIGNALING_VERSION,
    from: identity.peerId,
    to,
    ts: now,
    nonce: randomNonce(),
    payload: text,
  } as const;
  const sig = await identity.sign(signalSignedBytes(unsigned));
  return { ...unsigned, sig: toBase64Url(sig) };
}

/** What {@link verifySignedSignal} needs besides the envelope. */
export interface VerifySignalOptions {
  /** The receiver: the envelope must be addressed to it. */
  self: PeerId;
  /** The sender's public identity (its peerId must equal `env.from`). */
  sender: PublicIdentity;
  /**
   * Called with the sender, nonce and timestamp after the signature verified: a {@link ReplayCache}'s
   * verdict (`replay` → `replay`, `full` → `rate_limited`).
   */
  remember: (from: PeerId, nonce: string, ts: number) => ReplayVerdict;
  now?: number;
  maxAgeMs?: number;
}

/** Outcome of {@link checkSignedSignal}: the parsed payload, or why the envelope was refused. */
export type SignalCheck =
  | { ok: true; data: unknown }
  | {
      ok: false;
      code:
        | 'wrong_peer'
        | 'peer_id_mismatch'
        | 'signal_expired'
        | 'bad_signature'
        | 'replay'
        | 'rate_limited'
        | 'malformed';
      message: string;
    };

/**
 * Checks a received envelope: recipient, time window, signature, then replay. Never throws and builds no
 * Error for a refusal, so a flood of bad envelopes costs one signature check each and no stack trace
 * (issue 17, point 3). The client counts refusals and reports only some of them.
 */
export async function checkSignedSignal(env: SignedSignal, opts: VerifySignalOptions): Promise<SignalCheck> {
  const now = opts.now ?? Date.now();
  const maxAge = opts.maxAgeMs ?? MAX_MESSAGE_AGE_MS;
  if (env.to !== opts.self)
    return { ok: false, code: 'wrong_peer', message: 'signal is addressed to another peer' };
  if (opts.sender.peerId !== env.from) {
    return { ok: false, code: 'peer_id_mismatch', message: 'signal sender key does not match' };
  }
  if (Math.abs(now - env.ts) > maxAge) {
    return { ok: false, code: 'signal_expired', message: 'signal timestamp outside the window' };
  }
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(env.sig);
  } catch {
    return { ok: false, code: 'bad_signature', message: 'signal signature is not base64url' };
  }
  if (!(await opts.sender.verify(sig, signalSignedBytes(env)))) {
    return { ok: false, code: 'bad_signature', message: `signal signature from ${env.from} does not verify` };
  }
  const seen = opts.remember(env.from, env.nonce, env.ts);
  if (seen === 'replay') return { ok: false, code: 'replay', message: 'signal was seen before' };
  if (seen === 'full') {
    return { ok: false, code: 'rate_limited', message: `too many signals from ${env.from} to remember` };
  }
  try {
    return { ok: true, data: JSON.parse(env.payload) };
  } catch {
    return { ok: false, code: 'malformed', message: 'signal payload is not JSON' };
  }
}

/**
 * Checks a received envelope like {@link checkSignedSignal} and returns the parsed payload.
 * Throws `wrong_peer`, `peer_id_mismatch`, `signal_expired`, `bad_signature`, `replay`, `rate_limited` or
 * `malformed`.
 */
export async function verifySignedSignal(env: SignedSignal, opts: VerifySignalOptions): Promise<unknown> {
  const r = await checkSignedSignal(env, opts);
  if (!r.ok) throw fail(r.code, r.message);
  return r.data;
}
