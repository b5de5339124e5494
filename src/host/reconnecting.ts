/**
 * A connection that comes back: when the WebRTC link fails (ICE `failed`, the peer's process restarted,
 * a heartbeat timeout), it dials again through signaling with capped exponential backoff and a fresh
 * p2ptls handshake — no pairing again, the store's PSK and pinned key are reused.
 *
 * simple-peer cannot restart ICE on a live RTCPeerConnection, so a failed link is replaced by a new
 * one: in effect a full ICE restart. `disconnected` is left alone (it often recovers by itself); only a
 * link that actually fails, or stays silent past the heartbeat timeout, triggers a reconnect.
 *
 * Delivery is at most once across a reconnect: messages handed to a link that then died may be lost.
 * Applications that need more acknowledge at their level.
 */
import { fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { APPLICATION_CLOSE_CODES, CloseCode } from '../protocol/constants.js';
import type { CloseInfo } from '../protocol/session.js';
import { TypedEmitter } from '../util/emitter.js';
import { type Connection, closedError } from './connection.js';
import type { Datagram, SendOptions } from './connection-types.js';

export interface ReconnectOptions {
  /** First delay before dialing again (default 250 ms); doubles up to `maxDelayMs`. */
  initialDelayMs?: number;
  /** Cap of the backoff (default 10 000 ms). */
  maxDelayMs?: number;
  /** Give up after this many failed dials in a row (default: never). */
  maxAttempts?: number;
}

export interface ReconnectingEvents {
  message: Uint8Array;
  datagram: Datagram;
  /** The current connection went down with an error; dialing again. */
  reconnecting: { attempt: number; error?: P2PTLSError };
  /** A new authenticated connection replaced the old one. */
  reconnected: { attempt: number };
  /** Closed for good: by either side, or after `maxAttempts`. */
  close: CloseInfo;
}

/** Dial failures that are answers, not accidents: dialing again cannot help. */
export const DIAL_REFUSALS: ReadonlySet<string> = new Set<string>([
  'unknown_peer',
  'bad_binder',
  'bad_signature',
  'bad_finished',
  'channel_binding_mismatch',
  'peer_id_mismatch',
  'unsupported_version',
]);

/** Closes that mean "stop", not "come back": a deliberate close by either side. */
export function isDeliberateClose(info: CloseInfo): boolean {
  return (
    !info.error &&
    (info.code === CloseCode.NORMAL ||
      info.code === CloseCode.GOING_AWAY ||
      info.code >= APPLICATION_CLOSE_CODES)
  );
}

/** Returned by `Host.keepConnected`: one peer, always (re)connected until closed. */
export class ReconnectingConnection extends TypedEmitter<ReconnectingEvents> {
  /** Resolves when closed for good. */
  readonly closed: Promise<CloseInfo>;
  private current: Connection | undefined;
  private ended: CloseInfo | undefined;
  private resolveClosed!: (c: CloseInfo) => void;
  private waiters: { resolve: (c: Connection) => void; reject: (e: P2PTLSError) => void }[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** @internal */
  constructor(
    readonly peerId: PeerId,
    private readonly dial: () => Promise<Connection>,
    private readonly options: ReconnectOptions = {},
  ) {
    super();
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** @internal Dials the first time; rejects like `Host.connect` if that fails. */
  async start(): Promise<this> {
    this.adopt(await this.dial());
    return this;
  }

  /** The live connection, or undefined while reconnecting. */
  get connection(): Connection | undefined {
    return this.current?.isOpen ? this.current : undefined;
  }

  /** Resolves with a live connection, waiting through a reconnect if one is under way. */
  ready(): Promise<Connection> {
    if (this.ended) return Promise.reject(closedError(this.ended));
    const live = this.connection;
    if (live) return Promise.resolve(live);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Sends in TCP mode on the live connection, waiting for a reconnect if needed. */
  async send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    return (await this.ready()).send(data, options);
  }

  /** Sends a datagram if connected; while reconnecting it is dropped (-1), as the network would. */
  async sendDatagram(data: Uint8Array | string): Promise<number> {
    const live = this.connection;
    return live ? live.datagrams.send(data) : -1;
  }

  /** Closes for good, telling the peer. */
  async close(code: number = CloseCode.NORMAL, reason = ''): Promise<CloseInfo> {
    if (this.ended) return this.ended;
    if (this.timer) clearTimeout(this.timer);
    // Detached first: its close event is ours, not a failure to reconnect from.
    const current = this.current;
    this.current = undefined;
    const info = current?.isOpen ? await current.close(code, reason) : { code, reason, byPeer: false };
    this.finish(info);
    return info;
  }

  private adopt(connection: Connection): void {
    this.current = connection;
    connection.on('message', (m) => this.emit('message', m));
    connection.datagrams.on('datagram', (d) => this.emit('datagram', d));
    connection.on('close', (info) => {
      if (this.ended || connection !== this.current) return;
      if (isDeliberateClose(info)) this.finish(info);
      else this.retry(1, info.error);
    });
    for (const w of this.waiters.splice(0)) w.resolve(connection);
  }

  private retry(attempt: number, error?: P2PTLSError): void {
    if (this.ended) return;
    const max = this.options.maxAttempts;
    if (max !== undefined && attempt > max) {
      this.finish({
        code: CloseCode.GOING_AWAY,
        reason: `gave up after ${max} attempts`,
        byPeer: false,
        error: error ?? fail('timeout', 'reconnect attempts exhausted'),
      });
      return;
    }
    this.emit('reconnecting', error ? { attempt, error } : { attempt });
    const delay = Math.min(
      this.options.maxDelayMs ?? 10_000,
      (this.options.initialDelayMs ?? 250) * 2 ** (attempt - 1),
    );
    this.timer = setTimeout(() => {
      this.dial().then(
        (c) => {
          if (this.ended) {
            void c.close(0, 'closed while reconnecting');
            return;
          }
          this.adopt(c);
          this.emit('reconnected', { attempt });
        },
        (err: P2PTLSError) => {
          // The peer answered and refused us: dialing again cannot help.
          if (DIAL_REFUSALS.has(err.code))
            this.finish({ code: CloseCode.GOING_AWAY, reason: err.code, byPeer: false, error: err });
          else this.retry(attempt + 1, err);
        },
      );
    }, delay);
  }

  private finish(info: CloseInfo): void {
    if (this.ended) return;
    this.ended = info;
    const err = closedError(info);
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.emit('close', info);
    this.resolveClosed(info);
  }
}
