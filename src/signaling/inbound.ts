/**
 * The inbound signal path of a signaling client (issue 17, point 3): relayed signals are classified by
 * sender (paired peer or stranger) without parsing, queued in two bounded lanes, verified one at a time
 * (signature, recipient, freshness, uniqueness) and handed on; what does not fit is dropped unread, what
 * fails is refused, and both are counted and reported within a quota. A sender not known either way is
 * resolved first (the PeerStore, then the server for a stranger's key) with its signals held, bounded.
 *
 *   arrive ──sender known──▶ lane ──drain: verify──▶ deliver
 *          ──sender unknown──▶ held while resolved ──▶ lane, or refused, or dropped
 */
import { asP2PTLSError, type ErrorCode, fail, type P2PTLSError } from '../errors.js';
import type { PublicIdentity } from '../identity/identity.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { remember } from '../util/bounded.js';
import { logger, shortId } from '../util/log.js';
import { ReplayCache } from '../util/replay-cache.js';
import { type InboxLane, SignalInbox } from './inbox.js';
import { ServerEvents } from './messages.js';
import { checkSignedSignal } from './wire.js';

const log = logger('signaling');

/** Strangers' public keys kept from lookups, and senders known not to be paired (LRU bounds). */
const MAX_STRANGER_KEYS = 1024;
const MAX_KNOWN_STRANGERS = 4096;

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
  /**
   * Nonces of delivered signals remembered to detect replays (each for twice the message age limit, 10 min
   * by default), paired peers and strangers apart, so strangers cannot fill the paired peers' share. Past
   * a lane's bound, or a sender's share of it, that sender's new signals are refused `rate_limited` until
   * its old ones leave the window; a nonce is never forgotten early, which would let its signal be
   * replayed. Defaults: 100,000 for paired peers, 16,384 of them per peer (a dial sends an offer and a
   * dozen candidates or so, and the server lets a connection send 100 events a second); 16,384 for
   * strangers, 1,024 per stranger (refused at admission, or one dial per 2 s when the application admits
   * them). About 100 B a nonce at most.
   */
  nonces?: { paired?: number; pairedPerPeer?: number; strangers?: number; perStranger?: number };
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

/** What the inbound path needs of its client. */
export interface InboundHost {
  /** Our peerId: a signal must be addressed to it. */
  readonly self: PeerId;
  /**
   * A stranger's key from the server (one of our own server requests), checked to hash to its peerId, or
   * null if it has none. Not kept by the host: the inbound path keeps what it fetches.
   */
  fetchKey(peerId: PeerId): Promise<PublicIdentity | null>;
  /** A signal whose signature, recipient, freshness and uniqueness were verified. */
  deliver(signal: { from: PeerId; data: unknown; ts: number }): void;
  /** A signal refused after reading, within the window's reporting quota. */
  reject(error: P2PTLSError, from?: PeerId): void;
  /** Sustained shedding: at most once per reporting window, when it starts. */
  overload(event: { windowStart: number; stats: SignalingInboundStats }): void;
}

/** The server-stamped sender of a relayed signal, read without parsing the rest (that waits its turn). */
function senderOf(raw: unknown): PeerId | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const from = (raw as { from?: unknown }).from;
  return typeof from === 'string' && isPeerId(from) ? from : undefined;
}

export class InboundSignals {
  /**
   * Nonces of signals delivered, one cache per lane, so that strangers, however many, cannot fill the
   * paired peers' cache and have their signals refused. Each refuses when full (ReplayCache).
   */
  private readonly replay: Record<InboxLane, ReplayCache>;
  /** Paired peers' keys (from {@link trust} or the PeerStore): their signals take the paired lane. */
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
  private readonly inbound: Required<Omit<SignalingInboundOptions, 'nonces'>>;
  private readonly inbox: SignalInbox<unknown>;
  /** True while {@link drain} runs; only it takes from the inbox. */
  private draining = false;
  private readonly counters = {
    delivered: 0,
    dropped: 0,
    unreported: 0,
    rejected: new Map<string, number>(),
  };
  /** The reporting window: when it started, refusals reported in it, whether overload was. */
  private window = { start: 0, events: 0, overloaded: false };
  private lookupBudget = { tokens: 0, at: 0 };
  private closed = false;
  /** Largest accepted |now − ts| of a signed signal. */
  private readonly maxAgeMs: number;

