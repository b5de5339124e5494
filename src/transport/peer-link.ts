/**
 * One WebRTC peer connection carrying the two p2ptls channels: simple-peer's own data channel (reliable,
 * ordered: TCP mode) and a negotiated unordered channel with `maxRetransmits: 0` (SLLP mode), created on
 * the same RTCPeerConnection so no renegotiation is needed.
 */
import SimplePeer from 'simple-peer';
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import { TypedEmitter } from '../util/emitter.js';
import { logger } from '../util/log.js';
import { Pending } from '../util/pending.js';
import { sdpFingerprint } from './channel-binding.js';
import { type CandidateFilter, candidateAddress, candidateLine, type RtcImplementation } from './rtc.js';

/** SCTP stream id of the SLLP channel; simple-peer's channel takes the low ids. */
export const SLLP_CHANNEL_ID = 1000;
const SLLP_CHANNEL_LABEL = 'p2ptls-sllp';
/** Hard ceiling of the reliable channel's send queue, below every stack's own limit. */
const MAX_SEND_QUEUE = 8 * 1024 * 1024;

export interface PeerLinkOptions {
  rtc: RtcImplementation;
  /** True on the side that makes the offer (the dialer). */
  initiator: boolean;
  iceServers?: RTCIceServer[];
  /** `'relay'` forces TURN. */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Drops candidates (sent and received) whose address fails it. */
  candidateFilter?: CandidateFilter;
  /** An unused RTCPeerConnection made earlier with {@link peerConnectionConfig} of these options. */
  peerConnection?: RTCPeerConnection;
  /**
   * Called once, just before the link's RTCPeerConnection closes, whatever closes it (our close, the
   * peer's, a failure): the last moment this connection still counts as open to the WebRTC stack.
   */
  beforeClose?: () => void;
}

/** The RTCConfiguration a link's RTCPeerConnection is made with. */
export function peerConnectionConfig(options: Omit<PeerLinkOptions, 'initiator'>): RTCConfiguration {
  return {
    iceServers: options.iceServers ?? [],
    ...(options.iceTransportPolicy ? { iceTransportPolicy: options.iceTransportPolicy } : {}),
  };
}

/** What the transport reports about a live connection. */
export interface LinkStats {
  /** Type of the selected local / remote candidates: host, srflx, prflx or relay. */
  localCandidateType?: string;
  remoteCandidateType?: string;
  /** ICE round-trip time of the selected pair, ms. */
  rttMs?: number;
  bytesSent?: number;
  bytesReceived?: number;
}

export interface PeerLinkEvents {
  /** A signaling message for the other side (offer, answer, candidate). */
  signal: unknown;
  /** Both channels are open. */
  open: undefined;
  reliable: Uint8Array;
  datagram: Uint8Array;
  /** ICE connection state changes: 'disconnected' may recover, 'failed' does not. */
  state: string;
  /** The reliable channel's send buffer fell below the low-water mark. */
  drain: undefined;
  close: { error?: P2PTLSError };
}

const log = logger('link');

/**
 * A candidate as every stack takes it. node-datachannel hands out its candidates as SDP attribute lines
 * (`a=candidate:…`) without `sdpMLineIndex`, and @roamhq/wrtc refuses those ("Expected a 32-bit
 * integer"): before this, a wrtc peer dropped every trickled candidate of a node-datachannel peer and
 * connected only through the peer-reflexive one its connectivity checks revealed
 * (test/host/candidates.test.ts). A p2ptls link has one media section, the data channels' (index 0).
 */
function normalCandidate(c: RTCIceCandidateInit): RTCIceCandidateInit {
  return {
    ...c,
    ...(c.candidate === undefined ? {} : { candidate: candidateLine(c.candidate) }),
    sdpMLineIndex: c.sdpMLineIndex ?? 0,
  };
}

/**
 * The largest message an SDP's sender accepts on its data channels (RFC 8841): its `a=max-message-size`,
 * 64 KiB where there is none, and no limit for 0 (then the other side's decides).
 */
