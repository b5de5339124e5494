/**
 * Bounded bookkeeping for pairing requests from untrusted senders (issue 13, points 4 and 6). Both
 * structures refuse instead of forgetting when they are full: a flood of senders can then only make
 * new requests wait, never make an old one acceptable again or buy itself more budget.
 */

/**
 * The nonces of pairing requests seen within the acceptance window, in a cache of their own (signals
 * have theirs in the signaling client), so nothing else can push them out. Entries leave only when their
 * message is too old to be accepted anyway. Each sender may hold at most `perPeer` live entries, so one
 * sender cannot fill the cache for everyone.
 */
export class PairingNonceCache {
  private readonly seen = new Map<string, number>();
  private readonly perSender = new Map<string, number>();

  /**
   * @param windowMs how long a nonce must be remembered: the message age limit plus the allowed skew.
   * @param capacity live entries at most; when full, new requests are refused.
   * @param perPeer live entries of one sender at most.
   */
  constructor(
    readonly windowMs: number,
    readonly capacity = 4096,
    readonly perPeer = 32,
  ) {}

  /** Records a request's nonce: `fresh`, `replay` (seen before) or `full` (refused, nothing recorded). */
  remember(from: string, nonce: string, ts: number, now = Date.now()): 'fresh' | 'replay' | 'full' {
    this.prune(now);
    const key = `${from}:${nonce}`;
    if (this.seen.has(key)) return 'replay';
    const mine = this.perSender.get(from) ?? 0;
    if (this.seen.size >= this.capacity || mine >= this.perPeer) return 'full';
    // Kept until the message's own timestamp leaves the window (see ReplayCache).
    this.seen.set(key, Math.max(ts, now) + this.windowMs);
    this.perSender.set(from, mine + 1);
    return 'fresh';
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    // Expiry is not in insertion order here (future-dated messages live longer), so scan everything;
    // the cache is small and bounded.
    for (const [key, expires] of this.seen) {
      if (expires > now) continue;
      this.seen.delete(key);
      const from = key.slice(0, key.indexOf(':'));
      const left = (this.perSender.get(from) ?? 1) - 1;
      if (left > 0) this.perSender.set(from, left);
      else this.perSender.delete(from);
    }
  }
}

/**
 * At most `limit` events per key in any window of `windowMs` (a sliding log). At most `maxKeys` keys are
 * tracked; an unknown key while full is refused rather than evicting another key's history.
 */
export class RateWindow {
  private readonly events = new Map<string, number[]>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly maxKeys = 4096,
  ) {}

  /** Takes one event for `key` if its budget allows; false when over the limit. */
  take(key: string, now = Date.now()): boolean {
    let times = this.events.get(key);
    if (times) {
      while (times.length > 0 && times[0]! <= now - this.windowMs) times.shift();
    } else {
      if (this.events.size >= this.maxKeys) this.prune(now);
      if (this.events.size >= this.maxKeys) return false;
      times = [];
      this.events.set(key, times);
    }
    if (times.length >= this.limit) return false;
    times.push(now);
    return true;
  }

  private prune(now: number): void {
    for (const [key, times] of this.events) {
      if (times.length === 0 || times[times.length - 1]! <= now - this.windowMs) this.events.delete(key);
    }
  }
}
