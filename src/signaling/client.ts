/**
 * Signaling client for browsers and Node: authenticates with an {@link Identity}, relays signed signals,
 * looks up public keys and joins rooms. It trusts the server for nothing but delivery: every relayed
 * signal is verified against the sender's key, whose hash is checked against the sender's peerId here,
 * not by the server. Pairing messages it only carries (`sendPairing`, `onPairingMessage`); the pairing
 * protocol is src/pairing's `PairingService`, which verifies them itself.
 */
import { io, type Socket } from 'socket.io-client';
import type { z } from 'zod';
import {
  asP2PTLSError,
  type ErrorCode,
  ErrorCodes,
  fail,
  isP2PTLSError,
  type P2PTLSError,
} from '../errors.js';
import { type Identity, PublicIdentity } from '../identity/identity.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { remember } from '../util/bounded.js';
import { fromBase64Url, toBase64Url } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { logger, shortId } from '../util/log.js';
import { ReplayCache } from '../util/replay-cache.js';
import { type InboxLane, SignalInbox } from './inbox.js';
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
import { authSignedBytes, checkSignedSignal, createSignedSignal, signalingOrigin } from './wire.js';

const log = logger('signaling');

/** Where the client learns which senders are paired peers (a `PeerStore` satisfies it). */
export interface PairedPeers {
  lookup(peerId: PeerId): Promise<{ readonly publicIdentity: PublicIdentity } | undefined>;
}

/**
 * Bounds of the inbound signal queue (issue 17, point 3). Signals wait in two lanes, paired peers and
 * strangers; one beyond its lane's bound is dropped unread and counted (`stats().dropped`).
 */
export interface SignalingInboundOptions {
  /**
   * Signals from paired peers that may wait for verification. Default 4096. A signal is at most 64 KiB
   * and typically 0.2–2 KB (SDP, ICE candidates); one dial sends about a dozen.
   */
  maxPaired?: number;
  /**
   * Signals from strangers that may wait. Default 1024: 32 dials at once from unpaired peers (about 200
   * signals, test/host/rejections.test.ts) must all reach the host so it can refuse each.
   */
  maxStrangers?: number;
  /** While paired signals wait, strangers still get one verification in this many. Default 8. */
  strangerShare?: number;
  /**
   * Unknown senders being resolved at once (PeerStore, then the server for a stranger's key). Default 64.
   * Their signals are held meanwhile: at most `maxStrangers` while the PeerStore is asked and
   * `maxStrangers` more from senders known to be strangers while their key is fetched. A full hold is
   * shared: the sender holding the most gives up its newest signal to one holding fewer, so a flood
   * cannot keep a paired peer's first signals out.
   */
  maxClassifying?: number;
  /** Server lookups of strangers' keys per second (each costs our own request budget). Default 20. */
  strangerLookupsPerSecond?: number;
  /** Length of a reporting window. Default 10 000 ms. */
  reportWindowMs?: number;
  /** `rejected` events per window; later refusals are only counted and reported by `overload`. Default 10. */
  rejectedEventsPerWindow?: number;
}

/** Counters of the inbound signal path since the client was made. */
export interface SignalingInboundStats {
  queuedPaired: number;
  queuedStrangers: number;
  /** Signals held while their sender's paired-ness is looked up. */
  classifying: number;
  /** Verified and emitted as `signal`. */
  delivered: number;
  /** Dropped unread: a lane or the classification hold was full, or the stranger lookup budget was spent. */
  dropped: number;
  /** Refused after reading, by code (`bad_signature`, `replay`, `unknown_peer`, ...). */
  rejected: Record<string, number>;
  /** `rejected` events not emitted because the window's quota was spent. */
  unreported: number;
}

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
/** Strangers' public keys kept from lookups, and senders known not to be paired (LRU bounds). */
const MAX_STRANGER_KEYS = 1024;
const MAX_KNOWN_STRANGERS = 4096;

