/**
 * An established p2ptls session: both record layers with their keys, flow control and the close
 * handshake, driven by the caller. Pure: it never touches a socket or a timer; records to transmit go to
 * the `output` callbacks, in the order they must be sent, and received records are passed in.
 *
 * States (PROTOCOL.md §5.3), each entered in one place:
 *
 *   open ──close()──────────────▶ closing ──peer's CLOSE──▶ closed ──peer's CLOSE_ACK──▶ (transport may go)
 *     └──peer's CLOSE (we answer CLOSE, CLOSE_ACK)─────────▶ closed
 *   open | closing ──fatal error or abort()──▶ failed
 *
 * Every method that returns a Promise rejects instead of throwing.
 */
import { fail, P2PTLSError } from '../errors.js';
import { utf8 } from '../util/bytes.js';
import {
  type AeadProvider,
  type Plaintext,
  plaintextLength,
  type SealedParts,
  webCryptoAead,
} from './aead.js';
import {
  APPLICATION_CLOSE_CODES,
  CloseCode,
  Defaults,
  INNER_HEADER_LEN,
  MAX_SEQ_DATAGRAM,
  PING_PAYLOAD_LEN,
  RecordType,
  TAG_LEN,
} from './constants.js';
import { type ControlMessage, encodeControl } from './control.js';
import {
  DatagramReader,
  type DatagramResult,
  type DatagramStats,
  DatagramWriter,
  type SealedDatagram,
  type SealedDatagramParts,
} from './datagram.js';
import { ReceiveWindow, recordCost, SendWindow } from './flow-control.js';
import type { HandshakeResult, Role } from './handshake.js';
import { InOrder } from './in-order.js';
import { expandLabel, hashOfEmpty, sha256 } from './key-schedule.js';
import {
  frameMessages,
  type OpenedRecord,
  type PlainRecord,
  type ReassemblyProgress,
  type ReliableEvent,
  ReliableReader,
  sealRecord,
  sealRecordNow,
} from './reliable.js';
import { TrafficKeys } from './traffic-keys.js';

export interface SessionOptions {
  /** AES-GCM implementation; Node's entry point passes a node:crypto one. Default: WebCrypto. */
  aead?: AeadProvider;
  /** Plaintext bytes per reliable record (default 16 KiB). Keep below the transport's max message size. */
  recordSize?: number;
  /** Largest reliable record accepted (default 256 KiB). */
  maxRecordBytes?: number;
  /** Largest message sent or reassembled (default 64 MiB). */
  maxMessageBytes?: number;
  /** Largest datagram payload (default 65,472 bytes). */
  maxDatagramBytes?: number;
  /** Records under one key before an automatic key update (default 2^23). */
  maxRecordsPerKey?: number;
  /** Anti-replay window for datagrams (default 1024, a multiple of 32). */
  replayWindow?: number;
  /** Drop datagrams older than the newest delivered instead of delivering them late (default false). */
  dropStaleDatagrams?: boolean;
  /**
   * Flow control (§5.5): bytes of messages the peer may have in flight or unread here (default 16 MiB,
   * at least 256 KiB). The receiver buffers at most this plus one message that started within it.
   */
  receiveWindow?: number;
}

/** Where a session's outgoing records go. Called synchronously, in transmission order. */
export interface SessionOutput {
  reliable(record: Uint8Array): void;
  /**
   * True when `reliable` is done with a record once it returns (it sent or copied it, as a WebRTC data
   * channel's send does): the session then seals records of a synchronous AEAD into one buffer of its own
   * instead of a new one each. Why: bench:mesh's ring all-reduce allocated about five buffers of a
   * record's size per record, and that churn made V8 collect its young generation every ~70 ms, each time
   * promoting what was in flight, which then cost full collections. With this and batches sealed from
   * their pieces (see {@link PlainRecord}): 8.9 instead of 15.2 young and 14.4 instead of 19.3 full
   * collections, 1.92 instead of 2.13 s of CPU per 16 MiB all-reduce of 4 members in one process.
   */
  readonly copiesReliable?: boolean;
  /** Returns false when the transport dropped the datagram (e.g. its buffer is full). */
  datagram(record: Uint8Array): boolean | undefined;
  /**
   * True when `datagram` is done with a datagram once it returns, as {@link copiesReliable} for records:
   * an asynchronous AEAD's datagrams are then joined to their headers in the session's buffer.
   */
  readonly copiesDatagrams?: boolean;
}

