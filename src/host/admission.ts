/**
 * Admission of incoming dials, decided before anything is allocated for them (issue 13, point 5): a dial
 * from a paired peer takes a slot of the paired pool; a dial from anyone else is refused with
 * `unknown_peer` unless the application admits unpaired dialers, and then takes a slot of a small pool
 * of its own, at most one dial per such peer at a time and one new dial per peer per interval. Strangers
 * therefore cannot take the slots of paired peers, however many identities they bring.
 */
import type { PeerId } from '../identity/peer-id.js';

export interface AdmissionLimits {
  /** Pending incoming dials from paired peers, at most (HostOptions.maxPendingIncoming, default 32). */
  maxPaired: number;
  /** Pending incoming dials from one paired peer, at most. */
  maxPerPairedPeer: number;
  /** Pending incoming dials from unpaired peers, all together (default 4). */
  maxUnpaired: number;
  /** A new dial from the same unpaired peer is refused until this much time has passed (default 2 s). */
  unpairedIntervalMs: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = {
  maxPaired: 32,
  maxPerPairedPeer: 16,
  maxUnpaired: 4,
  unpairedIntervalMs: 2_000,
};

/** Unpaired peers whose last dial time is remembered, at most (oldest forgotten first). */
const MAX_REMEMBERED_STRANGERS = 1024;

/** What is pending now: one entry per incoming dial not yet established or failed. */
export interface PendingDial {
  readonly peerId: PeerId;
  readonly paired: boolean;
}

export type AdmissionVerdict = 'admit' | 'unknown_peer' | 'busy' | 'rate_limited';

export class DialAdmission {
  /** When each recently seen unpaired peer last got a dial admitted (insertion order = age). */
  private readonly lastStrangerDial = new Map<PeerId, number>();

  constructor(private readonly limits: AdmissionLimits) {}

  decide(
    peerId: PeerId,
    paired: boolean,
    admitUnpaired: boolean,
    pending: Iterable<PendingDial>,
    now = Date.now(),
  ): AdmissionVerdict {
    let pool = 0;
    let mine = 0;
    for (const d of pending) {
      if (d.paired !== paired) continue;
      pool++;
      if (d.peerId === peerId) mine++;
    }
    if (paired) {
      return pool >= this.limits.maxPaired || mine >= this.limits.maxPerPairedPeer ? 'busy' : 'admit';
    }
    if (!admitUnpaired) return 'unknown_peer';
    if (pool >= this.limits.maxUnpaired || mine >= 1) return 'busy';
    const last = this.lastStrangerDial.get(peerId);
    if (last !== undefined && now - last < this.limits.unpairedIntervalMs) return 'rate_limited';
    this.lastStrangerDial.delete(peerId);
    this.lastStrangerDial.set(peerId, now);
    if (this.lastStrangerDial.size > MAX_REMEMBERED_STRANGERS) {
      const oldest = this.lastStrangerDial.keys().next().value;
      if (oldest !== undefined) this.lastStrangerDial.delete(oldest);
    }
    return 'admit';
  }
}
