import { type KvBackend, type KvOp, KvPeerStore } from './core.js';
import type { StoreEncryption } from './crypto.js';
import type { PeerStore } from './types.js';

/** Keeps values in a Map. Values are never mutated by the store, so no copies are needed. */
class MemoryBackend implements KvBackend {
  readonly kind = 'memory' as const;
  readonly canStoreCryptoKeys = true;
  private readonly map = new Map<string, unknown>();

  async get(key: string): Promise<unknown> {
    return this.map.get(key);
  }
  async batch(ops: readonly KvOp[]): Promise<void> {
    // Map writes cannot fail half-way, so applying in order is atomic.
    for (const op of ops) {
      if (op.type === 'put') this.map.set(op.key, op.value);
      else this.map.delete(op.key);
    }
  }
  async entries(prefix: string): Promise<Array<readonly [string, unknown]>> {
    return [...this.map.entries()].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1));
  }
  async insertIfAbsent(key: string, value: unknown): Promise<unknown> {
    if (this.map.has(key)) return this.map.get(key);
    this.map.set(key, value);
    return undefined;
  }
  async close(): Promise<void> {
    this.map.clear();
  }
}

/** Options of {@link openMemoryPeerStore}. */
export interface MemoryPeerStoreOptions {
  /**
   * Default `{ mode: 'device-key' }`: a random non-extractable key, so the in-memory store exercises the
   * same encryption path as the persistent ones. `{ mode: 'unencrypted' }` is slightly faster.
   */
  readonly encryption?: StoreEncryption;
}

/**
 * A {@link PeerStore} that lives only in memory: for unit tests, and for hosts that want no persistence
 * (a new identity and no known peers after every restart).
 */
export function openMemoryPeerStore(options: MemoryPeerStoreOptions = {}): Promise<PeerStore> {
  return KvPeerStore.open(new MemoryBackend(), { encryption: options.encryption ?? { mode: 'device-key' } });
}
