/**
 * Signaling client for browsers and Node: authenticates with an {@link Identity}, relays signed signals,
 * looks up public keys and joins rooms. It trusts the server for nothing but delivery: every relayed
 * signal is verified against the sender's key, whose hash is checked against the sender's peerId here,
 * not by the server. Pairing messages it only carries (`sendPairing`, `onPairingMessage`); the pairing
 * protocol is src/pairing's `PairingService`, which verifies them itself.
 */
import { io, type Socket } from 'socket.io-client';
import type { z } from 'zod';
import { type ErrorCode, ErrorCodes, fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import { type Identity, PublicIdentity } from '../identity/identity.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { fromBase64Url, toBase64Url } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import {
  InboundSignals,
  type PairedPeers,
  type SignalingInboundOptions,
  type SignalingInboundStats,
} from './inbound.js';
import {
  AckErrorSchema,
  type ClientAck,
  ClientAcks,
  type ClientEventName,
  type ClientRequest,
  MAX_LISTED_MEMBERS,
  MAX_MESSAGE_AGE_MS,
  MAX_PAYLOAD_BYTES,
  type PairingMessage,
  ServerEvents,
} from './messages.js';
import { authSignedBytes, createSignedSignal, signalingOrigin } from './wire.js';

/** Options of {@link SignalingClient}. */
export interface SignalingClientOptions {
  /** Signaling server URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  identity: Identity;
  /** Default `['websocket']`; add `'polling'` for networks that block WebSockets. */
  transports?: ('websocket' | 'polling' | 'webtransport')[];
  /** First reconnection delay; doubles up to `reconnectionDelayMaxMs` with ±50 % jitter. Default 500. */
  reconnectionDelayMs?: number;
  /** Default 10 000. */
  reconnectionDelayMaxMs?: number;
  /** How long a request waits for the server's answer (and for authentication). Default 10 000. */
  requestTimeoutMs?: number;
  /** Largest accepted |now − ts| of signed signals. Default 5 minutes. */
  maxMessageAgeMs?: number;
  /** Paired peers, whose signals are verified first under their pinned key (see also {@link SignalingClient.usePeers}). */
  peers?: PairedPeers;
  inbound?: SignalingInboundOptions;
}

/** Events of {@link SignalingClient}. */
export interface SignalingClientEvents {
  /** Authenticated (again, after every reconnection). */
  authenticated: { peerId: PeerId };
  /** Lost the connection; the client reconnects unless it was closed or replaced. */
  disconnected: { reason: string };
  /** A signal whose signature, recipient, freshness and uniqueness were verified. */
  signal: { from: PeerId; data: unknown; ts: number };
  'room:joined': { room: string; peerId: PeerId };
  'room:left': { room: string; peerId: PeerId };
  /** Another connection authenticated with our peerId; this client is closed for good. */
  replaced: { reason: string };
  /**
   * A pairing message, schema-checked but not verified (the pairing service verifies it); `from` is the
   * sender the server authenticated. See {@link SignalingClient.onPairingMessage}.
   */
  pairing: { from: PeerId; msg: PairingMessage };
  /**
   * A relayed message failed verification and was dropped (a lying server, or an attack). For signals, at
   * most `inbound.rejectedEventsPerWindow` per window; the rest are counted in {@link SignalingClient.stats}.
   */
  rejected: { event: 'signal' | 'pairing' | 'server'; from?: string; error: P2PTLSError };
  /**
   * Sustained shedding: in this window signals were dropped unread (a full queue) or refused beyond the
   * `rejected` quota. Emitted at most once per window, when it starts; `stats` are the counters then.
   */
  overload: { windowStart: number; stats: SignalingInboundStats };
  /** Authentication failed; the client stops. */
  error: { error: P2PTLSError };
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));
/**
 * Client of the p2ptls signaling server. Call {@link SignalingClient.connect}, then send signals and join
 * rooms; pair through a `PairingService` on top of it. Reconnects with backoff and re-authenticates by
 * itself; rooms are re-joined.
 */
