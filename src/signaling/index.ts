// Public surface of the signaling client. Generic names are prefixed here because src/index.ts
// re-exports this module next to the protocol and store modules.
export { SignalingClient, type SignalingClientEvents, type SignalingClientOptions } from './client.js';
export type { PairedPeers, SignalingInboundOptions, SignalingInboundStats } from './inbound.js';
export {
  ClientEvents as SignalingClientEventSchemas,
  MAX_MESSAGE_AGE_MS as SIGNALING_MAX_MESSAGE_AGE_MS,
  MAX_PAYLOAD_BYTES as SIGNALING_MAX_PAYLOAD_BYTES,
  ServerEvents as SignalingServerEventSchemas,
  SIGNALING_VERSION,
  type SignedSignal,
  SignedSignalSchema,
} from './messages.js';
export {
  AUTH_CONTEXT as SIGNALING_AUTH_CONTEXT,
  checkSignedSignal,
  createSignedSignal,
  SIGNAL_CONTEXT as SIGNALING_SIGNAL_CONTEXT,
  type SignalCheck,
  signalingOrigin,
  verifySignedSignal,
} from './wire.js';
