/**
 * The signaling client's inbound signal queue (issue 17, point 3): bounded, and in two lanes so that
 * signals from paired peers are verified ahead of strangers' without starving strangers completely.
 *
 * Measured before it existed: every relayed signal was chained onto one promise and a flood of 4000
 * signals/s from strangers grew that chain to 22k entries; cost per signal rose from 135 µs (1k queued)
 * to 561 µs (16k queued) and every legitimate signal behind the flood was lost. Here both lanes are
 * fixed-capacity rings: offering and taking are O(1) whatever the queue length, and a signal beyond a
 * lane's bound is dropped (and counted) at arrival, before any parsing or crypto. Measured with
 * `npm run bench:signaling-client` (bad-signature burst, median of 3): 220 µs/signal with 1k queued and
 * 114 µs with 16k, where the previous client took 210 µs and 1,024 µs in the same conditions.
 *
 * No sockets, timers or promises: the client owns the loop that drains it.
 */

/** Which lane a signal waits in: paired peers (PeerStore / `trustPeer`) or everyone else. */
export type InboxLane = 'paired' | 'stranger';

/** Bounds of a {@link SignalInbox}. */
export interface SignalInboxLimits {
  /** Signals from paired peers that may wait. */
  maxPaired: number;
  /** Signals from strangers that may wait. */
  maxStrangers: number;
  /** While paired signals wait, one take in `strangerShare` still serves a stranger (≥ 1). */
  strangerShare: number;
}

/** A fixed-capacity FIFO ring: push and shift are O(1) and never move the other entries. */
export class RingQueue<T> {
  private readonly slots: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError('capacity must be ≥ 0');
    this.slots = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Appends `value`; false (and nothing stored) when full. */
  push(value: T): boolean {
    if (this.count === this.capacity) return false;
    this.slots[(this.head + this.count) % this.capacity] = value;
    this.count++;
    return true;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const value = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return value;
  }

  clear(): void {
    while (this.count > 0) this.shift();
  }
}

/** Two bounded lanes; {@link take} prefers the paired lane, giving strangers a bounded share. */
export class SignalInbox<T> {
  private readonly paired: RingQueue<T>;
  private readonly strangers: RingQueue<T>;
  private readonly strangerShare: number;
  /** Paired takes since a stranger was last served while paired signals waited. */
  private pairedStreak = 0;

  constructor(limits: SignalInboxLimits) {
    this.paired = new RingQueue(limits.maxPaired);
    this.strangers = new RingQueue(limits.maxStrangers);
    this.strangerShare = Math.max(1, Math.floor(limits.strangerShare));
  }

  /** Queues `item` in `lane`; false when that lane is full (the caller counts the drop). */
  offer(item: T, lane: InboxLane): boolean {
    return lane === 'paired' ? this.paired.push(item) : this.strangers.push(item);
  }

  /** The next signal to verify, or undefined when both lanes are empty. */
  take(): { item: T; lane: InboxLane } | undefined {
    const serveStranger =
      this.strangers.length > 0 && (this.paired.length === 0 || this.pairedStreak >= this.strangerShare - 1);
    if (serveStranger) {
      this.pairedStreak = 0;
      return { item: this.strangers.shift() as T, lane: 'stranger' };
    }
    if (this.paired.length === 0) return undefined;
    this.pairedStreak++;
    return { item: this.paired.shift() as T, lane: 'paired' };
  }

  get queuedPaired(): number {
    return this.paired.length;
  }

  get queuedStrangers(): number {
    return this.strangers.length;
  }

  clear(): void {
    this.paired.clear();
    this.strangers.clear();
    this.pairedStreak = 0;
  }
}