function sdpMaxMessageSize(sdp: string): number {
  const m = /^a=max-message-size:(\d+)\s*$/m.exec(sdp);
  if (!m) return 65536;
  const size = Number(m[1]);
  return size === 0 ? Number.POSITIVE_INFINITY : size;
}

/**
 * Replaces `pc[name]` on that one connection with `wrap(original)`, the original bound to it: how a link
 * sees the calls simple-peer makes on its RTCPeerConnection, whichever stack made it.
 */
function tapMethod<A extends unknown[], R>(
  pc: RTCPeerConnection,
  name: keyof RTCPeerConnection,
  wrap: (original: (...args: A) => R) => (...args: A) => R,
): void {
  const original = (pc[name] as (...args: A) => R).bind(pc);
  Object.defineProperty(pc, name, { configurable: true, value: wrap(original) });
}

/**
 * What a dial and a connection use of a link: {@link PeerLink} over WebRTC, or the in-memory link of
 * src/testing/in-memory-link.ts that lets tests lose, hold and cut traffic deterministically.
 */
export interface Link {
  on<K extends keyof PeerLinkEvents>(event: K, listener: (value: PeerLinkEvents[K]) => void): () => void;
  /** Both channels are open and the link was not closed. */
  readonly isOpen: boolean;
  /** Both channels ever opened (true even after close). */
  readonly wasOpened: boolean;
  readonly maxMessageSize: number;
  /** Bytes queued on the reliable channel. */
  readonly bufferedAmount: number;
  /** Bytes of datagrams queued on the datagram channel, waiting for the transport to take them. */
  readonly datagramsBuffered: number;
  settle(): void;
  signal(data: unknown): void;
  fingerprints(): { local: string; remote: string };
  /**
   * Our DTLS certificate's fingerprint (`sha-256 AB:…`), as soon as the stack has made our offer or
   * answer: possibly before that SDP is emitted as a `signal`, which must name the same one. Rejects if
   * the link closes first or its SDP names none.
   */
  localFingerprint(): Promise<string>;
  /**
   * The fingerprint (`sha-256 AB:…`) of the certificate the peer presented in the DTLS handshake of this
   * live connection, where the stack reports it (browsers and @roamhq/wrtc through getStats); undefined
   * where it does not (node-datachannel). PROTOCOL.md §8.
   */
  remoteCertificate(): Promise<string | undefined>;
  /** When the set-up stages were reached. */
  readonly timeline: LinkTimeline;
  /** Throws `closed` when the channel is not open or refuses the record. */
  sendReliable(record: Uint8Array): void;
  /**
   * Sends `records` on the reliable channel ahead of everything else: at once if the channel is open,
   * else the moment it opens, which can be before the link reports `open` (that waits for the datagram
   * channel too). Records still waiting when the link closes are dropped; a channel that refuses them
   * closes the link (`closed`). Throws `closed` on a link already closed.
   */
  sendFirst(records: Uint8Array[]): void;
  /**
   * True when {@link sendReliable} is done with the record once it returns (sent or copied), so the
   * caller may write the next record into the same buffer.
   */
  readonly copiesOnSend: boolean;
  /** False when the datagram was dropped locally. Never throws. */
  sendDatagram(record: Uint8Array): boolean;
  stats(): Promise<LinkStats>;
  close(): void;
}

/**
 * When the stages of a link's set-up were reached (`performance.now()`), for the set-up split of
 * bench:transport: ICE connected, DTLS connected (the peer connection's `connected`), both channels open.
 */
export interface LinkTimeline {
  created: number;
  iceConnected?: number;
  dtlsConnected?: number;
  /** The reliable channel open (where the link sees it before the whole link is). */
  reliableOpen?: number;
  open?: number;
}

/** The parts of simple-peer's instance it does not type. */
interface SimplePeerInternals {
  _pc: RTCPeerConnection;
  _channel: RTCDataChannel | null;
}

