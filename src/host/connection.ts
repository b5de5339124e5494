/**
 * An authenticated p2ptls connection to one peer: TCP mode (`send`, messages) and SLLP mode
 * (`datagrams`) over one WebRTC link, with flow control, heartbeat and a close handshake.
 *
 * Lifecycle (one owner: {@link Connection.state}; the wire states are the Session's, PROTOCOL.md §5.3):
 *
 *   open ──close()──▶ draining ──outbox sent, CLOSE sealed──▶ closing ──peer's CLOSE──▶ closed
 *   open | draining ──peer's CLOSE──▶ closed          (we answer with CLOSE and CLOSE_ACK)
 *   any ──transport ends before the peer's CLOSE──▶ closed, `truncated`
 *   any ──tampering, heartbeat or flush timeout──▶ closed, with that error
 *
 * Once closed, the WebRTC link is kept until the peer's CLOSE_ACK says it has everything (or the peer
 * tears the link down, or a bound runs out): destroying it earlier would drop SCTP packets in flight.
 */
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { HandshakeResult } from '../protocol/handshake.js';
import {
  CloseCode,
  type CloseInfo,
  type DatagramResult,
  frameMessages,
  type PlainRecord,
  Session,
  type SessionEvent,
  type SessionOptions,
} from '../protocol/index.js';
import type { Link, LinkStats } from '../transport/peer-link.js';
import { utf8 } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { type Log, logger, shortId } from '../util/log.js';
import { AsyncQueue } from './async-queue.js';

/**
 * Record plaintext over WebRTC unless the caller chooses: 128 KiB + 256 B, clamped below the negotiated
 * SCTP max-message-size (Chromium, @roamhq/wrtc and node-datachannel all negotiate 256 KiB; a stack that
 * offers less gets less). The protocol's own default is 16 KiB; over a data channel each record costs an
 * SCTP message and an AEAD call: 64 KiB records measured 0.69 → 0.99 of raw channel throughput for
 * 64 KiB messages (bench:transport). At this size a 64 KiB message is one record (at 64 KiB − 256 B it
 * was two, and a copy to join them) and a 256 KiB one two, length prefix included. Not the full 256 KiB:
 * a datagram can wait behind one whole record in SCTP's queue.
 */
const DEFAULT_RECORD_SIZE = 128 * 1024 + 256;

/**
 * The default window of {@link Connection.probe} is 8 round trips, within these bounds: at least a
 * second, because a live peer on a loaded machine must not fail it (a false alarm leaves a live mesh
 * member out of an operation), and at most 5 s, so that one slow pong does not make it a heartbeat.
 */
const PROBE_MIN_MS = 1_000;
const PROBE_MAX_MS = 5_000;

/** Header and tag of a reliable record (PROTOCOL.md §5.1). */
const RECORD_OVERHEAD = 2 + 16;

/**
 * How long a closed connection keeps its link for the peer's CLOSE_ACK when nothing else bounds it (the
 * peer closed first, or a fatal error sent an alert). Only resources wait on it: the close is already
 * decided, and a peer that has not seen our CLOSE by then reports `truncated`, never a clean end.
 */
const LINGER_MS = 2_000;

/** Datagrams an initiator holds until the responder has been heard (about half a round trip). */
const MAX_HELD_DATAGRAMS = 64;

/**
 * Received reliable records decrypting at once; later ones wait here, undecrypted. An asynchronous AEAD
 * (WebCrypto) runs its calls in arrival order on a thread pool, so a datagram's decryption queued behind
 * a whole window of bulk records; with four, it waits for four at most (issue #14: 1 fps of SLLP video
 * next to an unpaced transfer in bench:browser). Four keep the pool busy: Node's has four threads.
 */
const MAX_RECORDS_DECRYPTING = 4;

/** Datagrams count as flowing for this long after the last one was sent. */
const DATAGRAMS_FLOWING_MS = 500;

/** Tunables of a connection. */
export interface ConnectionOptions {
  session?: SessionOptions;
  /** Send a heartbeat ping this often (default 2 000 ms). */
  heartbeatIntervalMs?: number;
  /** Close with `timeout` when nothing authenticated has arrived for this long (default 10 000 ms). */
  heartbeatTimeoutMs?: number;
  /** Close with `timeout` when a fragmented message makes no progress for this long (default 30 000 ms). */
  reassemblyTimeoutMs?: number;
  /** Stop sealing data records while the reliable channel holds this many bytes (default 1 MiB). */
  highWaterMark?: number;
  /** Datagrams received and not yet read are dropped (and counted) beyond this many bytes (default 4 MiB). */
  datagramQueueBytes?: number;
}

/** One received datagram (SLLP mode). */
export interface Datagram {
  data: Uint8Array;
  /** Sender's sequence number: gaps are losses, smaller-than-previous is reordering. */
  seq: number;
  /** Sender's clock when it was sent (ms since 1970). */
  sentAt: number;
  epoch: number;
}

