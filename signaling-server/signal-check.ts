/**
 * The signal request's schema check without zod, for the relay's hot path. zod's parse of
 * `SignalRequestSchema` copies the envelope and cost ~6 % of the server's CPU per relayed signal in
 * `bench:signaling` (1000 clients, `node --cpu-prof`), plus the garbage of the copy. This accepts
 * exactly what the schema accepts and checks in place; anything it refuses goes through the schema,
 * which then says what is wrong. test/signaling/signal-check.test.ts holds the two to agreement.
 */
import type { SignedSignal } from '../src/signaling/messages.js';
import { MAX_PAYLOAD_BYTES, SIGNALING_VERSION } from '../src/signaling/messages.js';
import { isBase64Url } from '../src/util/bytes.js';

const PEER_ID = /^[a-z2-7]{52}$/;
const MAX_TS = 2 ** 48;
const ENV_KEYS = 7;

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/** True when `arg` is a valid `signal` request, `{ env: SignedSignal }` with no other keys anywhere. */
export function isSignalRequest(arg: unknown): arg is { env: SignedSignal } {
  if (!isRecord(arg)) return false;
  let keys = 0;
  for (const k in arg) {
    if (!Object.hasOwn(arg, k)) continue;
    if (k !== 'env') return false;
    keys++;
  }
  if (keys !== 1) return false;
  const env = arg.env;
  if (!isRecord(env)) return false;
  keys = 0;
  for (const k in env) if (Object.hasOwn(env, k)) keys++;
  if (keys !== ENV_KEYS) return false;
  const { v, from, to, ts, nonce, payload, sig } = env;
  return (
    v === SIGNALING_VERSION &&
    typeof from === 'string' &&
    PEER_ID.test(from) &&
    typeof to === 'string' &&
    PEER_ID.test(to) &&
    typeof ts === 'number' &&
    Number.isInteger(ts) &&
    ts >= 0 &&
    ts <= MAX_TS &&
    typeof nonce === 'string' &&
    nonce.length === 22 &&
    isBase64Url(nonce) &&
    typeof payload === 'string' &&
    payload.length <= MAX_PAYLOAD_BYTES &&
    typeof sig === 'string' &&
    sig.length >= 16 &&
    sig.length <= 700 &&
    isBase64Url(sig)
  );
}