export class SignalingClient extends TypedEmitter<SignalingClientEvents> {
  readonly url: string;
  readonly identity: Identity;
  private readonly socket: Socket;
  private readonly origin: string;
  private readonly requestTimeoutMs: number;
  private readonly rooms = new Set<string>();
  /** Relayed signals on their way in: classified, queued, verified, counted (inbound.ts). */
  private readonly inbound: InboundSignals;
  /** Settles once the last signal was handed to the socket: the next one waits for it (see {@link sendSignal}). */
  private outbox: Promise<unknown> = Promise.resolve();
  private authenticated = false;
  private closed = false;
  private closeReason: { code: ErrorCode; message: string } | undefined;
  private waiters = new Set<{ resolve: () => void; reject: (e: unknown) => void }>();

  constructor(options: SignalingClientOptions) {
    super();
    this.url = options.url;
    this.identity = options.identity;
    this.origin = signalingOrigin(options.url);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.inbound = new InboundSignals(
      {
        self: this.identity.peerId,
        fetchKey: (peerId) => this.serverLookup(peerId).then((r) => r.identity),
        deliver: (signal) => this.emit('signal', signal),
        reject: (error, from) => this.reportRejected('signal', error, from),
        overload: (event) => this.emit('overload', event),
      },
      {
        maxAgeMs: options.maxMessageAgeMs ?? MAX_MESSAGE_AGE_MS,
        ...(options.peers ? { peers: options.peers } : {}),
        ...(options.inbound ? { inbound: options.inbound } : {}),
      },
    );
    this.socket = io(options.url, {
      autoConnect: false,
      transports: options.transports ?? ['websocket'],
      reconnection: true,
      reconnectionDelay: options.reconnectionDelayMs ?? 500,
      reconnectionDelayMax: options.reconnectionDelayMaxMs ?? 10_000,
      randomizationFactor: 0.5,
      timeout: this.requestTimeoutMs,
    });
    this.socket.on('challenge', (raw: unknown) => void this.onChallenge(raw));
    this.socket.on('signal', (raw: unknown) => this.inbound.arrive(raw));
    this.socket.on('pairing', (raw: unknown) => this.onPairing(raw));
    this.socket.on('room:joined', (raw: unknown) => this.onRoomEvent('room:joined', raw));
    this.socket.on('room:left', (raw: unknown) => this.onRoomEvent('room:left', raw));
    this.socket.on('replaced', (raw: unknown) => this.onReplaced(raw));
    this.socket.on('disconnect', (reason: string) => this.onDisconnect(reason));
  }

  /** Our peerId. */
  get peerId(): PeerId {
    return this.identity.peerId;
  }

  /** True while connected and authenticated. */
  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  /** Connects and authenticates. Rejects with `auth_failed` (or the server's code) or `timeout`. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    if (!this.socket.active) this.socket.connect();
    return this.whenReady();
  }

  /** Closes the connection for good; pending requests fail with `closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.shutdown('closed', 'signaling client closed');
    this.socket.disconnect();
  }

  /**
   * Remembers a paired peer's public identity (e.g. from the PeerStore): its signals verify without a
   * lookup and are verified ahead of strangers'.
   */
  trustPeer(peer: PublicIdentity): void {
    this.inbound.trust(peer);
  }

  /**
   * Where to look up whether a sender is paired (a `PeerStore`; a Host passes its peer list). A sender
   * not yet known either way has its signals held (bounded) during one lookup, then queued in its lane.
   */
  usePeers(peers: PairedPeers): void {
    this.inbound.usePeers(peers);
  }

  /** Counters of the inbound signal path (issue 17, point 3). */
  stats(): SignalingInboundStats {
    return this.inbound.stats();
  }

  /**
   * Sends `data` (any JSON value, e.g. SDP or an ICE candidate) to `to`, signed. Signals reach the socket
   * in the order of the calls; their signatures still run concurrently. Before, each was sent when its
   * own signature (in the thread pool) finished: in one of three traced wrtc dials the answer reached
   * the initiator after its ICE candidates. Signing one at a time instead kept the order but slowed
   * trickle ICE (raw WebRTC connect over this client: median 26.7 ms against 24.3 ms, 5 runs each of
   * bench:transport --only setup).
   */
  async sendSignal(to: PeerId, data: unknown): Promise<void> {
    if (!isPeerId(to)) throw fail('invalid_argument', 'sendSignal: not a peerId');
    const signing = createSignedSignal(this.identity, to, data);
    signing.catch(() => {});
    const emitted = this.outbox.then(async () => {
      const env = await signing;
      if (env.payload.length > MAX_PAYLOAD_BYTES - 2048) {
        throw fail('payload_too_large', `signal payload of ${env.payload.length} bytes is too large`);
      }
      await this.whenReady();
      // rawRequest emits before it returns; wrapped, so the next signal waits for the emit, not the ack.
      return { ack: this.rawRequest('signal', { env }) };
    });
    this.outbox = emitted.catch(() => {});
    const { ack } = await emitted;
    await ack;
  }