/** The reason a connection or session ended. `byPeer` tells which side ended it. */
export interface CloseInfo {
  code: number;
  reason: string;
  byPeer: boolean;
  /** Set when it ended by an error: tampering, truncation, timeout, the peer's error, an unacknowledged close. */
  error?: P2PTLSError;
}

/** What {@link Session.receive} delivers, in order. */
export type SessionEvent =
  /** A message; give its `cost` back with {@link Session.release} once the application consumed it. */
  | { type: 'message'; data: Uint8Array; cost: number }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'key-update' }
  /** The peer raised its window: messages waiting for credit may go. */
  | { type: 'window' }
  /**
   * The peer's CLOSE: the session is closed in both directions now (our CLOSE and CLOSE_ACK are sent);
   * {@link Session.closed} says how it ended.
   */
  | { type: 'close'; code: number; reason: string }
  /** The peer has processed our CLOSE and everything before it: the transport can be torn down. */
  | { type: 'close-ack' };

export type SessionState = 'open' | 'closing' | 'closed' | 'failed';

/** Events of received records, and the replies they caused (settled once handed to the output). */
interface Handled {
  out: SessionEvent[];
  replies: Promise<void>[];
}

/** Hard ceiling of reliable sequence numbers; key updates keep us far below it. */
const MAX_SEQ_RELIABLE = 2 ** 48;

/** Codes that end a session deliberately; the others (2–999) report an error (§5.4). */
export function isErrorCloseCode(code: number): boolean {
  return !(code === CloseCode.NORMAL || code === CloseCode.GOING_AWAY || code >= APPLICATION_CLOSE_CODES);
}

export class Session {
  readonly role: Role;
  readonly localPeerId: string;
  readonly remotePeerId: string;
  /** Identical on both sides; applications may use it to bind their own protocols to this session. */
  readonly transcriptHash: Uint8Array;

  private readonly aead: AeadProvider;
  private readonly opts: Required<Omit<SessionOptions, 'aead'>>;
  private readonly tx: TrafficKeys;
  private readonly rx: ReliableReader;
  private readonly dgTx: DatagramWriter;
  private readonly dgRx: DatagramReader;
  private readonly sendWindow = new SendWindow();
  private readonly receiveWindow: ReceiveWindow;
  /**
   * Reliable records sealing (an asynchronous AEAD seals several at once), handed to the output in
   * sequence order. While any are, no record may skip the queue.
   */
  private readonly outbox = new InOrder<Uint8Array, void>({
    done: (record) => this.output.reliable(record),
    failed: (error) => {
      throw error;
    },
  });
  /** Received records decrypting, delivered in the order they arrived; the first failure is fatal. */
  private readonly inbox = new InOrder<OpenedRecord, SessionEvent[]>({
    done: (record) => this.deliver(record),
    failed: (error) => {
      throw this.receiveFailed(error);
    },
  });
  /** The first error of a received record: every record behind it is refused with it too. */
  private rxFailure: P2PTLSError | undefined;
  private current: SessionState = 'open';
  private info: CloseInfo | undefined;
  /** The datagram channel's own end: the peer's CLOSE there ends SLLP only (§5.3). */
  private datagramsOpen = true;
  private readonly exporterSecret: Uint8Array;
  /**
   * Where records and datagrams are put together for an output that copies them (see
   * {@link SessionOutput.copiesReliable}): sealed into it by a synchronous AEAD; datagrams sealed by an
   * asynchronous one are joined to their headers here (a record has no header outside its encryption).
   */
  private recordBuffer = new Uint8Array(0);