type StatsCallback = (err: Error | null, reports?: Record<string, unknown>[]) => void;

/**
 * The peer's DTLS certificate fingerprint named by a connection's stats (the `transport`'s
 * `remoteCertificateId` → `certificate`), normalised as in PROTOCOL.md §8; undefined where the stack
 * does not report it.
 */
function remoteCertificateIn(stats: Record<string, unknown>[]): string | undefined {
  const byId = new Map<unknown, Record<string, unknown>>();
  for (const v of stats) byId.set(v.id, v);
  for (const v of stats) {
    if (v.type !== 'transport' || typeof v.remoteCertificateId !== 'string') continue;
    const cert = byId.get(v.remoteCertificateId);
    const algorithm = cert?.fingerprintAlgorithm;
    const fingerprint = cert?.fingerprint;
    if (typeof algorithm === 'string' && typeof fingerprint === 'string') {
      return `${algorithm.toLowerCase()} ${fingerprint.toUpperCase()}`;
    }
  }
  return undefined;
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (typeof data === 'string') return new TextEncoder().encode(data);
  throw fail('malformed', 'unexpected data channel message type');
}

function filterSignal(data: unknown, keep: CandidateFilter | undefined): unknown {
  if (!keep || typeof data !== 'object' || data === null) return data;
  const d = data as { type?: string; sdp?: string; candidate?: { candidate?: string } };
  if (d.type === 'candidate') {
    const line = d.candidate?.candidate ?? '';
    const addr = candidateAddress(line);
    return line === '' || (addr !== undefined && keep(addr, line)) ? data : null;
  }
  if (typeof d.sdp === 'string') {
    const sdp = d.sdp
      .split('\r\n')
      .filter((l) => {
        if (!l.startsWith('a=candidate:')) return true;
        const addr = candidateAddress(l);
        return addr !== undefined && keep(addr, l);
      })
      .join('\r\n');
    return { ...d, sdp };
  }
  return data;
}

/**
 * `rtc` whose RTCPeerConnection constructor hands out `pc`: simple-peer makes its connection with
 * `new wrtc.RTCPeerConnection(config)`, and a constructor that returns an object makes `new` return it.
 */
function madeAlready(rtc: RtcImplementation, pc: RTCPeerConnection): RtcImplementation {
  const RTCPeerConnection = function PremadePeerConnection() {
    return pc;
  } as unknown as RtcImplementation['RTCPeerConnection'];
  return { ...rtc, RTCPeerConnection };
}

/** A WebRTC connection to one peer with both p2ptls channels. */
export class PeerLink extends TypedEmitter<PeerLinkEvents> implements Link {
  /** RTCDataChannel.send copies the data it queues (browsers per the spec, @roamhq/wrtc, node-datachannel). */
  readonly copiesOnSend = true;
  private readonly peer: SimplePeer.Instance;
  private readonly internals: SimplePeerInternals;
  private readonly sllp: RTCDataChannel;
  private readonly filter: CandidateFilter | undefined;
  private opened = false;
  private closed = false;
  private reliableOpen = false;
  private sllpOpen = false;
  /** What {@link sendFirst} was given before the reliable channel opened. */
  private firstRecords: Uint8Array[] = [];
  /** Bytes handed to the reliable channel since the last look at bufferedAmount (it may lag behind send()). */
  private unaccounted = 0;
  /** The SCTP max-message-size, set once when the link opens: after a teardown the stack has no SCTP. */
  private maxMessage = 65536;
  /**
   * The peer's candidates until the remote description is set, then undefined: they are added at once
   * from then on (see {@link signal}, {@link tapRemoteDescription}).
   */
  private pendingCandidates: RTCIceCandidateInit[] | undefined = [];
  /** The `max-message-size` of our SDP and of the peer's, as they pass (see {@link maybeOpen}). */
  private readonly sdpMaxMessage: { local?: number; remote?: number } = {};
  readonly timeline: LinkTimeline = { created: performance.now() };
  /** The peer's DTLS certificate fingerprint, from simple-peer's stats at connect or asked for (see {@link teeStats}). */
  private liveCertificate: Promise<string | undefined> | undefined;
  /** Ours, from the first offer or answer the stack makes (see {@link tapDescriptions}). */
  private readonly ownFingerprint = new Pending<string>();
  private readonly rtc: RtcImplementation;

