/**
 * The pairing service (PROTOCOL.md §9): invites, outgoing pairings and the answers to incoming requests.
 * It needs a transport that delivers pairing messages between authenticated peers — the signaling client
 * is one — and nothing else from it; every message is verified here, against the sender's own key.
 *
 * Incoming requests are handled so that strangers cannot make this side work for them (issue 13,
 * point 6): a request that nothing could approve is dropped before any private-key operation; every
 * sender has a small budget of requests and of rejects; one prompt per sender is open at a time, and
 * later requests from that sender are folded into it. Replays cannot replace a working PSK (point 4):
 * the records refuse a pairing not newer than the last one accepted from that peer, nonces live in a
 * cache of their own that refuses when full, and a re-pairing's PSK waits for a handshake to confirm it.
 */
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { Identity, PublicIdentity } from '../identity/identity.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { toBase64Url } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { MAX_MESSAGE_AGE_MS } from '../util/wire-schemas.js';
import { encodeInvite, INVITE_TOKEN_BYTES, type Invite, parseInvite } from './invite.js';
import { PairingNonceCache, RateWindow } from './limits.js';
import {
  createPairingAccept,
  createPairingReject,
  createPairingRequest,
  openPairingSecret,
  type PairingSecret,
  type VerifiedPairing,
  verifyPairingMessage,
} from './messages.js';
import { derivePairPsk } from './psk.js';
import type { PairingMessage } from './schema.js';

/** What the pairing service needs from signaling: delivery of pairing messages and key lookup. */
export interface PairingTransport {
  /** Signaling URL, put into invites. */
  readonly url: string;
  /** Sends a pairing message to `msg.to`. */
  sendPairing(msg: PairingMessage): Promise<void>;
  /** Delivers pairing messages; `from` is the sender the transport authenticated. Returns an unsubscribe. */
  onPairingMessage(listener: (e: { from: PeerId; msg: PairingMessage }) => void): () => void;
  /** A peer's public identity, checked to hash to `peerId`. */
  lookup(peerId: PeerId): Promise<{ identity: PublicIdentity | null; online: boolean }>;
  /** Remembers a peer's key (e.g. so its signals verify without a lookup). */
  trustPeer?(peer: PublicIdentity): void;
}

/** Pairing bookkeeping the service keeps per peer; a `PeerStore` implements it persistently. */
export interface PairingRecords {
  pairingState(peerId: PeerId): Promise<{ trust?: 'paired' | 'blocked'; pairedAt?: number }>;
  /**
   * Records a completed pairing atomically; throws `replay` unless `at` is newer than the last one for
   * this peer. `pending`: the peer was already paired and keeps its PSK until a handshake confirms `psk`.
   */
  savePairing(input: {
    publicIdentity: PublicIdentity;
    psk: Uint8Array;
    at: number;
    nonce: string;
    label?: string;
  }): Promise<'paired' | 'pending'>;
}

/**
 * Records kept in memory only: the replay barrier lasts as long as the process. `onPaired`, when given,
 * is told every pairing (e.g. to put it into a peer list that cannot keep pending PSKs).
 */
export class MemoryPairingRecords implements PairingRecords {
  private readonly marks = new Map<PeerId, number>();

  constructor(
    private readonly onPaired?: (peer: PublicIdentity, psk: Uint8Array, label?: string) => unknown,
  ) {}

  async pairingState(peerId: PeerId): Promise<{ pairedAt?: number }> {
    const at = this.marks.get(peerId);
    return at === undefined ? {} : { pairedAt: at };
  }

  async savePairing(input: Parameters<PairingRecords['savePairing']>[0]): Promise<'paired'> {
    const last = this.marks.get(input.publicIdentity.peerId);
    if (last !== undefined && input.at <= last) {
      throw fail('replay', `not newer than the last pairing accepted from ${input.publicIdentity.peerId}`);
    }
    this.marks.set(input.publicIdentity.peerId, input.at);
    await this.onPaired?.(input.publicIdentity, input.psk, input.label);
    return 'paired';
  }
}

/** What a completed pairing gives both sides. */
export interface PairingResult {
  /** The other peer, whose key hashes to its peerId. */
  peer: PublicIdentity;
  /** 32-byte pair PSK; keep it secret. */
  psk: Uint8Array;
  /** True when the peer was already paired: `psk` waits for a handshake to replace the old PSK. */
  pending: boolean;
}

/** An incoming pairing request shown to the application. */
export interface PairingRequestInfo {
  /** The requester (verified: signed by the key whose hash is its peerId). */
  peer: PublicIdentity;
  /** True when the request carried a valid, unused token of one of our invites. */
  invited: boolean;
  /** True when the requester is already paired (approving re-pairs it; see {@link PairingResult.pending}). */
  paired: boolean;
}

