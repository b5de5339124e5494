export { type AeadKey, type AeadProvider, webCryptoAead } from './aead.js';
export { CloseCode, DEFAULT_SUITE, Defaults, INITIAL_WINDOW, SUPPORTED_SUITES, Suite } from './constants.js';
export type { ControlMessage } from './control.js';
export type { DatagramResult, DatagramStats, DropReason } from './datagram.js';
export {
  type Ephemeral,
  exportEphemeral,
  generateEphemeral,
  importEphemeral,
  type KeyExchange,
  webCryptoKeyExchange,
} from './ecdh.js';
export { ReceiveWindow, recordCost, SendWindow } from './flow-control.js';
export {
  bindingHash,
  glareWinner,
  type HandshakeOptions,
  type HandshakeResult,
  type IncomingHello,
  InitiatorHandshake,
  type LocalSigner,
  parseClientHello,
  type RemotePeer,
  ResponderHandshake,
  type Role,
} from './handshake.js';
export { frameMessages, type PlainRecord, type ReassemblyProgress } from './reliable.js';
export { ReplayWindow } from './replay-window.js';
export {
  type CloseInfo,
  isErrorCloseCode,
  Session,
  type SessionEvent,
  type SessionOptions,
  type SessionOutput,
  type SessionState,
} from './session.js';
