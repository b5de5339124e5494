/**
 * An authenticated p2ptls connection to one peer: TCP mode (`send`, messages) and SLLP mode
 * (`datagrams`) over one WebRTC link, with flow control, heartbeat and authenticated close.
 */
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { HandshakeResult } from '../protocol/handshake.js';
import {
  CloseCode,
  frameMessages,
  type PlainRecord,
  Session,
  type SessionOptions,
} from '../protocol/index.js';
import type { LinkStats, PeerLink } from '../transport/peer-link.js';
import { utf8 } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { AsyncQueue } from './async-queue.js';

/**
 * Record plaintext over WebRTC unless the caller chooses: 64 KiB, clamped below the negotiated SCTP
 * max-message-size (every current browser and both Node stacks accept at least 64 KiB). The protocol's
 * own default is 16 KiB; over a data channel each record costs an SCTP message and an AEAD call, and
 * 64 KiB records measured 0.69 → 0.99 of raw channel throughput for 64 KiB messages (bench:transport).
 */
const DEFAULT_RECORD_SIZE = 64 * 1024 - 256;

/** Header and tag of a reliable record (PROTOCOL.md §5.1). */
const RECORD_OVERHEAD = 2 + 16;
/**
 * After the peer's CLOSE arrived on the datagram channel, how long the reliable channel may stay quiet
 * before the connection ends without its CLOSE there (the data sent before the close comes first).
 */
const CLOSE_GRACE_MS = 2_000;

/** Tunables of a connection. */
export interface ConnectionOptions {
  session?: SessionOptions;
  /** Send a heartbeat ping this often (default 2 000 ms). */
  heartbeatIntervalMs?: number;
  /** Close with `timeout` when nothing has arrived for this long (default 10 000 ms). */
  heartbeatTimeoutMs?: number;
  /** Stop sealing data records while the reliable channel holds this many bytes (default 1 MiB). */
  highWaterMark?: number;
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

/** Why and by whom a connection was closed. */
export interface ConnectionClose {
  code: number;
  reason: string;
  byPeer: boolean;
  /** Set when the close was caused by an error (tampering, timeout, transport failure, peer error). */
  error?: P2PTLSError;
}

/** Events of a {@link Connection}. Datagrams arrive on `connection.datagrams` (SLLP mode). */
export interface ConnectionEvents {
  message: Uint8Array;
  close: ConnectionClose;
  /** A heartbeat measured the round-trip time (ms). */
  rtt: number;
}

export interface SendOptions {
  /** Called as records of this message are handed to the transport: bytes so far, total. */
  onProgress?: (sent: number, total: number) => void;
}

interface Outgoing {
  data: Uint8Array;
  options: SendOptions | undefined;
  records?: PlainRecord[];
  next: number;
  sent: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Statistics of both modes. */
export interface ConnectionStats extends LinkStats {
  /** Heartbeat round-trip time through p2ptls (ms). */
  heartbeatRttMs?: number;
  messagesSent: number;
  messagesReceived: number;
  datagrams: {
    sent: number;
    /** Dropped locally because the SLLP channel's buffer was full. */
    droppedLocally: number;
    received: number;
    reordered: number;
    dropped: { invalid: number; replay: number; stale: number };
  };
}

/** SLLP mode of a connection: unreliable, unordered, each datagram authenticated on its own. */
export class DatagramChannel extends TypedEmitter<{ datagram: Datagram; close: ConnectionClose }> {
  /** @internal */
  readonly queue = new AsyncQueue<Datagram>();
  /** @internal */
  sent = 0;
  private iterated = false;
  /** @internal */
  droppedLocally = 0;

