export {
  Identity,
  type ModulusLength,
  PublicIdentity,
  type PublicIdentityJson,
  PublicIdentityJsonSchema,
  type SecretIdentityJson,
  SecretIdentityJsonSchema,
  verifySignature,
} from './identity.js';
export {
  isPeerId,
  PEER_ID_LENGTH,
  type PeerId,
  peerIdFromBytes,
  peerIdOf,
  peerIdToBytes,
  verifyPeerId,
} from './peer-id.js';
