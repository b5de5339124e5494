// Public surface of the pairing crypto (pure, no sockets). Generic names are prefixed here because
// src/index.ts re-exports this module next to the protocol and store modules.
export { encodeInvite, INVITE_TOKEN_BYTES, type Invite, parseInvite } from './invite.js';
export {
  createPairingAccept,
  createPairingReject,
  createPairingRequest,
  type OpenedPairing,
  type OpenPairingOptions,
  type OutgoingPairing,
  openPairingMessage,
  PAIRING_CONTEXT,
  type PairingKind,
} from './messages.js';
export {
  derivePairPsk,
  PSK_BYTES as PAIR_PSK_BYTES,
  PSK_INFO as PAIR_PSK_INFO,
  PSK_SALT as PAIR_PSK_SALT,
  type PskShare,
} from './psk.js';
export { ReplayCache } from './replay.js';