/** Options of {@link Connection.close}. */
export interface CloseOptions {
  /**
   * How long to wait for queued messages to go out and for the peer's CLOSE (default 5 000 ms). When it
   * runs out, close() resolves with a `close_unacknowledged` error: it is not known what the peer got.
   */
  flushMs?: number;
}

/** Events of a {@link Connection}. Datagrams arrive on `connection.datagrams` (SLLP mode). */
export interface ConnectionEvents {
  message: Uint8Array;
  close: CloseInfo;
  /** A heartbeat measured the round-trip time (ms). */
  rtt: number;
}

export interface SendOptions {
  /** Called as records of this message are handed to the transport: bytes so far, total. */
  onProgress?: (sent: number, total: number) => void;
}

/** See the lifecycle in this file's header. */
export type ConnectionState = 'open' | 'draining' | 'closing' | 'closed';

interface Outgoing {
  data: Uint8Array;
  options: SendOptions | undefined;
  records?: PlainRecord[];
  next: number;
  sent: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Incoming {
  data: Uint8Array;
  /** Flow-control credit, given back when the application takes the message. */
  cost: number;
}

/** Statistics of both modes. */
export interface ConnectionStats extends LinkStats {
  /** Heartbeat round-trip time through p2ptls (ms). */
  heartbeatRttMs?: number;
  messagesSent: number;
  messagesReceived: number;
  flowControl: {
    /** Credit the peer has left us: a message waits while it is too small. */
    sendCredit: number;
    /** Bytes received and not yet read by the application (bounded by the receive window). */
    buffered: number;
  };
  datagrams: {
    sent: number;
    /** Dropped locally because the SLLP channel's buffer was full (`send` resolved with -1). */
    droppedLocally: number;
    received: number;
    reordered: number;
    dropped: {
      invalid: number;
      replay: number;
      stale: number;
      /** Arrived before the handshake completed: unauthenticated, never buffered. */
      early: number;
      /** Arrived while the application's unread datagrams already filled `datagramQueueBytes`. */
      unread: number;
    };
  };
}

/**
 * Milliseconds from the start of a dial (`Host.connect`, or the offer's arrival) to each stage, for the
 * set-up split of bench:transport (`connection.setup`). ICE and DTLS are the link's own events, where
 * the stack reports them.
 */
export interface SetupTimings {
  /** The hello-bearing signal went out: offer + ClientHello, or answer + ServerHello + ResponderAuth. */
  signaled?: number;
  /** Outgoing: the answer with ServerHello and ResponderAuth arrived. */
  answered?: number;
  iceConnected?: number;
  dtlsConnected?: number;
  /** Both data channels open. */
  open?: number;
  /** The peer is authenticated and the connection exists. */
  established: number;
}

/** What the dial hands over with the link: reliable records that arrived during the handshake. */
export interface EarlyInput {
  reliable: Uint8Array[];
  /** Datagrams that arrived before the handshake completed and were dropped. */
  datagramsDropped: number;
  /** How the dial's stages went (absent for a connection made without a dial, as in tests). */
  setup?: SetupTimings;
}

/** SLLP mode of a connection: unreliable, unordered, each datagram authenticated on its own. */
export class DatagramChannel extends TypedEmitter<{ datagram: Datagram; close: CloseInfo }> {
  /** @internal */
  readonly queue: AsyncQueue<Datagram>;
  /** @internal */
  sent = 0;
  /** @internal */
  droppedLocally = 0;
  /** @internal */
  droppedUnread = 0;
  private iterated = false;
  private queuedBytes = 0;

  /** @internal */
  constructor(
    private readonly connection: Connection,
    private readonly maxQueuedBytes: number,
  ) {
    super();
    this.queue = new AsyncQueue<Datagram>((d) => {
      this.queuedBytes -= d.data.length;
    });
  }

  /** Largest payload of one datagram. */
  get maxSize(): number {
    return this.connection.maxDatagramBytes;
  }

  /**
   * Sends one datagram. Resolves with its sequence number, or with -1 when the local send buffer was full
   * and it was dropped (as the network might have): SLLP never waits.
   */
  send(data: Uint8Array | string): Promise<number> {
    return this.connection.sendDatagram(data);
  }

  /** Received datagrams, as an async iterator; ends when the connection or the peer's SLLP closes. */
  [Symbol.asyncIterator](): AsyncIterator<Datagram> {
    this.iterated = true;
    return this.queue[Symbol.asyncIterator]();
  }

