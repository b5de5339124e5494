// Node only: imports the native classic-level binding. Exported from src/node.ts, never from shared code.
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { fail } from '../errors.js';
import { utf8 } from '../util/bytes.js';
import { type KvBackend, type KvOp, KvPeerStore } from './core.js';
import type { StoreEncryption } from './crypto.js';
import type { PeerStore } from './types.js';

/** Default location of the LevelDB store: `./.p2ptls` in the working directory. */
export const DEFAULT_STORE_PATH = '.p2ptls';

/**
 * A per-user location for the store: `$XDG_DATA_HOME/<app>` (Linux, default `~/.local/share/<app>`),
 * `%APPDATA%\<app>` (Windows) or `~/Library/Application Support/<app>` (macOS).
 */
export function userDataStorePath(app = 'p2ptls'): string {
  const env = process.env;
  if (process.platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), app);
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', app);
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), app);
}

type Db = ClassicLevel<string, Uint8Array>;

/** True when `err` (or its cause chain) carries the given classic-level error code. */
function hasLevelCode(err: unknown, code: string): boolean {
  for (let e = err, depth = 0; e && depth < 5; depth++) {
    if ((e as { code?: unknown }).code === code) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function engineError(what: string, err: unknown) {
  return fail(
    'store_failed',
    `LevelDB ${what} failed: ${err instanceof Error ? err.message : String(err)}`,
    err,
  );
}

class LevelBackend implements KvBackend {
  readonly kind = 'leveldb' as const;
  readonly canStoreCryptoKeys = false;
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<unknown> {
    try {
      return await this.db.get(key);
    } catch (err) {
      throw engineError('read', err);
    }
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    try {
      // One LevelDB batch is written to the log atomically: after a crash either all or none of it exists.
      await this.db.batch(
        ops.map((op) =>
          op.type === 'put'
            ? { type: 'put' as const, key: op.key, value: utf8(JSON.stringify(op.value)) }
            : { type: 'del' as const, key: op.key },
        ),
      );
    } catch (err) {
      throw engineError('write', err);
    }
  }

  async entries(prefix: string): Promise<Array<readonly [string, unknown]>> {
    try {
      // Prefixes are ASCII, so "prefix + U+FFFF" bounds every key that starts with it.
      return await this.db.iterator({ gte: prefix, lt: `${prefix}\uffff` }).all();
    } catch (err) {
      throw engineError('iteration', err);
    }
  }

  async insertIfAbsent(key: string, value: unknown): Promise<unknown> {
    // The LevelDB lock makes this process the only writer, so read-then-write cannot race.
    const existing = await this.get(key);
    if (existing !== undefined) return existing;
    await this.batch([{ type: 'put', key, value }]);
    return undefined;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** Options of {@link openLevelPeerStore}. */
export interface LevelPeerStoreOptions {
  /** Directory of the LevelDB database (created if missing). Default {@link DEFAULT_STORE_PATH}. */
  readonly path?: string;
  /**
   * How secrets are protected. Usually `{ mode: 'passphrase', passphrase }`; a string is shorthand for
   * that. `{ mode: 'unencrypted' }` stores PSKs and private keys in plain text.
   */
  readonly encryption: StoreEncryption | string;
}

/**
 * Opens (or creates) a LevelDB-backed {@link PeerStore}. Rejects with `store_locked` when another process
 * has the same path open, `wrong_passphrase` when the passphrase does not match (nothing is written).
 */
export async function openLevelPeerStore(options: LevelPeerStoreOptions): Promise<PeerStore> {
  const path = resolve(options.path ?? DEFAULT_STORE_PATH);
  // The README's snippet passes `process.env.P2PTLS_PASSPHRASE!`: an unset variable arrives here as
  // undefined (or ''), which must read as a missing setting, not as a TypeError from deep inside.
  if (options.encryption === undefined || options.encryption === null || options.encryption === '') {
    throw fail(
      'invalid_argument',
      "openLevelPeerStore: no encryption given: pass a passphrase (is P2PTLS_PASSPHRASE set?) or { mode: 'unencrypted' }",
    );
  }
  if (typeof options.encryption !== 'string' && typeof options.encryption !== 'object') {
    throw fail('invalid_argument', 'openLevelPeerStore: encryption must be a passphrase string or an object');
  }
  const encryption: StoreEncryption =
    typeof options.encryption === 'string'
      ? { mode: 'passphrase', passphrase: options.encryption }
      : options.encryption;
  if (encryption.mode === 'device-key') {
    throw fail('invalid_argument', "LevelDB cannot keep a device key; use mode 'passphrase'");
  }
  try {
    await mkdir(path, { recursive: true });
  } catch (err) {
    throw engineError(`creating ${path}`, err);
  }
  const db: Db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
  try {
    await db.open();
  } catch (err) {
    // classic-level reports a held lock as LEVEL_DATABASE_NOT_OPEN whose cause is LEVEL_LOCKED.
    if (hasLevelCode(err, 'LEVEL_LOCKED')) {
      throw fail(
        'store_locked',
        `the peer store at ${path} is locked: it is already open (in another process, or elsewhere in this one)`,
        err,
      );
    }
    throw engineError(`opening ${path}`, err);
  }
  return KvPeerStore.open(new LevelBackend(db), { encryption });
}
