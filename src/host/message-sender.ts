/**
 * TCP mode's sending side of a connection: messages wait in order, and are sealed into records (small
 * ones batched, large ones fragmented, PROTOCOL.md §5.2) as fast as the reliable channel drains, the
 * peer's window admits (§5.5) and datagrams flowing beside them allow. Memory stays bounded: a 100 MiB
 * message is sealed record by record as the channel takes them, never all at once.
 */
import { frameMessages, type PlainRecord, type Session } from '../protocol/index.js';
import type { Link } from '../transport/peer-link.js';
import type { Log } from '../util/log.js';
import type { SendOptions } from './connection-types.js';

/** Header and tag of a reliable record (PROTOCOL.md §5.1). */
const RECORD_OVERHEAD = 2 + 16;

/** Datagrams count as flowing for this long after the last one was sent. */
const DATAGRAMS_FLOWING_MS = 500;

/** Datagram bytes queued in the link beyond which reliable records wait (see pumpRecords). */
const DATAGRAM_BACKLOG = 64 * 1024;

interface Outgoing {
  data: Uint8Array;
  options: SendOptions | undefined;
  records?: PlainRecord[];
  next: number;
  sent: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What a {@link MessageSender} needs of its connection. */
export interface SenderHost {
  /**
   * Whether records may be sealed for the link now: the connection open or draining, its session open,
   * and the peer heard from (an initiator's records wait for that, see Connection's `untilHeard`).
   */
  maySeal(): boolean;
  /** Everything queued has been sealed (a connection draining for close() seals its CLOSE now). */
  emptied(): void;
}

export class MessageSender {
  private readonly outbox: Outgoing[] = [];
  private scheduled = false;
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
  /** When the last datagram was sent (performance.now()): reliable sending yields while they flow. */
  private lastDatagramSent = Number.NEGATIVE_INFINITY;
  private messagesSent = 0;

  constructor(
    private readonly session: Session,
    private readonly link: Link,
    /** Stop sealing while the reliable channel holds this many bytes. */
    private readonly highWater: number,
    private readonly host: SenderHost,
    private readonly log: Log,
  ) {}

  /** Messages queued and not yet wholly sealed. */
  get queued(): number {
    return this.outbox.length;
  }

  /** Messages wholly sealed. */
  get sent(): number {
    return this.messagesSent;
  }

  /** Queues one message; resolves once all its records are handed to the transport. */
  send(data: Uint8Array, options: SendOptions | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.outbox.push({ data, options, next: 0, sent: 0, resolve, reject });
      this.schedule();
    });
  }

  /** The session handed a sealed record of `length` bytes to the connection: its sealing slot is free. */
  handedOver(length: number): void {
    this.sealing = Math.max(0, this.sealing - length);
    // A record sealed asynchronously frees a sealing slot: the pump may go on (see pump()).
    if (!this.pumping) this.schedule();
  }

  /** A datagram was sent: reliable sealing yields to datagrams for {@link DATAGRAMS_FLOWING_MS}. */
  datagramSent(): void {
    this.lastDatagramSent = performance.now();
  }

  /** Pumps soon (in a microtask): something that held records back may have changed. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** The reliable channel drained. */
  wake(): void {
    this.link.settle();
    this.schedule();
  }

  /** The connection closed: every queued message rejects with `error`. */
  end(error: unknown): void {
    clearTimeout(this.pollTimer);
    for (const o of this.outbox.splice(0)) o.reject(error);
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
    // Nothing is sealed for the link while it may not carry it yet: the connection pumps again then.
    if (!this.host.maySeal()) return;
    // An asynchronous AEAD seals in call order too: while datagrams flow, one record at a time, so a
    // datagram's seal waits for one record at most (a synchronous one is never `sealing` here). The
    // reliable bytes queued in the channel are not capped lower while datagrams flow: a 512 KiB cap took
    // an unpaced transfer beside 30 fps video from 0.86 to 0.69 of raw bulk (bench:transport, wrtc) and
    // left the video's fps where it was (Node: 0.93 vs 0.95). Without a cap the video keeps all its
    // frames beside the transfer in Chromium too (bench:browser: 30.0 fps, 1.00 of alone).
    const flowing = performance.now() - this.lastDatagramSent < DATAGRAMS_FLOWING_MS;
    const sealingCap = flowing ? 1 : Number.POSITIVE_INFINITY;
    // Datagrams waiting in the link behind reliable data: a record is sealed only when the reliable
    // channel has nothing queued, one at a time, until they have gone (the poll at the end pumps again).
    // Why: on @roamhq/wrtc (libwebrtc) the reliable channel, kept fed up to the high-water mark, took
    // SCTP's free space, and datagrams beside an unpaced transfer waited in their channel until it held
    // over 1 MiB and the link dropped them (Link.sendDatagram). bench:transport --only datagrams, wrtc,
    // 2026-12-02: 30 fps video beside the transfer kept 0.66 and 0.75 of its fps alone, 4–160 of its 360
    // datagrams a round dropped that way; with this, 0.94 and 0.96, none dropped, the transfer at 0.94
    // and 0.95 of raw bulk (docs/BENCHMARKS.md). One record at a time, not none: TCP mode still moves
    // when datagrams come faster than the link carries them. The link is asked only when there is
    // something to seal: its getter calls into the WebRTC stack.
    const held = flowing && this.outbox.length > 0 && this.link.datagramsBuffered > DATAGRAM_BACKLOG;
    const highWater = held ? 1 : this.highWater;
    while (
      this.outbox.length > 0 &&
      this.link.bufferedAmount + this.sealing < highWater &&
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
      this.host.emptied();
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
}
