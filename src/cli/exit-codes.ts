/**
 * Exit codes of the `p2ptls` command. Scripts switch on them, so they are part of the CLI's interface:
 * a number never changes meaning. Every failure inside the CLI is a P2PTLSError; its code picks the exit
 * code here.
 */
import type { ErrorCode } from '../errors.js';

export const ExitCodes = {
  OK: 0,
  /** Not a known failure: a bug. Run again with --debug and report the stack trace. */
  INTERNAL: 1,
  /** Bad command line: unknown option, missing or malformed argument. */
  USAGE: 2,
  /** The data directory has no identity yet: run `p2ptls id`. */
  NO_IDENTITY: 3,
  /** The invite is malformed, truncated or expired. */
  BAD_INVITE: 4,
  /** The peer is not paired with us (or no longer paired on its side). */
  UNKNOWN_PEER: 5,
  /** Network: signaling server unreachable, peer offline, or something did not happen in time. */
  NETWORK: 6,
  /** Pairing or authentication failed: declined, expired, or the peer could not prove its keys. */
  AUTH: 7,
  /** A transfer or session failed: hash mismatch, refused by the peer, connection lost midway. */
  TRANSFER: 8,
  /** The data directory cannot be used: in use by another p2ptls process, wrong passphrase, damaged. */
  STORE: 9,
  /** A local file or directory could not be read or written. */
  FILE: 10,
  /** A peer name (label or peerId prefix) fits several paired peers: the message lists them. */
  AMBIGUOUS_PEER: 11,
  /** Interrupted (Ctrl-C). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

const BY_ERROR: Partial<Record<ErrorCode, ExitCode>> = {
  invalid_argument: ExitCodes.USAGE,
  no_identity: ExitCodes.NO_IDENTITY,
  bad_invite: ExitCodes.BAD_INVITE,
  unknown_peer: ExitCodes.UNKNOWN_PEER,
  wrong_peer: ExitCodes.UNKNOWN_PEER,
  unreachable: ExitCodes.NETWORK,
  peer_offline: ExitCodes.NETWORK,
  timeout: ExitCodes.NETWORK,
  disconnected: ExitCodes.NETWORK,
  replaced: ExitCodes.NETWORK,
  rate_limited: ExitCodes.NETWORK,
  server_error: ExitCodes.NETWORK,
  pairing_rejected: ExitCodes.AUTH,
  pairing_expired: ExitCodes.AUTH,
  auth_failed: ExitCodes.AUTH,
  not_authenticated: ExitCodes.AUTH,
  peer_id_mismatch: ExitCodes.AUTH,
  bad_binder: ExitCodes.AUTH,
  bad_signature: ExitCodes.AUTH,
  bad_finished: ExitCodes.AUTH,
  bad_key: ExitCodes.AUTH,
  channel_binding_mismatch: ExitCodes.AUTH,
  hash_mismatch: ExitCodes.TRANSFER,
  transfer_refused: ExitCodes.TRANSFER,
  closed: ExitCodes.TRANSFER,
  truncated: ExitCodes.TRANSFER,
  close_unacknowledged: ExitCodes.TRANSFER,
  flow_control: ExitCodes.TRANSFER,
  peer_error: ExitCodes.TRANSFER,
  malformed: ExitCodes.TRANSFER,
  message_too_large: ExitCodes.TRANSFER,
  bad_record_mac: ExitCodes.TRANSFER,
  store_locked: ExitCodes.STORE,
  wrong_passphrase: ExitCodes.STORE,
  corrupt_record: ExitCodes.STORE,
  store_failed: ExitCodes.STORE,
  store_closed: ExitCodes.STORE,
  file_error: ExitCodes.FILE,
  ambiguous_peer: ExitCodes.AMBIGUOUS_PEER,
};

/** The exit code for a failure with this error code. */
export function exitCodeFor(code: ErrorCode): ExitCode {
  return BY_ERROR[code] ?? ExitCodes.INTERNAL;
}

/** The table printed at the end of `p2ptls --help` (and mirrored in docs/CLI.md). */
export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    unexpected failure (a bug: run again with --debug and report it)
  2    bad command line (unknown option, missing or malformed argument)
  3    no identity in the data directory (run \`p2ptls id\`)
  4    bad or expired invite
  5    unknown peer: not paired (see \`p2ptls pairs\`)
  6    network: signaling server unreachable, peer offline, or timed out
  7    pairing or authentication failed (declined, expired, keys not proven)
  8    transfer or session failed (hash mismatch, refused by the peer, connection lost or cut short)
  9    data directory unusable (in use by another p2ptls process, wrong passphrase, damaged)
  10   local file or directory could not be read or written
  11   the peer name fits several paired peers (they are listed: type more of the peerId)
  130  interrupted (Ctrl-C)`;
