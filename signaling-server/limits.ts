/**
 * The signaling server's abuse budgets, all synchronous and allocation-free on the hot path: a refused
 * event must cost less than the work it was refused to spare (issue 17, point 1: the old promise-based
 * limiter built an error object, a rejected promise and an ack for each of 310k refused events, and the
 * backlog that left behind made the legitimate pair's own events arrive in bursts that it then refused).
 *
 * Time is passed in (`now`, ms), so that one `Date.now()` per event serves every budget it touches.
 */

/** A token bucket: `burst` tokens, refilled at `rate` per second. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token; false when the bucket is empty. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket has refilled completely, i.e. forgetting it changes nothing. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed <= 0) return;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }
}

/** Token buckets by key (an IP address, a peerId); full buckets are forgotten by {@link sweep}. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.rate, this.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }

  /** Drops the buckets that refilled completely. Call every few seconds. */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) if (b.full(now)) this.buckets.delete(key);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** How long after its last join a peer's next join of the same room counts as churn. */
export const ROOM_CHURN_MEMORY_MS = 10_000;

/**
 * Joins one room takes per second (issue 17, point 4; leaves are never refused, each follows an admitted
 * join), without letting churners lock everyone else out. Only churn is charged to the room's token
 * bucket: a join by a peer that tried to join this room within {@link ROOM_CHURN_MEMORY_MS}. A peer's
 * first join in that time always passes. Before, one bucket took every change: 20 join/leave spammers,
 * each within its own 2/s, kept the room's 20/s spent, and a legitimate client's `room:join` was
 * refused `rate_limited` in the attack bench (`bench:signaling --attacks --pair client`, room phase).
 * What passes uncharged is bounded all the same: one join per peer per 10 s, and the room's size cap.
 */
export class RoomChurn {
  private readonly buckets: KeyedBuckets;
  /** Per room: when each peer last tried to join it (refused joins included). */
  private readonly recent = new Map<string, Map<string, number>>();

  constructor(rate: number) {
    this.buckets = new KeyedBuckets(rate, 2 * rate);
  }

  take(room: string, peer: string, now: number): boolean {
    let peers = this.recent.get(room);
    if (!peers) {
      peers = new Map();
      this.recent.set(room, peers);
    }
    const last = peers.get(peer);
    peers.set(peer, now);
    if (last === undefined || now - last >= ROOM_CHURN_MEMORY_MS) return true;
    return this.buckets.take(room, now);
  }

  /** Forgets changes older than the churn memory and full buckets. Call every few seconds. */
  sweep(now: number): void {
    this.buckets.sweep(now);
    for (const [room, peers] of this.recent) {
      for (const [peer, at] of peers) if (now - at >= ROOM_CHURN_MEMORY_MS) peers.delete(peer);
      if (peers.size === 0) this.recent.delete(room);
    }
  }
}

/**
 * What to do with one event of a connection: serve it; refuse it with an answer (the first refusal in a
 * strike window, so a client that overshoots learns why); refuse it silently (an answer per refused
 * event is what a flooder wants us to spend); or disconnect the connection (it kept going).
 */
export type Verdict = 'serve' | 'refuse' | 'drop' | 'disconnect';

/**
 * One connection's event budget and its strike count. A connection whose events are refused more than
 * `maxStrikes` times within `strikeWindowMs` is flooding and gets disconnected; a well-behaved client
 * that overshoots its burst by a few events only sees `rate_limited`.
 */
/** Seconds of a connection's event rate it may spend at once (see {@link EventBudget}). */
export const EVENT_BURST_SECONDS = 4;

export class EventBudget {
  private readonly bucket: TokenBucket | null;
  private strikes = 0;
  private windowStart = 0;

  constructor(
    rate: number,
    private readonly maxStrikes: number,
    private readonly strikeWindowMs: number,
    now: number,
  ) {
    // Four seconds' worth of burst: a host that dials ten peers at once sends ~300 signals in its first
    // second (an offer and trickled candidates per dial, both stacks; test/host/dialing.test.ts), and
    // with a burst of one second's worth it was cut off as a flooder and every dial timed out.
    this.bucket = rate > 0 ? new TokenBucket(rate, rate * EVENT_BURST_SECONDS, now) : null;
  }

  /** Charges one event against the connection's own budget. */
  take(now: number): Verdict {
    if (this.bucket === null || this.bucket.take(now)) return 'serve';
    return this.strike(now);
  }

