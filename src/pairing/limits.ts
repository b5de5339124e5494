/**
 * Bounded bookkeeping for pairing requests from untrusted senders (issue 13, points 4 and 6). It refuses
 * instead of forgetting when it is full, as the request nonces' ReplayCache does: a flood of senders can
 * then only make new requests wait, never make an old one acceptable again or buy itself more budget.
 */

import { ReplayCache } from '../util/replay-cache.js';

/**
 * The nonces of pairing requests seen within the acceptance window: a {@link ReplayCache} of their own
 * (signals have theirs in the signaling client), so nothing else can push them out. Each sender may hold
 * at most `perPeer` live entries, so one sender cannot fill the cache for everyone.
 */
export class PairingNonceCache extends ReplayCache {
  /**
   * @param windowMs how long a nonce must be remembered: the message age limit plus the allowed skew.
   * @param capacity live entries at most; when full, new requests are refused.
   * @param perPeer live entries of one sender at most.
   */
  constructor(windowMs: number, capacity = 4096, perPeer = 32) {
    super(windowMs, capacity, perPeer);
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
