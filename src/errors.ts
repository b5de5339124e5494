/**
 * Every failure a caller of p2ptls can see is a {@link P2PTLSError} with a stable {@link ErrorCode}.
 * Codes are part of the public API: they never change meaning, new ones may be added.
 */
export const ErrorCodes = {
  // Input and encoding
  /** A caller passed an argument that can never be valid (wrong type, size, range). */
  INVALID_ARGUMENT: 'invalid_argument',
  /** Bytes from the network could not be parsed (truncated, bad length field, trailing bytes). */
  MALFORMED: 'malformed',
  /** The first bytes are not the p2ptls magic: not a p2ptls peer. */
  BAD_MAGIC: 'bad_magic',
  /** The peer speaks a protocol version this build does not. */
  UNSUPPORTED_VERSION: 'unsupported_version',
  /** The peer asked for a cipher suite this build does not offer. */
  UNSUPPORTED_SUITE: 'unsupported_suite',
  /** A handshake message arrived in the wrong state, or a record type is unknown. */
  UNEXPECTED_MESSAGE: 'unexpected_message',

  // Identity and authentication
  /** A public key does not hash to the peerId it is claimed for. */
  PEER_ID_MISMATCH: 'peer_id_mismatch',
  /** A key could not be imported or has the wrong algorithm or size. */
  BAD_KEY: 'bad_key',
  /** The peer is not known (no pairing record) and was not accepted explicitly. */
  UNKNOWN_PEER: 'unknown_peer',
  /** A hello was addressed to a different peerId than ours. */
  WRONG_PEER: 'wrong_peer',
  /** The PSK binder did not verify: the peer does not hold this pair's pre-shared key. */
  BAD_BINDER: 'bad_binder',
  /** An RSA-PSS signature did not verify under the pinned identity key. */
  BAD_SIGNATURE: 'bad_signature',
  /** A Finished MAC did not verify: the transcripts differ (tampering or a man in the middle). */
  BAD_FINISHED: 'bad_finished',
  /** The two sides saw different DTLS fingerprints: the SDP was swapped in transit. */
  CHANNEL_BINDING_MISMATCH: 'channel_binding_mismatch',

  // Records
  /** A record failed authentication: tampered, truncated, replayed, reordered or under the wrong key. */
  BAD_RECORD_MAC: 'bad_record_mac',
  /** A record is larger than the negotiated limit. */
  RECORD_OVERFLOW: 'record_overflow',
  /** A message is larger than `maxMessageBytes`. */
  MESSAGE_TOO_LARGE: 'message_too_large',
  /** A datagram was seen before (anti-replay window). */
  REPLAY: 'replay',
  /** A datagram is older than the replay window, or older than the newest delivered when stale ones are dropped. */
  STALE: 'stale',
  /** A sequence number would wrap: the connection must re-key or close. */
  SEQUENCE_OVERFLOW: 'sequence_overflow',
  /** The connection or session is closed; the error's message holds the reason. */
  CLOSED: 'closed',
  /** The peer closed the connection with an error reason. */
  PEER_ERROR: 'peer_error',
  /** Something did not happen in time (handshake, heartbeat). */
  TIMEOUT: 'timeout',
  /**
   * The transport ended before the peer's reliable CLOSE: the stream may have lost its tail. Never a
   * clean end (PROTOCOL.md §5.3).
   */
  TRUNCATED: 'truncated',
  /** A receive window was exceeded: the peer started a message beyond what we allowed (fatal), or a caller of `Session.send` beyond what the peer allowed (§5.5). */
  FLOW_CONTROL: 'flow_control',
  /** `close()` gave up after `flushMs`: the peer's CLOSE did not arrive, so it is not known what the peer received. */
  CLOSE_UNACKNOWLEDGED: 'close_unacknowledged',
  /** A bug in p2ptls or in a callback it ran (an exception that is not a P2PTLSError); the cause holds it. */
  INTERNAL_ERROR: 'internal_error',

  // Peer store (src/store)
  /** The store is open in another process (LevelDB lock) or another tab holds an upgrade; close it there first. */
  STORE_LOCKED: 'store_locked',
  /** The passphrase (or stored device key) does not open this store or backup; nothing was changed. */
  WRONG_PASSPHRASE: 'wrong_passphrase',
  /** One stored record is damaged or was tampered with (bad JSON, schema, key binding or authentication tag). */
  CORRUPT_RECORD: 'corrupt_record',
  /** A backup blob is damaged, truncated or not a p2ptls backup; nothing from it was imported. */
  BAD_BACKUP: 'bad_backup',
  /** The store was closed; open it again to use it. */
  STORE_CLOSED: 'store_closed',
  /** The storage engine failed (disk, quota, IndexedDB unavailable); the error's cause holds the engine's error. */
  STORE_FAILED: 'store_failed',

  // Mesh and collectives (src/mesh)
  /** A member of a collective operation left the mesh, or its connection was lost, before the operation finished. */
  MESH_MEMBER_LEFT: 'mesh_member_left',
  /** Members started different collective operations (order, kind, length, root or member list differ). */
  MESH_MISMATCH: 'mesh_mismatch',
  /** The peer is not (or no longer) a member of the mesh: not in the room, or not paired with us. */
  MESH_NOT_MEMBER: 'mesh_not_member',
  /** Every open mesh connection is busy and the connection cap is reached. */
  MESH_CONNECTION_LIMIT: 'mesh_connection_limit',

  // Signaling and pairing (src/signaling, src/pairing, signaling-server)
  /** The signaling server did not accept our identity proof, or a client's proof was invalid. */
  AUTH_FAILED: 'auth_failed',
  /** A signaling request was made before the connection proved its identity. */
  NOT_AUTHENTICATED: 'not_authenticated',
  /** Too many requests from one connection or one address: slow down and retry later. */
  RATE_LIMITED: 'rate_limited',
  /** A signaling message is larger than the server accepts (64 KiB of payload). */
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  /** The signaling server does not know this event name. */
  UNKNOWN_EVENT: 'unknown_event',
  /** The addressed peer is not connected to the signaling network. */
  PEER_OFFLINE: 'peer_offline',
  /**
   * The addressed peer is taking all the signals it can (its per-recipient budget, shared fairly among
   * its senders, or it is not reading them): the signal was not relayed. Retry later.
   */
  RECIPIENT_BUSY: 'recipient_busy',
  /** The signaling room has as many members as the server allows. */
  ROOM_FULL: 'room_full',
  /** The other peer's application declined the pairing request. */
  PAIRING_REJECTED: 'pairing_rejected',
  /** A signed pairing message is older than the accepted window (5 min) or too far in the future. */
  PAIRING_EXPIRED: 'pairing_expired',
  /** A signed signal (SDP/ICE) is older than the accepted window or too far in the future. */
  SIGNAL_EXPIRED: 'signal_expired',
  /** An invite string or URL is malformed or has expired. */
  BAD_INVITE: 'bad_invite',
  /** Another connection authenticated with the same peerId and replaced this one. */
  REPLACED: 'replaced',
  /** The signaling server closed the connection itself (e.g. a kicked client); the client does not reconnect. */
  DISCONNECTED: 'disconnected',
  /** The signaling server failed to handle a valid request (its backend, e.g. Redis, is unavailable). */
  SERVER_ERROR: 'server_error',
  /**
   * The encrypted secret of a pairing message was made for another message (other sender, recipient, kind
   * or nonce): someone re-signed a copied secret as their own. The message is ignored; an invite token in
   * it stays unspent.
   */
  PAIRING_SECRET_MISMATCH: 'pairing_secret_mismatch',
  /**
   * A pairing request was dropped unread, before any private-key work: nothing could approve it (no invite
   * outstanding and the application does not take uninvited requests) or its sender is blocked.
   */
  PAIRING_DROPPED: 'pairing_dropped',

  // Command line (src/cli)
  /** The data directory holds no identity yet (`p2ptls id` creates one). */
  NO_IDENTITY: 'no_identity',
  /** The signaling server could not be reached at all (nothing listens at the URL, or it did not answer). */
  UNREACHABLE: 'unreachable',
  /** A local file or directory could not be read or written; the error's cause holds the system error. */
  FILE_ERROR: 'file_error',
  /** A received file's SHA-256 differs from the sender's: the partial file was discarded. */
  HASH_MISMATCH: 'hash_mismatch',
  /** The peer is connected but does not accept this kind of session (e.g. files when it only streams). */
  TRANSFER_REFUSED: 'transfer_refused',
  /** A peer name (label or peerId prefix) given to the CLI fits several paired peers; the message lists them. */
  AMBIGUOUS_PEER: 'ambiguous_peer',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** The one error type of p2ptls. Switch on {@link P2PTLSError.code}, not on the message. */
export class P2PTLSError extends Error {
  override readonly name = 'P2PTLSError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `err` is a {@link P2PTLSError}, optionally with the given code. */
export function isP2PTLSError(err: unknown, code?: ErrorCode): err is P2PTLSError {
  return err instanceof P2PTLSError && (code === undefined || err.code === code);
}

/** Shorthand used internally: `throw fail('malformed', '...')`. */
export function fail(code: ErrorCode, message: string, cause?: unknown): P2PTLSError {
  return new P2PTLSError(code, message, cause === undefined ? undefined : { cause });
}

/** Any thrown value as a P2PTLSError: itself if it is one, else wrapped with `code` and kept as `cause`. */
export function asP2PTLSError(err: unknown, code: ErrorCode): P2PTLSError {
  return isP2PTLSError(err) ? err : fail(code, err instanceof Error ? err.message : String(err), err);
}
