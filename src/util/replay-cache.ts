/**
 * Remembers the nonces of signed messages until they are too old to be accepted anyway, so a message
 * replayed within its validity window is recognised. Expired entries are pruned (a message older than the
 * window is rejected by its timestamp, so forgetting it is safe). The cache is bounded: if more than
 * `maxEntries` messages arrive within one window the oldest nonces are forgotten early, so size it above
 * the traffic one peer can legitimately receive.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  /**
   * @param windowMs how long a nonce must be remembered: at least the message age limit plus the allowed
   *   clock skew into the future.
   * @param maxEntries memory bound.
   */
  constructor(
    readonly windowMs: number,
    readonly maxEntries = 100_000,
  ) {}

  /**
   * Records `key` (sender + nonce) if it was not seen. Returns false for a replay. Call it only after the
   * signature verified, so that forged messages cannot fill the cache.
   */
  checkAndRemember(key: string, ts: number, now = Date.now()): boolean {
    this.prune(now);
    if (this.seen.has(key)) return false;
    // Keep the nonce until the message's own timestamp leaves the window, so a replay is caught for as
    // long as the timestamp check alone would still accept it.
    this.seen.set(key, Math.max(ts, now) + this.windowMs);
    if (this.seen.size > this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    // Insertion order approximates expiry order; stop at the first live entry so pruning stays O(1)
    // amortised.
    for (const [key, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(key);
    }
  }
}
