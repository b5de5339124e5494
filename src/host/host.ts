/**
 * The public entry point: a Host owns an identity, a peer list, a signaling client and a WebRTC
 * implementation; it dials paired peers (`connect`) and hands out incoming dials (`incoming`) for the
 * application to `verify` against its peer list. Each dial is a {@link DialAttempt} (src/host/dial.ts);
 * the host routes signals to them, resolves glare and bounds how many may be pending.
 */
import { type ErrorCode, ErrorCodes, fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import {
  MemoryPairingRecords,
  type PairingHandler,
  type PairingHandlerOptions,
  type PairingRecords,
  PairingService,
} from '../pairing/service.js';
import { type AeadProvider, glareWinner, type Suite } from '../protocol/index.js';
import type { SignalingClient } from '../signaling/client.js';
import { LinkFactory } from '../transport/link-factory.js';
import type { CandidateFilter, RtcImplementation } from '../transport/rtc.js';
import { rememberKey } from '../util/bounded.js';
import { toBase64Url } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { DEFAULT_ADMISSION, DialAdmission } from './admission.js';
import { AdmissionHold } from './admission-hold.js';
import { AsyncQueue } from './async-queue.js';
import type { Connection } from './connection.js';
import type { ConnectionOptions } from './connection-types.js';
import { DialAttempt, type DialContext, type DialPeer, type DialSignalData } from './dial.js';
import { DIAL_SIGNAL_VERSION, DialSignal, type DialSignalOut, LegacyOffer } from './dial-signals.js';
import { GlareWaits } from './glare.js';
import { DIAL_REFUSALS, ReconnectingConnection, type ReconnectOptions } from './reconnecting.js';
import type { ConnectionRequest } from './request.js';
import type { HandshakeCrypto, PeerCredentials, PeerList, WritablePeerList } from './types.js';

export { ConnectionRequest } from './request.js';
export type { HandshakeCrypto, PeerCredentials, PeerList, WritablePeerList } from './types.js';

function isWritable(list: PeerList): list is WritablePeerList {
  return typeof (list as Partial<WritablePeerList>).put === 'function';
}

function isPairingRecords(list: PeerList): list is PeerList & PairingRecords {
  const r = list as Partial<PairingRecords>;
  return typeof r.savePairing === 'function' && typeof r.pairingState === 'function';
}

export interface HostOptions extends ConnectionOptions {
  identity: Identity;
  /** Paired peers: consulted by `connect` and by `request.verify()` when no other list is given. */
  peers: PeerList;
  /** A signaling client for this identity; `Host.start` connects it if needed. */
  signaling: SignalingClient;
  /** WebRTC implementation (the entry points pass the runtime's default). */
  rtc: RtcImplementation;
  /** STUN/TURN servers. */
  iceServers?: RTCIceServer[];
  /** `'relay'` sends everything through TURN. */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Drop ICE candidates whose address fails this filter (e.g. `loopbackOnly`). */
  candidateFilter?: CandidateFilter;
  /** AES-GCM provider (Node passes node:crypto). */
  aead?: AeadProvider;
  /** Where handshakes do their ECDHE and RSA-PSS work (default WebCrypto; Node passes node:crypto). */
  handshakeCrypto?: HandshakeCrypto;
  /** Suite this host offers when dialing. */
  suite?: Suite;
  /** Dial → authenticated connection must finish within this (default 15 000 ms). */
  handshakeTimeoutMs?: number;
  /** Incoming dials from paired peers not yet accepted or rejected, at most (default 32); more are refused. */
  maxPendingIncoming?: number;
  /**
   * Whether a dial from a peer that is not in `peers` gets a WebRTC connection at all (default: no, it
   * is refused with `unknown_peer` before anything is allocated). Admit them (all, or those the function
   * accepts) when the application verifies incoming requests against another list or accepts them with
   * `acceptUnverified`; they share a pool of 4 pending dials, one per peer, one new dial per peer every 2 s.
   */
  admitUnpaired?: boolean | ((peerId: PeerId) => boolean);
  /** Pairing over `signaling`; by default one recording into `peers` (a `PeerStore`). */
  pairing?: PairingService;
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));
const MAX_REFUSED_DIALS = 1024;

