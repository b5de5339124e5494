/**
 * The public entry point: a Host owns an identity, a peer list, a signaling client and a WebRTC
 * implementation; it dials paired peers (`connect`) and hands out incoming dials (`incoming`) for the
 * application to `verify` against its peer list.
 */
import { z } from 'zod';
import {
  asP2PTLSError,
  type ErrorCode,
  ErrorCodes,
  fail,
  isP2PTLSError,
  type P2PTLSError,
} from '../errors.js';
import type { Identity, PublicIdentity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import { Mesh, type MeshOptions } from '../mesh/mesh.js';
import {
  MemoryPairingRecords,
  type PairingHandler,
  type PairingHandlerOptions,
  type PairingRecords,
  PairingService,
} from '../pairing/service.js';
import {
  type AeadProvider,
  glareWinner,
  type HandshakeResult,
  type IncomingHello,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
  type Suite,
} from '../protocol/index.js';
import type { SignalingClient } from '../signaling/client.js';
import { dtlsChannelBinding } from '../transport/channel-binding.js';
import { PeerLink } from '../transport/peer-link.js';
import type { CandidateFilter, RtcImplementation } from '../transport/rtc.js';
import { toBase64Url } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { AsyncQueue } from './async-queue.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { ReconnectingConnection, type ReconnectOptions } from './reconnecting.js';

/** The pinned keys and PSK of a paired peer. A `PeerStore` provides them. */
export interface PeerCredentials {
  readonly publicIdentity: PublicIdentity;
  readonly psk: Uint8Array;
  /** A re-pairing's newer PSK that no handshake has confirmed yet (PROTOCOL.md §9, key confirmation). */
  readonly pendingPsk?: Uint8Array;
}

/** The seed's `PeerList`: who is paired, with which keys. `PeerStore` satisfies it. */
export interface PeerList {
  lookup(peerId: PeerId): Promise<PeerCredentials | undefined>;
  /** Told which PSK a handshake with a peer that has a pending PSK succeeded under (`PeerStore` has it). */
  confirmPsk?(peerId: PeerId, psk: Uint8Array): Promise<unknown>;
}

/** A peer list that can also remember new pairs — a `PeerStore` is one. */
export interface WritablePeerList extends PeerList {
  put(input: { publicIdentity: PublicIdentity; psk: Uint8Array; label?: string }): Promise<unknown>;
}

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
  /** Suite this host offers when dialing. */
  suite?: Suite;
  /** Dial → authenticated connection must finish within this (default 15 000 ms). */
  handshakeTimeoutMs?: number;
  /** Incoming dials not yet accepted or rejected, at most (default 32); more are refused. */
  maxPendingIncoming?: number;
  /** Pairing over `signaling`; by default one recording into `peers` (a `PeerStore`). */
  pairing?: PairingService;
}

/** Signals between hosts, carried by the signaling server (which signs and relays, nothing more). */
const DialSignal = z.discriminatedUnion('kind', [
  z.object({
    p2ptls: z.literal(1),
    kind: z.literal('signal'),
    dial: z.string().min(8).max(64),
    signal: z.unknown(),
  }),
  z.object({
    p2ptls: z.literal(1),
    kind: z.literal('abort'),
    dial: z.string().min(8).max(64),
    reason: z.string().max(200),
  }),
]);
type DialSignal = z.infer<typeof DialSignal>;

/** Records and datagrams that arrive on a link before the connection object exists. */
interface Early {
  reliable: Uint8Array[];
  datagrams: Uint8Array[];
}
const MAX_EARLY_DATAGRAMS = 256;
const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));
/** Incoming dials from one peer that may be pending at once. */
const MAX_PENDING_PER_PEER = 16;
/** How long a dial whose link closed waits for the peer's abort reason (see `newDial`). */
const ABORT_REASON_GRACE_MS = 1_000;
/** Errors of dials that failed inside the WebRTC stack before the link opened (see `connect`). */
const transientErrors = new WeakSet<object>();
const MAX_EARLY_RECORDS = 256;