  /** @internal */
  deliver(d: Datagram): void {
    this.emit('datagram', d);
    // Queue for the iterator only if someone iterates, or nobody listens yet (they may iterate later):
    // an application that only listens to events must not accumulate every datagram in memory.
    if (!this.iterated && this.listenerCount('datagram') > 0) return;
    if (this.queuedBytes + d.data.length > this.maxQueuedBytes) {
      this.droppedUnread++;
      return;
    }
    this.queuedBytes += d.data.length;
    this.queue.push(d);
  }

  /** @internal */
  end(info: CloseInfo): void {
    this.queue.end();
    this.emit('close', info);
  }
}

/**
 * A mutually authenticated, encrypted connection. Created by `Host.connect` or by accepting an incoming
 * request; never constructed directly.
 */
export class Connection extends TypedEmitter<ConnectionEvents> {
  readonly peerId: PeerId;
  /** SLLP mode. */
  readonly datagrams: DatagramChannel;
  /** Resolves once the connection is closed, with the reason, on both sides. */
  readonly closed: Promise<CloseInfo>;
  /** How long this connection's set-up took, stage by stage (ms from the start of its dial). */
  readonly setup: SetupTimings | undefined;

  private current: ConnectionState = 'open';
  private readonly session: Session;
  private readonly inbox: AsyncQueue<Incoming>;
  /** Whether `messages()` (or `readable()`) was ever called. */
  private iterated = false;
  private readonly outbox: Outgoing[] = [];
  private readonly highWater: number;
  private readonly heartbeatTimeout: number;
  private readonly reassemblyTimeout: number;
  private resolveClosed!: (c: CloseInfo) => void;
  /** When authenticated input last arrived: forged or early bytes never refresh it. */
  private lastReceived = Date.now();
  /**
   * Reliable records passed to the session and not yet processed. While there are any, the peer is
   * evidently sending and we are the slow side: the heartbeat waits for them to authenticate (or fail)
   * before it judges the peer silent. (Under a 4-peer soak on 2 cores the backlog reached seconds.)
   */
  private receiving = 0;
  /** Received records passed to the session and not yet processed ({@link MAX_RECORDS_DECRYPTING} at most). */
  private decrypting = 0;
  /** Received records waiting for a decryption slot, in arrival order. */
  private readonly undecrypted: Uint8Array[] = [];
  /** Called once {@link undecrypted} is empty (everything received is with the session). */
  private readonly undecryptedDrained: (() => void)[] = [];
  /** When the last datagram was sent (performance.now()): reliable sending yields while they flow. */
  private lastDatagramSent = Number.NEGATIVE_INFINITY;
  /** Bytes of the message being reassembled at the last heartbeat, and since when. */
  private reassemblyMark = { received: -1, at: Date.now() };
  private readonly heartbeat: ReturnType<typeof setInterval>;
  /** A liveness check in progress ({@link probe}): settled by the first authenticated input, or its timer. */
  private probing:
    | { done: Promise<boolean>; settle: (heard: boolean) => void; timer: ReturnType<typeof setTimeout> }
    | undefined;
  /** Code and reason of a close() in progress. */
  private pendingClose: { code: number; reason: string } | undefined;
  /** The deadline of a close() in progress (draining or closing). */
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bounds how long a closed connection keeps its link for the peer's CLOSE_ACK. */
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private pumpScheduled = false;
  /** True while pump() runs (records a synchronous AEAD seals reach the link from inside it). */
  private pumping = false;
  /**
   * Bytes of records reserved but not yet handed to the channel (sealing is asynchronous). Counted so
   * that one pass of the pump cannot seal a whole 100 MiB message before the channel sees any of it.
   */
  private sealing = 0;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the last pump stopped for want of credit (logged once per stall). */
  private creditStalled = false;
  private heartbeatRtt: number | undefined;
  private messagesSent = 0;
  private messagesReceived = 0;
  private readonly datagramsDroppedEarly: number;
  /**
   * What the initiator holds until something authenticated has come from the responder; undefined once
   * the peer has been heard (always, on the responder's side).
   * - `records`: its reliable records after InitiatorAuth (PROTOCOL.md §8 step 4). @roamhq/wrtc delivered
   *   the first messages of a channel its peer opened out of order in 9 of 100 set-ups (three messages
   *   sent as the channel opened), and a responder that gets any record before InitiatorAuth fails the
   *   dial (`unexpected_message`, seen in CI). The responder speaks first (its WINDOW right after the
   *   handshake, §5.5), and only after its channel delivered InitiatorAuth. Until then the pump seals no
   *   data, so only control records are held (the WINDOW, a ping, a CLOSE); they are copies, as the
   *   session may seal the next record into the same buffer.
   * - `datagrams`: the responder drops datagrams that arrive before its own handshake completes (§5.5),
   *   which for the initiator is half a round trip after its own; at most {@link MAX_HELD_DATAGRAMS}.
   */
  private untilHeard: { records: Uint8Array[]; datagrams: Uint8Array[] } | undefined;
  private readonly log: Log;