/** Events of a {@link Host}. */
export interface HostEvents {
  /**
   * A pairing completed (started by either side) and, when the peer list can store, the pair is stored:
   * a dial from that peer will verify from now on.
   */
  paired: PeerCredentials & { initiator: boolean };
  /**
   * An incoming dial was refused before anything was set up for it (admission): `unknown_peer` for a
   * dialer that is not paired, `rate_limited` when its pool is full or it dials too often. It never reaches
   * `incoming()`.
   */
  refused: { peerId: PeerId; error: P2PTLSError };
}

/** A p2ptls host: the seed's `AsyncHost`. */
export class Host extends TypedEmitter<HostEvents> {
  private readonly dials = new Map<string, DialAttempt>();
  /** Incoming dials being admitted (see {@link admit}), bounded: strangers send these. */
  private readonly hold = new AdmissionHold();
  /**
   * Dial ids refused at admission (bounded, oldest forgotten first): their later signals are dropped, not
   * answered with an abort each, which let a burst of one stranger's dial signals (a dozen per dial)
   * spend our whole signaling rate budget on aborts.
   */
  private readonly refusedDials = new Set<string>();
  private readonly admission: DialAdmission;
  private readonly requests = new AsyncQueue<ConnectionRequest>();
  private readonly connections = new Set<Connection>();
  private readonly keepers = new Set<ReconnectingConnection>();
  /** Outgoing dials that lost a glare: their callers wait for the winning incoming dial instead. */
  private readonly glareWaits = new GlareWaits();
  private readonly unsubscribe: () => void;
  private closed = false;
  /** WebRTC links for dials, with an RTCPeerConnection made ahead of the next one. */
  private readonly links: LinkFactory;
  /** Takes incoming requests before `incoming()` sees them (a mesh: its members' dials); one at a time. */
  private claimer: { claim: (request: ConnectionRequest) => boolean; close: () => Promise<void> } | undefined;

  /** The pairing service: invites, pair(), answers to requests (src/pairing). */
  readonly pairing: PairingService;
  private readonly ownsPairing: boolean;

  private constructor(private readonly options: HostOptions) {
    super();
    this.admission = new DialAdmission({
      ...DEFAULT_ADMISSION,
      maxPaired: options.maxPendingIncoming ?? DEFAULT_ADMISSION.maxPaired,
    });
    this.links = new LinkFactory({
      rtc: options.rtc,
      ...(options.iceServers ? { iceServers: options.iceServers } : {}),
      ...(options.iceTransportPolicy ? { iceTransportPolicy: options.iceTransportPolicy } : {}),
      ...(options.candidateFilter ? { candidateFilter: options.candidateFilter } : {}),
    });
    this.links.prepare();
    const offSignal = options.signaling.on('signal', ({ from, data }) => this.onSignal(from, data));
    // Paired peers' signals are verified ahead of strangers' (issue 17, point 3).
    options.signaling.usePeers(options.peers);
    const peers = options.peers;
    this.ownsPairing = options.pairing === undefined;
    this.pairing =
      options.pairing ??
      new PairingService({
        identity: options.identity,
        transport: options.signaling,
        // A PeerStore records pairings itself (with pending PSKs and the replay barrier); a plain list
        // that can store gets each pairing put into it.
        records: isPairingRecords(peers)
          ? peers
          : new MemoryPairingRecords((publicIdentity, psk, label) =>
              isWritable(peers) ? peers.put({ publicIdentity, psk, ...(label ? { label } : {}) }) : undefined,
            ),
      });
    // Pairings either side started are recorded by the service before it announces them.
    const offPaired = this.pairing.on('paired', ({ peer, psk, initiator }) =>
      this.emit('paired', { publicIdentity: peer, psk, initiator }),
    );
    this.unsubscribe = () => {
      offSignal();
      offPaired();
    };
  }

  /** An invite for {@link pair} on another host (peerId + one-time token + signaling URL). */
  createInvite(options: { ttlMs?: number; url?: string } = {}): string {
    return this.pairing.createInvite(options);
  }

