export { Connection } from './connection.js';
export type {
  CloseOptions,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionState,
  ConnectionStats,
  Datagram,
  SendOptions,
} from './connection-types.js';
export { DatagramChannel } from './datagram-channel.js';
export { webCryptoHandshake } from './dial.js';
export {
  ConnectionRequest,
  type HandshakeCrypto,
  Host,
  type HostEvents,
  type HostOptions,
  type PeerCredentials,
  type PeerList,
  type WritablePeerList,
} from './host.js';
export { ReconnectingConnection, type ReconnectingEvents, type ReconnectOptions } from './reconnecting.js';