  /** @internal */
  constructor(
    private readonly link: Link,
    keys: HandshakeResult,
    options: ConnectionOptions,
    early: EarlyInput,
  ) {
    super();
    this.peerId = keys.remotePeerId;
    this.log = logger(`connection:${shortId(keys.remotePeerId)}`);
    this.highWater = options.highWaterMark ?? 1024 * 1024;
    this.heartbeatTimeout = options.heartbeatTimeoutMs ?? 10_000;
    this.reassemblyTimeout = options.reassemblyTimeoutMs ?? 30_000;
    this.datagramsDroppedEarly = early.datagramsDropped;
    this.setup = early.setup;
    this.untilHeard = keys.role === 'initiator' ? { records: [], datagrams: [] } : undefined;
    const maxRecordBytes = Math.min(link.maxMessageSize, options.session?.maxRecordBytes ?? 256 * 1024);
    this.session = new Session(
      keys,
      {
        reliable: (r) => {
          this.sealing = Math.max(0, this.sealing - r.length);
          // A record sealed asynchronously frees a sealing slot: the pump may go on (see pump()).
          if (!this.pumping) this.schedulePump();
          if (this.untilHeard) {
            this.untilHeard.records.push(r.slice());
            return;
          }
          this.sendRecord(r);
        },
        datagram: (d) => this.sendOrHoldDatagram(d),
        copiesReliable: link.copiesOnSend,
        copiesDatagrams: link.copiesOnSend,
      },
      {
        ...options.session,
        maxRecordBytes,
        recordSize: Math.min(options.session?.recordSize ?? DEFAULT_RECORD_SIZE, maxRecordBytes - 64),
      },
    );
    this.inbox = new AsyncQueue<Incoming>((m) => this.session.release(m.cost));
    this.datagrams = new DatagramChannel(this, options.datagramQueueBytes ?? 4 * 1024 * 1024);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    link.on('reliable', (r) => this.onReliable(r));
    link.on('datagram', (d) => this.onDatagram(d));
    link.on('drain', () => this.wake());
    link.on('close', ({ error }) => this.transportEnded(error));
    // The WINDOW due right after the handshake (§5.5): our full receive window at once, and, from the
    // responder, what lets the initiator's records follow InitiatorAuth (§8 step 4).
    this.session.announceWindow();
    for (const r of early.reliable) this.onReliable(r);
    const interval = options.heartbeatIntervalMs ?? 2_000;
    this.heartbeat = setInterval(() => this.beat(), interval);
    this.log(
      'open (%s), %d early records, %d early datagrams dropped',
      keys.role,
      early.reliable.length,
      early.datagramsDropped,
    );
  }

  private sendOrHoldDatagram(record: Uint8Array): boolean {
    const held = this.untilHeard?.datagrams;
    if (!held) return this.link.sendDatagram(record);
    if (held.length >= MAX_HELD_DATAGRAMS) return false;
    // Kept past this call: a copy, since the session may reuse the buffer (copiesDatagrams).
    held.push(this.link.copiesOnSend ? record.slice() : record);
    return true;
  }

  /** Hands a record to the link; a refusal ends the connection and rejects the send it belongs to. */
  private sendRecord(r: Uint8Array): void {
    try {
      this.link.sendReliable(r);
    } catch (err) {
      // The send itself fails (its message rejects with this); the connection ends as the transport's
      // end decides, after what already arrived is processed.
      this.transportEnded(asP2PTLSError(err, 'closed'));
      throw err;
    }
  }

  /** Something authenticated came from the peer: it is ready for our records and datagrams. */
  private peerHeard(): void {
    this.lastReceived = Date.now();
    if (this.probing) this.probeSettled(true);
    const held = this.untilHeard;
    if (!held) return;
    this.untilHeard = undefined;
    if (held.records.length > 0) this.log('peer heard: sending %d held records', held.records.length);
    try {
      for (const r of held.records) this.sendRecord(r);
    } catch {
      return; // the connection is ending (sendRecord said why)
    }
    for (const d of held.datagrams) this.link.sendDatagram(d);
    this.schedulePump();
  }

  /** @internal */
  get maxDatagramBytes(): number {
    return Math.min(this.link.maxMessageSize - 64, 65_472);
  }

  /** Where the connection is in its lifecycle (see the file header). */
  get state(): ConnectionState {
    return this.current;
  }

  /** True until close() is called or the connection closes. */
  get isOpen(): boolean {
    return this.current === 'open';
  }

  /** The session's transcript hash: equal on both sides, unique to this connection. */
  get sessionId(): Uint8Array {
    return this.session.transcriptHash;
  }

  private setState(next: ConnectionState, why: string): void {
    this.log('%s → %s (%s)', this.current, next, why);
    this.current = next;
  }

