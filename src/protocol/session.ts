/**
 * An established p2ptls session: both record layers with their keys, driven by the caller. Pure: it
 * never touches a socket; records to transmit go to the `output` callbacks, in the order they must be
 * sent, and received records are passed in.
 */
import { fail, P2PTLSError } from '../errors.js';
import { utf8 } from '../util/bytes.js';
import { type AeadProvider, webCryptoAead } from './aead.js';
import {
  APPLICATION_CLOSE_CODES,
  CloseCode,
  Defaults,
  MAX_SEQ_DATAGRAM,
  PING_PAYLOAD_LEN,
  RecordType,
} from './constants.js';
import { type ControlMessage, encodeControl } from './control.js';
import { DatagramReader, type DatagramResult, type DatagramStats, DatagramWriter } from './datagram.js';
import type { HandshakeResult, Role } from './handshake.js';
import { expandLabel, hashOfEmpty, sha256 } from './key-schedule.js';
import {
  frameMessages,
  type PlainRecord,
  type ReliableEvent,
  ReliableReader,
  sealRecord,
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
  /** Anti-replay window size for datagrams (default 1024, a multiple of 32). */
  replayWindow?: number;
  /** Drop datagrams older than the newest delivered instead of delivering them late (default false). */
  dropStaleDatagrams?: boolean;
}

/** Where a session's outgoing records go. Called synchronously, in transmission order. */
export interface SessionOutput {
  reliable(record: Uint8Array): void;
  datagram(record: Uint8Array): void;
}

/** What {@link Session.receive} delivers, in order. */
export type SessionEvent =
  | { type: 'message'; data: Uint8Array }
  | { type: 'close'; code: number; reason: string }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'key-update' };

export type SessionState = 'open' | 'closed';

/** The reason a session ended. `byPeer` tells which side closed it. */
export interface CloseInfo {
  code: number;
  reason: string;
  byPeer: boolean;
  error?: P2PTLSError;
}