  constructor(
    keys: HandshakeResult,
    private readonly output: SessionOutput,
    options: SessionOptions = {},
  ) {
    this.role = keys.role;
    this.localPeerId = keys.localPeerId;
    this.remotePeerId = keys.remotePeerId;
    this.transcriptHash = keys.transcriptHash;
    this.exporterSecret = keys.secrets.exporter;
    this.aead = options.aead ?? webCryptoAead;
    this.opts = {
      recordSize: options.recordSize ?? Defaults.recordSize,
      maxRecordBytes: options.maxRecordBytes ?? Defaults.maxRecordBytes,
      maxMessageBytes: options.maxMessageBytes ?? Defaults.maxMessageBytes,
      maxDatagramBytes: options.maxDatagramBytes ?? Defaults.maxDatagramBytes,
      maxRecordsPerKey: options.maxRecordsPerKey ?? Defaults.maxRecordsPerKey,
      replayWindow: options.replayWindow ?? Defaults.replayWindow,
      dropStaleDatagrams: options.dropStaleDatagrams ?? false,
      receiveWindow: options.receiveWindow ?? Defaults.receiveWindow,
    };
    if (this.opts.recordSize < 64 || this.opts.recordSize > this.opts.maxRecordBytes - 64) {
      throw fail('invalid_argument', 'recordSize must be between 64 and maxRecordBytes - 64');
    }
    if (this.opts.maxRecordsPerKey < 1 || this.opts.maxRecordsPerKey > MAX_SEQ_DATAGRAM) {
      throw fail('invalid_argument', 'maxRecordsPerKey out of range');
    }
    // A window under two records could leave a sender waiting for credit the receiver never sends (§5.5).
    if (this.opts.receiveWindow < 2 * this.opts.maxRecordBytes) {
      throw fail('invalid_argument', 'receiveWindow must be at least twice maxRecordBytes');
    }
    this.receiveWindow = new ReceiveWindow(this.opts.receiveWindow);
    const s = keys.secrets;
    const initiator = keys.role === 'initiator';
    this.tx = new TrafficKeys(this.aead, initiator ? s.initiatorTcp : s.responderTcp, MAX_SEQ_RELIABLE);
    const rxKeys = new TrafficKeys(this.aead, initiator ? s.responderTcp : s.initiatorTcp, MAX_SEQ_RELIABLE);
    this.rx = new ReliableReader(this.aead, rxKeys, this.opts, this.receiveWindow);
    this.dgTx = new DatagramWriter(
      this.aead,
      initiator ? s.initiatorSllp : s.responderSllp,
      this.opts.maxRecordsPerKey,
      this.output.copiesDatagrams === true ? (size) => this.bufferOf(size) : undefined,
    );
    this.dgRx = new DatagramReader(this.aead, initiator ? s.responderSllp : s.initiatorSllp, {
      replayWindow: this.opts.replayWindow,
      dropStale: this.opts.dropStaleDatagrams,
      maxDatagramBytes: this.opts.maxDatagramBytes,
    });
  }

  get state(): SessionState {
    return this.current;
  }

  /**
   * Why the session ended, once it has: set when it leaves `open` (our own close), and final once it is
   * `closed` or `failed`.
   */
  get closed(): CloseInfo | undefined {
    return this.info;
  }

  /** Counters of the datagram channel. */
  get datagramStats(): DatagramStats {
    return this.dgRx.stats;
  }

  /** Key generation currently used for sending on the reliable channel. */
  get keyGeneration(): number {
    return this.tx.generation;
  }

  /** Largest message sent or reassembled (see {@link SessionOptions.maxMessageBytes}). */
  get maxMessageBytes(): number {
    return this.opts.maxMessageBytes;
  }

  /** Plaintext bytes per reliable record (see {@link SessionOptions.recordSize}). */
  get recordSize(): number {
    return this.opts.recordSize;
  }

  /** Credit the peer has left us (§5.5); a record starting a message needs its cost. */
  get sendCredit(): number {
    return this.sendWindow.available;
  }

  /** Credit received and not yet released by the application: what this side buffers (§5.5). */
  get bufferedCredit(): number {
    return this.receiveWindow.buffered;
  }

  /** The fragmented message being received, if any. */
  get reassembling(): ReassemblyProgress | undefined {
    return this.rx.reassembling;
  }

  /** Whether a DATA record from {@link frameMessages} may be sent now (§5.5). */
  admits(record: PlainRecord): boolean {
    return record.starts === 0 || this.sendWindow.admits(recordCost(record.length, record.starts));
  }

  private closedError(): P2PTLSError {
    const c = this.info;
    return fail('closed', `session ${this.current}${c ? ` (${c.code}: ${c.reason || 'no reason'})` : ''}`);
  }

  private refuseUnlessOpen(): Promise<never> | undefined {
    return this.current === 'open' ? undefined : Promise.reject(this.closedError());
  }