/** Decides an incoming pairing request: resolve true to accept, false to reject. */
export type PairingHandler = (request: PairingRequestInfo) => boolean | Promise<boolean>;

/** Options of {@link PairingService.onPairingRequest}. */
export interface PairingHandlerOptions {
  /**
   * Whether the handler wants to see requests that carry none of our invite tokens. Default false: such
   * requests are then dropped unread (no decryption, no answer), and while no invite is outstanding every
   * request is.
   */
  uninvited?: boolean;
}

/** Per-sender and total limits of incoming requests. */
export interface PairingLimits {
  /** Requests one sender may have examined per minute (default 5); more are dropped unread. */
  requestsPerPeerPerMinute?: number;
  /** Rejects sent to one sender per minute (default 2); further declined requests get no answer. */
  rejectsPerPeerPerMinute?: number;
  /** Prompts open at once across all senders (default 8). */
  maxOpenPrompts?: number;
  /** Request nonces remembered at once (default 4096); when full, requests are refused. */
  nonceCapacity?: number;
}

/** Options of {@link PairingService}. */
export interface PairingServiceOptions {
  identity: Identity;
  transport: PairingTransport;
  /** Default: {@link MemoryPairingRecords}. Pass the `PeerStore` to persist pairings. */
  records?: PairingRecords;
  /** Largest accepted |now − ts| of pairing messages. Default 5 minutes. */
  maxMessageAgeMs?: number;
  limits?: PairingLimits;
}

/** Events of {@link PairingService}. */
export interface PairingServiceEvents {
  /** A pairing completed on this side and is recorded. */
  paired: PairingResult & { initiator: boolean };
  /** A pairing message was ignored (unsolicited, over a limit, replayed, forged, …). */
  dropped: { from: PeerId; error: P2PTLSError };
}