/** The server-stamped sender of a relayed signal, read without parsing the rest (that waits its turn). */
function senderOf(raw: unknown): PeerId | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const from = (raw as { from?: unknown }).from;
  return typeof from === 'string' && isPeerId(from) ? from : undefined;
}

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
  private readonly maxAgeMs: number;
  private readonly replay: ReplayCache;
  /** Paired peers' keys (from `trustPeer` or the PeerStore): their signals take the paired lane. */
  private readonly trusted = new Map<PeerId, PublicIdentity>();
  /** Keys of other peers, from lookups (bounded). */
  private readonly strangerKeys = new Map<PeerId, PublicIdentity>();
  /** Senders the PeerStore said are not paired (bounded). */
  private readonly knownStrangers = new Map<PeerId, true>();
  /**
   * Senders being resolved, with their signals held meanwhile; `stranger` once the PeerStore said so.
   * `held` counts the signals held in each stage: PeerStore lookup (unknown) and key fetch (stranger).
   */
  private readonly classifying = new Map<PeerId, { signals: unknown[]; stranger: boolean }>();
  private held = { unknown: 0, stranger: 0 };
  private peers: PairedPeers | undefined;
  private readonly rooms = new Set<string>();
  private readonly inbound: Required<SignalingInboundOptions>;
  private readonly inbox: SignalInbox<unknown>;
  /** True while {@link drain} runs; only it takes from the inbox. */
  private draining = false;
  private readonly counters = {
    delivered: 0,
    dropped: 0,
    unreported: 0,
    rejected: new Map<string, number>(),
  };
  /** The reporting window: when it started, `rejected` events emitted in it, whether `overload` was. */
  private window = { start: 0, events: 0, overloaded: false };
  private lookupBudget = { tokens: 0, at: 0 };
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
    this.maxAgeMs = options.maxMessageAgeMs ?? MAX_MESSAGE_AGE_MS;
    // Nonces must outlive the whole acceptance window: past and future skew. Signals only: pairing
    // nonces live in the pairing service's own cache, which signals cannot push out.
    this.replay = new ReplayCache(2 * this.maxAgeMs);
    this.peers = options.peers;
    const inbound = options.inbound ?? {};
    this.inbound = {
      maxPaired: inbound.maxPaired ?? 4096,
      maxStrangers: inbound.maxStrangers ?? 1024,
      strangerShare: inbound.strangerShare ?? 8,
      maxClassifying: inbound.maxClassifying ?? 64,
      strangerLookupsPerSecond: inbound.strangerLookupsPerSecond ?? 20,
      reportWindowMs: inbound.reportWindowMs ?? 10_000,
      rejectedEventsPerWindow: inbound.rejectedEventsPerWindow ?? 10,
    };
    this.inbox = new SignalInbox({
      maxPaired: this.inbound.maxPaired,
      maxStrangers: this.inbound.maxStrangers,
      strangerShare: this.inbound.strangerShare,
    });
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
    this.socket.on('signal', (raw: unknown) => this.onSignalArrival(raw));
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
    this.trusted.set(peer.peerId, peer);
    this.knownStrangers.delete(peer.peerId);
    this.strangerKeys.delete(peer.peerId);
  }

  /**
   * Where to look up whether a sender is paired (a `PeerStore`; a Host passes its peer list). A sender
   * not yet known either way has its signals held (bounded) during one lookup, then queued in its lane.
   */
  usePeers(peers: PairedPeers): void {
    this.peers = peers;
    this.knownStrangers.clear();
  }

  /** Counters of the inbound signal path (issue 17, point 3). */
  stats(): SignalingInboundStats {
    return {
      queuedPaired: this.inbox.queuedPaired,
      queuedStrangers: this.inbox.queuedStrangers,
      classifying: this.held.unknown + this.held.stranger,
      delivered: this.counters.delivered,
      dropped: this.counters.dropped,
      rejected: Object.fromEntries(this.counters.rejected),
      unreported: this.counters.unreported,
    };
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
    if (!isPeerId(peerId)) throw fail('invalid_argument', 'lookup: not a peerId');
    const ack = await this.request('lookup', { peerId });
    if (ack.identity === null) return { identity: null, online: ack.online };
    const identity = await PublicIdentity.import(ack.identity);
    if (identity.peerId !== peerId) {
      throw fail('peer_id_mismatch', `server returned the key of ${identity.peerId} for ${peerId}`);
    }
    if (!this.trusted.has(peerId)) remember(this.strangerKeys, peerId, identity, MAX_STRANGER_KEYS);
    return { identity, online: ack.online };
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

  // --- inbound signals: classify → queue (bounded lanes) → one verification at a time → emit ----------

  /**
   * Arrival costs O(1) and no parsing: the sender decides the lane; everything else waits its turn. A
   * sender not known either way is resolved first (PeerStore, then the server for a stranger's key) with
   * its signals held, so that the verification loop itself never waits for I/O.
   */
  private onSignalArrival(raw: unknown): void {
    if (this.closed) return;
    const from = senderOf(raw);
    if (from === undefined) {
      this.refuse('malformed', 'relayed signal does not match the schema');
      return;
    }
    const signer = (raw as { env?: { from?: unknown } }).env?.from;
    if (signer !== from) {
      if (typeof signer === 'string') {
        this.refuse('peer_id_mismatch', 'server-stamped sender differs from the signer', from);
      } else this.refuse('malformed', 'relayed signal does not match the schema');
      return;
    }
    if (this.trusted.has(from)) {
      this.admit(raw, 'paired');
      return;
    }
    if (this.strangerKeys.has(from) && (!this.peers || this.knownStrangers.has(from))) {
      this.admit(raw, 'stranger');
      return;
    }
    let pending = this.classifying.get(from);
    if (!pending) {
      if (this.classifying.size >= this.inbound.maxClassifying) {
        this.drop();
        return;
      }
      pending = { signals: [], stranger: !this.peers || this.knownStrangers.has(from) };
      this.classifying.set(from, pending);
      void this.resolveSender(from, pending);
    }
    const stage = pending.stranger ? 'stranger' : 'unknown';
    if (this.held[stage] >= this.inbound.maxStrangers && !this.makeRoomInHold(pending)) {
      this.drop();
      return;
    }
    this.held[stage]++;
    pending.signals.push(raw);
  }

  /**
   * A stage of the hold is full: the sender holding the most there gives up its newest signal, if it
   * holds more than `newcomer` would after this one. So a flooder can fill the hold while its sender is
   * looked up, but not keep a paired peer's first signals out of it. They were dropped that way while
   * the PeerStore lookups behind an 8,000-signal stranger flood were slow: a clean-clone CI run of
   * test/signaling/inbound-flood.test.ts waited 120 s for legitimate signals that never came.
   */
  private makeRoomInHold(newcomer: { signals: unknown[]; stranger: boolean }): boolean {
    let hog: { signals: unknown[]; stranger: boolean } | undefined;
    for (const p of this.classifying.values()) {
      if (p.stranger === newcomer.stranger && (!hog || p.signals.length > hog.signals.length)) hog = p;
    }
    if (!hog || hog === newcomer || hog.signals.length <= newcomer.signals.length + 1) return false;
    hog.signals.pop();
    this.held[hog.stranger ? 'stranger' : 'unknown']--;
    this.drop();
    return true;
  }

  /**
   * Finds out who an unknown sender is, once for all its held signals: paired (the PeerStore has it,
   * with its pinned key) or a stranger, whose key is fetched from the server (rationed: each fetch spends
   * one of our own server requests). The held signals then join their lane in order, or are counted.
   */
  private async resolveSender(
    from: PeerId,
    pending: { signals: unknown[]; stranger: boolean },
  ): Promise<void> {
    if (!pending.stranger && this.peers) {
      let paired: PublicIdentity | undefined;
      try {
        paired = (await this.peers.lookup(from))?.publicIdentity;
      } catch {
        paired = undefined;
      }
      if (paired?.peerId === from) this.trustPeer(paired);
      else {
        remember(this.knownStrangers, from, true, MAX_KNOWN_STRANGERS);
        // Its held signals move to the key-fetch stage (which may exceed its bound by these).
        pending.stranger = true;
        this.held.unknown -= pending.signals.length;
        this.held.stranger += pending.signals.length;
      }
    }
    let refusal: { code: ErrorCode; message: string } | 'dropped' | undefined;
    if (!this.trusted.has(from) && !this.strangerKeys.has(from)) {
      if (!this.takeLookupToken()) refusal = 'dropped';
      else {
        try {
          const { identity } = await this.lookup(from);
          if (!identity) refusal = { code: 'unknown_peer', message: `no public key for ${from}` };
        } catch (err) {
          const error = asP2PTLSError(err, 'malformed');
          refusal = { code: error.code, message: error.message };
        }
      }
    }
    if (this.closed) return;
    const held = pending.signals;
    this.classifying.delete(from);
    this.held[pending.stranger ? 'stranger' : 'unknown'] -= held.length;
    const lane: InboxLane = this.trusted.has(from) ? 'paired' : 'stranger';
    log('sender %s resolved: %s (%d held)', shortId(from), refusal ? 'refused' : lane, held.length);
    for (const raw of held) {
      if (refusal === 'dropped') this.drop();
      else if (refusal) this.refuse(refusal.code, refusal.message, from);
      else this.admit(raw, lane);
    }
  }

  private admit(raw: unknown, lane: InboxLane): void {
    if (!this.inbox.offer(raw, lane)) {
      this.drop();
      return;
    }
    if (!this.draining) void this.drain();
  }

  /**
   * Verifies queued signals one at a time, so that each peer's signals are delivered in the order sent.
   * The only consumer of the inbox; it stops when the inbox is empty and restarts on the next arrival.
   */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let next = this.inbox.take(); next && !this.closed; next = this.inbox.take()) {
        try {
          await this.verifySignal(next.item);
        } catch (err) {
          // verifySignal refuses by counting; only a bug lands here, and it must not stop the loop.
          const error = asP2PTLSError(err, 'internal_error');
          this.refuse(error.code, error.message);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async verifySignal(raw: unknown): Promise<void> {
    const parsed = ServerEvents.signal.safeParse(raw);
    if (!parsed.success) return this.refuse('malformed', 'relayed signal does not match the schema');
    // `env.from === from` was checked on arrival.
    const { from, env } = parsed.data;
    const sender = this.trusted.get(from) ?? this.strangerKeys.get(from);
    // Resolved on arrival; only a cache eviction under a flood of new senders can lose it since.
    if (!sender) return this.drop();
    const checked = await checkSignedSignal(env, {
      self: this.peerId,
      sender,
      remember: (key, ts) => this.replay.checkAndRemember(key, ts),
      maxAgeMs: this.maxAgeMs,
    });
    if (!checked.ok) return this.refuse(checked.code, checked.message, from);
    this.counters.delivered++;
    this.emit('signal', { from, data: checked.data, ts: env.ts });
  }

  private takeLookupToken(): boolean {
    const rate = this.inbound.strangerLookupsPerSecond;
    const now = Date.now();
    const b = this.lookupBudget;
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** A signal refused after reading: counted always, reported as `rejected` only within the quota. */
  private refuse(code: ErrorCode, message: string, from?: PeerId): void {
    this.counters.rejected.set(code, (this.counters.rejected.get(code) ?? 0) + 1);
    const w = this.rollWindow();
    if (w.events < this.inbound.rejectedEventsPerWindow) {
      w.events++;
      this.reportRejected('signal', fail(code, message), from);
      return;
    }
    this.counters.unreported++;
    this.overloaded();
  }

  /** A signal dropped unread (a bound was reached). */
  private drop(): void {
    this.counters.dropped++;
    this.rollWindow();
    this.overloaded();
  }

  private rollWindow(): { start: number; events: number; overloaded: boolean } {
    const now = Date.now();
    if (now - this.window.start >= this.inbound.reportWindowMs) {
      this.window = { start: now, events: 0, overloaded: false };
    }
    return this.window;
  }

  private overloaded(): void {
    if (this.window.overloaded) return;
    this.window.overloaded = true;
    const stats = this.stats();
    log('inbound overload: %o', stats);
    this.emit('overload', { windowStart: this.window.start, stats });
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
    this.inbox.clear();
    this.classifying.clear();
    this.held = { unknown: 0, stranger: 0 };
    const err = this.closedError();
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
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
