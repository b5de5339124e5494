export {
  type CloseOptions,
  Connection,
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionState,
  type ConnectionStats,
  type Datagram,
  DatagramChannel,
  type SendOptions,
} from './connection.js';
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