  /** Records a refusal decided elsewhere (the address's budget, a room's churn cap). */
  strike(now: number): Verdict {
    if (now - this.windowStart >= this.strikeWindowMs) {
      this.windowStart = now;
      this.strikes = 0;
    }
    this.strikes++;
    if (this.maxStrikes > 0 && this.strikes > this.maxStrikes) return 'disconnect';
    return this.strikes === 1 ? 'refuse' : 'drop';
  }
}

/** Per-key counters of live things (unauthenticated sockets per address), forgotten at zero. */
export class Counts {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.counts.set(key, this.get(key) + 1);
  }

  remove(key: string): void {
    const n = this.get(key) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
}

interface RecipientWindow {
  start: number;
  /** Signals from strangers (see below) delivered in the current window. */
  strangers: number;
  total: number;
  /** Signals each stranger delivered to this recipient in the current window (0: it only tried). */
  senders: Map<string, number>;
  /** How many strangers tried in the previous window (the fair share's divisor early in a window). */
  previousSenders: number;
  /** Peers this recipient itself signalled, and when last: its conversations. */
  partners: Map<string, number>;
}

/** How long a peer that was signalled counts as a conversation partner of the one that signalled it. */
const PARTNER_MS = 30_000;

/**
 * How many signals one recipient is delivered per second, shared fairly among whoever sends to it
 * (issue 17, point 2: 40 connections, each within its own budget, delivered 3,875 signals/s to one
 * peer, and its client, verifying ~150/s, fell hopelessly behind). In each one-second window a
 * recipient takes at most `rate` signals.
 *
 * Senders it is in a conversation with (it signalled them in the last 30 s: a dial in progress, an
 * answer to its offer) are limited by that total only. Everyone else, a stranger, shares 3/4 of it
 * fairly: each at most `3/4 · rate / n`, n being the number of strangers active in this or the last
 * window. So 40 flooders cannot take more than 3/4 of the budget between them, a conversation in
 * progress keeps the rest, and a new legitimate dialer still gets its 1/41 of the strangers' part.
 *
 * With several processes, the process holding the recipient's connection charges its budget (every
 * sender, wherever connected, is counted in one place), and the process holding the sender's connection
 * records the conversation with {@link talked} once the signal was delivered: the recipient's answers
 * are charged there.
 */
export class RecipientBudget {
  private readonly windows = new Map<string, RecipientWindow>();
  private readonly strangerRate: number;

  constructor(private readonly rate: number) {
    this.strangerRate = Math.max(1, Math.floor((rate * 3) / 4));
  }

  take(recipient: string, sender: string, now: number): boolean {
    if (this.rate <= 0) return true;
    const w = this.window(recipient, now);
    const talked = w.partners.get(sender);
    if (talked !== undefined && now - talked < PARTNER_MS) {
      if (w.total >= this.rate) return false;
      this.accept(w, recipient, sender, now);
      return true;
    }
    // A refused stranger still counts as active: the share is split among all who try.
    const sent = w.senders.get(sender) ?? 0;
    if (sent === 0) w.senders.set(sender, 0);
    const share = Math.max(1, Math.floor(this.strangerRate / Math.max(w.previousSenders, w.senders.size)));
    if (w.total >= this.rate || w.strangers >= this.strangerRate || sent >= share) return false;
    w.senders.set(sender, sent + 1);
    w.strangers++;
    this.accept(w, recipient, sender, now);
    return true;
  }

  /** Records that `sender` signalled `recipient` (delivered): `recipient`'s answers are a conversation. */
  talked(sender: string, recipient: string, now: number): void {
    if (this.rate > 0) this.window(sender, now).partners.set(recipient, now);
  }

  /** Forgets recipients nobody signalled, and who signalled nobody, for a while. Call every few seconds. */
  sweep(now: number): void {
    for (const [recipient, w] of this.windows) {
      for (const [peer, at] of w.partners) if (now - at >= PARTNER_MS) w.partners.delete(peer);
      if (now - w.start >= 2000 && w.partners.size === 0) this.windows.delete(recipient);
    }
  }

  get size(): number {
    return this.windows.size;
  }

  private accept(w: RecipientWindow, recipient: string, sender: string, now: number): void {
    w.total++;
    this.talked(sender, recipient, now);
  }

  private window(peer: string, now: number): RecipientWindow {
    let w = this.windows.get(peer);
    if (!w) {
      w = { start: now, strangers: 0, total: 0, senders: new Map(), previousSenders: 0, partners: new Map() };
      this.windows.set(peer, w);
    } else if (now - w.start >= 1000) {
      // Only a window that just ended tells who is active now; an older one is history.
      w.previousSenders = now - w.start < 2000 ? w.senders.size : 0;
      w.start = now;
      w.strangers = 0;
      w.total = 0;
      w.senders.clear();
    }
    return w;
  }
}
