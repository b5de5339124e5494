/**
 * Shared helpers of the protocol test battery: cached identities (RSA key generation is slow), a manual
 * handshake that exposes every record and both results, fresh session pairs built from one handshake
 * result (so tampering tests do not pay for a handshake each), and typed-error assertions.
 */
import assert from 'node:assert/strict';
import { isP2PTLSError } from '../../src/errors.js';
import { Identity } from '../../src/identity/identity.js';
import { RecordType } from '../../src/protocol/constants.js';
import {
  type Ephemeral,
  generateEphemeral,
  type HandshakeOptions,
  type HandshakeResult,
  InitiatorHandshake,
  type LocalSigner,
  parseClientHello,
  ResponderHandshake,
  Session,
  type SessionEvent,
  type SessionOptions,
  Suite,
  webCryptoAead,
} from '../../src/protocol/index.js';
import { sealRecord } from '../../src/protocol/reliable.js';
import { TrafficKeys } from '../../src/protocol/traffic-keys.js';
import { type InMemoryEnd, pumpReliable as pumpInMemory } from '../../src/testing/in-memory.js';
import { toHex } from '../../src/util/bytes.js';

export { Suite };

/** Both suites, with their names for test titles and their key share lengths on the wire. */
export const SUITES = [
  { name: 'X25519', suite: Suite.X25519_AES256GCM_SHA256, shareLen: 32 },
  { name: 'P-256', suite: Suite.P256_AES256GCM_SHA256, shareLen: 65 },
] as const;

let identityCache: Promise<Identity[]> | undefined;

/** Four identities, generated once per test process: [alice, bob, carol, mallory]. */
export function identities(): Promise<Identity[]> {
  identityCache ??= Promise.all([0, 1, 2, 3].map(() => Identity.generate()));
  return identityCache;
}

