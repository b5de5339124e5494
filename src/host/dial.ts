/**
 * One dial, outgoing or incoming: the WebRTC link and the p2ptls handshake riding on its signaling
 * (PROTOCOL.md §8), until an authenticated {@link Connection} exists or the dial fails. One owner per
 * state, a straight sequence of steps:
 *
 *   outgoing:  offering ──offer + ClientHello sent──▶ linking ──answer + ServerHello + ResponderAuth
 *              checked, link open──▶ authenticating ──live DTLS certificate checked, InitiatorAuth sent──▶ established
 *   incoming:  requested ──application accepts, PSK binder checked (no link before this)──▶ answering
 *              ──answer + ServerHello + ResponderAuth sent──▶ linking ──link open──▶ authenticating
 *              ──live DTLS certificate checked, InitiatorAuth verified (from the data channel, as soon as it
 *              arrives: possibly still in linking)──▶ established
 *   any ──timeout, link closed, peer's abort, handshake error──▶ failed
 *
 * Until the handshake completes nothing on the link is authenticated, so it costs little: reliable
 * records are kept up to a byte cap (InitiatorAuth plus what the initiator may send within the initial
 * window, PROTOCOL.md §5.5), datagrams are dropped and counted.
 */
import { asP2PTLSError, fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import type { Identity, PublicIdentity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import {
  type AeadProvider,
  type HandshakeOptions,
  type HandshakeResult,
  INITIAL_WINDOW,
  type IncomingHello,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
  type Suite,
  webCryptoKeyExchange,
} from '../protocol/index.js';
import { dtlsChannelBinding, dtlsOfferBinding, sdpFingerprint } from '../transport/channel-binding.js';
import type { Link } from '../transport/peer-link.js';
import { type Log, logger, shortId } from '../util/log.js';
import { Pending } from '../util/pending.js';
import { Connection } from './connection.js';
import type { ConnectionOptions, EarlyInput, SetupTimings } from './connection-types.js';
import { ConnectionRequest, type RequestTarget } from './request.js';
import type { HandshakeCrypto, PeerCredentials, PeerList } from './types.js';

/** The default {@link HandshakeCrypto}: WebCrypto, through the identities' own methods. */
export const webCryptoHandshake: HandshakeCrypto = {
  keyExchange: webCryptoKeyExchange,
  signer: (identity) => identity,
  verifier: (peer) => peer,
};

/**
 * What one dial signal carries (PROTOCOL.md §8): a WebRTC signal (simple-peer's offer, answer or
 * candidate) and, with the offer and the answer only, handshake records.
 */
export interface DialSignalData {
  signal: unknown;
  handshake?: Uint8Array[];
}

/** Who a dial authenticates: outgoing, the pinned credentials; incoming, the host's list by default. */
export type DialPeer =
  | {
      outgoing: true;
      /**
       * The peer's keys, read from the peer list while the link makes its offer. A rejection fails the
       * dial with its error; nothing has been sent then, so the peer is not told.
       */
      credentials: Promise<PeerCredentials>;
    }
  | {
      outgoing: false;
      /** Whether the dialer was in the host's peer list when the dial was admitted (its pool). */
      paired: boolean;
      peers: PeerList;
      onRequest: (request: ConnectionRequest) => void;
      /** The dialer's offer with its ClientHello: the first signal of the dial. */
      offer: DialSignalData;
    };

/**
 * Reliable bytes a dial keeps before its handshake completes: the initiator may follow its last
 * handshake message with up to the initial window of data (§5.5) and a few control records.
 */
export const MAX_EARLY_RELIABLE_BYTES = INITIAL_WINDOW + 64 * 1024;
/** What one kept record is charged beyond its bytes (its object and array slot), so tiny records cannot flood. */
const EARLY_RECORD_OVERHEAD = 64;
/** How long a dial whose link closed waits for the peer's abort reason, so `connect` can say why. */
const ABORT_REASON_GRACE_MS = 1_000;

/** Signals of an incoming dial kept while the application decides (its link does not exist yet). */
const MAX_HELD_SIGNALS = 32;

export type DialState =
  | 'offering'
  | 'requested'
  | 'answering'
  | 'linking'
  | 'authenticating'
  | 'established'
  | 'failed';

/** What a dial needs from its host. */
export interface DialContext {
  identity: Identity;
  connection: ConnectionOptions;
  aead?: AeadProvider;
  /** Where the handshake's ECDHE and signatures run (default WebCrypto). */
  handshakeCrypto?: HandshakeCrypto;
  suite?: Suite;
  handshakeTimeoutMs: number;
  /** Sends one of our signals (SDP, ICE; handshake records with the SDP) or an abort to the peer. */
  signal(message: ({ kind: 'signal' } & DialSignalData) | { kind: 'abort'; reason: string }): void;
  /** Makes the link: the host's WebRTC {@link LinkFactory}; tests pass in-memory ones. */
  createLink(initiator: boolean): Link;
  /** The dial is over (either way): forget it. */
  ended(dial: DialAttempt): void;
}

/** Reliable records of a link before the handshake completes, capped in bytes. */
class EarlyRecords {
  private readonly records: Uint8Array[] = [];
  private bytes = 0;
  private waiter: { resolve: (r: Uint8Array) => void; reject: (e: P2PTLSError) => void } | undefined;
  private error: P2PTLSError | undefined;
  datagramsDropped = 0;

  constructor(private readonly overflow: (error: P2PTLSError) => void) {}

  push(record: Uint8Array): void {
    if (this.error) return;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(record);
      return;
    }
    this.bytes += record.length + EARLY_RECORD_OVERHEAD;
    if (this.bytes > MAX_EARLY_RELIABLE_BYTES) {
      this.overflow(
        fail('flow_control', `more than ${MAX_EARLY_RELIABLE_BYTES} bytes before the handshake completed`),
      );
      return;
    }
    this.records.push(record);
  }

  /** The next record; rejects once the dial failed. */
  next(): Promise<Uint8Array> {
    if (this.error) return Promise.reject(this.error);
    const r = this.records.shift();
    if (r) {
      this.bytes -= r.length + EARLY_RECORD_OVERHEAD;
      return Promise.resolve(r);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  fail(error: P2PTLSError): void {
    this.error ??= error;
    this.waiter?.reject(error);
    this.waiter = undefined;
  }

  /** What the connection takes over. */
  handOver(setup: SetupTimings): EarlyInput {
    return { reliable: this.records.splice(0), datagramsDropped: this.datagramsDropped, setup };
  }
}

/** The SDP of a simple-peer offer or answer signal, or undefined for anything else. */
function descriptionSdp(signal: unknown, type: 'offer' | 'answer'): string | undefined {
  const d = signal as { type?: unknown; sdp?: unknown } | null;
  return typeof d === 'object' && d !== null && d.type === type && typeof d.sdp === 'string'
    ? d.sdp
    : undefined;
}

export class DialAttempt implements RequestTarget {
  /** The WebRTC link: made at once for an outgoing dial, only once the application accepts an incoming one. */
  private currentLink: Link | undefined;
  /** Settles once: the authenticated connection, or why the dial failed. */
  readonly result: Promise<Connection>;
  private current: DialState;
  private readonly early: EarlyRecords;
  private readonly timer: ReturnType<typeof setTimeout>;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private settle!: {
    resolve: (c: Connection | Promise<Connection>) => void;
    reject: (e: P2PTLSError) => void;
  };
  /** Incoming: the ClientHello that came with the offer. */
  private hello: IncomingHello | undefined;
  /** Incoming: the dialer's signals (candidates) until the link exists. */
  private heldSignals: unknown[] | undefined;
  /** Our signals until the hello-bearing one is sent: candidates must not overtake the SDP (§8). */
  private outbox: unknown[] | undefined = [];
  /** Our own SDP (offer or answer), as the link makes it. */
  private readonly description = new Pending<string>();
  /** Outgoing: the peer's answer with ServerHello and ResponderAuth. */
  private readonly answer = new Pending<{ sdp: string; handshake: Uint8Array[] }>();
  private readonly linkOpen = new Pending<void>();
  private readonly offLink: (() => void)[] = [];
  private readonly started = performance.now();
  private readonly timings: Omit<SetupTimings, 'established'> = {};
  private readonly log: Log;

  readonly outgoing: boolean;

  /** @internal Use `Host.connect`, or a dial signal arriving. */
  constructor(
    readonly id: string,
    readonly peerId: PeerId,
    private readonly peer: DialPeer,
    private readonly ctx: DialContext,
  ) {
    const outgoing = peer.outgoing;
    this.outgoing = outgoing;
    this.current = outgoing ? 'offering' : 'requested';
    this.log = logger(`dial:${shortId(peerId)}`);
    this.result = new Promise<Connection>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // The caller of connect() may give up on it; nobody else must see its rejection as unhandled.
    this.result.catch(() => {});
    this.early = new EarlyRecords((error) => this.fail(error));
    this.log('%s dial %s: %s', outgoing ? 'outgoing' : 'incoming', id, this.current);
    // The link first: a stack that refuses the options (relay-only on node-datachannel) throws here, and
    // must not leave the timer behind to hold the process for a whole handshake timeout.
    if (outgoing) this.createLink();
    this.timer = setTimeout(() => {
      this.fail(
        fail(
          'timeout',
          `no authenticated connection to ${peerId} after ${ctx.handshakeTimeoutMs} ms: ${this.stuck()}`,
        ),
      );
    }, ctx.handshakeTimeoutMs);
    if (outgoing) {
      this.run(this.initiate());
    } else {
      this.heldSignals = [];
      // After the constructor: the host registers the dial before its request is seen.
      queueMicrotask(() => this.request());
    }
  }

  get state(): DialState {
    return this.current;
  }

  /** The WebRTC link, once there is one (an incoming dial has none until it is accepted). */
  get link(): Link | undefined {
    return this.currentLink;
  }

  /** Outgoing dials are always to paired peers; incoming ones say which admission pool they took. */
  get paired(): boolean {
    return this.peer.outgoing || this.peer.paired;
  }

  /** Whether dialing again may help: it failed inside WebRTC before any p2ptls byte (ICE, DTLS, busy). */
  get retryable(): boolean {
    return this.outgoing && this.current === 'failed' && !this.currentLink?.wasOpened;
  }

  /** True while an outgoing dial's link has not opened: a glare can still be resolved by dropping it. */
  get linking(): boolean {
    return this.outgoing && (this.current === 'offering' || this.current === 'linking');
  }

  /** Whether the dial is still in `state` (after an await: a failure may have ended it meanwhile). */
  private still(state: DialState): boolean {
    return this.current === state;
  }

  private setState(next: DialState, why: string): void {
    this.log('%s → %s (%s)', this.current, next, why);
    this.current = next;
  }

  /** Where a dial that timed out was stuck: WebRTC (no link), the application, or the handshake. */
  private stuck(): string {
    if (this.current === 'requested') return 'the application did not accept the request';
    if (this.currentLink?.wasOpened) return 'the p2ptls handshake did not finish';
    if (this.outgoing && !this.answer.settled) return 'no answer came through signaling';
    return 'the WebRTC link did not open';
  }

  /** Runs one side's sequence of steps; its first error fails the dial. */
  private run(steps: Promise<void>): void {
    steps.catch((err: unknown) => this.fail(asP2PTLSError(err, 'internal_error')));
  }

  private createLink(): Link {
    const link = this.ctx.createLink(this.outgoing);
    this.currentLink = link;
    this.offLink.push(
      link.on('signal', (signal) => this.linkSignal(signal)),
      link.on('reliable', (r) => this.early.push(r)),
      link.on('datagram', () => {
        this.early.datagramsDropped++;
      }),
      link.on('open', () => {
        this.timings.open = this.elapsed();
        this.linkOpen.resolve();
      }),
      link.on('close', ({ error }) => this.linkClosed(error)),
    );
    return link;
  }

  private elapsed(): number {
    return performance.now() - this.started;
  }

  /** One of our link's signals: our SDP waits for its handshake records, candidates wait behind it. */
  private linkSignal(signal: unknown): void {
    const sdp = descriptionSdp(signal, this.outgoing ? 'offer' : 'answer');
    if (sdp !== undefined && !this.description.settled) {
      this.description.resolve(sdp);
      this.outbox?.unshift(signal);
      return;
    }
    if (this.outbox) this.outbox.push(signal);
    else this.ctx.signal({ kind: 'signal', signal });
  }

  /**
   * Sends our SDP (the outbox's head) with `handshake`, then the candidates that waited behind it. The
   * handshake bound `fingerprint`, which the link reported before emitting the SDP: the SDP must name it.
   */
  private async sendDescription(handshake: Uint8Array[], fingerprint: string): Promise<void> {
    const named = sdpFingerprint(await this.description.promise);
    if (named !== fingerprint) {
      throw fail(
        'channel_binding_mismatch',
        `our SDP names ${named}, but the link reported ${fingerprint} and the handshake bound it`,
      );
    }
    const [description, ...rest] = this.outbox ?? [];
    this.outbox = undefined;
    this.ctx.signal({ kind: 'signal', signal: description, handshake });
    for (const signal of rest) this.ctx.signal({ kind: 'signal', signal });
    this.timings.signaled = this.elapsed();
  }

  /** A signal from the peer for this dial (after the incoming dial's offer). */
  signal(data: DialSignalData): void {
    if (this.current === 'established' || this.current === 'failed') return;
    if (data.handshake) {
      // Only an outgoing dial expects one more: the answer (PROTOCOL.md §8).
      const sdp = descriptionSdp(data.signal, 'answer');
      if (!this.outgoing || this.answer.settled || sdp === undefined) {
        this.fail(fail('unexpected_message', 'handshake records in an unexpected dial signal'));
        return;
      }
      this.timings.answered = this.elapsed();
      // The link starts ICE and DTLS at once; the handshake is checked meanwhile.
      this.currentLink?.signal(data.signal);
      this.answer.resolve({ sdp, handshake: data.handshake });
      return;
    }
    if (this.heldSignals) {
      if (this.heldSignals.length < MAX_HELD_SIGNALS) this.heldSignals.push(data.signal);
      return;
    }
    this.currentLink?.signal(data.signal);
  }

  /**
   * Ends the dial with `error`: the peer is told (unless it told us), the link closed, the caller
   * rejected. Does nothing once the dial is over.
   */
  fail(error: P2PTLSError, options: { tellPeer?: boolean } = {}): void {
    if (this.current === 'established' || this.current === 'failed') return;
    this.abandon(
      `${error.code}: ${error.message}`,
      error,
      (options.tellPeer ?? true) ? error.code : undefined,
    );
    this.settle.reject(error);
  }

  /**
   * Outgoing only: the peer's dial to us won the glare (PROTOCOL.md §3.7). This dial ends (the peer is
   * told `glare`) and its caller gets the connection that `winner` brings.
   */
  yieldTo(winner: Promise<Connection>): void {
    if (!this.linking) return;
    this.abandon('glare: the peer dial wins', fail('closed', 'glare'), 'glare');
    this.settle.resolve(winner);
  }

  /** Enters `failed`: stops the handshake, tells the peer `abortReason` (if any) and closes the link. */
  private abandon(why: string, error: P2PTLSError, abortReason: string | undefined): void {
    this.setState('failed', why);
    this.finish();
    this.early.fail(error);
    for (const step of [this.description, this.answer, this.linkOpen]) if (!step.settled) step.reject(error);
    if (abortReason) this.ctx.signal({ kind: 'abort', reason: abortReason });
    this.currentLink?.close();
  }

  private finish(): void {
    clearTimeout(this.timer);
    clearTimeout(this.graceTimer);
    for (const off of this.offLink) off();
    this.ctx.ended(this);
  }

  private linkClosed(error: P2PTLSError | undefined): void {
    const closed = error ?? fail('closed', 'the WebRTC link closed during the handshake');
    // A peer that refuses us sends its reason through signaling and closes the link; the link close
    // usually wins the race. Wait a moment for the reason (the abort decides), so `connect` can say why.
    // A link that failed before it opened may have failed on this side only: the peer is told, or its dial
    // would wait for its timeout (PROTOCOL.md §8). node-datachannel's dialer does so in about 1 set-up in
    // 15 beside two busy loops (0 in 300 idle; 150 in-process set-ups per run, either stack answering):
    // the peer's connectivity checks are already arriving, ICE and DTLS can get ahead of libdatachannel
    // storing the answer it is applying, the peer's certificate is then checked against no remote
    // description ("DTLS alert: unknown CA"), the connection closes, and setRemoteDescription throws
    // "Got a remote candidate without ICE transport". (Making that side the DTLS client did not help.)
    const opened = this.currentLink?.wasOpened === true;
    if (this.outgoing && opened) {
      this.graceTimer ??= setTimeout(() => this.fail(closed, { tellPeer: false }), ABORT_REASON_GRACE_MS);
    } else this.fail(closed, { tellPeer: !opened });
  }

  /**
   * Once DTLS is up: the certificate the peer presented must be the one whose fingerprint the handshake
   * bound (PROTOCOL.md §8). Stacks that do not report it check it against the SDP themselves.
   */
  private async checkLiveCertificate(link: Link, expected: string): Promise<void> {
    const live = await link.remoteCertificate();
    if (live !== undefined && live !== expected) {
      throw fail(
        'channel_binding_mismatch',
        `the peer's DTLS certificate (${live}) is not the one in the signaled SDP (${expected})`,
      );
    }
  }

  /** What both roles' handshakes take from the host: who signs, whom to verify, where the crypto runs. */
  private handshakeOptions(peer: PublicIdentity, psk: Uint8Array): HandshakeOptions {
    const crypto = this.ctx.handshakeCrypto ?? webCryptoHandshake;
    return {
      identity: crypto.signer(this.ctx.identity),
      peer: crypto.verifier(peer),
      psk,
      keyExchange: crypto.keyExchange,
      ...(this.ctx.aead ? { aead: this.ctx.aead } : {}),
    };
  }

  /**
   * Outgoing (§3, §8): offer + ClientHello out; answer + ServerHello + ResponderAuth in, checked while
   * ICE and DTLS run; InitiatorAuth out the moment the reliable channel opens; the connection once the
   * link is open and its certificate checked (§8 step 4: InitiatorAuth is sealed for the responder this
   * handshake authenticated, so it reveals nothing to a DTLS peer that is not that responder, and nothing
   * else leaves before the check).
   */
  private async initiate(): Promise<void> {
    if (!this.peer.outgoing) return;
    const localFp = this.currentLink!.localFingerprint();
    let peer: PeerCredentials;
    try {
      peer = await this.peer.credentials;
    } catch (err) {
      this.fail(asP2PTLSError(err, 'internal_error'), { tellPeer: false });
      return;
    }
    if (!this.still('offering')) return;
    // The ephemeral key and early secret are made while the link makes its offer.
    const init = await InitiatorHandshake.start({
      ...this.handshakeOptions(peer.publicIdentity, peer.psk),
      offerBinding: localFp.then(dtlsOfferBinding),
      ...(this.ctx.suite ? { suite: this.ctx.suite } : {}),
    });
    if (!this.still('offering')) return;
    await this.sendDescription([init.hello], await localFp);
    if (!this.still('offering')) return;
    this.setState('linking', 'offer and ClientHello sent');
    const answer = await this.answer.promise;
    if (!this.still('linking')) return; // failed meanwhile (its link, as the answer was applied)
    const remoteFp = sdpFingerprint(answer.sdp);
    const fp = await localFp;
    const [serverHello, responderAuth, ...extra] = answer.handshake;
    if (!serverHello || !responderAuth || extra.length > 0) {
      throw fail('malformed', 'the answer must carry exactly ServerHello and ResponderAuth');
    }
    await init.receive(serverHello, dtlsChannelBinding(fp, remoteFp));
    const { records, result } = await init.receive(responderAuth);
    if (!this.still('linking')) return;
    this.timings.peerVerified = this.elapsed();
    this.log('responder authenticated from the answer; InitiatorAuth leaves as the reliable channel opens');
    const link = this.currentLink!;
    link.sendFirst(records);
    await this.linkOpen.promise;
    this.setState('authenticating', 'link open');
    await this.checkLiveCertificate(link, remoteFp);
    if (!this.still('authenticating')) return;
    this.establish(result!);
  }

  /** Incoming: the ClientHello from the offer, then the application decides (a {@link ConnectionRequest}). */
  private request(): void {
    if (this.peer.outgoing || this.current !== 'requested') return;
    try {
      const [record, ...extra] = this.peer.offer.handshake ?? [];
      if (!record || extra.length > 0) throw fail('malformed', 'the offer must carry exactly a ClientHello');
      if (descriptionSdp(this.peer.offer.signal, 'offer') === undefined) {
        throw fail('malformed', 'the ClientHello did not come with an offer');
      }
      const hello = parseClientHello(record);
      if (hello.initiatorId !== this.peerId) {
        throw fail(
          'unknown_peer',
          `ClientHello claims ${hello.initiatorId} but the dial came from ${this.peerId}`,
        );
      }
      this.hello = hello;
    } catch (err) {
      this.fail(asP2PTLSError(err, 'internal_error'));
      return;
    }
    this.peer.onRequest(new ConnectionRequest(this.peerId, this, this.peer.peers));
  }

  /**
   * @internal Incoming: the application accepted with these credentials. The ClientHello is checked
   * (PSK binder, offer fingerprint) before anything is allocated; only then the link, the answer with
   * ServerHello and ResponderAuth, and InitiatorAuth from the data channel. Either PSK of a re-paired
   * peer may be the dialer's (PROTOCOL.md §9): a wrong binder costs one HMAC, so both are tried, and
   * `list` learns which one a completed handshake confirmed.
   */
  async respond(credentials: PeerCredentials, list?: PeerList): Promise<Connection> {
    const hello = this.hello;
    if (this.current !== 'requested' || !hello || this.peer.outgoing) {
      return Promise.reject(fail('closed', `the dial is no longer pending (${this.current})`));
    }
    this.setState('answering', 'accepted');
    const offer = this.peer.offer;
    try {
      const offerFp = sdpFingerprint(descriptionSdp(offer.signal, 'offer')!);
      const psks = credentials.pendingPsk ? [credentials.pendingPsk, credentials.psk] : [credentials.psk];
      let accepted: { resp: ResponderHandshake; psk: Uint8Array } | undefined;
      for (const psk of psks) {
        try {
          const resp = await ResponderHandshake.check(hello, {
            ...this.handshakeOptions(credentials.publicIdentity, psk),
            offerBinding: dtlsOfferBinding(offerFp),
          });
          accepted = { resp, psk };
          break;
        } catch (err) {
          if (psk === psks[psks.length - 1] || !isP2PTLSError(err, 'bad_binder')) throw err;
        }
      }
      const { resp, psk } = accepted!;
      if (!this.still('answering')) return this.result;
      const link = this.createLink();
      const held = this.heldSignals ?? [];
      this.heldSignals = undefined;
      link.signal(offer.signal);
      for (const s of held) link.signal(s);
      // Key generation and ECDH run while the link makes the answer; the binding needs its fingerprint,
      // and the signature follows it while the link still sets its answer as local description.
      const localFp = link.localFingerprint();
      const records = await resp.respond(localFp.then((fp) => dtlsChannelBinding(offerFp, fp)));
      await this.sendDescription(records, await localFp);
      if (!this.still('answering')) return this.result;
      this.setState('linking', 'answer, ServerHello and ResponderAuth sent');
      // InitiatorAuth is checked as soon as it arrives, still in `linking`: the dialer sends it as its
      // reliable channel opens, usually before our side of the link reports open, which waits for both
      // channels (before the dialer sent it that early, 2 of 8 traced wrtc dials; checking it there saved
      // 0.8–1.1 ms of the set-up). The dial becomes established only once the link is open and its live
      // certificate checked; a bad InitiatorAuth fails the dial at once.
      const initiatorAuth = this.early.next().then(async (record) => {
        const verified = await resp.receive(record);
        this.timings.peerVerified = this.elapsed();
        return verified;
      });
      initiatorAuth.catch((err: unknown) => this.fail(asP2PTLSError(err, 'internal_error')));
      await this.linkOpen.promise;
      this.setState('authenticating', 'link open');
      await this.checkLiveCertificate(link, offerFp);
      const result = await initiatorAuth;
      if (credentials.pendingPsk) await list?.confirmPsk?.(this.peerId, psk)?.catch(() => {});
      this.establish(result);
    } catch (err) {
      this.fail(asP2PTLSError(err, 'internal_error'));
    }
    return this.result;
  }

  /** The handshake is done: a connection, but only on a link that is still there. */
  private establish(result: HandshakeResult): void {
    if (this.current !== 'authenticating') return;
    const link = this.currentLink!;
    if (!link.isOpen) {
      this.fail(fail('closed', 'the WebRTC link closed as the handshake completed'), { tellPeer: false });
      return;
    }
    this.setState('established', 'handshake complete');
    this.finish();
    const t = link.timeline;
    const setup: SetupTimings = {
      startedAt: performance.timeOrigin + this.started,
      ...this.timings,
      ...(t.iceConnected === undefined ? {} : { iceConnected: t.iceConnected - this.started }),
      ...(t.dtlsConnected === undefined ? {} : { dtlsConnected: t.dtlsConnected - this.started }),
      ...(t.reliableOpen === undefined ? {} : { reliableOpen: t.reliableOpen - this.started }),
      established: this.elapsed(),
    };
    this.settle.resolve(new Connection(link, result, this.ctx.connection, this.early.handOver(setup)));
  }
}
