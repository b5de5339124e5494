/**
 * Remembers the nonces of signed messages until they are too old to be accepted anyway, so a message
 * replayed within its validity window is recognised. It is bounded, and when full it refuses new messages
 * (`full`) instead of forgetting old nonces early: forgetting one would make its message acceptable again.
 * Each sender may hold at most `perSender` live entries, so one sender cannot fill it for everyone.
 *
 * Why refuse: this cache used to forget its oldest nonce past 100,000 entries, and 100,000 validly signed
 * signals from strangers within the window (42 s of real RSA-PSS signing and verifying here) made a paired
 * peer's signal, replayed, deliverable a second time. A sender that hits a bound only makes its own new
 * messages wait for the window to move on.
 */

/** What {@link ReplayCache.remember} decided. */
export type ReplayVerdict =
  /** Not seen before: recorded. */
  | 'fresh'
  /** Seen before within the window. */
  | 'replay'
  /** Not seen, but the cache or the sender's share of it is full: refused, nothing recorded. */
  | 'full';

/** Between a sender and a nonce in a key: peerIds and base64url nonces never contain it. */
const SEP = '\u0000';

export class ReplayCache {
  /** `from SEP nonce` → when the entry may go (ms). Insertion order is the order of those times. */
  private readonly seen = new Map<string, number>();
  private readonly perSenderCount = new Map<string, number>();

  /**
   * @param windowMs how long a nonce is kept after the later of its message's timestamp and its arrival:
   *   at least the message age limit, so a replay is caught for as long as the timestamp check alone would
   *   still accept it.
   * @param maxEntries live entries at most; when full, new messages are refused.
   * @param perSender live entries of one sender at most (all of them by default).
   */
  constructor(
    readonly windowMs: number,
    readonly maxEntries = 100_000,
    readonly perSender = maxEntries,
  ) {}

  /**
   * Records the `nonce` of a message from `from` dated `ts`. Call it only after the message's signature
   * verified, so that forged messages cannot fill the cache.
   */
  remember(from: string, nonce: string, ts: number, now = Date.now()): ReplayVerdict {
    this.prune(now);
    const key = `${from}${SEP}${nonce}`;
    if (this.seen.has(key)) return 'replay';
    const mine = this.perSenderCount.get(from) ?? 0;
    if (this.seen.size >= this.maxEntries || mine >= this.perSender) return 'full';
    // Kept until the message's own timestamp leaves the window, plus its arrival: a message dated ahead
    // (within the allowed skew) is kept that much longer. Entries are appended at `now + windowMs` at the
    // earliest, so the map stays close to expiry order; see prune().
    this.seen.set(key, Math.max(ts, now) + this.windowMs);
    this.perSenderCount.set(from, mine + 1);
    return 'fresh';
  }

  /** Whether the nonce of a message from `from` is remembered (nothing recorded). */
  has(from: string, nonce: string): boolean {
    return this.seen.has(`${from}${SEP}${nonce}`);
  }

  /**
   * {@link remember} for a caller that keys messages itself (one shared sender): false for a replay and
   * when full.
   */
  checkAndRemember(key: string, ts: number, now = Date.now()): boolean {
    return this.remember('', key, ts, now) === 'fresh';
  }

  get size(): number {
    return this.seen.size;
  }

  /**
   * Drops expired entries from the front, stopping at the first live one, so pruning stays O(1) amortised.
   * An entry dated ahead can stop it early and keep the entries behind it up to one clock skew longer:
   * they count against the bounds that much longer, and are never forgotten early.
   */
  private prune(now: number): void {
    for (const [key, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(key);
      const from = key.slice(0, key.indexOf(SEP));
      const left = (this.perSenderCount.get(from) ?? 1) - 1;
      if (left > 0) this.perSenderCount.set(from, left);
      else this.perSenderCount.delete(from);
    }
  }
}