  constructor(options: PeerLinkOptions) {
    super();
    this.rtc = options.rtc;
    if (options.iceTransportPolicy === 'relay' && options.rtc.ignoresRelayPolicy) {
      throw fail(
        'invalid_argument',
        `the ${options.rtc.name} WebRTC stack does not enforce relay-only ICE (it would reveal host addresses); use @roamhq/wrtc`,
      );
    }
    const userFilter = options.candidateFilter;
    // Some stacks (node-datachannel) do not enforce `iceTransportPolicy: 'relay'`. Enforce it here on the
    // candidates both ways: ours never reveal a host address, and only the peer's relay candidates are
    // tried, so every path goes through a TURN server.
    this.filter =
      options.iceTransportPolicy === 'relay'
        ? (address, line) => / typ relay( |$)/.test(line) && (userFilter ? userFilter(address, line) : true)
        : userFilter;
    this.peer = new SimplePeer({
      initiator: options.initiator,
      trickle: true,
      wrtc: options.peerConnection ? madeAlready(options.rtc, options.peerConnection) : options.rtc,
      config: peerConnectionConfig(options),
      channelName: 'p2ptls-tcp',
    });
    this.internals = this.peer as unknown as SimplePeerInternals;
    this.sendFirstOnOpen();
    this.sllp = this.internals._pc.createDataChannel(SLLP_CHANNEL_LABEL, {
      negotiated: true,
      id: SLLP_CHANNEL_ID,
      ordered: false,
      maxRetransmits: 0,
    });
    this.sllp.binaryType = 'arraybuffer';
    this.sllp.onopen = () => {
      this.sllpOpen = true;
      this.maybeOpen();
    };
    this.sllp.onmessage = (e: MessageEvent) => {
      try {
        this.emit('datagram', toBytes(e.data));
      } catch {
        // A datagram we cannot even read is dropped like any other bad datagram.
      }
    };
    this.peer.on('signal', (data: unknown) => {
      const sdp = (data as { sdp?: unknown } | null)?.sdp;
      if (typeof sdp === 'string') {
        this.noteOwnSdp(sdp, true);
        this.sdpMaxMessage.local = sdpMaxMessageSize(sdp);
      }
      const kept = filterSignal(data, this.filter);
      if (kept !== null) this.emit('signal', kept);
    });
    this.peer.on('connect', () => {
      this.reliableOpen = true;
      const ch = this.internals._channel;
      if (ch) {
        ch.bufferedAmountLowThreshold = 256 * 1024;
        ch.addEventListener('bufferedamountlow', () => this.emit('drain', undefined));
      }
      this.maybeOpen();
    });
    this.peer.on('data', (data: unknown) => {
      let bytes: Uint8Array;
      try {
        bytes = toBytes(data);
      } catch {
        return;
      }
      this.emit('reliable', bytes);
    });
    this.peer.on('iceStateChange', (ice: string) => {
      if (ice === 'connected' || ice === 'completed') this.timeline.iceConnected ??= performance.now();
      this.emit('state', ice);
    });
    // simple-peer owns the handler; chain behind it to see when DTLS is up.
    const pc = this.internals._pc;
    const simplePeerHandler = pc.onconnectionstatechange;
    pc.onconnectionstatechange = (event: Event) => {
      simplePeerHandler?.call(pc, event);
      if (pc.connectionState === 'connected') this.timeline.dtlsConnected ??= performance.now();
    };
    this.teeStats();
    this.tapDescriptions(pc);
    this.tapRemoteDescription(pc);
    if (options.beforeClose) this.tapClose(pc, options.beforeClose);
    this.peer.on('error', (err: Error & { code?: string }) => {
      this.shutdown(fail('closed', `WebRTC connection failed: ${err.code ?? err.message}`, err));
    });
    this.peer.on('close', () => this.shutdown());
  }

