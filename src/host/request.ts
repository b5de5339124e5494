import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { Connection } from './connection.js';
import type { PeerCredentials, PeerList } from './types.js';

/** What a {@link ConnectionRequest} answers through: the incoming dial it stands for. */
export interface RequestTarget {
  respond(credentials: PeerCredentials, list?: PeerList): Promise<Connection>;
  fail(error: P2PTLSError): void;
}

/**
 * An incoming dial whose ClientHello has arrived: accept it with {@link verify} (or
 * {@link acceptUnverified}), or {@link reject}.
 */
export class ConnectionRequest {
  /** @internal */
  constructor(
    /** The dialing peer, as authenticated by the signaling server and named in the ClientHello. */
    readonly peerId: PeerId,
    private readonly dial: RequestTarget,
    private readonly defaultList: PeerList,
  ) {}

  /**
   * Accepts the request if the peer is in `list` (default: the host's peers): runs the handshake with the
   * pinned key and PSK from the list. Rejects with `unknown_peer` for anyone else, with the handshake's
   * error (`bad_binder`, `bad_signature`, …) for an impostor, with `store_failed` (or the list's own
   * P2PTLSError) when the list cannot be read, and with `closed` when the dialer gave the dial up. The
   * dial ends with the rejection.
   */
  async verify(list: PeerList = this.defaultList): Promise<Connection> {
    let credentials: PeerCredentials | undefined;
    try {
      credentials = await list.lookup(this.peerId);
      if (!credentials) throw fail('unknown_peer', `${this.peerId} is not a paired peer`);
    } catch (err) {
      // A refusal, or a list that cannot be read, ends the dial now, not at its handshake timeout.
      const error = asP2PTLSError(err, 'store_failed');
      this.dial.fail(error);
      throw error;
    }
    return this.dial.respond(credentials, list);
  }

  /**
   * DANGEROUS: accepts with credentials the caller vouches for, skipping the peer-list check — for pairing
   * flows where the keys and PSK were just agreed and are not stored yet. The handshake still requires
   * the peer to prove both the RSA key and the PSK.
   */
  acceptUnverified(credentials: PeerCredentials): Promise<Connection> {
    return this.dial.respond(credentials);
  }

  /** Refuses the dial. */
  reject(reason = 'rejected'): void {
    this.dial.fail(fail('unknown_peer', reason));
  }
}
