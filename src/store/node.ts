// Everything of the peer store that Node users get: the shared parts plus the LevelDB engine.
export * from './index.js';
export * from './level.js';