  /**
   * The link's max message size comes from the two SDPs (RFC 8841: what each side can receive) when both
   * were seen, as WebRTC's `sctp.maxMessageSize` is computed, and from that getter only otherwise. Why:
   * on @roamhq/wrtc the getter is a blocking call into WebRTC's signaling thread, which is busy as a
   * link opens: it held the event loop 0.9 ms per p2ptls set-up (0.2 ms per raw one), both peers in one
   * process (`--cpu-prof` restricted to 60 set-ups). Without it, alternating with it set-up by set-up
   * (100 pairs each, twice): p2ptls set-up 20.26 → 20.03 and 24.13 → 23.50 ms, ratio to raw 0.906 →
   * 0.918 and 0.894 → 0.899. Both Node stacks agree with the getter whatever the peer's SDP says
   * (test/host/max-message-size.test.ts).
   */
  private maybeOpen(): void {
    if (this.opened || this.closed || !this.reliableOpen || !this.sllpOpen) return;
    const { local, remote } = this.sdpMaxMessage;
    const fromSdp = local !== undefined && remote !== undefined ? Math.min(local, remote) : Number.NaN;
    const size = Number.isFinite(fromSdp) ? fromSdp : this.internals._pc?.sctp?.maxMessageSize;
    if (size && Number.isFinite(size) && size > 0) this.maxMessage = size;
    this.flushFirst();
    if (this.closed) return;
    this.opened = true;
    this.timeline.open = performance.now();
    this.emit('open', undefined);
  }

  private shutdown(error?: P2PTLSError): void {
    if (this.closed) return;
    this.closed = true;
    this.firstRecords = [];
    if (!this.ownFingerprint.settled) {
      this.ownFingerprint.reject(fail('closed', 'the WebRTC link closed before it made its offer or answer'));
    }
    // simple-peer arms a 5 s "ICE complete" timer at the first candidate and never clears it, not even
    // in destroy(): it would keep a finished Node process alive for those seconds.
    clearTimeout(
      (this.peer as unknown as { _iceCompleteTimer?: ReturnType<typeof setTimeout> })._iceCompleteTimer,
    );
    this.emit('close', error ? { error } : {});
  }

  get isOpen(): boolean {
    return this.opened && !this.closed;
  }

  /** Whether both channels ever opened (true even after close). */
  get wasOpened(): boolean {
    return this.opened;
  }

  /**
   * Feeds a signaling message from the other side. Bad input is reported, never thrown past here.
   *
   * An ICE candidate does not go through simple-peer: it is added once the remote description is set,
   * kept until it is. Why: simple-peer's `signal()` asks the connection for its remote description to
   * decide, twice per candidate, and on @roamhq/wrtc each ask is a blocking call into WebRTC's
   * signaling thread, which is busy while a link is being set up: 1.45 ms of the event loop
   * per p2ptls set-up and 0.62 per raw one, both peers in one process (`--cpu-prof` restricted to 60
   * set-ups), where the candidates follow the offer and the answer closely. Alternating with simple-peer's
   * way set-up by set-up (100 pairs each, twice): p2ptls set-up 21.13 → 19.88 and 21.69 → 20.29 ms; the
   * raw baseline, over the same links, 18.48 → 18.24 and 19.11 → 18.11 ms (test/host/candidates.test.ts
   * checks that candidates from before and after the remote description are both used).
   */
  signal(data: unknown): void {
    if (this.closed) return;
    const kept = filterSignal(data, this.filter);
    if (kept === null) return;
    const d = kept as { sdp?: unknown; candidate?: unknown } | undefined;
    if (typeof d?.sdp === 'string') this.sdpMaxMessage.remote = sdpMaxMessageSize(d.sdp);
    if (d?.candidate && typeof d.candidate === 'object' && !d.sdp) {
      // addCandidate never throws: no try needed.
      const candidate = d.candidate as RTCIceCandidateInit;
      if (this.pendingCandidates) this.pendingCandidates.push(candidate);
      else this.addCandidate(candidate);
      return;
    }
    try {
      this.peer.signal(kept as SimplePeer.SignalData);
    } catch (err) {
      this.shutdown(fail('malformed', 'bad signaling message from peer', err));
    }
  }

