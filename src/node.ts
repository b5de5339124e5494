/**
 * Node entry point of p2ptls. Runtime-specific parts (WebRTC implementation, LevelDB store, node:crypto
 * AEAD provider) are wired here; everything else is shared with the browser build.
 */
export * from './index.js';
export { nodeCryptoAead } from './runtime/node-aead.js';
export * from './store/node.js';