/** A `connect` call whose dial lost a glare and now waits for the peer's dial. */
interface GlareWaiter {
  resolve: (c: Connection) => void;
  reject: (e: P2PTLSError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Collector {
  /** The next reliable record (waits for it). */
  next(): Promise<Uint8Array>;
  /** Stops buffering and returns what is left for the connection. */
  stop(): Early;
}

interface Dial {
  id: string;
  peerId: PeerId;
  link: PeerLink;
  /** Buffers records from the moment the link exists: the peer may send before our 'open' fires. */
  records: Collector;
  outgoing: boolean;
  settled: boolean;
  timer: ReturnType<typeof setTimeout>;
  abort(error: P2PTLSError): void;
  /** Outgoing only: the peer dialed us at the same time and its dial wins (PROTOCOL.md §3.7). */
  yieldToPeer?(): void;
}

/** An incoming dial whose ClientHello has arrived: accept it with {@link verify}, or {@link reject}. */
export class ConnectionRequest {
  /** @internal */
  constructor(
    /** The dialing peer, as authenticated by the signaling server and named in the ClientHello. */
    readonly peerId: PeerId,
    private readonly accept: (credentials: PeerCredentials, list?: PeerList) => Promise<Connection>,
    private readonly refuse: (error: P2PTLSError) => void,
    private readonly defaultList: PeerList,
  ) {}

  /**
   * Accepts the request if the peer is in `list` (default: the host's peers): runs the handshake with the
   * pinned key and PSK from the list. Rejects with `unknown_peer` for anyone else, and with the handshake's
   * error (`bad_binder`, `bad_signature`, …) for an impostor.
   */
  async verify(list: PeerList = this.defaultList): Promise<Connection> {
    const credentials = await list.lookup(this.peerId);
    if (!credentials) {
      const error = fail('unknown_peer', `${this.peerId} is not a paired peer`);
      this.refuse(error);
      throw error;
    }
    return this.accept(credentials, list);
  }

  /**
   * DANGEROUS: accepts with credentials the caller vouches for, skipping the peer-list check — for pairing
   * flows where the keys and PSK were just agreed and are not stored yet. The handshake still requires
   * the peer to prove both the RSA key and the PSK.
   */
  acceptUnverified(credentials: PeerCredentials): Promise<Connection> {
    return this.accept(credentials);
  }

  /** Refuses the dial. */
  reject(reason = 'rejected'): void {
    this.refuse(fail('unknown_peer', reason));
  }
}

/** Events of a {@link Host}. */
export interface HostEvents {
  /**
   * A pairing completed (started by either side) and, when the peer list can store, the pair is stored:
   * a dial from that peer will verify from now on.
   */
  paired: PeerCredentials & { initiator: boolean };
}

/** A p2ptls host: the seed's `AsyncHost`. */
export class Host extends TypedEmitter<HostEvents> {
  private readonly dials = new Map<string, Dial>();
  private readonly requests = new AsyncQueue<ConnectionRequest>();
  private readonly connections = new Set<Connection>();
  private readonly keepers = new Set<ReconnectingConnection>();
  /** Outgoing dials that lost a glare: their callers wait for the winning incoming dial instead. */
  private readonly glareWaiters = new Map<PeerId, GlareWaiter[]>();
  private readonly unsubscribe: () => void;
  private closed = false;
  /** Incoming requests a mesh takes before `incoming()` sees them (its members' dials). */
  private readonly claimers = new Set<(request: ConnectionRequest) => boolean>();
  private mesh: Mesh | undefined;
  /** The pairing service: invites, pair(), answers to requests (src/pairing). */
  readonly pairing: PairingService;
  private readonly ownsPairing: boolean;

  private constructor(private readonly options: HostOptions) {
    super();
    const offSignal = options.signaling.on('signal', ({ from, data }) => this.onSignal(from, data));
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
   * Dials a paired peer and resolves with an authenticated connection. Rejects with `unknown_peer` if the
   * peer is not in the host's peer list, `timeout`, or the handshake's error. A WebRTC set-up that fails
   * before the link opens is retried (`attempts`, default 3) with a short backoff; authentication
   * failures never are.
   */
  async connect(peerId: PeerId, options: { attempts?: number } = {}): Promise<Connection> {
    if (this.closed) throw fail('closed', 'host is closed');
    const credentials = await this.options.peers.lookup(peerId);
    if (!credentials) throw fail('unknown_peer', `${peerId} is not a paired peer`);
    this.options.signaling.trustPeer(credentials.publicIdentity);
    const attempts = options.attempts ?? 3;
    // Key confirmation (PROTOCOL.md §9): a re-pairing's PSK is offered first; a peer that never got it
    // refuses it (`bad_binder`) and the confirmed one is tried next.
    const psks = credentials.pendingPsk ? [credentials.pendingPsk, credentials.psk] : [credentials.psk];
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dialOnce(peerId, { ...credentials, psk: psks[0]! });
      } catch (err) {
        if (psks.length > 1 && isP2PTLSError(err, 'bad_binder')) {
          psks.shift();
          continue;
        }
        if (attempt >= attempts || !transientErrors.has(err as object) || this.closed) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
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

  private dialOnce(peerId: PeerId, credentials: PeerCredentials): Promise<Connection> {
    const id = toBase64Url(crypto.getRandomValues(new Uint8Array(12)));
    return new Promise<Connection>((resolve, reject) => {
      const dial = this.newDial(id, peerId, true, reject);
      dial.yieldToPeer = () => {
        // Our caller gets the connection the peer's dial brings, or a timeout if it never comes.
        const list = this.glareWaiters.get(peerId) ?? [];
        const timeoutMs = this.options.handshakeTimeoutMs ?? 15_000;
        const waiter: GlareWaiter = {
          resolve,
          reject,
          timer: setTimeout(() => {
            const rest = (this.glareWaiters.get(peerId) ?? []).filter((w) => w !== waiter);
            if (rest.length) this.glareWaiters.set(peerId, rest);
            else this.glareWaiters.delete(peerId);
            reject(
              fail('timeout', `both peers dialed; ${peerId}'s dial did not arrive within ${timeoutMs} ms`),
            );
          }, timeoutMs),
        };
        list.push(waiter);
        this.glareWaiters.set(peerId, list);
        this.endDial(dial, 'glare');
      };
      dial.link.once('open', () => {
        void (async () => {
          const fp = dial.link.fingerprints();
          const init = await InitiatorHandshake.start({
            identity: this.options.identity,
            peer: credentials.publicIdentity,
            psk: credentials.psk,
            channelBinding: dtlsChannelBinding(fp.local, fp.remote),
            ...(this.options.suite ? { suite: this.options.suite } : {}),
            ...(this.options.aead ? { aead: this.options.aead } : {}),
          });
          const records = dial.records;
          dial.link.sendReliable(init.hello);
          let result: HandshakeResult | undefined;
          while (!result) {
            const r = await init.receive(await records.next());
            for (const out of r.records) dial.link.sendReliable(out);
            result = r.result;
          }
          // A store that cannot record the confirmation just keeps offering both PSKs.
          if (credentials.pendingPsk)
            await this.options.peers.confirmPsk?.(peerId, credentials.psk)?.catch(() => {});
          resolve(this.established(dial, result, records.stop()));
        })().catch((err) => dial.abort(asP2PTLSError(err, 'closed')));
      });
    });
  }

  private newDial(id: string, peerId: PeerId, outgoing: boolean, reject: (e: P2PTLSError) => void): Dial {
    const o = this.options;
    const link = new PeerLink({
      rtc: o.rtc,
      initiator: outgoing,
      ...(o.iceServers ? { iceServers: o.iceServers } : {}),
      ...(o.iceTransportPolicy ? { iceTransportPolicy: o.iceTransportPolicy } : {}),
      ...(o.candidateFilter ? { candidateFilter: o.candidateFilter } : {}),
    });
    const timeoutMs = o.handshakeTimeoutMs ?? 15_000;
    const dial: Dial = {
      id,
      peerId,
      link,
      records: collect(link),
      outgoing,
      settled: false,
      timer: setTimeout(() => {
        // Say where it stuck: ICE/DTLS (no WebRTC link) or the p2ptls handshake (peer silent or slow).
        const stage = link.wasOpened ? 'the p2ptls handshake did not finish' : 'the WebRTC link did not open';
        dial.abort(
          fail('timeout', `no authenticated connection to ${peerId} after ${timeoutMs} ms: ${stage}`),
        );
      }, timeoutMs),
      abort: (error) => {
        // Failing before any p2ptls byte was exchanged (ICE, DTLS, the stack, a busy peer) is worth
        // another try; anything after is an answer.
        if (outgoing && !link.wasOpened) transientErrors.add(error);
        reject(error);
        this.endDial(dial, error.code);
      },
    };
    this.dials.set(id, dial);
    link.on('signal', (signal) => {
      this.send(peerId, { p2ptls: 1, kind: 'signal', dial: id, signal });
    });
    link.on('close', ({ error }) => {
      if (dial.settled) return;
      const abort = () => {
        if (!dial.settled)
          dial.abort(error ?? fail('closed', 'WebRTC connection closed during the handshake'));
      };
      // A peer that refuses us sends its reason through signaling and closes the link; the link close
      // usually wins the race. Give the reason a moment to arrive, so that `connect` can say why.
      if (outgoing && link.wasOpened) setTimeout(abort, ABORT_REASON_GRACE_MS);
      else abort();
    });
    return dial;
  }

  /** Ends a dial; with a reason, the link is closed and the peer told. */
  private endDial(dial: Dial, abortReason?: string): void {
    if (dial.settled) return;
    dial.settled = true;
    clearTimeout(dial.timer);
    this.dials.delete(dial.id);
    if (abortReason) {
      dial.link.close();
      this.send(dial.peerId, { p2ptls: 1, kind: 'abort', dial: dial.id, reason: abortReason });
    }
  }

  private send(peerId: PeerId, signal: DialSignal): void {
    this.options.signaling.sendSignal(peerId, signal).catch(() => {
      // Signaling is best effort here: a lost signal shows up as a handshake timeout.
    });
  }

  private established(dial: Dial, result: HandshakeResult, early: Early): Connection {
    this.endDial(dial);
    const connection = new Connection(dial.link, result, this.connectionOptions(), early);
    this.connections.add(connection);
    connection.on('close', () => this.connections.delete(connection));
    return connection;
  }

  private connectionOptions(): ConnectionOptions {
    const o = this.options;
    return {
      ...(o.session || o.aead ? { session: { ...o.session, ...(o.aead ? { aead: o.aead } : {}) } } : {}),
      ...(o.heartbeatIntervalMs ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
      ...(o.heartbeatTimeoutMs ? { heartbeatTimeoutMs: o.heartbeatTimeoutMs } : {}),
      ...(o.highWaterMark ? { highWaterMark: o.highWaterMark } : {}),
    };
  }

  private onSignal(from: PeerId, data: unknown): void {
    if (this.closed) return;
    const parsed = DialSignal.safeParse(data);
    if (!parsed.success) return; // Not ours, or malformed: the signaling layer already verified the sender.
    const msg = parsed.data;
    const dial = this.dials.get(msg.dial);
    if (dial) {
      if (dial.peerId !== from) return; // Someone else using a dial id they saw: ignore.
      if (msg.kind === 'abort' && msg.reason === 'glare' && dial.yieldToPeer) {
        // The peer saw both dials before we did; its dial wins (PROTOCOL.md §3.7).
        dial.yieldToPeer();
      } else if (msg.kind === 'abort') {
        // The reason is the peer's error code (signed by the peer, so authentic): keep it, so that a
        // refusal reads as `unknown_peer` or `bad_binder` here too.
        const code = KNOWN_CODES.has(msg.reason) ? (msg.reason as ErrorCode) : 'closed';
        dial.abort(fail(code, `peer aborted the dial: ${msg.reason}`));
      } else dial.link.signal(msg.signal);
      return;
    }
    if (msg.kind !== 'signal') return;
    // A new incoming dial. Glare: if we are dialing the same peer, the lower peerId's dial wins.
    for (const mine of this.dials.values()) {
      if (mine.outgoing && mine.peerId === from && !mine.link.isOpen) {
        if (glareWinner(this.peerId, from) === this.peerId) {
          this.send(from, { p2ptls: 1, kind: 'abort', dial: msg.dial, reason: 'glare' });
          return;
        }
        mine.yieldToPeer?.();
      }
    }
    const pending = [...this.dials.values()].filter((d) => !d.outgoing);
    // A total cap, and a per-peer one so that a single authenticated stranger cannot take every slot.
    if (
      pending.length >= (this.options.maxPendingIncoming ?? 32) ||
      pending.filter((d) => d.peerId === from).length >= MAX_PENDING_PER_PEER
    ) {
      this.send(from, { p2ptls: 1, kind: 'abort', dial: msg.dial, reason: 'busy' });
      return;
    }
    this.acceptDial(msg.dial, from, msg.signal);
  }

  private acceptDial(id: string, from: PeerId, firstSignal: unknown): void {
    let dial: Dial;
    try {
      dial = this.newDial(id, from, false, () => {});
    } catch (err) {
      // E.g. relay-only on a stack that cannot enforce it: refuse this dial, never throw into signaling.
      this.send(from, { p2ptls: 1, kind: 'abort', dial: id, reason: asP2PTLSError(err, 'closed').code });
      return;
    }
    dial.link.signal(firstSignal);
    dial.link.once('open', () => {
      void (async () => {
        const records = dial.records;
        let hello: IncomingHello;
        try {
          hello = parseClientHello(await records.next());
        } catch (err) {
          dial.abort(asP2PTLSError(err, 'closed'));
          return;
        }
        if (hello.initiatorId !== from) {
          dial.abort(
            fail('unknown_peer', `ClientHello claims ${hello.initiatorId} but the dial came from ${from}`),
          );
          return;
        }
        const accept = async (credentials: PeerCredentials, list?: PeerList): Promise<Connection> => {
          if (dial.settled) throw fail('closed', 'the dial is no longer pending');
          try {
            const fp = dial.link.fingerprints();
            // Key confirmation (PROTOCOL.md §9): either PSK of a re-paired peer may be the dialer's; a
            // wrong binder costs one HMAC, so trying both is cheap.
            const psks = credentials.pendingPsk
              ? [credentials.pendingPsk, credentials.psk]
              : [credentials.psk];
            let resp: ResponderHandshake | undefined;
            let psk = psks[0]!;
            for (const candidate of psks) {
              psk = candidate;
              try {
                resp = await ResponderHandshake.accept(hello, {
                  identity: this.options.identity,
                  peer: credentials.publicIdentity,
                  psk,
                  channelBinding: dtlsChannelBinding(fp.remote, fp.local),
                  ...(this.options.aead ? { aead: this.options.aead } : {}),
                });
                break;
              } catch (err) {
                if (candidate === psks[psks.length - 1] || !isP2PTLSError(err, 'bad_binder')) throw err;
              }
            }
            for (const r of resp!.records) dial.link.sendReliable(r);
            const result = await resp!.receive(await records.next());
            if (credentials.pendingPsk) await list?.confirmPsk?.(from, psk)?.catch(() => {});
            return this.established(dial, result, records.stop());
          } catch (err) {
            const error = asP2PTLSError(err, 'closed');
            dial.abort(error);
            throw error;
          }
        };
        const request = new ConnectionRequest(from, accept, (error) => dial.abort(error), this.options.peers);
        const waiters = this.glareWaiters.get(from);
        if (waiters?.length) {
          this.glareWaiters.delete(from);
          for (const w of waiters) clearTimeout(w.timer);
          request.verify().then(
            (c) => {
              for (const w of waiters) w.resolve(c);
            },
            (err) => {
              for (const w of waiters) w.reject(err);
            },
          );
          return;
        }
        if (![...this.claimers].some((claim) => claim(request))) this.requests.push(request);
      })();
    });
  }

  /**
   * Joins the mesh of paired peers in a signaling room (see {@link Mesh}): messages, broadcast and
   * collective operations (all-reduce, broadcast, barrier) over connections opened as needed. One mesh
   * per host at a time; dials from its members go to the mesh, not to {@link incoming}.
   */
  async joinMesh(room: string, options?: MeshOptions): Promise<Mesh> {
    if (this.closed) throw fail('closed', 'host is closed');
    if (this.mesh?.isOpen) throw fail('invalid_argument', `already in mesh ${this.mesh.room}`);
    const mesh = await Mesh.join(
      {
        peerId: this.peerId,
        signaling: this.options.signaling,
        peers: this.options.peers,
        connect: (peerId) => this.connect(peerId),
        claimIncoming: (claim) => {
          this.claimers.add(claim);
          return () => this.claimers.delete(claim);
        },
      },
      room,
      options,
    );
    this.mesh = mesh;
    return mesh;
  }

  /** Closes every connection and pending dial, and stops listening. The signaling client stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.mesh?.close();
    this.unsubscribe();
    if (this.ownsPairing) this.pairing.close();
    this.requests.end();
    for (const d of [...this.dials.values()]) d.abort(fail('closed', 'host closed'));
    for (const w of [...this.glareWaiters.values()].flat()) {
      clearTimeout(w.timer);
      w.reject(fail('closed', 'host closed'));
    }
    this.glareWaiters.clear();
    await Promise.all([...this.keepers].map((k) => k.close('host closed', 1)));
    await Promise.all([...this.connections].map((c) => c.close('host closed', 1)));
  }
}

/** Buffers a link's reliable records and datagrams until the connection takes over. */
function collect(link: PeerLink): Collector {
  const early: Early = { reliable: [], datagrams: [] };
  const waiting: ((r: Uint8Array) => void)[] = [];
  const offReliable = link.on('reliable', (r) => {
    const w = waiting.shift();
    if (w) w(r);
    // Before the handshake completes only a few records are legitimate; a flood is dropped (the gap
    // then fails authentication and the dial is aborted).
    else if (early.reliable.length < MAX_EARLY_RECORDS) early.reliable.push(r);
  });
  const offDatagram = link.on('datagram', (d) => {
    if (early.datagrams.length < MAX_EARLY_DATAGRAMS) early.datagrams.push(d);
  });
  return {
    next: () =>
      new Promise<Uint8Array>((resolve) => {
        const r = early.reliable.shift();
        if (r) resolve(r);
        else waiting.push(resolve);
      }),
    stop: (): Early => {
      offReliable();
      offDatagram();
      return early;
    },
  };
}