  /** Queues one reliable record; its sequence number and key are fixed now, its bytes go out in order. */
  private sealReliable(type: number, flags: number, plaintext: Plaintext): Promise<void> {
    if (type !== RecordType.KEY_UPDATE && this.tx.used >= this.opts.maxRecordsPerKey) this.rotateTx(false);
    const protection = this.tx.next();
    const header = new Uint8Array([type, flags]);
    const sync = this.aead.sync;
    if (sync && protection.ready && this.outbox.idle) {
      // Nothing ahead of it: sealed and handed over within this call (no promise per record).
      try {
        const into = this.output.copiesReliable
          ? this.bufferOf(INNER_HEADER_LEN + plaintextLength(plaintext) + TAG_LEN)
          : undefined;
        this.output.reliable(sealRecordNow(sync, protection, header, plaintext, into));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const sent = this.outbox.add(sealRecord(this.aead, protection, header, plaintext));
    // Some callers keep only the last of several records' promises (send) or none (an automatic key
    // update): a failed seal must not become an unhandled rejection. Whoever holds it still sees it.
    sent.catch(ignore);
    return sent;
  }

  /** The session's record buffer, grown (to the largest record so far) to hold `size` bytes. */
  private bufferOf(size: number): Uint8Array {
    if (this.recordBuffer.length < size) this.recordBuffer = new Uint8Array(size);
    return this.recordBuffer;
  }

  /**
   * A datagram sealed apart from its header, joined in the session's buffer for an output that copies
   * it at once (each is handed over within the call that joins it, so one buffer serves all). In
   * Chromium a new 16 KiB ArrayBuffer costs 17 µs and copying into it 10 µs more (a loop in a page),
   * against ~90 µs for a WebCrypto seal+open of the record; a profile of bench:browser's record-layer
   * rows showed that allocation at 30 µs per record. With this buffer, 16 KiB messages through an output
   * that copies, in the page, three runs of 8 alternating pairs: TCP mode 1.18, 1.30, 1.29× and SLLP
   * 1.23, 1.31, 1.25× the same output not told it copies (`npm run bench:browser -- --only-records`
   * prints that ratio).
   */
  private joinParts({ header, body }: SealedParts): Uint8Array {
    const size = header.length + body.length;
    const out = this.bufferOf(size);
    out.set(header);
    out.set(body, header.length);
    return out.subarray(0, size);
  }

  private rotateTx(requestUpdate: boolean): Promise<void> {
    const sent = this.sealReliable(RecordType.KEY_UPDATE, 0, new Uint8Array([requestUpdate ? 1 : 0]));
    this.tx.rotate();
    return sent;
  }

  private sealControl(message: ControlMessage): Promise<void> {
    return this.sealReliable(RecordType.CONTROL, 0, encodeControl(message));
  }

  private sealData(record: PlainRecord): Promise<void> {
    this.sendWindow.spend(recordCost(record.length, record.starts));
    return this.sealReliable(RecordType.DATA, record.flags, record.plaintext);
  }

  /**
   * Sends messages in TCP mode. Several messages in one call are batched into shared records where they
   * fit. Resolves once every record has been handed to `output.reliable`. Rejects with `flow_control`,
   * sending nothing, when the peer's window does not admit them (wait for a `window` event).
   */
  send(...messages: (Uint8Array | string)[]): Promise<void> {
    const refused = this.refuseUnlessOpen();
    if (refused) return refused;
    const bytes = messages.map((m) => (typeof m === 'string' ? utf8(m) : m));
    for (const m of bytes) {
      if (m.length > this.opts.maxMessageBytes) {
        return Promise.reject(
          fail(
            'message_too_large',
            `message of ${m.length} bytes exceeds maxMessageBytes ${this.opts.maxMessageBytes}`,
          ),
        );
      }
    }
    const records = frameMessages(bytes, this.opts.recordSize);
    // All or nothing: check the credit of every record that starts a message before sealing any.
    let credit = this.sendWindow.available;
    for (const r of records) {
      const cost = recordCost(r.length, r.starts);
      if (r.starts > 0 && cost > credit) {
        return Promise.reject(fail('flow_control', `the peer's window admits ${credit} more bytes`));
      }
      credit -= cost;
    }
    let last: Promise<void> = Promise.resolve();
    for (const r of records) last = this.sealData(r);
    return last;
  }

  /**
   * Sends one DATA record made by {@link frameMessages}. For callers that frame lazily so that control
   * records and flow control are not stuck behind a large message already sealed in full. A record that
   * starts a message needs credit ({@link admits}); the rest of that message does not (§5.5).
   */
  sendRecord(record: PlainRecord): Promise<void> {
    const refused = this.refuseUnlessOpen();
    if (refused) return refused;
    if (record.type !== RecordType.DATA) {
      return Promise.reject(fail('invalid_argument', 'sendRecord takes DATA records'));
    }
    if (!this.admits(record)) {
      return Promise.reject(fail('flow_control', `the peer's window admits ${this.sendCredit} more bytes`));
    }
    return this.sealData(record);
  }

  /**
   * The application consumed `cost` bytes of received messages (the `cost` of their events). Sends a
   * WINDOW when the peer's limit grew enough to be worth one (§5.5).
   */
  release(cost: number): void {
    const limit = this.receiveWindow.release(cost);
    if (limit !== undefined) this.advertise(limit);
  }

  /**
   * Sends the WINDOW due right after the handshake (§5.5), whatever its size: it opens a receive window
   * larger than the initial 256 KiB at once, and it is the first record the initiator hears from the
   * responder, which its records behind InitiatorAuth wait for (§8 step 4).
   */
  announceWindow(): void {
    this.advertise(this.receiveWindow.announce());
  }

  private advertise(maxData: number): void {
    if (this.current === 'open') this.sealControl({ type: 'window', maxData }).catch(() => {});
  }

  /** Sends a ping; the peer answers with a pong carrying the same 8 bytes (see {@link SessionEvent}). */
  ping(data: Uint8Array): Promise<void> {
    const refused = this.refuseUnlessOpen();
    if (refused) return refused;
    if (data.length !== PING_PAYLOAD_LEN) {
      return Promise.reject(fail('invalid_argument', 'ping payload must be 8 bytes'));
    }
    return this.sealControl({ type: 'ping', data });
  }

  /** Re-keys both sending directions now and asks the peer to re-key its own. */
  updateKeys(): Promise<void> {
    const refused = this.refuseUnlessOpen();
    if (refused) return refused;
    try {
      this.dgTx.rotate();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.rotateTx(true);
  }

  /**
   * Ends our sending direction: CLOSE on both channels, behind everything sent before (§5.3). The
   * session is `closing` until the peer's CLOSE arrives. Does nothing unless the session is open.
   */
  close(code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.current !== 'open') return Promise.resolve();
    const message: ControlMessage = { type: 'close', code, reason };
    let encoded: Uint8Array;
    try {
      encoded = encodeControl(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const reliable = this.sealReliable(RecordType.CONTROL, 0, encoded);
    const datagram = this.dgTx.sealControl(message).then((d) => {
      this.handDatagram(d);
    });
    this.current = 'closing';
    this.info = { code, reason, byPeer: false };
    return Promise.all([reliable, datagram]).then(() => {});
  }

  /**
   * The transport ended (or the caller gave up on it): nothing more is sent or processed. Anything but
   * `closed` becomes `failed` with `error` (e.g. `truncated` when the peer's CLOSE never came).
   */
  abort(info: CloseInfo): void {
    if (this.current === 'closed' || this.current === 'failed') return;
    this.current = 'failed';
    // A close we started keeps its code; the error says how it ended.
    this.info = this.info ? { ...this.info, ...(info.error ? { error: info.error } : {}) } : info;
  }

  /**
   * Processes one record from the reliable channel. Results resolve in the order records were passed in,
   * even if the caller does not wait between calls. Any failure is fatal: the session sends a CLOSE with
   * PROTOCOL_ERROR, and this and every later call reject. After the peer's CLOSE only its CLOSE_ACK is
   * accepted.
   */
  receive(record: Uint8Array): Promise<SessionEvent[]> {
    if (this.current === 'failed') return Promise.reject(this.closedError());
    if (this.inbox.idle && this.rxFailure === undefined && this.rx.canOpenNow) {
      // Nothing queued and a synchronous provider: processed within this call.
      try {
        const events = this.settle(this.handle(this.rx.openNow(record)));
        if (!(events instanceof Promise)) return Promise.resolve(events);
        // Replies are being sealed: records passed in after this one resolve after it (InOrder.hold).
        this.inbox.hold(events);
        return events;
      } catch (err) {
        return Promise.reject(this.receiveFailed(err));
      }
    }
    return this.inbox.add(this.rx.open(record));
  }

  /** A decrypted record, in its turn (see {@link inbox}). */
  private deliver(record: OpenedRecord): SessionEvent[] | Promise<SessionEvent[]> {
    this.refuseIfFailed();
    let events: ReliableEvent[] | Promise<ReliableEvent[]>;
    try {
      events = this.rx.deliver(record);
    } catch (err) {
      throw this.receiveFailed(err);
    }
    if (!(events instanceof Promise)) return this.apply(events);
    // Decrypted again under a key updated ahead of it (ReliableReader.rekeyAhead): the session may have
    // failed meanwhile.
    return events.then(
      (later) => {
        this.refuseIfFailed();
        return this.apply(later);
      },
      (err: unknown) => {
        throw this.receiveFailed(err);
      },
    );
  }

  /** Checked in record order: a record behind a fatal error is never delivered. */
  private refuseIfFailed(): void {
    if (this.rxFailure) throw this.rxFailure;
    if (this.current === 'failed') throw this.closedError();
  }

  /** A delivered record's events, applied; see {@link settle}. */
  private apply(events: ReliableEvent[]): SessionEvent[] | Promise<SessionEvent[]> {
    try {
      return this.settle(this.handle(events));
    } catch (err) {
      throw this.receiveFailed(err);
    }
  }

  /** A received record failed: the first such error ends the session, and is every later one's. */
  private receiveFailed(err: unknown): P2PTLSError {
    this.rxFailure ??= this.fatal(err);
    return this.rxFailure;
  }

  /** The events, once the replies they caused have been handed to the output (at once if none). */
  private settle({ out, replies }: Handled): SessionEvent[] | Promise<SessionEvent[]> {
    return replies.length === 0 ? out : Promise.all(replies).then(() => out);
  }

  /** Records a fatal receive error and tells the peer, as TLS sends an alert; returns the error. */
  private fatal(err: unknown): P2PTLSError {
    const error = err instanceof P2PTLSError ? err : fail('internal_error', 'record processing failed', err);
    // A record refused after the close handshake does not undo it: the session stays cleanly closed.
    if (this.current === 'failed' || this.current === 'closed') return error;
    const code =
      error.code === 'message_too_large'
        ? CloseCode.MESSAGE_TOO_LARGE
        : error.code === 'internal_error'
          ? CloseCode.INTERNAL_ERROR
          : CloseCode.PROTOCOL_ERROR;
    // After our own CLOSE nothing may be sent, not even this alert.
    if (this.current === 'open') {
      this.sealControl({ type: 'close', code, reason: error.code }).catch(() => {});
    }
    this.current = 'failed';
    this.info = { code, reason: error.message, byPeer: false, error };
    return error;
  }

  /**
   * Applies events in order. Replies to a ping or a key-update request are queued for the output at once,
   * in order (see {@link settle}); the answer to a CLOSE is queued behind them (see {@link peerClosed}).
   */
  private handle(events: ReliableEvent[]): Handled {
    const out: SessionEvent[] = [];
    const replies: Promise<void>[] = [];
    for (const e of events) {
      if (this.current === 'closed') {
        // §5.3: the peer's CLOSE_ACK is the only record that may follow its CLOSE.
        if (e.type === 'control' && e.message.type === 'close-ack') out.push({ type: 'close-ack' });
        else throw fail('unexpected_message', `a ${e.type} record after the peer's CLOSE`);
        continue;
      }
      // A reply the output refuses (the transport is gone) is not the peer's fault: the caller learns of
      // the transport's end from the transport, and the received record still counts.
      if (e.type === 'message') out.push(e);
      else if (e.type === 'key-update') {
        // Nothing may follow our CLOSE, replies included.
        if (e.requestUpdate && this.current === 'open') replies.push(this.rotateTx(false).catch(() => {}));
        out.push({ type: 'key-update' });
      } else {
        const m = e.message;
        if (m.type === 'ping') {
          if (this.current === 'open')
            replies.push(this.sealControl({ type: 'pong', data: m.data }).catch(() => {}));
        } else if (m.type === 'pong') out.push({ type: 'pong', data: m.data });
        else if (m.type === 'window') {
          this.sendWindow.raise(m.maxData);
          out.push({ type: 'window' });
        } else if (m.type === 'close-ack') {
          throw fail('unexpected_message', 'CLOSE_ACK before the CLOSE it follows');
        } else {
          this.peerClosed(m.code, m.reason);
          out.push({ type: 'close', code: m.code, reason: m.reason });
        }
      }
    }
    return { out, replies };
  }

  /**
   * The peer's reliable CLOSE (§5.3): both directions end. If we had not closed, we answer with our own
   * CLOSE (echoing its code and reason); either way CLOSE_ACK follows, our last record. They are queued in
   * order and not awaited: the caller learns of the close at once, so nothing more is accepted for sending
   * while they seal.
   */
  private peerClosed(code: number, reason: string): void {
    const peerError = isErrorCloseCode(code)
      ? { error: fail('peer_error', `peer closed with code ${code}: ${reason}`) }
      : {};
    if (this.current === 'open') {
      this.info = { code, reason, byPeer: true, ...peerError };
      this.sealControl({ type: 'close', code, reason }).catch(() => {});
    } else if (peerError.error) {
      // Both closed at once and the peer's reports an error about us: that is what the caller must see.
      this.info = { code, reason, byPeer: true, ...peerError };
    }
    this.current = 'closed';
    this.datagramsOpen = false;
    this.sealControl({ type: 'close-ack' }).catch(() => {});
  }

  /**
   * Sends one datagram in SLLP mode. Resolves with its sequence number once handed to `output.datagram`,
   * or with -1 when the transport dropped it (SLLP never waits).
   */
  sendDatagram(data: Uint8Array | string, sentAt: number): Promise<number> {
    if (this.current !== 'open' || !this.datagramsOpen) return Promise.reject(this.closedError());
    if (!Number.isInteger(sentAt) || sentAt < 0 || sentAt > MAX_SEQ_DATAGRAM) {
      return Promise.reject(fail('invalid_argument', 'sentAt must be an integer number of ms in 0..2^48-1'));
    }
    const bytes = typeof data === 'string' ? utf8(data) : data;
    if (bytes.length > this.opts.maxDatagramBytes) {
      return Promise.reject(
        fail('message_too_large', `datagram of ${bytes.length} bytes exceeds ${this.opts.maxDatagramBytes}`),
      );
    }
    try {
      const sealed = this.dgTx.sealData(bytes, sentAt);
      // Sealed already (synchronous provider): on the wire within this call, with no promise hop first.
      return sealed instanceof Promise
        ? sealed.then((d) => this.handDatagram(d))
        : Promise.resolve(this.handDatagram(sealed));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Gives a sealed datagram to the output: its sequence number, or -1 when the transport dropped it. */
  private handDatagram(d: SealedDatagram | SealedDatagramParts): number {
    return this.output.datagram('record' in d ? d.record : this.joinParts(d)) === false ? -1 : d.seq;
  }

  /**
   * Processes one datagram. Never throws: forged, replayed, stale or malformed datagrams come back as
   * `{ ok: false, reason }` and are counted in {@link Session.datagramStats}. A CLOSE datagram from the
   * peer ends SLLP only: no datagram is delivered or sent after it, while the reliable channel goes on to
   * the peer's reliable CLOSE, behind the data it sent before closing (§5.3). With a synchronous AEAD
   * and the epoch's key derived, the result comes within the call, not as a promise.
   */
  receiveDatagram(datagram: Uint8Array): DatagramResult | Promise<DatagramResult> {
    if (this.current !== 'open' || !this.datagramsOpen) {
      this.dgRx.stats.dropped.stale++;
      return { ok: false, reason: 'stale' };
    }
    const r = this.dgRx.open(datagram);
    return r instanceof Promise ? r.then((d) => this.datagramOpened(d)) : this.datagramOpened(r);
  }

  private datagramOpened(r: DatagramResult): DatagramResult {
    if (r.ok && r.kind === 'control') this.datagramsOpen = false;
    return r;
  }

  /** False once the peer closed the datagram channel (its CLOSE there) or the session left `open`. */
  get datagramsAccepted(): boolean {
    return this.current === 'open' && this.datagramsOpen;
  }

  /** Settles once every record passed to {@link receive} so far has been processed (or refused). */
  received(): Promise<void> {
    return this.inbox.settled();
  }

  /** Keying material for the application, bound to this session (RFC 8446 §7.5 style exporter). */
  async exportKeyingMaterial(label: string, context: Uint8Array, length: number): Promise<Uint8Array> {
    const secret = await expandLabel(this.exporterSecret, label, await hashOfEmpty(), 32);
    return expandLabel(secret, 'exporter', await sha256(context), length);
  }
}

function ignore(): void {}