  /**
   * Pairs with the peer named by an invite (or a bare peerId): RSA-signed PSK shares through signaling,
   * approved by the other side's application. The pair is recorded in the host's peer list when it can
   * store (a `PeerStore`); either way the result is returned. Re-pairing a paired peer leaves its old
   * PSK in use until a handshake confirms the new one.
   */
  async pair(invite: string, options: { label?: string; timeoutMs?: number } = {}): Promise<PeerCredentials> {
    const result = await this.pairing.pair(invite, {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.label ? { label: options.label } : {}),
    });
    return { publicIdentity: result.peer, psk: result.psk };
  }

  /**
   * Decides incoming pairing requests (default: accept exactly those that carry one of our invites'
   * one-time tokens; without `uninvited: true`, requests without one are dropped unread). Accepted pairs
   * are recorded like those from {@link pair}, then announced by the `paired` event.
   */
  onPairingRequest(handler: PairingHandler, options?: PairingHandlerOptions): () => void {
    return this.pairing.onPairingRequest(handler, options);
  }

  /** Starts a host: connects and authenticates its signaling client. */
  static async start(options: HostOptions): Promise<Host> {
    if (options.signaling.identity.peerId !== options.identity.peerId) {
      throw fail('invalid_argument', 'the signaling client must use the host identity');
    }
    const host = new Host(options);
    if (!options.signaling.isAuthenticated) await options.signaling.connect();
    return host;
  }

  get peerId(): PeerId {
    return this.options.identity.peerId;
  }

  /** Open connections. */
  get openConnections(): readonly Connection[] {
    return [...this.connections];
  }

  /** Incoming dials, for the application to `verify` or `reject` (the seed's `host.incoming()`). */
  incoming(): AsyncIterableIterator<ConnectionRequest> {
    return this.requests[Symbol.asyncIterator]();
  }

  /**
   * The next incoming dial that authenticates against `list` (default: the host's peers): `incoming()`
   * and `verify()` in one step, except that a dial that fails is passed over instead of thrown. A dial
   * can fail through no fault of either application: `connect` makes a new dial when a WebRTC set-up
   * fails before its link opens (its `attempts`; node-datachannel's dialer does so about 1 set-up in 15
   * under load, src/host/dial.ts), and that new dial is the one to take. A loop around `incoming()` whose
   * `verify()` throws out of it would stop accepting right there. Each dial passed over is traced
   * (`DEBUG=p2ptls:dial:*`). Rejects with `store_failed` when the peer list cannot be read: that is the
   * host's fault, not the dial's, and every later dial would fail the same way, so waiting on would hide
   * it. Rejects with `closed` once the host is closed.
   */
  async accept(list?: PeerList): Promise<Connection> {
    for await (const request of this.incoming()) {
      try {
        return await request.verify(list);
      } catch (err) {
        if (isP2PTLSError(err) && err.code === 'store_failed') throw err;
        // That dial is over (its own trace says why); the next one may be its retry.
      }
    }
    throw fail('closed', 'host is closed');
  }

  /**
   * Dials a paired peer and resolves with an authenticated connection. Rejects with `unknown_peer` if the
   * peer is not in the host's peer list, `timeout`, or the handshake's error. A WebRTC set-up that fails
   * before the link opens is retried (`attempts`, default 3) with a short backoff; refusals and
   * authentication failures never are.
   */
  async connect(peerId: PeerId, options: { attempts?: number } = {}): Promise<Connection> {
    if (this.closed) throw fail('closed', 'host is closed');
    // The first dial's link starts making its offer while the peer's keys are read: the offer is the
    // slow part (WebRTC's signaling thread), and the keys read first held the dial's start back 1.0–1.2 ms
    // (bench:transport --only setup's split, one process, an in-memory peer list). Alternating six runs
    // each, offer + ClientHello went out at 5.95 ms instead of 6.6 (earlier in every pair), and the
    // set-up's ratio to raw went 0.875 → 0.89 (medians).
    const known = this.credentialsOf(peerId);
    known.catch(() => {}); // the dial, or the catch below, reports it
    const attempts = options.attempts ?? 3;
    // Key confirmation (PROTOCOL.md §9): a re-pairing's PSK is offered first; a peer that never got it
    // refuses it (`bad_binder`) and the confirmed one is tried next, without counting as an attempt.
    let psks: Uint8Array[] | undefined;
    for (let attempt = 1; ; ) {
      const credentials = known.then((c) => {
        psks ??= c.pendingPsk ? [c.pendingPsk, c.psk] : [c.psk];
        return { publicIdentity: c.publicIdentity, psk: psks[0]! };
      });
      // Awaited by the dial, unless making it throws (a stack that refuses the link's options).
      credentials.catch(() => {});
      const dial = this.startDial(toBase64Url(crypto.getRandomValues(new Uint8Array(12))), peerId, {
        outgoing: true,
        credentials,
      });
      try {
        const connection = await dial.result;
        const { pendingPsk } = await known;
        // A store that cannot record the confirmation just keeps offering both PSKs.
        if (pendingPsk) await this.options.peers.confirmPsk?.(peerId, psks![0]!)?.catch(() => {});
        return connection;
      } catch (err) {
        // A peer that is not in the list, or a list that cannot be read, is the answer: no retry.
        await known;
        if (psks && psks.length > 1 && isP2PTLSError(err, 'bad_binder')) {
          psks.shift();
          continue;
        }
        const refused = DIAL_REFUSALS.has((err as P2PTLSError).code);
        if (attempt >= attempts || !dial.retryable || refused || this.closed) throw err;
        // Backoff between whole attempts; each attempt is bounded by its own handshake timeout.
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
        attempt++;
      }
    }
  }

  /** A paired peer's keys, trusted for its signals from then on; rejects `unknown_peer` for anyone else. */
  private async credentialsOf(peerId: PeerId): Promise<PeerCredentials> {
    const credentials = await this.options.peers.lookup(peerId);
    if (!credentials) throw fail('unknown_peer', `${peerId} is not a paired peer`);
    this.options.signaling.trustPeer(credentials.publicIdentity);
    return credentials;
  }

  /**
   * Like {@link connect}, but the connection comes back by itself when the link fails, with capped
   * exponential backoff and a fresh handshake (no pairing again). See {@link ReconnectingConnection}.
   */
  async keepConnected(peerId: PeerId, options: ReconnectOptions = {}): Promise<ReconnectingConnection> {
    const keeper = new ReconnectingConnection(peerId, () => this.connect(peerId), options);
    await keeper.start();
    this.keepers.add(keeper);
    void keeper.closed.then(() => this.keepers.delete(keeper));
    return keeper;
  }

  private startDial(id: string, peerId: PeerId, peer: DialPeer): DialAttempt {
    const o = this.options;
    const ctx: DialContext = {
      identity: o.identity,
      createLink: (initiator) => this.links.create(initiator),
      connection: this.connectionOptions(),
      ...(o.aead ? { aead: o.aead } : {}),
      ...(o.handshakeCrypto ? { handshakeCrypto: o.handshakeCrypto } : {}),
      ...(o.suite ? { suite: o.suite } : {}),
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? 15_000,
      signal: (message) =>
        this.send(
          peerId,
          message.kind === 'abort'
            ? { kind: 'abort', dial: id, reason: message.reason }
            : {
                kind: 'signal',
                dial: id,
                signal: message.signal,
                ...(message.handshake ? { handshake: message.handshake.map(toBase64Url) } : {}),
              },
        ),
      ended: (dial) => {
        if (this.dials.get(dial.id) === dial) this.dials.delete(dial.id);
        this.links.prepareSoon();
      },
    };
    const dial = new DialAttempt(id, peerId, peer, ctx);
    this.dials.set(id, dial);
    dial.result.then(
      (connection) => this.track(connection),
      () => {},
    );
    return dial;
  }

  private track(connection: Connection): void {
    if (this.connections.has(connection)) return;
    this.connections.add(connection);
    void connection.closed.then(() => this.connections.delete(connection));
  }

  /**
   * Outgoing: the peer's dial to us wins the glare (PROTOCOL.md §3.7). Our caller gets the connection the
   * peer's dial brings (its next one if that fails before its link opens), or a timeout if none comes.
   */
  private yieldToPeer(mine: DialAttempt): void {
    if (!mine.linking) return;
    mine.yieldTo(this.glareWaits.wait(mine.peerId, this.options.handshakeTimeoutMs ?? 15_000));
  }

  /**
   * Glare (PROTOCOL.md §3.7): a new dial `id` from `from` while our own dial to it has not opened its link.
   * The lower peerId's dial wins. True if theirs lost: the peer is told, and its later signals are
   * dropped. Otherwise ours yields (if there is one) and theirs goes on, to our waiting caller.
   */
  private theirDialLoses(from: PeerId, id: string): boolean {
    for (const mine of this.dials.values()) {
      if (!mine.outgoing || mine.peerId !== from || !mine.linking) continue;
      if (glareWinner(this.peerId, from) === this.peerId) {
        rememberKey(this.refusedDials, id, MAX_REFUSED_DIALS);
        this.send(from, { kind: 'abort', dial: id, reason: 'glare' });
        return true;
      }
      this.yieldToPeer(mine);
    }
    return false;
  }

  private send(peerId: PeerId, signal: DialSignalOut): void {
    this.options.signaling.sendSignal(peerId, { p2ptls: DIAL_SIGNAL_VERSION, ...signal }).catch(() => {
      // Signaling is best effort here: a lost signal shows up as a handshake timeout.
    });
  }

  private connectionOptions(): ConnectionOptions {
    const o = this.options;
    return {
      ...(o.session || o.aead ? { session: { ...o.session, ...(o.aead ? { aead: o.aead } : {}) } } : {}),
      ...(o.heartbeatIntervalMs ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
      ...(o.heartbeatTimeoutMs ? { heartbeatTimeoutMs: o.heartbeatTimeoutMs } : {}),
      ...(o.reassemblyTimeoutMs ? { reassemblyTimeoutMs: o.reassemblyTimeoutMs } : {}),
      ...(o.highWaterMark ? { highWaterMark: o.highWaterMark } : {}),
      ...(o.datagramQueueBytes ? { datagramQueueBytes: o.datagramQueueBytes } : {}),
    };
  }

  private onSignal(from: PeerId, data: unknown): void {
    if (this.closed) return;
    const parsed = DialSignal.safeParse(data);
    if (!parsed.success) {
      // Not ours, or malformed (the signaling layer already verified the sender), or an older peer's dial.
      // A paired peer's old dial is told why it cannot work; strangers get nothing (an abort costs a
      // signature).
      const legacy = LegacyOffer.safeParse(data);
      if (legacy.success) {
        const abort = { p2ptls: 1, kind: 'abort', dial: legacy.data.dial, reason: 'unsupported_version' };
        void this.options.peers
          .lookup(from)
          .then((paired) => (paired ? this.options.signaling.sendSignal(from, abort) : undefined))
          .catch(() => {});
      }
      return;
    }
    const msg = parsed.data;
    const signal: DialSignalData | undefined =
      msg.kind === 'signal'
        ? { signal: msg.signal, ...(msg.handshake ? { handshake: msg.handshake } : {}) }
        : undefined;
    const dial = this.dials.get(msg.dial);
    if (dial) {
      if (dial.peerId !== from) return; // Someone else using a dial id they saw: ignore.
      if (signal) dial.signal(signal);
      else if (msg.kind === 'abort' && msg.reason === 'glare' && dial.outgoing) {
        this.yieldToPeer(dial);
        // The peer keeps a dial of its own, which may have reached incoming() (or a mesh) before ours went
        // out: its offer came while ours was being made. Our caller takes the connection it brings.
        const theirs = [...this.dials.values()].filter((d) => !d.outgoing && d.peerId === from).at(-1);
        if (theirs) this.glareWaits.follow(from, theirs.result);
      } else if (msg.kind === 'abort') {
        // The reason is the peer's error code (signed by the peer, so authentic): keep it, so that a
        // refusal reads as `unknown_peer` or `bad_binder` here too.
        const code = KNOWN_CODES.has(msg.reason) ? (msg.reason as ErrorCode) : 'closed';
        dial.fail(fail(code, `peer aborted the dial: ${msg.reason}`), { tellPeer: false });
      }
      return;
    }
    if (this.refusedDials.has(msg.dial)) return;
    const held = this.hold.get(msg.dial);
    if (held) {
      if (held.from !== from) return;
      if (!signal) this.hold.take(msg.dial);
      else if (this.hold.add(held, signal) === 'offer') void this.admit(msg.dial, from);
      return;
    }
    if (!signal) return;
    if (this.theirDialLoses(from, msg.dial)) return;
    // The offer (with its ClientHello) starts the admission; a candidate that overtook it waits for it.
    const started = this.hold.start(msg.dial, from, signal);
    if (started === 'busy') this.send(from, { kind: 'abort', dial: msg.dial, reason: 'busy' });
    else if (started === 'held' && signal.handshake) void this.admit(msg.dial, from);
  }

  /**
   * Admission before allocation (issue 13, point 5): whether the dialer is paired is decided before any
   * RTCPeerConnection exists; strangers are refused, or share a small pool of their own
   * ({@link DialAdmission}). An admitted dial becomes a request; its link is made only once the
   * application accepts it and the ClientHello's PSK binder verifies (PROTOCOL.md §8).
   */
  private async admit(id: string, from: PeerId): Promise<void> {
    const paired = (await this.options.peers.lookup(from).catch(() => undefined)) !== undefined;
    const entry = this.hold.take(id);
    if (!entry?.offer || this.closed) return;
    // Our own dial to the peer may have started while this one was being admitted (the lookup above can
    // take milliseconds: a passphrase-protected LevelDB store decrypts the PSK), so glare is checked again.
    // Without this, two connects 5 ms apart between such stores ended in two connections, after a 15 s
    // wait, in 3 of 8 rounds (0 of 8 with it); test/host/glare.test.ts holds a lookup to reproduce it.
    if (this.theirDialLoses(from, id)) return;
    const allow = this.options.admitUnpaired;
    const admitUnpaired = typeof allow === 'function' ? allow(from) : allow === true;
    const pending = [...this.dials.values()].filter((d) => !d.outgoing);
    const verdict = this.admission.decide(from, paired, admitUnpaired, pending);
    if (verdict !== 'admit') {
      rememberKey(this.refusedDials, id, MAX_REFUSED_DIALS);
      this.send(from, { kind: 'abort', dial: id, reason: verdict });
      const why = verdict === 'unknown_peer' ? 'is not a paired peer' : 'has too many dials pending';
      const code = verdict === 'unknown_peer' ? 'unknown_peer' : 'rate_limited';
      this.emit('refused', { peerId: from, error: fail(code, `${from} ${why}`) });
      return;
    }
    this.acceptDial(id, from, paired, entry.offer, entry.candidates);
  }

  private acceptDial(
    id: string,
    from: PeerId,
    paired: boolean,
    offer: DialSignalData,
    signals: unknown[],
  ): void {
    const dial = this.startDial(id, from, {
      outgoing: false,
      paired,
      peers: this.options.peers,
      onRequest: (request) => this.route(request),
      offer,
    });
    for (const signal of signals) dial.signal({ signal });
  }

  /** An incoming request goes to a glare waiter, a mesh, or `incoming()`, in that order. */
  private route(request: ConnectionRequest): void {
    if (this.glareWaits.take(request)) return;
    if (!this.claimer?.claim(request)) this.requests.push(request);
  }

  /** The signaling client the host was started with. */
  get signaling(): SignalingClient {
    return this.options.signaling;
  }

  /** The host's paired peers. */
  get peers(): PeerList {
    return this.options.peers;
  }

  /**
   * Lets `claim` take incoming requests before {@link incoming} sees them (`joinMesh` does, for its
   * members' dials); `close` runs first when the host closes. One claimer at a time: `invalid_argument`
   * otherwise. Returns the function that releases the claim.
   */
  claimIncoming(claim: (request: ConnectionRequest) => boolean, close: () => Promise<void>): () => void {
    if (this.closed) throw fail('closed', 'host is closed');
    if (this.claimer)
      throw fail('invalid_argument', 'incoming requests are already claimed (one mesh per host)');
    const claimer = { claim, close };
    this.claimer = claimer;
    return () => {
      if (this.claimer === claimer) this.claimer = undefined;
    };
  }

  /**
   * Closes every connection and pending dial, and stops listening. The signaling client and the peer
   * store stay open (other hosts or code may share them); {@link shutdown} closes those too.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.claimer?.close();
    this.unsubscribe();
    if (this.ownsPairing) this.pairing.close();
    this.requests.end();
    this.hold.close();
    for (const d of [...this.dials.values()]) d.fail(fail('closed', 'host closed'));
    this.links.close();
    this.glareWaits.close(fail('closed', 'host closed'));
    await Promise.all([...this.keepers].map((k) => k.close(1, 'host closed')));
    await Promise.all([...this.connections].map((c) => c.close(1, 'host closed')));
  }

  /**
   * Everything a program opened for this host, closed in one call: the host ({@link close}), then its
   * signaling client, then its peer list when that can be closed (a `PeerStore`). Afterwards nothing of
   * p2ptls keeps the process alive, so a script ends on its own.
   */
  async shutdown(): Promise<void> {
    await this.close();
    await this.options.signaling.close();
    const peers = this.options.peers as PeerList & { close?: () => Promise<void> };
    if (typeof peers.close === 'function') await peers.close();
  }
}