/** A random 32-byte pair PSK. */
export function randomPsk(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** Assertion predicate for `assert.rejects` / `assert.throws`: a P2PTLSError with exactly this code. */
export function withCode(code: string) {
  return (err: unknown): true => {
    if (isP2PTLSError(err) && err.code === code) return true;
    if (isP2PTLSError(err))
      assert.fail(`expected P2PTLSError(${code}), got P2PTLSError(${err.code}): ${err.message}`);
    assert.fail(`expected P2PTLSError(${code}), got a foreign exception: ${String(err)}`);
  };
}

/**
 * Runs `fn` and returns 'ok' if it succeeds, else the P2PTLSError's code. Any other exception (TypeError,
 * DOMException, ...) fails the test: the protocol must only ever throw typed errors.
 */
export async function outcome(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    if (isP2PTLSError(err)) return err.code;
    assert.fail(
      `a non-P2PTLSError escaped: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
    );
  }
}

/** A copy of `bytes` with one bit flipped. */
export function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const out = bytes.slice();
  out[index]! ^= 1 << bit;
  return out;
}

/**
 * A signer that memoizes its signatures, so a responder re-created with the same deterministic inputs
 * produces byte-identical records (RSA-PSS is randomized). Also skips the RSA cost on repeated runs.
 */
export function cachingSigner(inner: LocalSigner): LocalSigner {
  const cache = new Map<string, Promise<Uint8Array>>();
  return {
    peerId: inner.peerId,
    sign(data: Uint8Array) {
      const k = toHex(data);
      let sig = cache.get(k);
      if (!sig) {
        sig = inner.sign(data);
        cache.set(k, sig);
      }
      return sig;
    },
  };
}

/** Fixed random + ephemeral for a side, so its hello can be reproduced byte for byte. */
export async function fixedInputs(suite: Suite): Promise<{ random: Uint8Array; ephemeral: Ephemeral }> {
  return { random: crypto.getRandomValues(new Uint8Array(32)), ephemeral: await generateEphemeral(suite) };
}

export interface HandshakeRun {
  clientHello: Uint8Array;
  serverHello: Uint8Array;
  responderAuth: Uint8Array;
  initiatorAuth: Uint8Array;
  initiator: HandshakeResult;
  responder: HandshakeResult;
}

/** Side-specific handshake options (identity, peer, psk are required per side). */
export type SideOptions = Omit<HandshakeOptions, 'deterministic'> & {
  deterministic?: HandshakeOptions['deterministic'];
};

/** A complete handshake with separate options per side; every record and both results are returned. */
export async function runHandshake(init: SideOptions, resp: SideOptions): Promise<HandshakeRun> {
  const i = await InitiatorHandshake.start(init);
  const r = await ResponderHandshake.accept(parseClientHello(i.hello), resp);
  assert.equal(r.records.length, 2, 'the responder sends ServerHello and ResponderAuth');
  const [serverHello, responderAuth] = r.records as [Uint8Array, Uint8Array];
  const first = await i.receive(serverHello);
  assert.equal(first.records.length, 0);
  assert.equal(first.result, undefined);
  const second = await i.receive(responderAuth);
  assert.equal(second.records.length, 1);
  const initiatorAuth = second.records[0]!;
  const responder = await r.receive(initiatorAuth);
  return {
    clientHello: i.hello,
    serverHello,
    responderAuth,
    initiatorAuth,
    initiator: second.result!,
    responder,
  };
}

/** A session end wired to capture arrays, like the in-memory harness's ends. */
export function endFrom(result: HandshakeResult, options?: SessionOptions): InMemoryEnd {
  const sentReliable: Uint8Array[] = [];
  const sentDatagrams: Uint8Array[] = [];
  const session = new Session(
    result,
    {
      reliable: (r) => sentReliable.push(r),
      datagram: (d) => {
        sentDatagrams.push(d);
        return true;
      },
    },
    options,
  );
  return { session, sentReliable, sentDatagrams };
}

/** A fresh pair of sessions from one handshake: same keys, sequence numbers from 0. */
export function pairFrom(
  run: Pick<HandshakeRun, 'initiator' | 'responder'>,
  options?: SessionOptions | { initiator?: SessionOptions; responder?: SessionOptions },
): { initiator: InMemoryEnd; responder: InMemoryEnd } {
  const split =
    options && ('initiator' in options || 'responder' in options)
      ? (options as { initiator?: SessionOptions; responder?: SessionOptions })
      : {
          initiator: options as SessionOptions | undefined,
          responder: options as SessionOptions | undefined,
        };
  return {
    initiator: endFrom(run.initiator, split.initiator),
    responder: endFrom(run.responder, split.responder),
  };
}

/** Lets pending promise chains (sealing of records the session queued on its own) finish. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Waits until `end` has sent at least `n` reliable records (or fails after many rounds). */
export async function waitForReliable(end: InMemoryEnd, n: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (end.sentReliable.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  assert.ok(end.sentReliable.length >= n, `expected ${n} reliable record(s), got ${end.sentReliable.length}`);
}

/** Deterministic PRNG (mulberry32), for reproducible random schedules outside fast-check. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes whose content encodes `n` and a length, so a delivered message can be traced back. */
export function tagged(n: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (n * 31 + i * 7) & 0xff;
  if (length >= 4) new DataView(out.buffer).setUint32(0, n);
  return out;
}

/** alice and bob, and two independent handshakes between them under one PSK (for cross-session tests). */
export async function twoRuns(): Promise<{
  alice: Identity;
  bob: Identity;
  run: HandshakeRun;
  other: HandshakeRun;
}> {
  const [alice, bob] = (await identities()) as [Identity, Identity];
  const psk = randomPsk();
  const opts = (me: Identity, peer: Identity) => ({ identity: me, peer: peer.publicIdentity, psk });
  return {
    alice,
    bob,
    run: await runHandshake(opts(alice, bob), opts(bob, alice)),
    other: await runHandshake(opts(alice, bob), opts(bob, alice)),
  };
}

/** A session event as the tests compare it: message events without their flow-control `cost`. */
export type PlainEvent = Exclude<SessionEvent, { type: 'message' }> | { type: 'message'; data: Uint8Array };

/** Drops the `cost` of message events (test/unit/protocol-flow-control.test.ts checks costs). */
export function plain(events: readonly SessionEvent[]): PlainEvent[] {
  return events.map((e) => (e.type === 'message' ? { type: 'message', data: e.data } : e));
}

/** The in-memory pump ({@link pumpInMemory}), with {@link plain} events. */
export async function pumpReliable(from: InMemoryEnd, to: InMemoryEnd): Promise<PlainEvent[]> {
  return plain(await pumpInMemory(from, to));
}

/**
 * Opens both receive windows beyond the initial 256 KiB (§5.5), as a Connection does right after the
 * handshake, for tests that send more than that without reading in between.
 */
export async function openWindows(a: InMemoryEnd, b: InMemoryEnd): Promise<void> {
  a.session.announceWindow();
  b.session.announceWindow();
  await waitForReliable(a, 1);
  await waitForReliable(b, 1);
  await pumpInMemory(a, b);
  await pumpInMemory(b, a);
}

/** A sender that seals arbitrary records under a side's real reliable key (an authenticated but buggy peer). */
export class RawSender {
  private readonly keys: TrafficKeys;
  constructor(secret: Uint8Array) {
    this.keys = new TrafficKeys(webCryptoAead, secret, 2 ** 48);
  }
  seal(type: number, flags: number, plaintext: Uint8Array): Promise<Uint8Array> {
    const p = this.keys.next();
    const out = sealRecord(webCryptoAead, p, new Uint8Array([type, flags]), plaintext);
    if (type === RecordType.KEY_UPDATE) this.keys.rotate();
    return out;
  }
}

/** X25519 u-coordinates of small order (RFC 7748 §6.1 / cr.yp.to/ecdh.html#validate): all-zero output. */
export const X25519_LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

/** P-256 shares that are not points on the curve: (0,0), all-ones, a real point with y changed. */
export async function badP256Shares(): Promise<Uint8Array[]> {
  const zero = new Uint8Array(65);
  zero[0] = 0x04;
  const ones = new Uint8Array(65).fill(0xff);
  ones[0] = 0x04;
  const real = (await generateEphemeral(SUITES[1].suite)).share.slice();
  real[64]! ^= 1;
  return [zero, ones, real];
}
