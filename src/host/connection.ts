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
 *
 * This file owns that lifecycle and joins the parts, each in a file of its own: sending messages
 * (message-sender.ts), taking received records to the session (record-intake.ts), the heartbeat and
 * probes (liveness.ts), SLLP as the application sees it (datagram-channel.ts), and the public types
 * (connection-types.ts).
 */
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { HandshakeResult } from '../protocol/handshake.js';
import {
  CloseCode,
  type CloseInfo,
  type DatagramResult,
  Session,
  type SessionEvent,
} from '../protocol/index.js';
import type { Link } from '../transport/peer-link.js';
import { utf8 } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { type Log, logger, shortId } from '../util/log.js';
import { AsyncQueue } from './async-queue.js';
import type {
  CloseOptions,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionState,
  ConnectionStats,
  EarlyInput,
  SendOptions,
  SetupTimings,
} from './connection-types.js';
import { DatagramChannel } from './datagram-channel.js';
import { Liveness } from './liveness.js';
import { MessageSender } from './message-sender.js';
import { RecordIntake } from './record-intake.js';

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
 * How long a closed connection keeps its link for the peer's CLOSE_ACK when nothing else bounds it (the
 * peer closed first, or a fatal error sent an alert). Only resources wait on it: the close is already
 * decided, and a peer that has not seen our CLOSE by then reports `truncated`, never a clean end.
 */
const LINGER_MS = 2_000;

/** Datagrams an initiator holds until the responder has been heard (about half a round trip). */
const MAX_HELD_DATAGRAMS = 64;

interface Incoming {
  data: Uint8Array;
  /** Flow-control credit, given back when the application takes the message. */
  cost: number;
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
  private resolveClosed!: (c: CloseInfo) => void;
  private readonly sender: MessageSender;
  private readonly intake: RecordIntake;
  private readonly liveness: Liveness;
  /** Code and reason of a close() in progress. */
  private pendingClose: { code: number; reason: string } | undefined;
  /** The deadline of a close() in progress (draining or closing). */
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bounds how long a closed connection keeps its link for the peer's CLOSE_ACK. */
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
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
    this.datagramsDroppedEarly = early.datagramsDropped;
    this.setup = early.setup;
    this.untilHeard = keys.role === 'initiator' ? { records: [], datagrams: [] } : undefined;
    const maxRecordBytes = Math.min(link.maxMessageSize, options.session?.maxRecordBytes ?? 256 * 1024);
    this.session = new Session(
      keys,
      {
        reliable: (r) => {
          this.sender.handedOver(r.length);
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
    this.sender = new MessageSender(
      this.session,
      link,
      options.highWaterMark ?? 1024 * 1024,
      {
        maySeal: () =>
          (this.current === 'open' || this.current === 'draining') &&
          this.session.state === 'open' &&
          !this.untilHeard,
        emptied: () => {
          if (this.current === 'draining') this.sealClose();
        },
      },
      this.log,
    );
    this.intake = new RecordIntake(this.session, {
      processed: (events) => {
        this.peerHeard();
        for (const e of events) this.onSessionEvent(e);
      },
      refused: (err) => this.failed(asP2PTLSError(err, 'internal_error')),
    });
    this.liveness = new Liveness(
      {
        peerId: this.peerId,
        recordsInProcess: () => this.intake.pending,
        reassembling: () => this.session.reassembling,
        sendPing: (data) => this.session.ping(data),
        timedOut: (reason, error) => this.giveUp(CloseCode.TIMEOUT, reason, error),
      },
      {
        intervalMs: options.heartbeatIntervalMs ?? 2_000,
        timeoutMs: options.heartbeatTimeoutMs ?? 10_000,
        reassemblyTimeoutMs: options.reassemblyTimeoutMs ?? 30_000,
      },
      this.log,
    );
    this.inbox = new AsyncQueue<Incoming>((m) => this.session.release(m.cost));
    this.datagrams = new DatagramChannel(this, options.datagramQueueBytes ?? 4 * 1024 * 1024);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    link.on('reliable', (r) => this.intake.push(r));
    link.on('datagram', (d) => this.onDatagram(d));
    link.on('drain', () => this.sender.wake());
    link.on('close', ({ error }) => this.transportEnded(error));
    // The WINDOW due right after the handshake (§5.5): our full receive window at once, and, from the
    // responder, what lets the initiator's records follow InitiatorAuth (§8 step 4).
    this.session.announceWindow();
    for (const r of early.reliable) this.intake.push(r);
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
    this.liveness.heard();
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
    this.sender.schedule();
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
    return this.sender.send(bytes, options);
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
    return this.liveness.ping();
  }

  /**
   * Checks, sooner than the heartbeat would, that the peer is still there: pings now, and ends the
   * connection with `timeout` (as a heartbeat timeout does) if nothing authenticated arrives within
   * `withinMs`. Resolves true once the peer is heard from, false if the connection closed instead. For a
   * peer that something else says is gone (a mesh member the signaling room says left): a live peer
   * answers within a round trip, a killed process never does. Waiting the whole heartbeat timeout for it
   * made the first training step after a member was SIGKILLed take 2.2 s; with the probe, 1.2 s
   * (test/train/elastic.test.ts, 2 s heartbeat timeout, so a 1 s window; steps of ~50 ms otherwise). The
   * default window is 8 round trips within 1–5 s, and at most half the heartbeat timeout (liveness.ts);
   * records still being decrypted count as being heard.
   */
  probe(withinMs?: number): Promise<boolean> {
    if (this.current !== 'open' && this.current !== 'draining') return Promise.resolve(false);
    return this.liveness.probe(withinMs);
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
    this.sender.datagramSent();
    const seq = await this.session.sendDatagram(data, Date.now());
    if (seq < 0) this.datagrams.droppedLocally++;
    else this.datagrams.sent++;
    return seq;
  }

  async stats(): Promise<ConnectionStats> {
    const s = this.session.datagramStats;
    return {
      ...(await this.link.stats().catch(() => ({}))),
      ...(this.liveness.rttMs === undefined ? {} : { heartbeatRttMs: this.liveness.rttMs }),
      messagesSent: this.sender.sent,
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
    this.sender.schedule();
    return this.closed;
  }

  /** Draining is over (the outbox is empty): our CLOSE goes out behind everything sent before (§5.3). */
  private sealClose(): void {
    const { code, reason } = this.pendingClose!;
    this.session.close(code, reason).catch(() => {});
    this.liveness.stopHeartbeat();
    this.setState('closing', "CLOSE sent, waiting for the peer's");
  }

  private flushTimedOut(flushMs: number): void {
    if (this.current !== 'draining' && this.current !== 'closing') return;
    const error = fail(
      'close_unacknowledged',
      `the peer did not answer our CLOSE within ${flushMs} ms (${this.sender.queued} messages unsent)`,
    );
    // Only close() arms this timer, so the close it was given is known.
    const { code, reason } = this.pendingClose!;
    this.giveUp(code, reason, error);
  }

  private onSessionEvent(e: SessionEvent): void {
    switch (e.type) {
      case 'message':
        this.deliver(e.data, e.cost);
        return;
      case 'pong':
        this.emit('rtt', this.liveness.pong(e.data));
        return;
      case 'window':
        this.sender.schedule();
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
    void this.intake.allProcessed().then(() => {
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
    this.liveness.stop();
    clearTimeout(this.flushTimer);
    this.sender.end(closedError(final));
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
