/**
 * The step header: a small sum all-reduce every member runs at the start of each step, before it
 * computes gradients. It is how the members agree, step by step and without a coordinator, on
 *   - who holds the current parameters (and so who must receive them: joiners and stragglers),
 *   - which member sends them (the lowest peerId among the up-to-date ones),
 *   - the step number, the gradient compression in force, and each member's last step time.
 * Pure: numbers in, numbers out.
 *
 * Layout: SLOTS float32 per ring position r (ring = sorted peerIds), written only by that member, the
 * others contributing zeros, so the sum is every member's own values side by side:
 *   [r*SLOTS + 0]  1: the member took part (an elastic all-reduce may finish without a lost member,
 *                  whose slots then stay 0)
 *   [r*SLOTS + 1]  step + 1 if the member holds trained parameters, 0 if it has none yet
 *   [r*SLOTS + 2]  setting version * 4 + compression code (the newest setting wins, see below)
 *   [r*SLOTS + 3]  the member's last step time in ms
 * All are small integers (exact in float32 below 2^24) except the step time, which is only shown.
 */
export const SLOTS = 4;

export type Compression = 'none' | 'float16' | 'int8';
const CODES: readonly Compression[] = ['none', 'float16', 'int8'];

/** A compression choice, stamped with a version so that the newest one wins across the group. */
export interface Setting {
  version: number;
  compression: Compression;
}

export interface MemberHeader {
  /** -1: no parameters yet; else the step it is about to take. */
  step: number;
  setting: Setting;
  stepMs: number;
}

/** The order of settings: the newer version wins, then the higher compression code. */
export function settingKey(s: Setting): number {
  return s.version * 4 + CODES.indexOf(s.compression);
}

export function encodeHeader(ring: readonly string[], self: string, mine: MemberHeader): Float32Array {
  const out = new Float32Array(ring.length * SLOTS);
  const r = ring.indexOf(self);
  out[r * SLOTS] = 1;
  out[r * SLOTS + 1] = mine.step + 1;
  out[r * SLOTS + 2] = settingKey(mine.setting);
  out[r * SLOTS + 3] = mine.stepMs;
  return out;
}

/** What the summed header says about this step. */
export interface StepPlan {
  /** The step every member takes now. */
  step: number;
  /** The member whose parameters and optimizer state are the group's (lowest peerId among the newest). */
  root: string;
  /** Members that must receive the state before this step (no parameters, or an older step). */
  behind: string[];
  /** The setting in force: the highest version any member holds (ties: the higher compression code). */
  setting: Setting;
  /** The members that took part in the header, in ring order. */
  present: string[];
  /** Their headers, by peerId. */
  members: Map<string, MemberHeader>;
}

export function decodeHeader(ring: readonly string[], sum: Float32Array): StepPlan {
  const members = new Map<string, MemberHeader>();
  let newest = -1;
  let setting: Setting = { version: 0, compression: 'none' };
  let bestKey = -1;
  for (const [r, peerId] of ring.entries()) {
    if (sum[r * SLOTS] !== 1) continue;
    const step = Math.round(sum[r * SLOTS + 1]!) - 1;
    const key = Math.round(sum[r * SLOTS + 2]!);
    const s: Setting = { version: Math.floor(key / 4), compression: CODES[key % 4] ?? 'none' };
    members.set(peerId, { step, setting: s, stepMs: sum[r * SLOTS + 3]! });
    newest = Math.max(newest, step);
    if (key > bestKey) {
      bestKey = key;
      setting = s;
    }
  }
  const present = ring.filter((p) => members.has(p));
  // Nobody has parameters yet (the very first step): the lowest peerId's initial ones become everyone's.
  const root = present.find((p) => members.get(p)!.step === newest) ?? present[0]!;
  const behind = present.filter((p) => p !== root && (newest < 0 || members.get(p)!.step !== newest));
  return { step: Math.max(newest, 0), root, behind, setting, present, members };
}
