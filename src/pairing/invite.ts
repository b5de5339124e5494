import { fail } from '../errors.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { fromBase64Url, toBase64Url } from '../util/bytes.js';

/** Size of an invite's one-time token. */
export const INVITE_TOKEN_BYTES = 16;
/** Longest invite string accepted by {@link parseInvite}. */
export const MAX_INVITE_LENGTH = 2048;

/**
 * An out-of-band invitation to pair (a link or QR code). Because a peerId is the hash of its key, a
 * requester holding the invite can check the key the signaling server hands out; the one-time token lets
 * the inviter recognise the request as coming from whoever received the invite.
 */
export interface Invite {
  /** The inviter. */
  peerId: PeerId;
  /** One-time secret the inviter remembers; travels only encrypted to the inviter's key. */
  token: Uint8Array;
  /** Signaling server where the inviter can be reached. */
  url?: string;
  /** Expiry, ms since the epoch. */
  expires?: number;
}

/** Encodes an invite as `p2ptls://invite?v=1&peer=…&token=…[&url=…][&exp=…]`. */
export function encodeInvite(invite: Invite): string {
  if (!isPeerId(invite.peerId)) throw fail('invalid_argument', 'invite peerId is not a peerId');
  if (invite.token.length !== INVITE_TOKEN_BYTES) {
    throw fail('invalid_argument', `invite token must be ${INVITE_TOKEN_BYTES} bytes`);
  }
  const q = new URLSearchParams({ v: '1', peer: invite.peerId, token: toBase64Url(invite.token) });
  if (invite.url !== undefined) q.set('url', checkUrl(invite.url, 'invalid_argument'));
  if (invite.expires !== undefined) {
    if (!Number.isSafeInteger(invite.expires) || invite.expires < 0) {
      throw fail('invalid_argument', 'invite expiry must be ms since the epoch');
    }
    q.set('exp', String(invite.expires));
  }
  return `p2ptls://invite?${q.toString()}`;
}

/**
 * Parses an invite made by {@link encodeInvite}. Throws `bad_invite` for anything else, and for an invite
 * whose expiry has passed at `now`.
 */
export function parseInvite(text: string, now = Date.now()): Invite {
  if (typeof text !== 'string' || text.length > MAX_INVITE_LENGTH) {
    throw fail('bad_invite', 'invite is not a string of acceptable length');
  }
  const prefix = 'p2ptls://invite?';
  const trimmed = text.trim();
  if (!trimmed.startsWith(prefix)) throw fail('bad_invite', `invite must start with ${prefix}`);
  const q = new URLSearchParams(trimmed.slice(prefix.length));
  for (const key of q.keys()) {
    if (!['v', 'peer', 'token', 'url', 'exp'].includes(key)) throw fail('bad_invite', `unknown field ${key}`);
    if (q.getAll(key).length !== 1) throw fail('bad_invite', `field ${key} repeated`);
  }
  if (q.get('v') !== '1') throw fail('bad_invite', 'unsupported invite version');
  const peerId = q.get('peer');
  if (!isPeerId(peerId)) throw fail('bad_invite', 'invite has no valid peerId');
  let token: Uint8Array;
  try {
    token = fromBase64Url(q.get('token') ?? '');
  } catch (err) {
    throw fail('bad_invite', 'invite token is not base64url', err);
  }
  if (token.length !== INVITE_TOKEN_BYTES) throw fail('bad_invite', 'invite token has the wrong size');
  const invite: Invite = { peerId, token };
  const url = q.get('url');
  if (url !== null) invite.url = checkUrl(url, 'bad_invite');
  const exp = q.get('exp');
  if (exp !== null) {
    if (!/^\d{1,16}$/.test(exp)) throw fail('bad_invite', 'invite expiry is not a number');
    invite.expires = Number(exp);
    if (invite.expires < now) throw fail('bad_invite', 'invite has expired');
  }
  return invite;
}

function checkUrl(url: string, code: 'bad_invite' | 'invalid_argument'): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw fail(code, 'invite signaling URL is not a URL', err);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw fail(code, 'invite signaling URL must be http(s) or ws(s)');
  }
  return url;
}
