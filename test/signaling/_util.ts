// Helpers shared by the signaling tests (not a test file itself).
import { io, type Socket } from 'socket.io-client';
import type { Identity } from '../../src/identity/index.js';
import { authSignedBytes, signalingOrigin } from '../../src/signaling/wire.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';
import type { TypedEmitter } from '../../src/util/emitter.js';

/** A bare socket.io-client connection (no p2ptls client logic) and the challenge the server sent. */
export interface RawConn {
  socket: Socket;
  challenge: Promise<string>;
}

/**
 * Connects a raw socket.io client; `challenge` resolves with the server's nonce. `headers` are sent with
 * the WebSocket upgrade (a client can claim any Host or X-Forwarded-Host).
 */
export function rawConnect(url: string, headers?: Record<string, string>): RawConn {
  const socket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(headers ? { extraHeaders: headers } : {}),
  });
  const challenge = new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no challenge')), 10_000);
    socket.once('challenge', (c: { nonce: string }) => {
      clearTimeout(t);
      resolve(c.nonce);
    });
  });
  return { socket, challenge };
}

/**
 * A raw socket.io connection from `localAddress` (a loopback address such as 127.0.0.2, so that the
 * server sees another client address) and the server's challenge; `challenge` rejects on a refused
 * handshake (`rate_limited`).
 */
export function connectFrom(url: string, localAddress: string): RawConn {
  // engine.io-client passes `localAddress` on to the `ws` package in Node; its types only omit it.
  const options = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress };
  const socket = io(url, options as Parameters<typeof io>[1]);
  const challenge = new Promise<string>((resolve, reject) => {
    socket.once('challenge', (c: { nonce: string }) => resolve(c.nonce));
    socket.once('connect_error', reject);
  });
  return { socket, challenge };
}

/** Connects from `localAddress` and authenticates correctly. */
export async function authedFrom(url: string, identity: Identity, localAddress: string): Promise<Socket> {
  const c = connectFrom(url, localAddress);
  const ack = await ask(c.socket, 'auth', await authRequest(identity, url, await c.challenge));
  if ((ack as { ok?: boolean }).ok !== true) throw new Error(`auth failed: ${JSON.stringify(ack)}`);
  return c.socket;
}

/** Emits with an acknowledgement and resolves with the answer. */
export async function ask(socket: Socket, event: string, ...args: unknown[]): Promise<unknown> {
  return socket.timeout(10_000).emitWithAck(event, ...args);
}

/** The auth request a correct client would send for `challenge`. */
export async function authRequest(identity: Identity, url: string, challenge: string) {
  const origin = signalingOrigin(url);
  const sig = await identity.sign(authSignedBytes(identity.peerId, fromBase64Url(challenge), origin));
  return { identity: identity.exportPublic(), origin, sig: toBase64Url(sig) };
}

/** Connects raw and authenticates correctly. */
export async function rawAuthed(url: string, identity: Identity): Promise<Socket> {
  const c = rawConnect(url);
  const ack = (await ask(c.socket, 'auth', await authRequest(identity, url, await c.challenge))) as {
    ok: boolean;
  };
  if (!ack.ok) throw new Error(`auth failed: ${JSON.stringify(ack)}`);
  return c.socket;
}

/** Resolves with the next `event` of a SignalingClient (or PairingService) that satisfies `pred`. */
export function next<E extends object, K extends keyof E>(
  client: TypedEmitter<E>,
  event: K,
  pred: (v: E[K]) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<E[K]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`timeout waiting for ${String(event)}`));
    }, timeoutMs);
    const off = client.on(event, (v) => {
      if (!pred(v)) return;
      clearTimeout(t);
      off();
      resolve(v);
    });
  });
}

/** Waits until `socket` is disconnected. */
export function disconnected(socket: Socket, timeoutMs = 10_000): Promise<string> {
  if (socket.disconnected && !socket.active) return Promise.resolve('already');
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('still connected')), timeoutMs);
    socket.once('disconnect', (reason) => {
      clearTimeout(t);
      resolve(reason);
    });
  });
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A predicate for assert.rejects: a P2PTLSError with `code`. */
export const withCode = (code: string) => (err: unknown) =>
  typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;

/** An error-ack shape check. */
export function errorCode(ack: unknown): string | undefined {
  if (typeof ack !== 'object' || ack === null) return undefined;
  const a = ack as { ok?: unknown; error?: { code?: unknown } };
  return a.ok === false && typeof a.error?.code === 'string' ? a.error.code : undefined;
}

/** GET a path of the server and return the text. */
export async function httpGet(url: string, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(path, url));
  return { status: res.status, text: await res.text() };
}

/** The value of a Prometheus sample line, e.g. `metric{label="x"}`; 0 when absent. */
export function metricValue(text: string, sample: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return 0;
}

/** The TCP socket under a raw client's websocket: paused, the client stops reading what the server writes. */
export function pausable(s: Socket): { pause(): void; resume(): void } {
  return (s.io.engine.transport as unknown as { ws: { _socket: { pause(): void; resume(): void } } }).ws
    ._socket;
}

/**
 * Sends `env` through `sender` in batches of 50 until the server refuses one (or `max` went through):
 * how a test finds the refusal of a recipient that stopped reading.
 */
export async function signalUntilRefused(
  sender: Socket,
  env: unknown,
  max = 3000,
): Promise<{ refusal: unknown; sent: number }> {
  let refusal: unknown;
  let sent = 0;
  while (refusal === undefined && sent < max) {
    const acks = await Promise.all(Array.from({ length: 50 }, () => ask(sender, 'signal', { env })));
    sent += acks.length;
    refusal = acks.find((a) => (a as { ok?: boolean }).ok !== true);
  }
  return { refusal, sent };
}
