/**
 * What the host layer and the layers above it (mesh, pairing, stores) share: who is paired, with which
 * keys, and where the handshake's public-key work runs. Kept apart from `host.ts` so that a module can
 * name these without depending on the host.
 */
import type { Identity, PublicIdentity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import type { KeyExchange, LocalSigner, RemotePeer } from '../protocol/index.js';

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

/**
 * Where a host's handshakes do their public-key work (PROTOCOL.md §3.5, §3.6): the ECDHE, and the RSA-PSS
 * signatures made as `identity` and checked against a pinned peer. The default is WebCrypto (browsers run
 * it off the main thread); Node's entry point passes `nodeHandshakeCrypto`.
 */
export interface HandshakeCrypto {
  readonly keyExchange: KeyExchange;
  /** What signs as `identity` in a handshake. */
  signer(identity: Identity): LocalSigner;
  /** What checks a signature against `peer`'s pinned key in a handshake. */
  verifier(peer: PublicIdentity): RemotePeer;
}
