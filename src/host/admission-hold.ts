/**
 * Incoming dials between their first signal and their admission (PROTOCOL.md §8): who sent each, its offer
 * (with the ClientHello) once it came, and the ICE candidates that overtook it. Nothing here is known to
 * come from a paired peer yet, so all of it is bounded by count, size and time:
 * - at most {@link HoldLimits.maxDials} dials; one whose offer has not come makes room for a new one;
 * - only candidates are held before the offer, each at most about 1.2 KiB ({@link HeldCandidate}),
 *   {@link HoldLimits.maxPerDial} per dial and {@link HoldLimits.maxCandidates} in all;
 * - a dial whose offer has not come within {@link HoldLimits.orphanMs} is forgotten.
 * Why: before these bounds, unpaired identities sent candidate-only signals of 60 KB under 64 dial ids,
 * 32 each, and a host kept them all with no end: its heap went 14 → 132 MiB after a full collection and
 * stayed there (2,048 signals from 8 identities through a real server, with the server's default limits).
 */
import type { PeerId } from '../identity/peer-id.js';
import { logger, shortId } from '../util/log.js';
import type { DialSignalData } from './dial.js';
import { HeldCandidate } from './dial-signals.js';

export interface HoldLimits {
  /** Dials being admitted at once. */
  maxDials: number;
  /** Candidates held for one dial before its offer. */
  maxPerDial: number;
  /** Candidates held for all dials together. */
  maxCandidates: number;
  /** How long a dial whose offer has not come is kept. */
  orphanMs: number;
}

export const DEFAULT_HOLD: HoldLimits = {
  maxDials: 64,
  maxPerDial: 32,
  maxCandidates: 256,
  // Its candidates overtake an offer by milliseconds (signed signals relayed in parallel); 10 s is far
  // past that and short enough that a stranger's orphans leave on their own.
  orphanMs: 10_000,
};

/** A dial being admitted. */
export interface HeldDial {
  readonly from: PeerId;
  /** The signal that carried the ClientHello, once it came (set by {@link AdmissionHold.add}). */
  offer: DialSignalData | undefined;
  /** Candidates that came before the offer or while the dialer's admission was decided. */
  readonly candidates: unknown[];
  /** When its first signal came (`performance.now()`). */
  readonly since: number;
}

const log = logger('admission');

export class AdmissionHold {
  private readonly dials = new Map<string, HeldDial>();
  /** Candidates held in all dials. */
  private candidates = 0;
  /** Fires when the oldest dial without an offer expires; set while there is one. */
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly limits: HoldLimits = DEFAULT_HOLD) {}

  get(id: string): HeldDial | undefined {
    return this.dials.get(id);
  }

  /** Dials and candidates held now. */
  get size(): { dials: number; candidates: number } {
    return { dials: this.dials.size, candidates: this.candidates };
  }

  /**
   * Starts holding a new dial from its first signal: the offer, or a candidate that overtook it. `busy`
   * when every slot holds a dial whose offer has come; `ignored` for a first signal that is neither.
   */
  start(id: string, from: PeerId, signal: DialSignalData): 'held' | 'busy' | 'ignored' {
    const offer = signal.handshake ? signal : undefined;
    const candidate = offer ? undefined : HeldCandidate.safeParse(signal.signal);
    if (candidate && !candidate.success) return 'ignored';
    if (this.dials.size >= this.limits.maxDials && !this.evictOrphan()) return 'busy';
    const dial: HeldDial = { from, offer, candidates: [], since: performance.now() };
    this.dials.set(id, dial);
    if (candidate) this.keep(dial, candidate.data);
    if (!offer) this.scheduleExpiry();
    return 'held';
  }

  /**
   * A later signal of a held dial: `offer` when it is the offer its candidates overtook (then the dial is
   * no orphan any more and its admission can start); a second hello-bearing signal is ignored (§8); a
   * candidate is kept if the bounds allow, anything else dropped.
   */
  add(dial: HeldDial, signal: DialSignalData): 'offer' | undefined {
    if (signal.handshake) {
      if (dial.offer) return undefined;
      dial.offer = signal;
      return 'offer';
    }
    const candidate = HeldCandidate.safeParse(signal.signal);
    if (candidate.success) this.keep(dial, candidate.data);
    return undefined;
  }

  /** Stops holding a dial (admitted, refused or aborted by its dialer) and returns it. */
  take(id: string): HeldDial | undefined {
    const dial = this.dials.get(id);
    if (!dial) return undefined;
    this.dials.delete(id);
    this.candidates -= dial.candidates.length;
    return dial;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dials.clear();
    this.candidates = 0;
  }

  private keep(dial: HeldDial, candidate: unknown): void {
    if (dial.candidates.length >= this.limits.maxPerDial || this.candidates >= this.limits.maxCandidates)
      return;
    dial.candidates.push(candidate);
    this.candidates++;
  }

  /** Forgets the oldest dial whose offer has not come; false if every dial has its offer. */
  private evictOrphan(): boolean {
    for (const [id, dial] of this.dials) {
      if (dial.offer) continue;
      log('dial %s from %s: no offer yet, makes room', id, shortId(dial.from));
      this.take(id);
      return true;
    }
    return false;
  }

  /** Arms the timer for the oldest dial without an offer (dials are in arrival order). */
  private scheduleExpiry(): void {
    if (this.timer) return;
    let oldest: HeldDial | undefined;
    for (const dial of this.dials.values()) {
      if (!dial.offer) {
        oldest = dial;
        break;
      }
    }
    if (!oldest) return;
    const wait = Math.max(0, oldest.since + this.limits.orphanMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.expire();
    }, wait);
  }

  private expire(): void {
    const now = performance.now();
    for (const [id, dial] of this.dials) {
      if (dial.offer || now - dial.since < this.limits.orphanMs) continue;
      log('dial %s from %s: no offer within %d ms, forgotten', id, shortId(dial.from), this.limits.orphanMs);
      this.take(id);
    }
    this.scheduleExpiry();
  }
}
