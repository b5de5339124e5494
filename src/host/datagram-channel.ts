/**
 * SLLP mode as the application sees it (`connection.datagrams`): sends go through the connection, and
 * received datagrams are queued for an iterator or emitted, up to a byte bound.
 */
import type { CloseInfo } from '../protocol/index.js';
import { TypedEmitter } from '../util/emitter.js';
import { AsyncQueue } from './async-queue.js';
import type { Datagram } from './connection-types.js';

/** What a {@link DatagramChannel} needs of its connection. */
export interface DatagramSender {
  /** Largest payload of one datagram. */
  readonly maxDatagramBytes: number;
  /** Seals and sends one datagram: its sequence number, or -1 when it was dropped locally. */
  sendDatagram(data: Uint8Array | string): Promise<number>;
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
    private readonly connection: DatagramSender,
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