  constructor(private readonly connection: Connection) {
    super();
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

  /** Received datagrams, as an async iterator; ends when the connection closes. */
  [Symbol.asyncIterator](): AsyncIterator<Datagram> {
    this.iterated = true;
    return this.queue[Symbol.asyncIterator]();
  }

  /** @internal */
  deliver(d: Datagram): void {
    this.emit('datagram', d);
    // Queue for the iterator only if someone iterates, or nobody listens yet (they may iterate later):
    // an application that only listens to events must not accumulate every datagram in memory.
    if (this.iterated || this.listenerCount('datagram') === 0) this.queue.push(d);
  }

  /** @internal */
  end(info: ConnectionClose): void {
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
  readonly closed: Promise<ConnectionClose>;

  private readonly session: Session;
  private readonly inbox = new AsyncQueue<Uint8Array>();
  /** Whether `messages()` (or `readable()`) was ever called. */
  private iterated = false;
  private readonly outbox: Outgoing[] = [];
  private readonly highWater: number;
  private readonly heartbeatTimeout: number;
  private closeInfo: ConnectionClose | undefined;
  private resolveClosed!: (c: ConnectionClose) => void;
  private lastReceived = Date.now();
  /** When the last reliable record arrived (the close grace counts from it). */
  private lastReliable = Date.now();
  private closeGrace: ReturnType<typeof setTimeout> | undefined;
  /** Set by close() while queued messages drain ahead of the CLOSE. */
  private closing: Promise<ConnectionClose> | undefined;
  private heartbeat: ReturnType<typeof setInterval>;
  private pumpScheduled = false;
  /**
   * Bytes of records reserved but not yet handed to the channel (sealing is asynchronous). Counted so
   * that one pass of the pump cannot seal a whole 100 MiB message before the channel sees any of it.
   */
  private sealing = 0;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatRtt: number | undefined;
  private messagesSent = 0;
  private messagesReceived = 0;

  /** @internal */
  constructor(
    private readonly link: PeerLink,
    keys: HandshakeResult,
    options: ConnectionOptions,
    early: { reliable: Uint8Array[]; datagrams: Uint8Array[] },
  ) {
    super();
    this.peerId = keys.remotePeerId;
    this.highWater = options.highWaterMark ?? 1024 * 1024;
    this.heartbeatTimeout = options.heartbeatTimeoutMs ?? 10_000;
    const maxRecordBytes = Math.min(link.maxMessageSize, options.session?.maxRecordBytes ?? 256 * 1024);
    this.session = new Session(
      keys,
      {
        reliable: (r) => {
          this.sealing = Math.max(0, this.sealing - r.length);
          try {
            this.link.sendReliable(r);
          } catch (err) {
            this.finish({
              code: CloseCode.GOING_AWAY,
              reason: 'transport closed',
              byPeer: false,
              error: asP2PTLSError(err, 'closed'),
            });
          }
        },
        datagram: (d) => {
          if (this.link.sendDatagram(d)) this.datagrams.sent++;
          else this.datagrams.droppedLocally++;
        },
      },
      {
        ...options.session,
        maxRecordBytes,
        recordSize: Math.min(options.session?.recordSize ?? DEFAULT_RECORD_SIZE, maxRecordBytes - 64),
      },
    );
    this.datagrams = new DatagramChannel(this);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    link.on('reliable', (r) => this.onReliable(r));
    link.on('datagram', (d) => void this.onDatagram(d));
    link.on('drain', () => this.wake());
    // Records that arrived before the transport went may still be decrypting: they (and the peer's
    // CLOSE, usually among them) are delivered first.
    link.on(
      'close',
      ({ error }) =>
        void this.session.received().then(() =>
          this.finish({
            code: CloseCode.GOING_AWAY,
            reason: 'transport closed',
            byPeer: true,
            error: error ?? fail('closed', 'the WebRTC connection closed without a p2ptls close'),
          }),
        ),
    );
    for (const r of early.reliable) this.onReliable(r);
    for (const d of early.datagrams) void this.onDatagram(d);
    const interval = options.heartbeatIntervalMs ?? 2_000;
    this.heartbeat = setInterval(() => this.beat(), interval);
  }

  /** @internal */
  get maxDatagramBytes(): number {
    return Math.min(this.link.maxMessageSize - 64, 65_472);
  }

  /** True until the connection closes. */
  get isOpen(): boolean {
    return this.closeInfo === undefined;
  }

  /** The session's transcript hash: equal on both sides, unique to this connection. */
  get sessionId(): Uint8Array {
    return this.session.transcriptHash;
  }

  /**
   * Sends one message in TCP mode (any size up to `maxMessageBytes`). Resolves once all of it is queued
   * on the transport within flow-control limits; large messages are sealed record by record as the
   * channel drains, so memory stays bounded and control traffic is never stuck behind them.
   */
  send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    if (this.closeInfo) return Promise.reject(closedError(this.closeInfo));
    if (this.closing) return Promise.reject(fail('closed', 'connection is closing'));
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

  /** Received messages, in order, as an async iterator; ends when the connection closes. */
  messages(): AsyncIterableIterator<Uint8Array> {
    this.iterated = true;
    return this.inbox[Symbol.asyncIterator]();
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

  /** A WHATWG ReadableStream of received messages; closes when the connection closes. */
  readable(): ReadableStream<Uint8Array> {
    const it = this.messages();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
    });
  }

  /** Sends a heartbeat ping now; the `rtt` event reports the round trip. */
  ping(): Promise<void> {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat64(0, performance.now());
    return this.session.ping(data);
  }

  /** Re-keys both directions of both modes now. */
  updateKeys(): Promise<void> {
    return this.session.updateKeys();
  }

  /** @internal */
  async sendDatagram(data: Uint8Array | string): Promise<number> {
    if (this.closeInfo) throw closedError(this.closeInfo);
    const before = this.datagrams.droppedLocally;
    const seq = await this.session.sendDatagram(data, Date.now());
    return this.datagrams.droppedLocally > before ? -1 : seq;
  }

  async stats(): Promise<ConnectionStats> {
    const s = this.session.datagramStats;
    return {
      ...(await this.link.stats().catch(() => ({}))),
      ...(this.heartbeatRtt === undefined ? {} : { heartbeatRttMs: this.heartbeatRtt }),
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      datagrams: {
        sent: this.datagrams.sent,
        droppedLocally: this.datagrams.droppedLocally,
        received: s.received,
        reordered: s.reordered,
        dropped: { ...s.dropped },
      },
    };
  }

  /**
   * Closes with an authenticated reason that the peer receives (`close` event, `closed` promise), after
   * every message sent before it, as a TCP socket does: waits up to `flushMs` for queued messages to be
   * sent and to leave before tearing the transport down (what is still queued then is rejected).
   * `send()` rejects from the moment `close()` is called.
   */
  async close(reason = '', code: number = CloseCode.NORMAL, flushMs = 2_000): Promise<ConnectionClose> {
    if (this.closeInfo) return this.closeInfo;
    if (this.closing) return this.closing;
    this.closing = this.closeAfterFlush(reason, code, flushMs);
    return this.closing;
  }

  private async closeAfterFlush(reason: string, code: number, flushMs: number): Promise<ConnectionClose> {
    const info: ConnectionClose = { code, reason, byPeer: false };
    const deadline = Date.now() + flushMs;
    // Messages sent before close() go first, as on a TCP socket: the CLOSE is sealed behind them.
    // Whatever is still unsent at the deadline is rejected (finish below).
    while (this.outbox.length > 0 && !this.closeInfo && this.link.isOpen && Date.now() < deadline) {
      this.wake();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.closeInfo) return this.closeInfo;
    await this.session.close(code, reason).catch(() => {});
    this.finish(info);
    while (this.link.isOpen && this.link.bufferedAmount > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      this.link.settle();
    }
    // Give the close record a moment on the wire before the transport goes.
    setTimeout(() => this.link.close(), 100);
    return info;
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

  /** Seals as many records as the channel can take now: batches small messages, fragments large ones. */
  private pump(): void {
    if (this.closeInfo) return;
    const recordSize = this.session.recordSize;
    try {
      while (this.outbox.length > 0 && this.link.bufferedAmount + this.sealing < this.highWater) {
        const head = this.outbox[0]!;
        if (head.data.length <= recordSize) {
          // Gather the small messages at the head of the queue into one record.
          const batch: Outgoing[] = [];
          let bytes = 0;
          for (const o of this.outbox) {
            if (o.data.length > recordSize || bytes + 4 + o.data.length > recordSize) break;
            batch.push(o);
            bytes += 4 + o.data.length;
          }
          if (batch.length === 0) batch.push(head);
          this.outbox.splice(0, batch.length);
          const [record] = frameMessages(
            batch.map((o) => o.data),
            recordSize,
          );
          this.sealing += record!.plaintext.length + RECORD_OVERHEAD;
          const done = this.session.sendRecord(record!);
          this.messagesSent += batch.length;
          for (const o of batch) done.then(o.resolve, o.reject);
          continue;
        }
        head.records ??= frameMessages([head.data], recordSize);
        const record = head.records[head.next++]!;
        this.sealing += record.plaintext.length + RECORD_OVERHEAD;
        const done = this.session.sendRecord(record);
        head.sent += record.plaintext.length;
        if (head.options?.onProgress) {
          const sent = Math.min(head.sent, head.data.length);
          done.then(() => head.options?.onProgress?.(sent, head.data.length)).catch(() => {});
        }
        if (head.next === head.records.length) {
          this.outbox.shift();
          this.messagesSent++;
          done.then(head.resolve, head.reject);
        }
      }
    } catch (err) {
      this.fail(asP2PTLSError(err, 'closed'));
      return;
    }
    if (this.outbox.length > 0 && !this.pollTimer) {
      // 'bufferedamountlow' is the fast path; some stacks fire it late or never, so poll as well.
      this.pollTimer = setTimeout(() => {
        this.pollTimer = undefined;
        this.wake();
      }, 5);
    }
  }

  private onReliable(record: Uint8Array): void {
    this.lastReceived = Date.now();
    this.lastReliable = this.lastReceived;
    this.session.receive(record).then(
      (events) => {
        for (const e of events) {
          if (e.type === 'message') {
            this.messagesReceived++;
            this.emit('message', e.data);
            // As for datagrams: only an iterator (present or possible) needs the queue.
            if (this.iterated || this.listenerCount('message') === 0) this.inbox.push(e.data);
          } else if (e.type === 'pong') {
            const sent = new DataView(e.data.buffer, e.data.byteOffset, 8).getFloat64(0);
            this.heartbeatRtt = performance.now() - sent;
            this.emit('rtt', this.heartbeatRtt);
          } else if (e.type === 'close') {
            const closed = this.session.closed!;
            this.finish({
              code: e.code,
              reason: e.reason,
              byPeer: true,
              ...(closed.error ? { error: closed.error } : {}),
            });
            setTimeout(() => this.link.close(), 100);
          }
        }
      },
      (err) => this.fail(asP2PTLSError(err, 'closed')),
    );
  }

  private async onDatagram(bytes: Uint8Array): Promise<void> {
    this.lastReceived = Date.now();
    const r = await this.session.receiveDatagram(bytes);
    if (!r.ok) return;
    if (r.kind === 'data') {
      this.datagrams.deliver({ data: r.data, seq: r.seq, sentAt: r.sentAt, epoch: r.epoch });
    } else if (r.message.type === 'close') {
      // The same close follows on the reliable channel, behind whatever the peer sent there before it:
      // that data is delivered first. If the reliable channel stays silent, this close stands alone.
      const info: ConnectionClose = { code: r.message.code, reason: r.message.reason, byPeer: true };
      const closed = this.session.closed;
      if (closed?.error) info.error = closed.error;
      this.awaitReliableClose(info, Date.now());
    }
  }

  /**
   * Finishes with `info` once the reliable channel has been quiet for {@link CLOSE_GRACE_MS}, counted
   * from the later of the datagram close (`since`) and the last reliable record.
   */
  private awaitReliableClose(info: ConnectionClose, since: number): void {
    if (this.closeInfo || !this.session.awaitingPeerReliableClose) return;
    const quiet = Date.now() - Math.max(since, this.lastReliable);
    if (quiet >= CLOSE_GRACE_MS) {
      this.finish(info);
      setTimeout(() => this.link.close(), 100);
      return;
    }
    this.closeGrace = setTimeout(() => this.awaitReliableClose(info, since), CLOSE_GRACE_MS - quiet);
  }

  private beat(): void {
    if (this.closeInfo) return;
    if (Date.now() - this.lastReceived > this.heartbeatTimeout) {
      const error = fail('timeout', `no traffic from ${this.peerId} for ${this.heartbeatTimeout} ms`);
      this.session.close(CloseCode.TIMEOUT, 'heartbeat timeout').catch(() => {});
      this.finish({ code: CloseCode.TIMEOUT, reason: 'heartbeat timeout', byPeer: false, error });
      this.link.close();
      return;
    }
    this.ping().catch(() => {});
  }

  /** A fatal error: the session already sent its close record; tear everything down. */
  private fail(error: P2PTLSError): void {
    if (this.closeInfo) return;
    this.finish({ code: CloseCode.PROTOCOL_ERROR, reason: error.code, byPeer: false, error });
    setTimeout(() => this.link.close(), 100);
  }

  private finish(info: ConnectionClose): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    clearInterval(this.heartbeat);
    clearTimeout(this.closeGrace);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const err = closedError(info);
    for (const o of this.outbox.splice(0)) o.reject(err);
    this.inbox.end();
    this.datagrams.end(info);
    this.emit('close', info);
    this.resolveClosed(info);
  }
}

/** The error a closed connection answers calls with. */
export function closedError(info: ConnectionClose): P2PTLSError {
  return (
    info.error ?? fail('closed', `connection closed (${info.code}${info.reason ? `: ${info.reason}` : ''})`)
  );
}
