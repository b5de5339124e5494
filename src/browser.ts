/**
 * Browser entry point of p2ptls: native RTCPeerConnection, IndexedDB store, WebCrypto.
 */
export * from './index.js';
export * from './store/browser.js';
