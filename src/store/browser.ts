// Everything of the peer store that browser users get: the shared parts plus the IndexedDB engine.
export * from './index.js';
export * from './indexeddb.js';
