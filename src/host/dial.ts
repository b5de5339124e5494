/**
 * One dial, outgoing or incoming: the WebRTC link and the p2ptls handshake on it, until an authenticated
 * {@link Connection} exists or the dial fails. One owner per state, a straight sequence of steps:
 *
 *   linking ──link open──▶ handshaking ──handshake done on a live link──▶ established
 *      └──────────────────────┴── timeout, link closed, peer's abort, handshake error ──▶ failed
 *
 * Until the handshake completes nothing on the link is authenticated, so it costs little: reliable
 * records are kept up to a byte cap (the handshake plus what the peer may send within the initial
 * window, PROTOCOL.md §5.5), datagrams are dropped and counted.
 */
import { asP2PTLSError, fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import {
  type AeadProvider,
  type HandshakeResult,
  INITIAL_WINDOW,
  type IncomingHello,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
  type Suite,
} from '../protocol/index.js';
import { dtlsChannelBinding } from '../transport/channel-binding.js';
import { type Link, PeerLink, type PeerLinkOptions } from '../transport/peer-link.js';
import { type Log, logger, shortId } from '../util/log.js';
import { Connection, type ConnectionOptions, type EarlyInput } from './connection.js';
import { ConnectionRequest, type RequestTarget } from './request.js';
import type { PeerCredentials, PeerList } from './types.js';

/** Who a dial authenticates: outgoing, the pinned credentials; incoming, the host's list by default. */
export type DialPeer =
  | { outgoing: true; credentials: PeerCredentials }
  | {
      outgoing: false;
      /** Whether the dialer was in the host's peer list when the dial was admitted (its pool). */
      paired: boolean;
      peers: PeerList;
      onRequest: (request: ConnectionRequest) => void;
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

export type DialState = 'linking' | 'handshaking' | 'established' | 'failed';

/** What a dial needs from its host. */
export interface DialContext {
  identity: Identity;
  link: Omit<PeerLinkOptions, 'initiator'>;
  connection: ConnectionOptions;
  aead?: AeadProvider;
  suite?: Suite;
  handshakeTimeoutMs: number;
  /** Sends one of our signals (SDP, ICE) or an abort to the peer through signaling. */
  signal(message: { kind: 'signal'; signal: unknown } | { kind: 'abort'; reason: string }): void;
  /** Makes the link (default: a {@link PeerLink} over WebRTC); tests pass an in-memory one. */
  createLink?: (options: PeerLinkOptions) => Link;
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
  handOver(): EarlyInput {
    return { reliable: this.records.splice(0), datagramsDropped: this.datagramsDropped };
  }
}

export class DialAttempt implements RequestTarget {
  readonly link: Link;
  /** Settles once: the authenticated connection, or why the dial failed. */
  readonly result: Promise<Connection>;
  private current: DialState = 'linking';
  private readonly early: EarlyRecords;
  private readonly timer: ReturnType<typeof setTimeout>;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private settle!: {
    resolve: (c: Connection | Promise<Connection>) => void;
    reject: (e: P2PTLSError) => void;
  };
  private hello: IncomingHello | undefined;
  private readonly offLink: (() => void)[];
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
    this.log = logger(`dial:${shortId(peerId)}`);
    this.result = new Promise<Connection>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // The caller of connect() may give up on it; nobody else must see its rejection as unhandled.
    this.result.catch(() => {});
    const linkOptions: PeerLinkOptions = { ...ctx.link, initiator: outgoing };
    this.link = ctx.createLink ? ctx.createLink(linkOptions) : new PeerLink(linkOptions);
    this.early = new EarlyRecords((error) => this.fail(error));
    this.offLink = [
      this.link.on('signal', (signal) => ctx.signal({ kind: 'signal', signal })),
      this.link.on('reliable', (r) => this.early.push(r)),
      this.link.on('datagram', () => {
        this.early.datagramsDropped++;
      }),
      this.link.on('open', () => this.opened()),
      this.link.on('close', ({ error }) => this.linkClosed(error)),
    ];
    this.timer = setTimeout(() => {
      // Say where it stuck: ICE/DTLS (no WebRTC link) or the p2ptls handshake (peer silent or slow).
      const stage = this.link.wasOpened
        ? 'the p2ptls handshake did not finish'
        : 'the WebRTC link did not open';
      this.fail(
        fail(
          'timeout',
          `no authenticated connection to ${peerId} after ${ctx.handshakeTimeoutMs} ms: ${stage}`,
        ),
      );
    }, ctx.handshakeTimeoutMs);
    this.log('%s dial %s: linking', outgoing ? 'outgoing' : 'incoming', id);
  }

  get state(): DialState {
    return this.current;
  }

  /** Outgoing dials are always to paired peers; incoming ones say which admission pool they took. */
  get paired(): boolean {
    return this.peer.outgoing || this.peer.paired;
  }

  /** Whether dialing again may help: it failed inside WebRTC before any p2ptls byte (ICE, DTLS, busy). */
  get retryable(): boolean {
    return this.outgoing && this.current === 'failed' && !this.link.wasOpened;
  }

  /** True while the link has not opened: a glare can still be resolved by dropping this dial. */
  get linking(): boolean {
    return this.current === 'linking';
  }

  private setState(next: DialState, why: string): void {
    this.log('%s → %s (%s)', this.current, next, why);
    this.current = next;
  }

  /** A signal from the peer for this dial. */
  signal(data: unknown): void {
    this.link.signal(data);
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
    if (this.current !== 'linking') return;
    this.abandon('glare: the peer dial wins', fail('closed', 'glare'), 'glare');
    this.settle.resolve(winner);
  }

  /** Enters `failed`: stops the handshake, tells the peer `abortReason` (if any) and closes the link. */
  private abandon(why: string, error: P2PTLSError, abortReason: string | undefined): void {
    this.setState('failed', why);
    this.finish();
    this.early.fail(error);
    if (abortReason) this.ctx.signal({ kind: 'abort', reason: abortReason });
    this.link.close();
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
    if (this.outgoing && this.link.wasOpened) {
      this.graceTimer ??= setTimeout(() => this.fail(closed, { tellPeer: false }), ABORT_REASON_GRACE_MS);
    } else this.fail(closed, { tellPeer: false });
  }

  private opened(): void {
    if (this.current !== 'linking') return;
    this.setState('handshaking', 'link open');
    const steps = this.outgoing ? this.initiate() : this.readHello();
    steps.catch((err: unknown) => this.fail(asP2PTLSError(err, 'internal_error')));
  }

  /** Outgoing: ClientHello, then ServerHello and ResponderAuth in, InitiatorAuth out (§3). */
  private async initiate(): Promise<void> {
    if (!this.peer.outgoing) return;
    const peer = this.peer.credentials;
    const fp = this.link.fingerprints();
    const init = await InitiatorHandshake.start({
      identity: this.ctx.identity,
      peer: peer.publicIdentity,
      psk: peer.psk,
      channelBinding: dtlsChannelBinding(fp.local, fp.remote),
      ...(this.ctx.suite ? { suite: this.ctx.suite } : {}),
      ...(this.ctx.aead ? { aead: this.ctx.aead } : {}),
    });
    this.link.sendReliable(init.hello);
    let result: HandshakeResult | undefined;
    while (!result) {
      const r = await init.receive(await this.early.next());
      for (const out of r.records) this.link.sendReliable(out);
      result = r.result;
    }
    this.establish(result);
  }

  /** Incoming: the ClientHello, then the application decides (a {@link ConnectionRequest}). */
  private async readHello(): Promise<void> {
    const hello = parseClientHello(await this.early.next());
    if (hello.initiatorId !== this.peerId) {
      throw fail(
        'unknown_peer',
        `ClientHello claims ${hello.initiatorId} but the dial came from ${this.peerId}`,
      );
    }
    this.hello = hello;
    if (!this.peer.outgoing) this.peer.onRequest(new ConnectionRequest(this.peerId, this, this.peer.peers));
  }

  /**
   * @internal Incoming: the application accepted with these credentials; ServerHello and ResponderAuth
   * out. Either PSK of a re-paired peer may be the dialer's (PROTOCOL.md §9): a wrong binder costs one
   * HMAC, so both are tried, and `list` learns which one a completed handshake confirmed.
   */
  async respond(credentials: PeerCredentials, list?: PeerList): Promise<Connection> {
    const hello = this.hello;
    if (this.current !== 'handshaking' || !hello) {
      return Promise.reject(fail('closed', `the dial is no longer pending (${this.current})`));
    }
    try {
      const fp = this.link.fingerprints();
      const psks = credentials.pendingPsk ? [credentials.pendingPsk, credentials.psk] : [credentials.psk];
      let accepted: { resp: ResponderHandshake; psk: Uint8Array } | undefined;
      for (const psk of psks) {
        try {
          const resp = await ResponderHandshake.accept(hello, {
            identity: this.ctx.identity,
            peer: credentials.publicIdentity,
            psk,
            channelBinding: dtlsChannelBinding(fp.remote, fp.local),
            ...(this.ctx.aead ? { aead: this.ctx.aead } : {}),
          });
          accepted = { resp, psk };
          break;
        } catch (err) {
          if (psk === psks[psks.length - 1] || !isP2PTLSError(err, 'bad_binder')) throw err;
        }
      }
      const { resp, psk } = accepted!;
      for (const r of resp.records) this.link.sendReliable(r);
      const result = await resp.receive(await this.early.next());
      if (credentials.pendingPsk) await list?.confirmPsk?.(this.peerId, psk)?.catch(() => {});
      this.establish(result);
    } catch (err) {
      this.fail(asP2PTLSError(err, 'internal_error'));
    }
    return this.result;
  }

  /** The handshake is done: a connection, but only on a link that is still there. */
  private establish(result: HandshakeResult): void {
    if (this.current !== 'handshaking') return;
    if (!this.link.isOpen) {
      this.fail(fail('closed', 'the WebRTC link closed as the handshake completed'), { tellPeer: false });
      return;
    }
    this.setState('established', 'handshake complete');
    this.finish();
    this.settle.resolve(new Connection(this.link, result, this.ctx.connection, this.early.handOver()));
  }
}