/** Hard ceiling of reliable sequence numbers; key updates keep us far below it. */
const MAX_SEQ_RELIABLE = 2 ** 48;

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
  private outTail: Promise<void> = Promise.resolve();
  private rxTail: Promise<void> = Promise.resolve();
  private closeInfo: CloseInfo | null = null;
  /**
   * The peer's CLOSE came on the datagram channel and its reliable CLOSE is still to come. Everything the
   * peer sent in TCP mode before closing is still in flight behind it on the ordered channel, so reliable
   * records are processed until that CLOSE: a close never overtakes the data sent before it.
   */
  private awaitingReliableClose = false;
  private readonly exporterSecret: Uint8Array;

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
    };
    if (this.opts.recordSize < 64 || this.opts.recordSize > this.opts.maxRecordBytes - 64) {
      throw fail('invalid_argument', 'recordSize must be between 64 and maxRecordBytes - 64');
    }
    if (this.opts.maxRecordsPerKey < 1 || this.opts.maxRecordsPerKey > MAX_SEQ_DATAGRAM) {
      throw fail('invalid_argument', 'maxRecordsPerKey out of range');
    }
    const s = keys.secrets;
    const initiator = keys.role === 'initiator';
    this.tx = new TrafficKeys(this.aead, initiator ? s.initiatorTcp : s.responderTcp, MAX_SEQ_RELIABLE);
    const rxKeys = new TrafficKeys(this.aead, initiator ? s.responderTcp : s.initiatorTcp, MAX_SEQ_RELIABLE);
    this.rx = new ReliableReader(this.aead, rxKeys, this.opts);
    this.dgTx = new DatagramWriter(
      this.aead,
      initiator ? s.initiatorSllp : s.responderSllp,
      this.opts.maxRecordsPerKey,
    );
    this.dgRx = new DatagramReader(this.aead, initiator ? s.responderSllp : s.initiatorSllp, {
      replayWindow: this.opts.replayWindow,
      dropStale: this.opts.dropStaleDatagrams,
      maxDatagramBytes: this.opts.maxDatagramBytes,
    });
  }

  get state(): SessionState {
    return this.closeInfo ? 'closed' : 'open';
  }

  /** Why the session closed, once it has. */
  get closed(): CloseInfo | null {
    return this.closeInfo;
  }

  /** Counters of the datagram channel. */
  get datagramStats(): DatagramStats {
    return this.dgRx.stats;
  }

  /** Key generation currently used for sending on the reliable channel. */
  get keyGeneration(): number {
    return this.tx.generation;
  }

  private assertOpen(): void {
    if (this.closeInfo) {
      throw fail(
        'closed',
        `session closed (${this.closeInfo.code}: ${this.closeInfo.reason || 'no reason'})`,
      );
    }
  }

  /** Queues one reliable record; its sequence number and key are fixed now, its bytes go out in order. */
  private sealReliable(type: number, flags: number, plaintext: Uint8Array): Promise<void> {
    if (type !== RecordType.KEY_UPDATE && this.tx.used >= this.opts.maxRecordsPerKey) this.rotateTx(false);
    const protection = this.tx.next();
    const sealed = sealRecord(this.aead, protection, new Uint8Array([type, flags]), plaintext);
    const done = this.outTail.then(() => sealed).then((record) => this.output.reliable(record));
    this.outTail = done.catch(() => {});
    return done;
  }

  private rotateTx(requestUpdate: boolean): Promise<void> {
    const sent = this.sealReliable(RecordType.KEY_UPDATE, 0, new Uint8Array([requestUpdate ? 1 : 0]));
    this.tx.rotate();
    return sent;
  }

  private sealControl(message: ControlMessage): Promise<void> {
    return this.sealReliable(RecordType.CONTROL, 0, encodeControl(message));
  }

  /**
   * Sends messages in TCP mode. Several messages in one call are batched into shared records where they
   * fit. Resolves once every record has been handed to `output.reliable`.
   */
  send(...messages: (Uint8Array | string)[]): Promise<void> {
    this.assertOpen();
    const bytes = messages.map((m) => (typeof m === 'string' ? utf8(m) : m));
    for (const m of bytes) {
      if (m.length > this.opts.maxMessageBytes) {
        throw fail(
          'message_too_large',
          `message of ${m.length} bytes exceeds maxMessageBytes ${this.opts.maxMessageBytes}`,
        );
      }
    }
    const records = frameMessages(bytes, this.opts.recordSize);
    let last: Promise<void> = Promise.resolve();
    for (const r of records) last = this.sealReliable(r.type, r.flags, r.plaintext);
    return last;
  }

  /** Largest message sent or reassembled (see {@link SessionOptions.maxMessageBytes}). */
  get maxMessageBytes(): number {
    return this.opts.maxMessageBytes;
  }

  /** Plaintext bytes per reliable record (see {@link SessionOptions.recordSize}). */
  get recordSize(): number {
    return this.opts.recordSize;
  }

  /**
   * Sends one DATA record made by {@link frameMessages}. For callers that frame lazily so that control
   * records and flow control are not stuck behind a large message already sealed in full.
   */
  sendRecord(record: PlainRecord): Promise<void> {
    this.assertOpen();
    if (record.type !== RecordType.DATA) throw fail('invalid_argument', 'sendRecord takes DATA records');
    return this.sealReliable(record.type, record.flags, record.plaintext);
  }

  /** Sends a ping; the peer answers with a pong carrying the same 8 bytes (see {@link SessionEvent}). */
  ping(data: Uint8Array): Promise<void> {
    this.assertOpen();
    if (data.length !== PING_PAYLOAD_LEN) throw fail('invalid_argument', 'ping payload must be 8 bytes');
    return this.sealControl({ type: 'ping', data });
  }

  /** Re-keys both sending directions now and asks the peer to re-key its own. */
  updateKeys(): Promise<void> {
    this.assertOpen();
    this.dgTx.rotate();
    return this.rotateTx(true);
  }

  /** Sends an authenticated close on both channels; the session refuses to send anything after it. */
  async close(code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.closeInfo) return;
    const message: ControlMessage = { type: 'close', code, reason };
    const reliable = this.sealControl(message);
    const datagram = this.dgTx.sealControl(message).then((d) => this.output.datagram(d.record));
    this.closeInfo = { code, reason, byPeer: false };
    await Promise.all([reliable, datagram]);
  }

  /**
   * Processes one record from the reliable channel. Results resolve in the order records were passed in,
   * even if the caller does not wait between calls, and nothing is delivered after a CLOSE. Any failure
   * is fatal: the session sends a close with PROTOCOL_ERROR, and this and every later call reject.
   */
  receive(record: Uint8Array): Promise<SessionEvent[]> {
    if (this.closeInfo && !this.awaitingReliableClose) return Promise.reject(this.closedError());
    const opened = this.rx.open(record);
    const result = this.rxTail
      .then(() => opened)
      .then((events) => {
        // Checked here, in record order: a record that arrived right behind a CLOSE is never delivered.
        if (this.closeInfo && !this.awaitingReliableClose) throw this.closedError();
        return this.handle(events);
      })
      .catch((err: unknown) => {
        throw this.fatal(err);
      });
    this.rxTail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  private closedError(): P2PTLSError {
    const c = this.closeInfo!;
    return fail('closed', `session closed (${c.code}: ${c.reason || 'no reason'})`);
  }

  /** Records a fatal receive error and tells the peer, as TLS sends an alert; returns the error. */
  private fatal(err: unknown): P2PTLSError {
    const error = err instanceof P2PTLSError ? err : fail('malformed', 'record processing failed', err);
    if (!this.closeInfo) {
      const code =
        error.code === 'message_too_large' ? CloseCode.MESSAGE_TOO_LARGE : CloseCode.PROTOCOL_ERROR;
      this.closeInfo = { code, reason: error.message, byPeer: false, error };
      // Best effort: failing to send the close must not hide the error.
      try {
        this.sealReliable(
          RecordType.CONTROL,
          0,
          encodeControl({ type: 'close', code, reason: error.code }),
        ).catch(() => {});
      } catch {}
    }
    return error;
  }

  /**
   * Applies the peer's close (either channel). p2ptls's own error codes (2–999) carry a `peer_error`;
   * NORMAL, GOING_AWAY and application codes (≥ 1000, the application's to interpret) do not.
   */
  private peerClosed(code: number, reason: string): void {
    if (this.closeInfo) return;
    const clean =
      code === CloseCode.NORMAL || code === CloseCode.GOING_AWAY || code >= APPLICATION_CLOSE_CODES;
    this.closeInfo = {
      code,
      reason,
      byPeer: true,
      ...(clean ? {} : { error: fail('peer_error', `peer closed with code ${code}: ${reason}`) }),
    };
  }

  /** Replies (pong, key update) have been handed to the output when this resolves. */
  private async handle(events: ReliableEvent[]): Promise<SessionEvent[]> {
    const out: SessionEvent[] = [];
    for (const e of events) {
      if (e.type === 'message') out.push(e);
      else if (e.type === 'key-update') {
        // After the peer's close nothing more is sent, replies included.
        if (e.requestUpdate && !this.closeInfo) await this.rotateTx(false);
        out.push({ type: 'key-update' });
      } else if (e.message.type === 'ping') {
        if (!this.closeInfo) await this.sealControl({ type: 'pong', data: e.message.data });
      } else if (e.message.type === 'pong') out.push({ type: 'pong', data: e.message.data });
      else {
        this.awaitingReliableClose = false;
        this.peerClosed(e.message.code, e.message.reason);
        out.push({ type: 'close', code: e.message.code, reason: e.message.reason });
        break;
      }
    }
    return out;
  }

  /** Sends one datagram in SLLP mode; resolves with its sequence number once handed to `output.datagram`. */
  async sendDatagram(data: Uint8Array | string, sentAt: number): Promise<number> {
    this.assertOpen();
    if (!Number.isInteger(sentAt) || sentAt < 0 || sentAt > MAX_SEQ_DATAGRAM) {
      throw fail('invalid_argument', 'sentAt must be an integer number of ms in 0..2^48-1');
    }
    const bytes = typeof data === 'string' ? utf8(data) : data;
    if (bytes.length > this.opts.maxDatagramBytes) {
      throw fail(
        'message_too_large',
        `datagram of ${bytes.length} bytes exceeds ${this.opts.maxDatagramBytes}`,
      );
    }
    const { record, seq } = await this.dgTx.sealData(bytes, sentAt);
    this.output.datagram(record);
    return seq;
  }

  /**
   * Processes one datagram. Never throws: forged, replayed, stale or malformed datagrams come back as
   * `{ ok: false, reason }` and are counted in {@link Session.datagramStats}. A close datagram from the
   * peer closes the session: nothing can be sent any more and no datagram is delivered, but reliable
   * records keep being processed until the peer's reliable CLOSE ({@link Session.awaitingPeerReliableClose}):
   * the data the peer sent before closing is still on its way there.
   */
  async receiveDatagram(datagram: Uint8Array): Promise<DatagramResult> {
    if (this.closeInfo) return { ok: false, reason: 'stale' };
    const r = await this.dgRx.open(datagram);
    if (r.ok && r.kind === 'control' && r.message.type === 'close' && !this.closeInfo) {
      this.peerClosed(r.message.code, r.message.reason);
      this.awaitingReliableClose = true;
    }
    return r;
  }

  /** Settles once every record passed to {@link receive} so far has been processed (or refused). */
  received(): Promise<void> {
    return this.rxTail;
  }

  /** True between the peer's CLOSE on the datagram channel and the same CLOSE on the reliable one. */
  get awaitingPeerReliableClose(): boolean {
    return this.awaitingReliableClose;
  }

  /** Keying material for the application, bound to this session (RFC 8446 §7.5 style exporter). */
  async exportKeyingMaterial(label: string, context: Uint8Array, length: number): Promise<Uint8Array> {
    const secret = await expandLabel(this.exporterSecret, label, await hashOfEmpty(), 32);
    return expandLabel(secret, 'exporter', await sha256(context), length);
  }
}