  /** Largest message the transport accepts (SCTP max-message-size), or 64 KiB if the stack does not say. */
  get maxMessageSize(): number {
    return this.maxMessage;
  }

  /** DTLS fingerprints from the local and remote SDP. */
  fingerprints(): { local: string; remote: string } {
    const pc = this.internals._pc;
    if (this.closed || !pc) throw fail('closed', 'the WebRTC link is closed');
    const local = pc.localDescription?.sdp;
    const remote = pc.remoteDescription?.sdp;
    if (!local || !remote) throw fail('closed', 'no session descriptions yet');
    return { local: sdpFingerprint(local), remote: sdpFingerprint(remote) };
  }

  localFingerprint(): Promise<string> {
    return this.ownFingerprint.promise;
  }

  /**
   * Our fingerprint from the SDP the stack's createOffer or createAnswer returns: the handshake binds it
   * (PROTOCOL.md §8), and simple-peer emits that SDP only once setLocalDescription is done, 1.0–2.0 ms
   * later on a wrtc responder (traced with it in its own process: createAnswer done at 3.3–7.5 ms after
   * the offer arrived, setLocalDescription done at 4.6–9.5 ms), time the responder's signature now
   * overlaps. Both name the connection's one certificate; the emitted signal is the fallback, and the dial
   * checks that the SDP it sends names the fingerprint it bound.
   */
  private tapDescriptions(pc: RTCPeerConnection): void {
    for (const method of ['createOffer', 'createAnswer'] as const) {
      tapMethod<[RTCOfferOptions?], Promise<RTCSessionDescriptionInit>>(
        pc,
        method,
        (make) => (options) =>
          make(options).then((description) => {
            if (description?.sdp) this.noteOwnSdp(description.sdp, false);
            return description;
          }),
      );
    }
  }

  /** Runs `hook` once before the connection's own close(), which simple-peer calls on every teardown. */
  private tapClose(pc: RTCPeerConnection, hook: () => void): void {
    let called = false;
    tapMethod<[], void>(pc, 'close', (close) => () => {
      if (!called) {
        called = true;
        try {
          hook();
        } catch (err) {
          log('beforeClose failed: %s', String(err));
        }
      }
      close();
    });
  }

  /**
   * Adds a peer's candidate ({@link normalCandidate}), made an RTCIceCandidate of this stack first as
   * simple-peer does. One the stack refuses is left out, as simple-peer does on a stack that does not parse
   * candidates' addresses (@roamhq/wrtc), but traced instead of `console.warn`ed: the usual refusal is a
   * candidate still in flight when the link closed (11–21 warnings in one bench:transport set-up run of
   * 120 links). Never throws: it runs inside setRemoteDescription's reaction, whose failure fails the link.
   */
  private addCandidate(candidate: RTCIceCandidateInit): void {
    const refused = (err: unknown) =>
      log('candidate refused%s: %s', this.closed ? ' (link closed)' : '', String(err));
    try {
      this.internals._pc
        .addIceCandidate(new this.rtc.RTCIceCandidate(normalCandidate(candidate)))
        .catch(refused);
    } catch (err) {
      refused(err);
    }
  }

