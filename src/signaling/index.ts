export {
  type PairingHandler,
  type PairingRequestInfo,
  type PairingResult,
  SignalingClient,
  type SignalingClientEvents,
  type SignalingClientOptions,
} from './client.js';
export * from './messages.js';
export {
  AUTH_CONTEXT,
  authSignedBytes,
  createSignedSignal,
  randomNonce,
  SIGNAL_CONTEXT,
  signalingOrigin,
  signalSignedBytes,
  verifySignedSignal,
} from './wire.js';