  /**
   * The public identity a peer registered with the server, verified here to hash to `peerId` (a lying
   * server can withhold it but not substitute another key), and whether the peer is online.
   */
  async lookup(peerId: PeerId): Promise<{ identity: PublicIdentity | null; online: boolean }> {
    const found = await this.serverLookup(peerId);
    // Kept for verifying this peer's signals (the inbound path learns the keys it fetches itself).
    if (found.identity) this.inbound.learnKey(found.identity);
    return found;
  }

  /**
   * Joins a room; resolves with all its members (including us), read page by page like
   * {@link roomMembers}. Re-joined automatically after reconnecting.
   */
  async joinRoom(room: string): Promise<PeerId[]> {
    const ack = await this.request('room:join', { room });
    this.rooms.add(room);
    return this.allPages(room, ack);
  }

  async leaveRoom(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.request('room:leave', { room });
  }

  /**
   * Current members of a room (across all server processes), in peerId order. The server answers at most
   * MAX_MEMBERS_PAGE (64) per request; this follows every page. Pages are read one after another, not
   * at one instant: a member that joins or leaves meanwhile may be missing or still listed, and its
   * `room:joined` / `room:left` event follows.
   */
  async roomMembers(room: string): Promise<PeerId[]> {
    return this.allPages(room, await this.request('room:members', { room }));
  }

  /** The members of `first` and of every page after it (`room:members` from each page's `next`). */
  private async allPages(room: string, first: ClientAck<'room:members'>): Promise<PeerId[]> {
    const members = [...first.members];
    let page = first;
    while (page.next !== undefined) {
      // A server that does not move forward would keep us here: each page must end at its cursor, and
      // the list grows by at least one member per page up to the answer's own bound.
      if (page.members.length === 0 || page.next !== page.members[page.members.length - 1]) {
        throw fail('malformed', 'room:members: the next cursor is not the last member of its page');
      }
      const after = page.next;
      page = await this.request('room:members', { room, after });
      const firstOfPage = page.members[0];
      if (firstOfPage !== undefined && firstOfPage <= after) {
        throw fail('malformed', 'room:members: a page does not start after its cursor');
      }
      if (members.length + page.members.length > MAX_LISTED_MEMBERS) {
        throw fail('malformed', `room:members: more than ${MAX_LISTED_MEMBERS} members`);
      }
      members.push(...page.members);
    }
    return members;
  }

  /** Sends a pairing message (built and signed by the pairing service) to `msg.to`. */
  async sendPairing(msg: PairingMessage): Promise<void> {
    await this.request('pairing', { msg });
  }

  /**
   * Delivers relayed pairing messages to `listener` (the transport side of a `PairingService`). They are
   * checked against the schema only; the listener verifies them. Returns an unsubscribe function.
   */
  onPairingMessage(listener: (e: { from: PeerId; msg: PairingMessage }) => void): () => void {
    return this.on('pairing', listener);
  }

  // -------------------------------------------------------------------------------------------------

  private async onChallenge(raw: unknown): Promise<void> {
    const parsed = ServerEvents.challenge.safeParse(raw);
    if (!parsed.success) {
      this.reportRejected('server', fail('malformed', 'bad challenge from the server'));
      return;
    }
    try {
      const challenge = fromBase64Url(parsed.data.nonce);
      const sig = await this.identity.sign(authSignedBytes(this.peerId, challenge, this.origin));
      const ack = await this.rawRequest('auth', {
        identity: this.identity.exportPublic(),
        origin: this.origin,
        sig: toBase64Url(sig),
      });
      if (ack.peerId !== this.peerId) throw fail('auth_failed', 'server bound us to another peerId');
      this.authenticated = true;
      this.emit('authenticated', { peerId: this.peerId });
      for (const w of this.waiters) w.resolve();
      this.waiters.clear();
      // Re-join after a reconnection; a room that fails is reported but does not undo authentication.
      for (const room of this.rooms) {
        this.rawRequest('room:join', { room }).catch((err: unknown) => {
          if (isP2PTLSError(err)) this.reportRejected('server', err);
        });
      }
    } catch (err) {
      if (this.closed) return;
      const error = isP2PTLSError(err) ? err : fail('auth_failed', 'authentication failed', err);
      // A wrong proof will not become right by retrying; stop rather than hammer the server.
      this.shutdown(error.code, error.message);
      this.socket.disconnect();
      this.emit('error', { error });
    }
  }

