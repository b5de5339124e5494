export { encodeInvite, INVITE_TOKEN_BYTES, type Invite, MAX_INVITE_LENGTH, parseInvite } from './invite.js';
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
  pairingSignedBytes,
} from './messages.js';
export { derivePairPsk, PSK_BYTES, PSK_INFO, PSK_SALT, type PskShare, randomShare } from './psk.js';
export { ReplayCache } from './replay.js';
