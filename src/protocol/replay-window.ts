import { fail } from '../errors.js';

export type WindowVerdict = 'ok' | 'replay' | 'stale';

/**
 * Sliding anti-replay window over sequence numbers (RFC 4303 §3.4.3, bitmap kept circular as in
 * RFC 6479). Check before decrypting (cheap rejection), accept only after authentication, so forged
 * datagrams can never move the window.
 */
export class ReplayWindow {
  private readonly bits: Uint32Array;
  private top = -1;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 32 || size % 32 !== 0) {
      throw fail('invalid_argument', 'replay window size must be a positive multiple of 32');
    }
    this.bits = new Uint32Array(size / 32);
  }

  /** Highest sequence number accepted so far (-1 before the first). */
  get highest(): number {
    return this.top;
  }

  check(seq: number): WindowVerdict {
    if (seq > this.top) return 'ok';
    if (this.top - seq >= this.size) return 'stale';
    return this.isSet(seq) ? 'replay' : 'ok';
  }

  /** Marks `seq` as received. Call only after `check(seq) === 'ok'` and successful authentication. */
  accept(seq: number): void {
    if (seq > this.top) {
      if (seq - this.top >= this.size) this.bits.fill(0);
      else for (let s = this.top + 1; s < seq; s++) this.clear(s);
      this.top = seq;
    }
    const i = seq % this.size;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }

  private isSet(seq: number): boolean {
    const i = seq % this.size;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  private clear(seq: number): void {
    const i = seq % this.size;
    this.bits[i >>> 5]! &= ~(1 << (i & 31));
  }
}
