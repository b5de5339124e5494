// Runtime-neutral exports shared by the Node and browser entry points.
export { type ErrorCode, ErrorCodes, isP2PTLSError, P2PTLSError } from './errors.js';
export * from './host/index.js';
export * from './identity/index.js';
export * from './mesh/index.js';
export * from './pairing/index.js';
export * from './protocol/index.js';
export * from './signaling/index.js';
export * from './transport/index.js';