  constructor(
    private readonly host: InboundHost,
    options: { inbound?: SignalingInboundOptions; peers?: PairedPeers; maxAgeMs: number },
  ) {
    this.maxAgeMs = options.maxAgeMs;
    this.peers = options.peers;
    const inbound = options.inbound ?? {};
    // Nonces must outlive the whole acceptance window: past and future skew. Signals only: pairing
    // nonces live in the pairing service's own cache, which signals cannot push out.
    const window = 2 * this.maxAgeMs;
    const n = inbound.nonces ?? {};
    this.replay = {
      paired: new ReplayCache(window, n.paired ?? 100_000, n.pairedPerPeer ?? 16_384),
      stranger: new ReplayCache(window, n.strangers ?? 16_384, n.perStranger ?? 1_024),
    };
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
  }

  /** A paired peer's key: its signals verify under it and take the paired lane. */
  trust(peer: PublicIdentity): void {
    this.trusted.set(peer.peerId, peer);
    this.knownStrangers.delete(peer.peerId);
    this.strangerKeys.delete(peer.peerId);
  }

  /** A key the server gave for a peer (verified to hash to its peerId): kept unless the peer is paired. */
  learnKey(identity: PublicIdentity): void {
    if (!this.trusted.has(identity.peerId)) {
      remember(this.strangerKeys, identity.peerId, identity, MAX_STRANGER_KEYS);
    }
  }

  /** Where to look up whether a sender is paired; what was learnt about strangers is asked again. */
  usePeers(peers: PairedPeers): void {
    this.peers = peers;
    this.knownStrangers.clear();
  }

  /** Counters since the client was made. */
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

  /** The client closed: everything queued or held is forgotten, and nothing more is delivered. */
  close(): void {
    this.closed = true;
    this.inbox.clear();
    this.classifying.clear();
    this.held = { unknown: 0, stranger: 0 };
  }

  /**
   * Arrival costs O(1) and no parsing: the sender decides the lane; everything else waits its turn. A
   * sender not known either way is resolved first (PeerStore, then the server for a stranger's key) with
   * its signals held, so that the verification loop itself never waits for I/O.
   */
  arrive(raw: unknown): void {
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
      if (paired?.peerId === from) this.trust(paired);
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
          const identity = await this.host.fetchKey(from);
          if (identity) this.learnKey(identity);
          else refusal = { code: 'unknown_peer', message: `no public key for ${from}` };
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
    const paired = this.trusted.get(from);
    const sender = paired ?? this.strangerKeys.get(from);
    // Resolved on arrival; only a cache eviction under a flood of new senders can lose it since.
    if (!sender) return this.drop();
    // Recorded in the sender's lane; looked up in both, since a sender changes lane when it is paired
    // (or removed), and a signal it sent before must stay a replay after.
    const [mine, other] = paired
      ? [this.replay.paired, this.replay.stranger]
      : [this.replay.stranger, this.replay.paired];
    const checked = await checkSignedSignal(env, {
      self: this.host.self,
      sender,
      remember: (peer, nonce, ts) => (other.has(peer, nonce) ? 'replay' : mine.remember(peer, nonce, ts)),
      maxAgeMs: this.maxAgeMs,
    });
    if (!checked.ok) return this.refuse(checked.code, checked.message, from);
    this.counters.delivered++;
    this.host.deliver({ from, data: checked.data, ts: env.ts });
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
      this.host.reject(fail(code, message), from);
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
    this.host.overload({ windowStart: this.window.start, stats });
  }
}
