// Browser only: IndexedDB through `idb`. Exported from src/browser.ts, never from shared code.
import { type IDBPDatabase, openDB } from 'idb';
import { fail, isP2PTLSError } from '../errors.js';
import { type KvBackend, type KvOp, KvPeerStore } from './core.js';
import type { StoreEncryption } from './crypto.js';
import type { PeerStore } from './types.js';

/** Default IndexedDB database name. */
export const DEFAULT_DB_NAME = 'p2ptls';
const DB_VERSION = 1;
/** One object store with string keys, the same key layout as LevelDB ("meta:…", "identity", "peer:…"). */
const RECORDS = 'records';

function engineError(what: string, err: unknown) {
  const name = err instanceof DOMException ? err.name : '';
  const msg = err instanceof Error ? err.message : String(err);
  return fail('store_failed', `IndexedDB ${what} failed${name ? ` (${name})` : ''}: ${msg}`, err);
}

class IndexedDbBackend implements KvBackend {
  readonly kind = 'indexeddb' as const;
  readonly canStoreCryptoKeys = true;
  constructor(private readonly db: IDBPDatabase) {}

  async get(key: string): Promise<unknown> {
    try {
      return await this.db.get(RECORDS, key);
    } catch (err) {
      throw engineError('read', err);
    }
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    try {
      // One readwrite transaction: IndexedDB commits all of it or, on any error, none of it.
      const tx = this.db.transaction(RECORDS, 'readwrite');
      const pending: Promise<unknown>[] = [];
      for (const op of ops) {
        pending.push(op.type === 'put' ? tx.store.put(op.value, op.key) : tx.store.delete(op.key));
      }
      await Promise.all([...pending, tx.done]);
    } catch (err) {
      throw engineError('write', err);
    }
  }

  async entries(prefix: string): Promise<Array<readonly [string, unknown]>> {
    try {
      const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`, false, true);
      // Keys and values from the same readonly transaction see the same snapshot, in key order.
      const tx = this.db.transaction(RECORDS, 'readonly');
      const [keys, values] = await Promise.all([tx.store.getAllKeys(range), tx.store.getAll(range), tx.done]);
      return keys.map((k, i) => [String(k), values[i]] as const);
    } catch (err) {
      throw engineError('iteration', err);
    }
  }

  async insertIfAbsent(key: string, value: unknown): Promise<unknown> {
    try {
      // Read and write in one transaction, so two tabs creating the store at once cannot both win.
      const tx = this.db.transaction(RECORDS, 'readwrite');
      const existing: unknown = await tx.store.get(key);
      if (existing === undefined) await tx.store.put(value, key);
      await tx.done;
      return existing;
    } catch (err) {
      throw engineError('write', err);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Options of {@link openIndexedDbPeerStore}. */
export interface IndexedDbPeerStoreOptions {
  /** IndexedDB database name. Default {@link DEFAULT_DB_NAME}. */
  readonly name?: string;
  /**
   * Default `{ mode: 'device-key' }`: a non-extractable AES key kept in IndexedDB (no prompt, survives
   * reloads). `{ mode: 'passphrase', passphrase }` also protects against someone who copies the profile.
   */
  readonly encryption?: StoreEncryption;
  /** Ask the browser to exempt this origin's storage from eviction. Default true. */
  readonly persist?: boolean;
}

/** A {@link PeerStore} in IndexedDB, with the browser's answer to the persistence request. */
export interface IndexedDbPeerStore extends PeerStore {
  /**
   * Whether the origin's storage is persistent (`navigator.storage.persist()` granted); `undefined` when
   * the browser has no StorageManager. When false, the browser may evict the store under storage pressure.
   */
  readonly persisted: boolean | undefined;
}

async function requestPersistence(): Promise<boolean | undefined> {
  const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
  if (!storage?.persist) return undefined;
  try {
    return (await storage.persisted()) || (await storage.persist());
  } catch {
    return false;
  }
}

/**
 * Opens (or creates) the IndexedDB-backed peer store. Rejects with `store_locked` when another tab keeps
 * an older version of the database open, `wrong_passphrase` when the key does not match.
 */
export async function openIndexedDbPeerStore(
  options: IndexedDbPeerStoreOptions = {},
): Promise<IndexedDbPeerStore> {
  if (typeof indexedDB === 'undefined') throw fail('store_failed', 'IndexedDB is not available here');
  const name = options.name ?? DEFAULT_DB_NAME;
  const persisted = options.persist === false ? undefined : await requestPersistence();
  let db: IDBPDatabase;
  try {
    db = await new Promise<IDBPDatabase>((resolve, reject) => {
      openDB(name, DB_VERSION, {
        upgrade(upgrading) {
          if (!upgrading.objectStoreNames.contains(RECORDS)) upgrading.createObjectStore(RECORDS);
        },
        blocked() {
          reject(fail('store_locked', `IndexedDB '${name}' is held at an older version by another tab`));
        },
        blocking() {
          // A newer version wants to open in another tab: step aside instead of blocking it forever.
          db?.close();
        },
      }).then(resolve, reject);
    });
  } catch (err) {
    if (isP2PTLSError(err)) throw err;
    throw engineError(`opening '${name}'`, err);
  }
  const store = await KvPeerStore.open(new IndexedDbBackend(db), {
    encryption: options.encryption ?? { mode: 'device-key' },
  });
  return Object.assign(store, { persisted });
}