interface Outgoing {
  peer: PublicIdentity;
  share: Uint8Array;
  label: string | undefined;
  resolve: (r: PairingResult) => void;
  reject: (e: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * One sender's open prompt. `deciding`: the application has the question; newer requests from the same
 * sender replace `latest`, so the one decision answers the request the sender waits for. `answering`:
 * the answer is being made and sent; requests meanwhile are refused.
 */
class Prompt {
  state: 'deciding' | 'answering' = 'deciding';
  latest: VerifiedPairing;
  constructor(
    readonly first: VerifiedPairing,
    /** The first request's secret, when it was decrypted to look for an invite token. */
    readonly secret: PairingSecret | undefined,
    readonly invited: boolean,
    readonly paired: boolean,
  ) {
    this.latest = first;
  }
}

const acceptInvited: PairingHandler = (r) => r.invited;

/** Invites, outgoing pairings, and answers to incoming requests. */
export class PairingService extends TypedEmitter<PairingServiceEvents> {
  readonly identity: Identity;
  private readonly transport: PairingTransport;
  private readonly records: PairingRecords;
  private readonly maxAgeMs: number;
  private readonly nonces: PairingNonceCache;
  private readonly requestBudget: RateWindow;
  private readonly rejectBudget: RateWindow;
  private readonly maxOpenPrompts: number;
  private readonly invites = new Map<string, number>();
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly prompts = new Map<PeerId, Prompt>();
  private handler: { fn: PairingHandler; uninvited: boolean } = { fn: acceptInvited, uninvited: false };
  private inbox: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(options: PairingServiceOptions) {
    super();
    this.identity = options.identity;
    this.transport = options.transport;
    this.records = options.records ?? new MemoryPairingRecords();
    this.maxAgeMs = options.maxMessageAgeMs ?? MAX_MESSAGE_AGE_MS;
    const l = options.limits ?? {};
    // Nonces must outlive the whole acceptance window: past and future skew.
    this.nonces = new PairingNonceCache(2 * this.maxAgeMs, l.nonceCapacity ?? 4096);
    this.requestBudget = new RateWindow(l.requestsPerPeerPerMinute ?? 5, 60_000);
    this.rejectBudget = new RateWindow(l.rejectsPerPeerPerMinute ?? 2, 60_000);
    this.maxOpenPrompts = l.maxOpenPrompts ?? 8;
    this.unsubscribe = this.transport.onPairingMessage(({ from, msg }) => {
      // One message at a time, in arrival order, so admission decisions see each other's effects.
      this.inbox = this.inbox.then(() => this.onMessage(from, msg)).catch(() => {});
    });
  }

  get peerId(): PeerId {
    return this.identity.peerId;
  }

  /**
   * Creates a one-time invite to pair with us: give the string to the other person out of band (link,
   * QR code). A request presenting its token is reported as `invited: true` to the pairing handler (and
   * accepted by the default handler). Valid for `ttlMs` (default 24 h) and one use.
   */
  createInvite(options: { ttlMs?: number; url?: string } = {}): string {
    const token = crypto.getRandomValues(new Uint8Array(INVITE_TOKEN_BYTES));
    const expires = Date.now() + (options.ttlMs ?? 24 * 3600_000);
    this.pruneInvites();
    this.invites.set(toBase64Url(token), expires);
    return encodeInvite({ peerId: this.peerId, token, url: options.url ?? this.transport.url, expires });
  }

  /**
   * Sets the handler that approves or rejects incoming requests (default: accept exactly the requests
   * carrying a valid invite token). Returns a function that restores the default.
   */
  onPairingRequest(handler: PairingHandler, options: PairingHandlerOptions = {}): () => void {
    const entry = { fn: handler, uninvited: options.uninvited === true };
    this.handler = entry;
    return () => {
      if (this.handler === entry) this.handler = { fn: acceptInvited, uninvited: false };
    };
  }

  /**
   * Pairs with the peer named by an invite (string or parsed) or by a bare peerId: fetches its key and
   * checks it hashes to the peerId, sends a signed request with our encrypted share, and resolves once
   * the peer accepted and the pair is recorded. Rejects with `pairing_rejected`, `timeout` (default 120 s,
   * time for a human to decide), `peer_offline`, `replay` (an older answer) or a verification error.
   */
  async pair(
    target: string | Invite,
    options: { timeoutMs?: number; label?: string } = {},
  ): Promise<PairingResult> {
    if (this.closed) throw fail('closed', 'pairing service closed');
    const invite: { peerId: PeerId; token?: Uint8Array } =
      typeof target !== 'string' ? target : isPeerId(target) ? { peerId: target } : parseInvite(target);
    if (invite.peerId === this.peerId) throw fail('invalid_argument', 'cannot pair with ourselves');
    const { identity: peer } = await this.transport.lookup(invite.peerId);
    if (!peer) throw fail('peer_offline', `no public key registered for ${invite.peerId}`);
    const { message, share } = await createPairingRequest({
      identity: this.identity,
      to: peer,
      ...(invite.token ? { token: invite.token } : {}),
    });
    const done = new Promise<PairingResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.outgoing.delete(message.nonce);
        reject(fail('timeout', `no pairing answer from ${peer.peerId}`));
      }, options.timeoutMs ?? 120_000);
      this.outgoing.set(message.nonce, { peer, share, label: options.label, resolve, reject, timer });
    });
    try {
      await this.transport.sendPairing(message);
    } catch (err) {
      const o = this.outgoing.get(message.nonce);
      if (o) {
        clearTimeout(o.timer);
        this.outgoing.delete(message.nonce);
      }
      throw err;
    }
    return done;
  }

  /** Stops listening; outstanding pairings fail with `closed`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [nonce, o] of this.outgoing) {
      clearTimeout(o.timer);
      o.reject(fail('closed', 'pairing service closed'));
      this.outgoing.delete(nonce);
    }
  }

  // -------------------------------------------------------------------------------------------------

  private async onMessage(from: PeerId, msg: PairingMessage): Promise<void> {
    if (this.closed) return;
    try {
      if (msg.kind === 'request') await this.onRequest(from, msg);
      else await this.onAnswer(from, msg);
    } catch (err) {
      this.emit('dropped', { from, error: asP2PTLSError(err, 'malformed') });
    }
  }

  private async onAnswer(from: PeerId, msg: PairingMessage): Promise<void> {
    // Only answers to our own requests are looked at: a map lookup before any cryptography.
    const out = msg.replyTo === undefined ? undefined : this.outgoing.get(msg.replyTo);
    if (!out || out.peer.peerId !== from) {
      throw fail('unexpected_message', 'pairing answer to no request of ours');
    }
    const answer = await verifyPairingMessage(this.identity, msg, {
      expectedFrom: out.peer.peerId,
      maxAgeMs: this.maxAgeMs,
    });
    // Verified: this is the answer (a forged one above left the request waiting for the real one).
    this.outgoing.delete(msg.replyTo!);
    clearTimeout(out.timer);
    if (answer.kind === 'reject') {
      out.reject(fail('pairing_rejected', `${from} rejected the pairing request`));
      return;
    }
    try {
      const { share } = await openPairingSecret(this.identity, answer);
      const psk = await derivePairPsk({ peerId: this.peerId, share: out.share }, { peerId: from, share });
      const status = await this.records.savePairing({
        publicIdentity: answer.from,
        psk,
        at: answer.ts,
        nonce: answer.nonce,
        ...(out.label ? { label: out.label } : {}),
      });
      this.transport.trustPeer?.(answer.from);
      const result: PairingResult = { peer: answer.from, psk, pending: status === 'pending' };
      out.resolve(result);
      this.emit('paired', { ...result, initiator: true });
    } catch (err) {
      out.reject(err);
    }
  }

  private async onRequest(from: PeerId, msg: PairingMessage): Promise<void> {
    const now = Date.now();
    // Admission, cheapest first and before any cryptography.
    if (msg.to !== this.peerId) throw fail('wrong_peer', 'pairing request is addressed to another peer');
    if (msg.from.peerId !== from) throw fail('peer_id_mismatch', 'request sender is not its signer');
    if (Math.abs(now - msg.ts) > this.maxAgeMs) {
      throw fail('pairing_expired', 'pairing request timestamp is outside the accepted window');
    }
    const state = await this.records.pairingState(from);
    if (state.trust === 'blocked') throw fail('pairing_dropped', `${from} is blocked`);
    if (state.pairedAt !== undefined && msg.ts <= state.pairedAt) {
      throw fail('replay', `not newer than the last pairing accepted from ${from}`);
    }
    this.pruneInvites();
    const handler = this.handler;
    if (this.invites.size === 0 && !handler.uninvited) {
      throw fail('pairing_dropped', 'no invite is outstanding and uninvited requests are not taken');
    }
    if (!this.requestBudget.take(from, now))
      throw fail('rate_limited', `too many pairing requests from ${from}`);

    // Public-key work: the sender's key and signature.
    const request = await verifyPairingMessage(this.identity, msg, {
      expectedFrom: from,
      maxAgeMs: this.maxAgeMs,
      now,
    });
    const seen = this.nonces.remember(from, request.nonce, request.ts, now);
    if (seen === 'replay') throw fail('replay', 'pairing request was seen before');
    if (seen === 'full') throw fail('rate_limited', 'too many pairing requests to remember; try later');

    const open = this.prompts.get(from);
    if (open) {
      if (open.state !== 'deciding') throw fail('rate_limited', `an answer to ${from} is being sent`);
      open.latest = request; // coalesced: the pending decision answers this newer request
      return;
    }
    if (this.prompts.size >= this.maxOpenPrompts) throw fail('rate_limited', 'too many pairing prompts open');

    // Private-key work only when an invite token could be in the request.
    let secret: PairingSecret | undefined;
    let invited = false;
    if (this.invites.size > 0) {
      // A secret copied from someone else's request fails here, before its token is looked at.
      secret = await openPairingSecret(this.identity, request);
      if (secret.token) invited = this.invites.delete(toBase64Url(secret.token));
    }
    if (!invited && !handler.uninvited) {
      throw fail('pairing_dropped', 'the request carries no valid invite token');
    }
    const prompt = new Prompt(request, secret, invited, state.trust === 'paired');
    this.prompts.set(from, prompt);
    // Decided outside the inbox: a human may take minutes, other messages must keep flowing.
    void this.decide(from, prompt, handler.fn);
  }

  private async decide(from: PeerId, prompt: Prompt, handler: PairingHandler): Promise<void> {
    let approved = false;
    try {
      approved =
        (await handler({ peer: prompt.first.from, invited: prompt.invited, paired: prompt.paired })) === true;
    } catch {
      approved = false;
    }
    prompt.state = 'answering';
    const request = prompt.latest;
    try {
      if (this.closed) return;
      if (!approved) {
        if (!this.rejectBudget.take(from)) throw fail('rate_limited', `reject to ${from} not sent (limit)`);
        await this.transport.sendPairing(await createPairingReject({ identity: this.identity, request }));
        return;
      }
      const theirs =
        request === prompt.first && prompt.secret
          ? prompt.secret
          : await openPairingSecret(this.identity, request);
      const { message, share } = await createPairingAccept({ identity: this.identity, request });
      const psk = await derivePairPsk({ peerId: this.peerId, share }, { peerId: from, share: theirs.share });
      // Recorded before the accept leaves: once answered, this request must never be answered again,
      // not even after a restart.
      const status = await this.records.savePairing({
        publicIdentity: request.from,
        psk,
        at: request.ts,
        nonce: request.nonce,
      });
      await this.transport.sendPairing(message);
      this.transport.trustPeer?.(request.from);
      this.emit('paired', { peer: request.from, psk, pending: status === 'pending', initiator: false });
    } catch (err) {
      this.emit('dropped', { from, error: asP2PTLSError(err, 'malformed') });
    } finally {
      this.prompts.delete(from);
    }
  }

  private pruneInvites(): void {
    const now = Date.now();
    for (const [k, exp] of this.invites) if (exp < now) this.invites.delete(k);
  }
}