  /** The error calls get once the connection is not open. */
  private notOpenError(): P2PTLSError {
    const info = this.session.closed;
    if ((this.current === 'closed' || this.session.state === 'closed') && info) return closedError(info);
    return fail('closed', `connection is ${this.current}`);
  }

  /**
   * Sends one message in TCP mode (any size up to `maxMessageBytes`). Resolves once all of it is queued
   * on the transport within flow-control limits: it waits while the peer's receive window is full (the
   * peer's application is not reading). Large messages are sealed record by record as the channel
   * drains, so memory stays bounded and control traffic is never stuck behind them.
   */
  send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    // The session may have taken the peer's CLOSE a moment before this connection hears of it.
    if (this.current !== 'open' || this.session.state !== 'open') return Promise.reject(this.notOpenError());
    const bytes = typeof data === 'string' ? utf8(data) : data;
    const max = this.session.maxMessageBytes;
    if (bytes.length > max) {
      return Promise.reject(fail('message_too_large', `message of ${bytes.length} bytes exceeds ${max}`));
    }
    return new Promise<void>((resolve, reject) => {
      this.outbox.push({ data: bytes, options, next: 0, sent: 0, resolve, reject });
      this.schedulePump();
    });
  }

  /**
   * Received messages, in order, as an async iterator. Ends when the peer closes; throws the close's error
   * (e.g. `truncated`, `bad_record_mac`, `timeout`) after the messages that arrived before it.
   */
  messages(): AsyncIterableIterator<Uint8Array> {
    this.iterated = true;
    const inner = this.inbox[Symbol.asyncIterator]();
    const it: AsyncIterableIterator<Uint8Array> = {
      next: async () => {
        const r = await inner.next();
        return r.done ? { value: undefined, done: true } : { value: r.value.data, done: false };
      },
      return: async () => ({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** A WHATWG WritableStream: each chunk becomes one message; backpressure follows flow control. */
  writable(options?: SendOptions): WritableStream<Uint8Array> {
    let total = 0;
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        await this.send(chunk);
        total += chunk.length;
        options?.onProgress?.(total, Number.NaN);
      },
      close: () => {},
    });
  }

  /** A WHATWG ReadableStream of received messages; closes when the peer closes, errors like messages(). */
  readable(): ReadableStream<Uint8Array> {
    const it = this.messages();
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const r = await it.next();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        },
      },
      // Pull one message at a time: the window, not the stream's queue, decides what is buffered.
      { highWaterMark: 0 },
    );
  }

  /** Sends a heartbeat ping now; the `rtt` event reports the round trip. */
  ping(): Promise<void> {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat64(0, performance.now());
    return this.session.ping(data);
  }

  /**
   * Checks, sooner than the heartbeat would, that the peer is still there: pings now, and ends the
   * connection with `timeout` (as a heartbeat timeout does) if nothing authenticated arrives within
   * `withinMs`. Resolves true once the peer is heard from, false if the connection closed instead. For a
   * peer that something else says is gone (a mesh member the signaling room says left): a live peer
   * answers within a round trip, a killed process never does. Waiting the whole heartbeat timeout for it
   * made the first training step after a member was SIGKILLed take 2.2 s; with the probe, 1.2 s
   * (test/train/elastic.test.ts, 2 s heartbeat timeout, so a 1 s window; steps of ~50 ms otherwise). The
   * default window is 8 round trips within {@link PROBE_MIN_MS}..{@link PROBE_MAX_MS}, and at most half
   * the heartbeat timeout; records still being decrypted count as being heard.
   */
  probe(withinMs?: number): Promise<boolean> {
    if (this.current !== 'open' && this.current !== 'draining') return Promise.resolve(false);
    if (!this.probing) {
      const window =
        withinMs ??
        Math.min(
          this.heartbeatTimeout / 2,
          PROBE_MAX_MS,
          Math.max(PROBE_MIN_MS, 8 * (this.heartbeatRtt ?? 0)),
        );
      let settle!: (heard: boolean) => void;
      const done = new Promise<boolean>((resolve) => {
        settle = resolve;
      });
      this.probing = { done, settle, timer: setTimeout(() => this.probeExpired(window), window) };
      this.log('probing: the peer has %d ms to answer', window);
      this.ping().catch(() => {});
    }
    return this.probing.done;
  }

  private probeSettled(heard: boolean): void {
    const probe = this.probing;
    if (!probe) return;
    this.probing = undefined;
    clearTimeout(probe.timer);
    probe.settle(heard);
  }

  private probeExpired(window: number): void {
    if (this.receiving > 0) this.probeSettled(true);
    else {
      this.giveUp(
        CloseCode.TIMEOUT,
        'probe timeout',
        fail('timeout', `${this.peerId} did not answer a probe within ${window} ms`),
      );
    }
  }

  /** Re-keys both directions of both modes now. */
  updateKeys(): Promise<void> {
    return this.session.updateKeys();
  }

  /** @internal */
  async sendDatagram(data: Uint8Array | string): Promise<number> {
    if (this.current !== 'open') throw this.notOpenError();
    // Counted from this send's own result: with several sends in flight, a before/after comparison of
    // the counters would blame one send for another's drop.
    this.lastDatagramSent = performance.now();
    const seq = await this.session.sendDatagram(data, Date.now());
    if (seq < 0) this.datagrams.droppedLocally++;
    else this.datagrams.sent++;
    return seq;
  }

  async stats(): Promise<ConnectionStats> {
    const s = this.session.datagramStats;
    return {
      ...(await this.link.stats().catch(() => ({}))),
      ...(this.heartbeatRtt === undefined ? {} : { heartbeatRttMs: this.heartbeatRtt }),
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      flowControl: { sendCredit: this.session.sendCredit, buffered: this.session.bufferedCredit },
      datagrams: {
        sent: this.datagrams.sent,
        droppedLocally: this.datagrams.droppedLocally,
        received: s.received,
        reordered: s.reordered,
        dropped: { ...s.dropped, early: this.datagramsDroppedEarly, unread: this.datagrams.droppedUnread },
      },
    };
  }

  /**
   * Closes gracefully, as TLS's close_notify does (PROTOCOL.md §5.3): messages sent before are sent
   * first, then our CLOSE with `code` and `reason`; resolves once the peer's CLOSE has come back, i.e.
   * both directions are closed and the peer has read everything up to our CLOSE. Messages the peer sent
   * before its CLOSE are still delivered meanwhile. If `flushMs` runs out first, what is still queued is
   * rejected and the result carries a `close_unacknowledged` error. `send()` rejects from the moment
   * close() is called.
   */
  close(code: number = CloseCode.NORMAL, reason = '', options: CloseOptions = {}): Promise<CloseInfo> {
    if (typeof code !== 'number' || typeof reason !== 'string') {
      return Promise.reject(fail('invalid_argument', 'close(code: number, reason?: string, options?)'));
    }
    if (this.current !== 'open') return this.closed;
    const flushMs = options.flushMs ?? 5_000;
    this.pendingClose = { code, reason };
    this.setState('draining', `close(${code}, ${JSON.stringify(reason)})`);
    this.flushTimer = setTimeout(() => this.flushTimedOut(flushMs), flushMs);
    this.schedulePump();
    return this.closed;
  }

  /** Draining is over (the outbox is empty): our CLOSE goes out behind everything sent before (§5.3). */
  private sealClose(): void {
    const { code, reason } = this.pendingClose!;
    this.session.close(code, reason).catch(() => {});
    clearInterval(this.heartbeat);
    this.setState('closing', "CLOSE sent, waiting for the peer's");
  }

  private flushTimedOut(flushMs: number): void {
    if (this.current !== 'draining' && this.current !== 'closing') return;
    const error = fail(
      'close_unacknowledged',
      `the peer did not answer our CLOSE within ${flushMs} ms (${this.outbox.length} messages unsent)`,
    );
    // Only close() arms this timer, so the close it was given is known.
    const { code, reason } = this.pendingClose!;
    this.giveUp(code, reason, error);
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private wake(): void {
    this.link.settle();
    this.schedulePump();
  }

  /** The next record of the outbox's head: small messages at the head batched, a large one fragmented. */
  private nextRecord(): { record: PlainRecord; batch: number } {
    const recordSize = this.session.recordSize;
    const head = this.outbox[0]!;
    if (head.data.length > recordSize) {
      head.records ??= frameMessages([head.data], recordSize);
      return { record: head.records[head.next]!, batch: 0 };
    }
    let count = 0;
    let bytes = 0;
    for (const o of this.outbox) {
      if (o.data.length > recordSize || bytes + 4 + o.data.length > recordSize) break;
      count++;
      bytes += 4 + o.data.length;
    }
    count = Math.max(count, 1);
    const [record] = frameMessages(
      this.outbox.slice(0, count).map((o) => o.data),
      recordSize,
    );
    return { record: record!, batch: count };
  }

  /** Seals as many records as the channel, the peer's window and the datagrams flowing allow now. */
  private pump(): void {
    this.pumping = true;
    try {
      this.pumpRecords();
    } finally {
      this.pumping = false;
    }
  }

  private pumpRecords(): void {
    if ((this.current !== 'open' && this.current !== 'draining') || this.session.state !== 'open') return;
    // Nothing is sealed for the link while it may not carry it yet: peerHeard() pumps again.
    if (this.untilHeard) return;
    // An asynchronous AEAD seals in call order too: while datagrams flow, one record at a time, so a
    // datagram's seal waits for one record at most (a synchronous one is never `sealing` here). The
    // reliable bytes queued in the channel are not capped lower while datagrams flow: a 512 KiB cap took
    // an unpaced transfer beside 30 fps video from 0.86 to 0.69 of raw bulk (bench:transport, wrtc) and
    // left the video's fps where it was (Node: 0.93 vs 0.95). Without a cap the video keeps all its
    // frames beside the transfer in Chromium too (bench:browser: 30.0 fps, 1.00 of alone).
    const flowing = performance.now() - this.lastDatagramSent < DATAGRAMS_FLOWING_MS;
    const sealingCap = flowing ? 1 : Number.POSITIVE_INFINITY;
    while (
      this.outbox.length > 0 &&
      this.link.bufferedAmount + this.sealing < this.highWater &&
      this.sealing < sealingCap
    ) {
      const { record, batch } = this.nextRecord();
      if (!this.session.admits(record)) {
        if (!this.creditStalled)
          this.log('flow control: waiting for the peer window (credit %d)', this.session.sendCredit);
        this.creditStalled = true;
        break;
      }
      if (this.creditStalled)
        this.log('flow control: window open again (credit %d)', this.session.sendCredit);
      this.creditStalled = false;
      this.sealing += record.length + RECORD_OVERHEAD;
      const done = this.session.sendRecord(record);
      if (batch > 0) {
        const sent = this.outbox.splice(0, batch);
        this.messagesSent += batch;
        for (const o of sent) done.then(o.resolve, o.reject);
        continue;
      }
      const head = this.outbox[0]!;
      head.next++;
      head.sent += record.length;
      if (head.options?.onProgress) {
        const sent = Math.min(head.sent, head.data.length);
        done.then(() => head.options?.onProgress?.(sent, head.data.length)).catch(() => {});
      }
      if (head.next === head.records!.length) {
        this.outbox.shift();
        this.messagesSent++;
        done.then(head.resolve, head.reject);
      } else {
        // A failed record fails its message now; later records of it are never sent.
        done.catch(head.reject);
      }
    }
    if (this.outbox.length === 0) {
      if (this.current === 'draining') this.sealClose();
      return;
    }
    if (!this.creditStalled && !this.pollTimer) {
      // 'bufferedamountlow' is the fast path; some stacks fire it late or never, so poll as well.
      this.pollTimer = setTimeout(() => {
        this.pollTimer = undefined;
        this.wake();
      }, 5);
    }
  }

  private onReliable(record: Uint8Array): void {
    this.receiving++;
    if (this.decrypting < MAX_RECORDS_DECRYPTING) this.decrypt(record);
    else this.undecrypted.push(record);
  }

  private decrypt(record: Uint8Array): void {
    this.decrypting++;
    this.session.receive(record).then(
      (events) => {
        this.recordDone();
        this.peerHeard();
        for (const e of events) this.onSessionEvent(e);
      },
      (err) => {
        this.recordDone();
        this.failed(asP2PTLSError(err, 'internal_error'));
      },
    );
  }

  /** A record is processed: the next one waiting takes its decryption slot. */
  private recordDone(): void {
    this.receiving--;
    this.decrypting--;
    const next = this.undecrypted.shift();
    if (next) this.decrypt(next);
    if (this.undecrypted.length === 0) for (const done of this.undecryptedDrained.splice(0)) done();
  }

  /** Settles once every record received so far has been processed (or refused) by the session. */
  private allReceived(): Promise<void> {
    if (this.undecrypted.length === 0) return this.session.received();
    return new Promise<void>((resolve) => this.undecryptedDrained.push(resolve)).then(() =>
      this.session.received(),
    );
  }

  private onSessionEvent(e: SessionEvent): void {
    switch (e.type) {
      case 'message':
        this.deliver(e.data, e.cost);
        return;
      case 'pong': {
        const sent = new DataView(e.data.buffer, e.data.byteOffset, 8).getFloat64(0);
        this.heartbeatRtt = performance.now() - sent;
        this.emit('rtt', this.heartbeatRtt);
        return;
      }
      case 'window':
        this.schedulePump();
        return;
      case 'key-update':
        return;
      case 'close':
        this.log('peer CLOSE %d %s', e.code, e.reason);
        this.end(this.session.closed ?? { code: e.code, reason: e.reason, byPeer: true }, 'linger');
        return;
      case 'close-ack':
        this.log('peer CLOSE_ACK: tearing the link down');
        this.teardown();
        return;
    }
  }

  private deliver(data: Uint8Array, cost: number): void {
    this.messagesReceived++;
    this.emit('message', data);
    // As for datagrams: only an iterator (present or possible) needs the queue. A message only listened
    // to is consumed now, and its credit goes back at once.
    if (this.iterated || this.listenerCount('message') === 0) this.inbox.push({ data, cost });
    else this.session.release(cost);
  }

  private onDatagram(bytes: Uint8Array): void {
    const r = this.session.receiveDatagram(bytes);
    // Within the call when the AEAD is synchronous (node:crypto): no promise per datagram.
    if (r instanceof Promise) void r.then((d) => this.datagramOpened(d));
    else this.datagramOpened(r);
  }

  private datagramOpened(r: DatagramResult): void {
    if (!r.ok) return;
    this.peerHeard();
    if (r.kind === 'data') {
      this.datagrams.deliver({ data: r.data, seq: r.seq, sentAt: r.sentAt, epoch: r.epoch });
    } else if (r.message.type === 'close') {
      // The peer's CLOSE on the datagram channel ends SLLP only; its reliable CLOSE follows behind the
      // data it sent before closing (§5.3).
      this.log('peer CLOSE on the datagram channel: SLLP ended');
      this.datagrams.end({ code: r.message.code, reason: r.message.reason, byPeer: true });
    }
  }

  /**
   * The link closed (or refused a record). What already arrived is processed first: the peer's CLOSE is
   * usually among it. Without that CLOSE, the stream may have lost its tail: `truncated`.
   */
  private transportEnded(cause?: P2PTLSError): void {
    void this.allReceived().then(() => {
      if (this.current === 'closed') {
        this.teardown();
        return;
      }
      const error = fail(
        'truncated',
        `the transport closed before ${this.peerId}'s CLOSE: what it sent last may be missing${cause ? ` (${cause.message})` : ''}`,
        cause,
      );
      this.end({ code: CloseCode.GOING_AWAY, reason: 'transport closed', byPeer: true, error }, 'now');
    });
  }

  private beat(): void {
    if (this.current !== 'open' && this.current !== 'draining') return;
    const now = Date.now();
    if (now - this.lastReceived > this.heartbeatTimeout && this.receiving === 0) {
      this.giveUp(
        CloseCode.TIMEOUT,
        'heartbeat timeout',
        fail('timeout', `nothing authenticated from ${this.peerId} for ${this.heartbeatTimeout} ms`),
      );
      return;
    }
    const progress = this.session.reassembling;
    if (!progress || progress.received !== this.reassemblyMark.received) {
      this.reassemblyMark = { received: progress?.received ?? -1, at: now };
    } else if (now - this.reassemblyMark.at > this.reassemblyTimeout) {
      this.giveUp(
        CloseCode.TIMEOUT,
        'message stalled',
        fail(
          'timeout',
          `a ${progress.total}-byte message stalled at ${progress.received} bytes for ${this.reassemblyTimeout} ms`,
        ),
      );
      return;
    }
    this.ping().catch(() => {});
  }

  /**
   * Ends the connection on our own error: the peer is told (best effort: our CLOSE, if the session is
   * still open and the link still carries it), the link goes now.
   */
  private giveUp(code: number, reason: string, error: P2PTLSError): void {
    this.session.close(code, reason).catch(() => {});
    this.end({ code, reason, byPeer: false, error }, 'now');
  }

  /** A fatal receive error: the session already sent its alert (CLOSE with the error). */
  private failed(error: P2PTLSError): void {
    if (this.current === 'closed') return;
    const info = this.session.closed ?? { code: CloseCode.PROTOCOL_ERROR, reason: error.code, byPeer: false };
    this.end({ ...info, error }, 'linger');
  }

  /**
   * Enters `closed`: everything still waiting settles, readers end (with the error, if any), and the link
   * is torn down now, after the peer's CLOSE_ACK, or after {@link LINGER_MS} at most.
   */
  private end(info: CloseInfo, teardown: 'now' | 'linger'): void {
    if (this.current === 'closed') return;
    this.session.abort(info);
    const final = this.session.closed ?? info;
    this.setState(
      'closed',
      `${final.byPeer ? 'by peer' : 'by us'}: ${final.code} ${final.reason}${final.error ? ` [${final.error.code}]` : ''}`,
    );
    clearInterval(this.heartbeat);
    clearTimeout(this.flushTimer);
    clearTimeout(this.pollTimer);
    this.probeSettled(false);
    const err = closedError(final);
    for (const o of this.outbox.splice(0)) o.reject(err);
    this.inbox.end(final.error);
    this.datagrams.end(final);
    if (teardown === 'now' || !this.link.isOpen) this.teardown();
    else this.lingerTimer = setTimeout(() => this.teardown(), LINGER_MS);
    this.emit('close', final);
    this.resolveClosed(final);
  }

  private teardown(): void {
    clearTimeout(this.lingerTimer);
    this.link.close();
  }
}

/** The error a closed connection answers calls with. */
export function closedError(info: CloseInfo): P2PTLSError {
  return (
    info.error ?? fail('closed', `connection closed (${info.code}${info.reason ? `: ${info.reason}` : ''})`)
  );
}
