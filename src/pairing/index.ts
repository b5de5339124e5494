// Public surface of pairing: the message crypto (pure, no sockets) and the pairing service that runs it
// over a transport (the signaling client). Generic names are prefixed here because src/index.ts
// re-exports this module next to the protocol and store modules.
export { ReplayCache } from '../util/replay-cache.js';
export { encodeInvite, INVITE_TOKEN_BYTES, type Invite, parseInvite } from './invite.js';
export { PairingNonceCache, RateWindow as PairingRateWindow } from './limits.js';
export {
  createPairingAccept,
  createPairingReject,
  createPairingRequest,
  type OpenedPairing,
  type OpenPairingOptions,
  type OutgoingPairing,
  openPairingMessage,
  openPairingSecret,
  PAIRING_CONTEXT,
  type PairingKind,
  type PairingSecret,
  type VerifiedPairing,
  type VerifyPairingOptions,
  verifyPairingMessage,
} from './messages.js';
export {
  derivePairPsk,
  PSK_BYTES as PAIR_PSK_BYTES,
  PSK_INFO as PAIR_PSK_INFO,
  PSK_SALT as PAIR_PSK_SALT,
  type PskShare,
} from './psk.js';
export { PAIRING_VERSION, type PairingMessage, PairingMessageSchema } from './schema.js';
export {
  MemoryPairingRecords,
  type PairingHandler,
  type PairingHandlerOptions,
  type PairingLimits,
  type PairingRecords,
  type PairingRequestInfo,
  type PairingResult,
  PairingService,
  type PairingServiceEvents,
  type PairingServiceOptions,
  type PairingTransport,
} from './service.js';
