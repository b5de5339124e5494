/**
 * Naming a paired peer on the command line: the CLI prints shortened ids (`a53wsjyuenwo…`) and labels,
 * so wherever a peerId is asked for, the user may type the full id, a unique prefix of it (the printed
 * short form, with or without its `…`), or a label given at pairing.
 */
import { fail } from '../errors.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import type { PeerRecord } from '../store/types.js';

/** Shortest prefix taken as a peerId prefix: shorter ones would match by accident. */
export const MIN_PREFIX = 4;

/** How a name was matched, for the line that says so. */
export type PeerMatch =
  | { peerId: PeerId; by: 'id' }
  | { peerId: PeerId; by: 'label'; label: string }
  | { peerId: PeerId; by: 'prefix'; prefix: string };

/** The short form the CLI prints. */
export const shortId = (peerId: string): string => `${peerId.slice(0, 12)}…`;

/** One candidate line of an ambiguity error: `a53wsjyuenwo…  (alice)`. */
const describe = (p: Pick<PeerRecord, 'peerId' | 'label'>) => `${p.peerId}${p.label ? ` (${p.label})` : ''}`;

/**
 * The paired peer that `text` names among `peers`. Exact peerIds are taken as they are (whether paired
 * or not: the caller says what is wrong with an unpaired one). Otherwise an exact label wins, then a
 * case-insensitive label, then a peerId prefix of at least {@link MIN_PREFIX} characters. Throws
 * `ambiguous_peer` listing the candidates when a name fits several, `unknown_peer` when it fits none,
 * `invalid_argument` when it cannot be a name at all.
 */
export function matchPeer(text: string, peers: readonly Pick<PeerRecord, 'peerId' | 'label'>[]): PeerMatch {
  const trimmed = text.trim();
  if (isPeerId(trimmed)) return { peerId: trimmed, by: 'id' };
  // (PeerId is a string: the guard's false branch would narrow `trimmed` to never.)
  const raw: string = trimmed;
  if (raw.length === 0 || raw.length > 1000) {
    throw fail('invalid_argument', 'expected a peerId, a unique prefix of one, or a label');
  }
  const shown = JSON.stringify(raw.slice(0, 80));
  const byLabel = (exact: boolean) =>
    peers.filter(
      (p) => p.label !== undefined && (exact ? p.label === raw : p.label.toLowerCase() === raw.toLowerCase()),
    );
  for (const exact of [true, false]) {
    const hits = byLabel(exact);
    if (hits.length === 1) return { peerId: hits[0]!.peerId, by: 'label', label: hits[0]!.label! };
    if (hits.length > 1) throw ambiguous(shown, 'label', hits);
  }
  // The printed short form ends in an ellipsis; people copy it along.
  const prefix = raw.replace(/(…|\.\.\.)$/, '').toLowerCase();
  if (/^[a-z2-7]+$/.test(prefix) && prefix.length >= MIN_PREFIX) {
    const hits = peers.filter((p) => p.peerId.startsWith(prefix));
    if (hits.length === 1) return { peerId: hits[0]!.peerId, by: 'prefix', prefix };
    if (hits.length > 1) throw ambiguous(shown, 'prefix', hits);
  }
  const why =
    /^[a-z2-7]+$/.test(prefix) && prefix.length < MIN_PREFIX
      ? ` (a peerId prefix needs at least ${MIN_PREFIX} characters)`
      : '';
  throw fail(
    'unknown_peer',
    `${shown} names no paired peer: not a peerId, a label or the start of a paired peerId${why} (see \`p2ptls pairs\`)`,
  );
}

function ambiguous(shown: string, kind: string, hits: readonly Pick<PeerRecord, 'peerId' | 'label'>[]) {
  return fail(
    'ambiguous_peer',
    `${shown} is the ${kind} of ${hits.length} paired peers: ${hits.map(describe).join(', ')}; type more of the peerId`,
  );
}

/** The line that says what a name matched, or undefined when it was the full peerId. */
export function describeMatch(m: PeerMatch): string | undefined {
  if (m.by === 'id') return undefined;
  return m.by === 'label' ? `peer "${m.label}" is ${m.peerId}` : `"${m.prefix}" matches ${m.peerId}`;
}
