// Runtime-neutral parts of the peer store. The LevelDB store (./level.js, Node) and the IndexedDB store
// (./indexeddb.js, browsers) are exported by the runtime entry points only.
export {
  type BackupExport,
  exportBackup,
  type ImportBackupOptions,
  type ImportReport,
  importBackup,
} from './backup.js';
export { type KvBackend, type KvOp, KvPeerStore, type OpenOptions } from './core.js';
export { MIN_PBKDF2_ITERATIONS, type StoreEncryption } from './crypto.js';
export { type MemoryPeerStoreOptions, openMemoryPeerStore } from './memory.js';
export {
  type CreateIdentityOptions,
  MAX_CLOCK_SKEW_MS,
  type MergeOptions,
  type MergeReport,
  type PairingState,
  type PeerInput,
  type PeerKeys,
  type PeerListing,
  type PeerRecord,
  type PeerStore,
  PSK_LENGTH,
  type SavedPairing,
  STORE_SCHEMA_VERSION,
  type StoreProblem,
  type StoreSnapshot,
  type TrustState,
} from './types.js';