  private onDisconnect(reason: string): void {
    const was = this.authenticated;
    this.authenticated = false;
    if (was || !this.closed) this.emit('disconnected', { reason });
    if (reason === 'io server disconnect' && !this.closed) {
      // The server kicked us (auth failure, replacement, or an explicit disconnect): socket.io will not
      // reconnect by itself, and doing so would fight whoever replaced us.
      this.shutdown('disconnected', 'the signaling server closed the connection');
    }
  }

  private onReplaced(raw: unknown): void {
    const parsed = ServerEvents.replaced.safeParse(raw);
    const reason = parsed.success ? parsed.data.reason : 'replaced';
    this.shutdown('replaced', `replaced by another connection with our peerId: ${reason}`);
    this.socket.disconnect();
    this.emit('replaced', { reason });
  }

  private onRoomEvent(event: 'room:joined' | 'room:left', raw: unknown): void {
    const parsed = ServerEvents[event].safeParse(raw);
    if (!parsed.success) {
      this.reportRejected('server', fail('malformed', `bad ${event} event from the server`));
      return;
    }
    this.emit(event, parsed.data);
  }

  private onPairing(raw: unknown): void {
    const parsed = ServerEvents.pairing.safeParse(raw);
    if (!parsed.success) {
      this.reportRejected('pairing', fail('malformed', 'relayed pairing message does not match the schema'));
      return;
    }
    this.emit('pairing', parsed.data);
  }

  private reportRejected(event: 'signal' | 'pairing' | 'server', error: P2PTLSError, from?: string): void {
    this.emit('rejected', from === undefined ? { event, error } : { event, from, error });
  }

  private closedError(): P2PTLSError {
    const r = this.closeReason ?? { code: 'closed' as const, message: 'signaling client closed' };
    return fail(r.code, r.message);
  }

  private shutdown(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = { code, message };
    this.authenticated = false;
    this.inbound.close();
    const err = this.closedError();
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }

  /** {@link lookup} without keeping the key: what the server says, the key checked against `peerId`. */
  private async serverLookup(peerId: PeerId): Promise<{ identity: PublicIdentity | null; online: boolean }> {
    if (!isPeerId(peerId)) throw fail('invalid_argument', 'lookup: not a peerId');
    const ack = await this.request('lookup', { peerId });
    if (ack.identity === null) return { identity: null, online: ack.online };
    const identity = await PublicIdentity.import(ack.identity);
    if (identity.peerId !== peerId) {
      throw fail('peer_id_mismatch', `server returned the key of ${identity.peerId} for ${peerId}`);
    }
    return { identity, online: ack.online };
  }

  private whenReady(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.authenticated) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(fail('timeout', `not authenticated with ${this.url} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Waits for authentication, then sends. */
  private async request<E extends ClientEventName>(event: E, arg: ClientRequest<E>): Promise<ClientAck<E>> {
    await this.whenReady();
    return this.rawRequest(event, arg);
  }

  private async rawRequest<E extends ClientEventName>(
    event: E,
    arg: ClientRequest<E>,
  ): Promise<ClientAck<E>> {
    if (this.closed) throw this.closedError();
    let ack: unknown;
    try {
      ack = await this.socket.timeout(this.requestTimeoutMs).emitWithAck(event, arg);
    } catch (err) {
      if (this.closed) throw this.closedError();
      throw fail('timeout', `no answer to ${event} within ${this.requestTimeoutMs} ms`, err);
    }
    const schema: z.ZodType<ClientAck<E>> = ClientAcks[event] as unknown as z.ZodType<ClientAck<E>>;
    const ok = schema.safeParse(ack);
    if (ok.success) return ok.data;
    const bad = AckErrorSchema.safeParse(ack);
    if (bad.success) {
      const code = KNOWN_CODES.has(bad.data.error.code) ? (bad.data.error.code as ErrorCode) : 'peer_error';
      throw fail(code, `signaling server: ${bad.data.error.message}`);
    }
    throw fail('malformed', `malformed answer to ${event} from the signaling server`);
  }
}