  /** Once simple-peer has set the remote description, the candidates kept until then are added. */
  private tapRemoteDescription(pc: RTCPeerConnection): void {
    tapMethod<[RTCSessionDescriptionInit], Promise<void>>(
      pc,
      'setRemoteDescription',
      (set) => (description) =>
        set(description).then(() => {
          const kept = this.pendingCandidates ?? [];
          this.pendingCandidates = undefined;
          for (const candidate of kept) this.addCandidate(candidate);
        }),
    );
  }

  /** The first SDP naming a fingerprint settles ours; the emitted one (`final`) settles it either way. */
  private noteOwnSdp(sdp: string, final: boolean): void {
    if (this.ownFingerprint.settled) return;
    try {
      this.ownFingerprint.resolve(sdpFingerprint(sdp));
    } catch (err) {
      if (final) this.ownFingerprint.reject(err as P2PTLSError);
    }
  }

  remoteCertificate(): Promise<string | undefined> {
    if (this.liveCertificate === undefined) {
      const pc = this.internals._pc;
      if (this.closed || !pc) return Promise.reject(fail('closed', 'the WebRTC link is closed'));
      this.liveCertificate = pc.getStats().then((report: RTCStatsReport) => {
        const stats: Record<string, unknown>[] = [];
        report.forEach((v: Record<string, unknown>) => {
          stats.push(v);
        });
        return remoteCertificateIn(stats);
      });
    }
    return this.liveCertificate;
  }

  /**
   * simple-peer reads the connection's stats once, when ICE and the reliable channel are up, just before
   * it reports `connect` (it looks for the selected candidate pair). Those stats also name the peer's
   * DTLS certificate, so {@link remoteCertificate} takes it from them instead of asking again. Why: each
   * getStats blocks the JavaScript thread on wrtc's signaling thread, 0.2–2.2 ms during a set-up (timed
   * per native call over 12 wrtc dials), and a p2ptls set-up made two per side where raw WebRTC makes one.
   * (Its effect on the set-up time is within bench:transport's noise; the CPU it saves is not.)
   */
  private teeStats(): void {
    const peer = this.peer as unknown as { getStats(cb: StatsCallback): void };
    const getStats = peer.getStats.bind(peer);
    peer.getStats = (cb) =>
      getStats((err, reports) => {
        if (!err && reports && this.liveCertificate === undefined && !this.closed) {
          const live = remoteCertificateIn(reports);
          if (live !== undefined) this.liveCertificate = Promise.resolve(live);
        }
        cb(err, reports);
      });
  }

  /** Bytes queued on the reliable channel, including sends the channel may not yet count. */
  get bufferedAmount(): number {
    return (this.internals._channel?.bufferedAmount ?? 0) + this.unaccounted;
  }

  get datagramsBuffered(): number {
    return this.sllp.bufferedAmount;
  }

  /**
   * The dialer's reliable channel exists from the start (simple-peer makes it): what {@link sendFirst}
   * holds leaves in that channel's `open` event, ahead of simple-peer's own handler. Why: simple-peer
   * reports `connect` only after a getStats call, and on @roamhq/wrtc that call blocks the thread on the
   * signaling thread; the link reports `open` after that and after the datagram channel. From the
   * channel's open to the link's, the dialer's side: 1.3 ms median (0.8–4.2), the dial's InitiatorAuth
   * leaving 2.1 ms after the channel opened (20 wrtc set-ups, responder in its own process,
   * bench:transport `--only setup --processes 2`). Sent here instead, that set-up's ratio to raw went
   * 0.92 (0.87–0.95) → 0.94 (0.91–0.99), 27.75 → 26.7 ms, 12 runs alternating with the version before
   * (docs/BENCHMARKS.md "Set-up"). The answerer's channel is announced by its peer; what it was given
   * leaves as the link opens (a p2ptls responder gives it nothing).
   */
  private sendFirstOnOpen(): void {
    const ch = this.internals._channel;
    if (!ch) return;
    const simplePeerHandler = ch.onopen;
    ch.onopen = (event: Event) => {
      this.timeline.reliableOpen ??= performance.now();
      this.flushFirst();
      simplePeerHandler?.call(ch, event);
    };
  }

