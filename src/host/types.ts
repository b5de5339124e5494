/**
 * What the host layer and the layers above it (mesh, pairing, stores) share: who is paired, with which
 * keys. Kept apart from `host.ts` so that a module can name these without depending on the host.
 */
import type { PublicIdentity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';

/** The pinned keys and PSK of a paired peer. A `PeerStore` provides them. */
export interface PeerCredentials {
  readonly publicIdentity: PublicIdentity;
  readonly psk: Uint8Array;
  /** A re-pairing's newer PSK that no handshake has confirmed yet (PROTOCOL.md §9, key confirmation). */
  readonly pendingPsk?: Uint8Array;
}

/** The seed's `PeerList`: who is paired, with which keys. `PeerStore` satisfies it. */
export interface PeerList {
  lookup(peerId: PeerId): Promise<PeerCredentials | undefined>;
  /** Told which PSK a handshake with a peer that has a pending PSK succeeded under (`PeerStore` has it). */
  confirmPsk?(peerId: PeerId, psk: Uint8Array): Promise<unknown>;
}

/** A peer list that can also remember new pairs — a `PeerStore` is one. */
export interface WritablePeerList extends PeerList {
  put(input: { publicIdentity: PublicIdentity; psk: Uint8Array; label?: string }): Promise<unknown>;
}
