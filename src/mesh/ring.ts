/**
 * Ring arithmetic shared by every member: who sends to whom, which slice of the tensor each step
 * carries. Pure and deterministic, so members that agree on the member list agree on everything else.
 */
import type { PeerId } from '../identity/peer-id.js';

/** Members in ring order: sorted peerIds (the same on every member for the same set). */
export function ringOrder(members: Iterable<PeerId>): PeerId[] {
  return [...new Set(members)].sort();
}

/** A 32-bit FNV-1a fingerprint of a ring, carried in READY so members can tell they disagree. */
export function groupFingerprint(ring: readonly PeerId[]): number {
  let h = 0x811c9dc5;
  const s = ring.join(',');
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Index `i` modulo `n`, never negative. */
export const mod = (i: number, n: number): number => ((i % n) + n) % n;

/**
 * Segment `k` of `n` elements split into `parts`: [start, end). Sizes differ by at most one; with
 * fewer elements than parts some segments are empty.
 */
export function segment(k: number, n: number, parts: number): { start: number; end: number } {
  return { start: Math.floor((k * n) / parts), end: Math.floor(((k + 1) * n) / parts) };
}