  sendFirst(records: Uint8Array[]): void {
    if (this.closed) throw fail('closed', 'the WebRTC link is closed');
    this.firstRecords.push(...records);
    if (this.internals._channel?.readyState === 'open') this.flushFirst();
  }

  /** Sends what {@link sendFirst} holds; a channel that refuses it closes the link. */
  private flushFirst(): void {
    const records = this.firstRecords;
    this.firstRecords = [];
    try {
      for (const r of records) this.sendReliable(r);
    } catch (err) {
      this.closeWith(asP2PTLSError(err, 'closed'));
    }
  }

  /** Forgets our own count once the event loop has turned and `bufferedAmount` has caught up. */
  settle(): void {
    this.unaccounted = 0;
  }

  sendReliable(record: Uint8Array): void {
    const ch = this.internals._channel;
    if (this.closed || ch?.readyState !== 'open') throw fail('closed', 'reliable channel is not open');
    // Some stacks drop messages silently once their send queue is full (@roamhq/wrtc at 16 MiB), which
    // would surface later as a gap. Refuse loudly instead; flow control keeps us far below this.
    if (ch.bufferedAmount + this.unaccounted + record.length > MAX_SEND_QUEUE) {
      throw fail('closed', 'reliable channel send queue overflow');
    }
    try {
      ch.send(record as Uint8Array<ArrayBuffer>);
    } catch (err) {
      // The stack refused it (libdatachannel: "Sending failed, errno=…" while the association goes).
      throw fail('closed', `the reliable channel refused a record: ${(err as Error).message}`, err);
    }
    this.unaccounted += record.length;
  }

  /**
   * Sends a datagram; returns false (dropped) if the channel is not open, its buffer is full, or the stack
   * refused it. Never throws: SLLP drops like the network would.
   */
  sendDatagram(record: Uint8Array, maxBuffered = 1024 * 1024): boolean {
    if (this.closed || this.sllp.readyState !== 'open' || this.sllp.bufferedAmount > maxBuffered)
      return false;
    try {
      this.sllp.send(record as Uint8Array<ArrayBuffer>);
      return true;
    } catch {
      // libdatachannel throws "Sending failed, errno=2/32" as the association goes down.
      return false;
    }
  }

  async stats(): Promise<LinkStats> {
    if (this.closed || !this.internals._pc) return {};
    const report = await this.internals._pc.getStats();
    const byId = new Map<string, Record<string, unknown>>();
    report.forEach((v: Record<string, unknown>) => {
      byId.set(v.id as string, v);
    });
    let pair: Record<string, unknown> | undefined;
    for (const v of byId.values()) {
      if (v.type === 'transport' && typeof v.selectedCandidatePairId === 'string') {
        pair = byId.get(v.selectedCandidatePairId);
      }
    }
    if (!pair) {
      for (const v of byId.values()) {
        if (v.type === 'candidate-pair' && v.state === 'succeeded' && (v.nominated || v.selected)) pair = v;
      }
    }
    if (!pair) return {};
    const local = byId.get(pair.localCandidateId as string);
    const remote = byId.get(pair.remoteCandidateId as string);
    const rtt = pair.currentRoundTripTime;
    return {
      localCandidateType: local?.candidateType as string | undefined,
      remoteCandidateType: remote?.candidateType as string | undefined,
      ...(typeof rtt === 'number' ? { rttMs: rtt * 1000 } : {}),
      bytesSent: pair.bytesSent as number | undefined,
      bytesReceived: pair.bytesReceived as number | undefined,
    };
  }

  close(): void {
    this.closeWith(undefined);
  }

  private closeWith(error: P2PTLSError | undefined): void {
    if (this.closed) return;
    try {
      this.sllp.close();
    } catch {}
    this.peer.destroy();
    this.shutdown(error);
  }
}
