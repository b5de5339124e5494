import { z } from 'zod';
import { fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import { Identity, PublicIdentity, PublicIdentityJsonSchema } from '../identity/identity.js';
import { isPeerId, type PeerId, peerIdOf } from '../identity/peer-id.js';
import { equalBytes, fromBase64Url, fromUtf8, utf8 } from '../util/bytes.js';
import { openCipher, type RecordCipher, recordAad, type StoreEncryption } from './crypto.js';
import {
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
  SealedSchema,
  STORE_SCHEMA_VERSION,
  type StoredIdentity,
  StoredIdentitySchema,
  type StoredPeer,
  StoredPeerSchema,
  type StoreProblem,
  type StoreSnapshot,
  TrustStateSchema,
} from './types.js';

/** One write of an atomic batch. */
export type KvOp =
  | { readonly type: 'put'; readonly key: string; readonly value: unknown }
  | {
      readonly type: 'del';
      readonly key: string;
    };

/**
 * The small key-value interface each engine implements (memory, LevelDB, IndexedDB). Everything else —
 * schemas, encryption, merging — lives in {@link KvPeerStore}, so all engines behave the same.
 */
export interface KvBackend {
  readonly kind: PeerStore['kind'];
  /** Whether values may contain CryptoKey objects (structured clone); LevelDB stores only JSON. */
  readonly canStoreCryptoKeys: boolean;
  /** The stored value (engines that store bytes return the raw bytes), or `undefined`. */
  get(key: string): Promise<unknown>;
  /** Applies all operations atomically. */
  batch(ops: readonly KvOp[]): Promise<void>;
  /** All entries whose key starts with `prefix`, in key order. */
  entries(prefix: string): Promise<Array<readonly [string, unknown]>>;
  /** Writes `value` unless `key` exists, atomically; returns the existing value, or undefined if written. */
  insertIfAbsent(key: string, value: unknown): Promise<unknown>;
  close(): Promise<void>;
}

const META_CRYPTO = 'meta:crypto';
const IDENTITY = 'identity';
const PEER_PREFIX = 'peer:';
const peerKey = (peerId: PeerId) => `${PEER_PREFIX}${peerId}`;
/** Newest accepted pairing message per peer: outlives the peer record (delete, put, backup import). */
const pairingKey = (peerId: PeerId) => `pairing:${peerId}`;
/** A re-pairing's PSK until a handshake confirms it; sealed like the record's PSK. */
const pendingKey = (peerId: PeerId) => `pending:${peerId}`;

const PairingMarkSchema = z.object({
  v: z.literal(STORE_SCHEMA_VERSION),
  at: z.number().int().nonnegative().max(8.64e15),
  nonce: z.string().max(64),
});
const PendingPskSchema = z.object({ v: z.literal(STORE_SCHEMA_VERSION), psk: SealedSchema });

/** Engines that keep bytes (LevelDB) hand back raw bytes; everything stored by us is UTF-8 JSON. */
function decodeRaw(raw: unknown): unknown {
  if (raw instanceof Uint8Array) return JSON.parse(fromUtf8(raw));
  return raw;
}

/** The authenticated public fields of a peer record, in a fixed order so the AAD is canonical. */
function peerPublicFields(s: Omit<StoredPeer, 'psk'>): unknown[] {
  const p = s.publicIdentity;
  return [
    s.v,
    s.peerId,
    p.v,
    p.peerId,
    p.signingKey,
    p.encryptionKey,
    p.binding,
    s.label ?? null,
    s.trust,
    s.addedAt,
    s.lastSeenAt ?? null,
    s.updatedAt,
  ];
}

function identityPublicFields(v: number, kind: string, p: StoredIdentity['publicIdentity']): unknown[] {
  return [v, kind, p.v, p.peerId, p.signingKey, p.encryptionKey, p.binding];
}

const keysOf = (r: PeerRecord) =>
  `${r.publicIdentity.signingKey}.${r.publicIdentity.encryptionKey}.${r.publicIdentity.binding}`;

function corrupt(key: string, reason: string, cause?: unknown): P2PTLSError {
  return fail('corrupt_record', `stored record '${key}' is damaged or was tampered with: ${reason}`, cause);
}

function checkTime(name: string, t: number | undefined): void {
  if (t !== undefined && !(Number.isSafeInteger(t) && t >= 0 && t <= 8.64e15)) {
    throw fail('invalid_argument', `${name} must be a time in milliseconds since the epoch`);
  }
}

/** Options shared by every engine's `open` function. */
export interface OpenOptions {
  /** How secrets are protected at rest. */
  readonly encryption: StoreEncryption;
}

/** The engine-independent {@link PeerStore}: schemas, at-rest encryption, merging, atomic writes. */
export class KvPeerStore implements PeerStore {
  private closed = false;
  /** Mutations run one after another, so read-modify-write changes (merge, markSeen) cannot interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  private identityCache: Identity | undefined;
  /** Imported PublicIdentity objects, keyed by peerId; reused only while the stored keys are identical. */
  private readonly lookupCache = new Map<PeerId, { keys: string; pub: PublicIdentity }>();

  private constructor(
    private readonly backend: KvBackend,
    private readonly cipher: RecordCipher,
  ) {}

  get kind(): PeerStore['kind'] {
    return this.backend.kind;
  }
  get encrypted(): boolean {
    return this.cipher.encrypted;
  }

  /**
   * Opens a store on `backend`: derives or loads the key and checks it before anything is written. On a
   * wrong passphrase the backend is closed and `wrong_passphrase` thrown.
   */
  static async open(backend: KvBackend, options: OpenOptions): Promise<KvPeerStore> {
    try {
      let meta = await KvPeerStore.readMeta(backend);
      let opened = await openCipher(meta, options.encryption, backend.canStoreCryptoKeys);
      if (opened.newMeta) {
        // Another tab may have created the store meanwhile: then its parameters win and we re-check.
        const existing = await backend.insertIfAbsent(META_CRYPTO, opened.newMeta);
        if (existing !== undefined) {
          meta = decodeRaw(existing);
          opened = await openCipher(meta, options.encryption, backend.canStoreCryptoKeys);
        }
      }
      return new KvPeerStore(backend, opened.cipher);
    } catch (err) {
      await backend.close().catch(() => {});
      throw err;
    }
  }

  private static async readMeta(backend: KvBackend): Promise<unknown> {
    const raw = await backend.get(META_CRYPTO);
    try {
      return decodeRaw(raw);
    } catch (err) {
      throw corrupt(META_CRYPTO, 'not JSON', err);
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw fail('store_closed', `the ${this.kind} peer store is closed`);
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(fail('store_closed', `the ${this.kind} peer store is closed`));
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  // ---- encoding ----

  /** Validates the public identity of an input; JSON gets a schema and peerId-hash check. */
  private async publicOf(input: PeerInput): Promise<StoredPeer['publicIdentity']> {
    if (input.publicIdentity instanceof PublicIdentity) return input.publicIdentity.export();
    const r = PublicIdentityJsonSchema.safeParse(input.publicIdentity);
    if (!r.success) throw fail('invalid_argument', `publicIdentity: ${r.error.message}`);
    // The hash check keeps a record from ever being filed under a peerId its key does not own. The keys
    // are imported now too, so a key that can never be used (exponent other than 65537, wrong size or
    // algorithm: `bad_key`) is refused on the way in, from put() and from backups alike; the binding
    // signature costs an RSA verification and is checked by lookup(), before the keys are used.
    const actual = await peerIdOf(fromBase64Url(r.data.signingKey));
    if (actual !== r.data.peerId) {
      throw fail('peer_id_mismatch', `signing key hashes to ${actual}, not ${r.data.peerId}`);
    }
    await PublicIdentity.checkKeys(r.data);
    return r.data;
  }

  /** Validates an input and fills in defaults from the stored record it replaces (if any). */
  private normalize(
    input: PeerInput,
    publicIdentity: StoredPeer['publicIdentity'],
    existing: PeerRecord | undefined,
  ): PeerRecord {
    if (!(input.psk instanceof Uint8Array) || input.psk.length !== PSK_LENGTH) {
      throw fail('invalid_argument', `psk must be a Uint8Array of ${PSK_LENGTH} bytes`);
    }
    if (input.label !== undefined && (typeof input.label !== 'string' || input.label.length > 1000)) {
      throw fail('invalid_argument', 'label must be a string of at most 1000 characters');
    }
    const trust = input.trust ?? existing?.trust ?? 'paired';
    if (!TrustStateSchema.safeParse(trust).success)
      throw fail('invalid_argument', `unknown trust '${trust}'`);
    checkTime('addedAt', input.addedAt);
    checkTime('lastSeenAt', input.lastSeenAt);
    checkTime('updatedAt', input.updatedAt);
    const now = Date.now();
    const label = input.label ?? existing?.label;
    const lastSeenAt = input.lastSeenAt ?? existing?.lastSeenAt;
    return {
      peerId: publicIdentity.peerId,
      publicIdentity,
      psk: input.psk.slice(),
      ...(label === undefined ? {} : { label }),
      trust,
      addedAt: input.addedAt ?? existing?.addedAt ?? now,
      ...(lastSeenAt === undefined ? {} : { lastSeenAt }),
      updatedAt: input.updatedAt ?? now,
    };
  }

  private async encodePeer(r: PeerRecord): Promise<StoredPeer> {
    const pub: Omit<StoredPeer, 'psk'> = {
      v: STORE_SCHEMA_VERSION,
      peerId: r.peerId,
      publicIdentity: r.publicIdentity,
      ...(r.label === undefined ? {} : { label: r.label }),
      trust: r.trust,
      addedAt: r.addedAt,
      ...(r.lastSeenAt === undefined ? {} : { lastSeenAt: r.lastSeenAt }),
      updatedAt: r.updatedAt,
    };
    const psk = await this.cipher.seal(r.psk, recordAad(peerKey(r.peerId), peerPublicFields(pub)));
    return { ...pub, psk };
  }

  private async decodePeer(key: string, raw: unknown): Promise<PeerRecord> {
    let value: unknown;
    try {
      value = decodeRaw(raw);
    } catch (err) {
      throw corrupt(key, 'not UTF-8 JSON', err);
    }
    const version = (value as { v?: unknown } | null)?.v;
    if (typeof version === 'number' && version > STORE_SCHEMA_VERSION) {
      throw fail('unsupported_version', `record '${key}' has schema v${version}; this build reads v1`);
    }
    const parsed = StoredPeerSchema.safeParse(value);
    if (!parsed.success) throw corrupt(key, parsed.error.issues.map((i) => i.message).join('; '));
    const s = parsed.data;
    if (peerKey(s.peerId) !== key || s.publicIdentity.peerId !== s.peerId) {
      throw corrupt(key, `holds the record of ${s.peerId}`);
    }
    let psk: Uint8Array;
    try {
      psk = await this.cipher.open(s.psk, recordAad(key, peerPublicFields(s)));
    } catch (err) {
      throw corrupt(key, 'authentication failed (tampered, moved from another record, or wrong key)', err);
    }
    if (psk.length !== PSK_LENGTH) throw corrupt(key, `psk has ${psk.length} bytes`);
    return {
      peerId: s.peerId,
      publicIdentity: s.publicIdentity,
      psk,
      ...(s.label === undefined ? {} : { label: s.label }),
      trust: s.trust,
      addedAt: s.addedAt,
      ...(s.lastSeenAt === undefined ? {} : { lastSeenAt: s.lastSeenAt }),
      updatedAt: s.updatedAt,
    };
  }

  private async encodeIdentity(identity: Identity): Promise<StoredIdentity> {
    const publicIdentity = identity.exportPublic();
    const { signingPrivateKey, encryptionPrivateKey } = identity.privateKeys;
    const extractable = signingPrivateKey.extractable && encryptionPrivateKey.extractable;
    const v = STORE_SCHEMA_VERSION;
    if (!extractable) {
      if (!this.backend.canStoreCryptoKeys) {
        throw fail(
          'invalid_argument',
          `a ${this.kind} store can only keep extractable identities (Identity.generate({ extractable: true }))`,
        );
      }
      return { v, kind: 'crypto-keys', publicIdentity, signingPrivateKey, encryptionPrivateKey };
    }
    const secretJson = utf8(JSON.stringify(await identity.exportSecret()));
    const secret = await this.cipher.seal(
      secretJson,
      recordAad(IDENTITY, identityPublicFields(v, 'secret', publicIdentity)),
    );
    return { v, kind: 'secret', publicIdentity, secret };
  }

  private async decodeIdentity(raw: unknown): Promise<Identity> {
    let value: unknown;
    try {
      value = decodeRaw(raw);
    } catch (err) {
      throw corrupt(IDENTITY, 'not UTF-8 JSON', err);
    }
    const parsed = StoredIdentitySchema.safeParse(value);
    if (!parsed.success) throw corrupt(IDENTITY, parsed.error.issues.map((i) => i.message).join('; '));
    const s = parsed.data;
    try {
      if (s.kind === 'crypto-keys') {
        const publicIdentity = await PublicIdentity.import(s.publicIdentity);
        return await Identity.fromCryptoKeys({
          publicIdentity,
          signingPrivateKey: s.signingPrivateKey,
          encryptionPrivateKey: s.encryptionPrivateKey,
        });
      }
      const plain = await this.cipher.open(
        s.secret,
        recordAad(IDENTITY, identityPublicFields(s.v, s.kind, s.publicIdentity)),
      );
      const identity = await Identity.importSecret(fromUtf8(plain), { extractable: true });
      if (identity.peerId !== s.publicIdentity.peerId)
        throw new Error('secret keys belong to another peerId');
      return identity;
    } catch (err) {
      throw corrupt(IDENTITY, 'the identity does not decrypt or verify', err);
    }
  }

  // ---- PeerStore ----

  async get(peerId: PeerId): Promise<PeerRecord | undefined> {
    this.ensureOpen();
    if (!isPeerId(peerId)) throw fail('invalid_argument', 'not a peerId');
    const key = peerKey(peerId);
    const raw = await this.backend.get(key);
    return raw === undefined ? undefined : this.decodePeer(key, raw);
  }

  async has(peerId: PeerId): Promise<boolean> {
    try {
      return (await this.get(peerId)) !== undefined;
    } catch (err) {
      // An unreadable record (damaged, or written by a newer version) is not a known peer; get() and
      // list() are where the problem is reported.
      if (isP2PTLSError(err, 'corrupt_record') || isP2PTLSError(err, 'unsupported_version')) return false;
      throw err;
    }
  }

  /** Reads the current record for a write; a damaged one counts as absent so it can be overwritten. */
  private async existingForWrite(peerId: PeerId): Promise<PeerRecord | undefined> {
    try {
      return await this.get(peerId);
    } catch (err) {
      if (isP2PTLSError(err, 'corrupt_record')) return undefined;
      throw err;
    }
  }

  put(input: PeerInput): Promise<PeerRecord> {
    return this.serialized(async () => (await this.writePeers([input]))[0]!);
  }

  putMany(inputs: readonly PeerInput[]): Promise<PeerRecord[]> {
    return this.serialized(() => this.writePeers(inputs));
  }

  private async writePeers(inputs: readonly PeerInput[]): Promise<PeerRecord[]> {
    const records: PeerRecord[] = [];
    const written = new Map<PeerId, PeerRecord>();
    for (const input of inputs) {
      const pub = await this.publicOf(input);
      const existing = written.get(pub.peerId) ?? (await this.existingForWrite(pub.peerId));
      const record = this.normalize(input, pub, existing);
      written.set(record.peerId, record);
      records.push(record);
    }
    const ops = await Promise.all(
      [...written.values()].map(async (r) => ({
        type: 'put' as const,
        key: peerKey(r.peerId),
        value: await this.encodePeer(r),
      })),
    );
    await this.backend.batch(ops);
    for (const r of records) this.lookupCache.delete(r.peerId);
    return records;
  }

  markSeen(peerId: PeerId, at: number = Date.now()): Promise<boolean> {
    return this.serialized(async () => {
      checkTime('at', at);
      const r = await this.get(peerId);
      if (!r) return false;
      const next: PeerRecord = { ...r, lastSeenAt: Math.max(at, r.lastSeenAt ?? 0) };
      await this.backend.batch([{ type: 'put', key: peerKey(peerId), value: await this.encodePeer(next) }]);
      return true;
    });
  }

  delete(peerId: PeerId): Promise<boolean> {
    if (!isPeerId(peerId)) return Promise.reject(fail('invalid_argument', 'not a peerId'));
    return this.serialized(async () => {
      const key = peerKey(peerId);
      if ((await this.backend.get(key)) === undefined) return false;
      // The pairing mark stays: a deleted peer's old pairing requests must not become acceptable again.
      await this.backend.batch([
        { type: 'del', key },
        { type: 'del', key: pendingKey(peerId) },
      ]);
      this.lookupCache.delete(peerId);
      return true;
    });
  }

  async list(): Promise<PeerListing> {
    this.ensureOpen();
    const entries = await this.backend.entries(PEER_PREFIX);
    const peers: PeerRecord[] = [];
    const problems: StoreProblem[] = [];
    const results = await Promise.allSettled(entries.map(([key, raw]) => this.decodePeer(key, raw)));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') peers.push(r.value);
      else problems.push({ key: entries[i]![0].slice(PEER_PREFIX.length), error: asStoreError(r.reason) });
    });
    return { peers, problems };
  }

  async lookup(peerId: PeerId): Promise<PeerKeys | undefined> {
    const r = await this.get(peerId);
    if (r?.trust !== 'paired') return undefined;
    const pendingPsk = await this.readPending(peerId);
    const extra = pendingPsk ? { pendingPsk } : {};
    const cached = this.lookupCache.get(peerId);
    if (cached && cached.keys === keysOf(r)) {
      return { publicIdentity: cached.pub, psk: r.psk, ...extra };
    }
    const pub = await PublicIdentity.import(r.publicIdentity);
    this.lookupCache.set(peerId, { keys: keysOf(r), pub });
    return { publicIdentity: pub, psk: r.psk, ...extra };
  }

  // ---- pairing bookkeeping (PROTOCOL.md §9) ----

  private async readMark(peerId: PeerId): Promise<z.infer<typeof PairingMarkSchema> | undefined> {
    const key = pairingKey(peerId);
    const raw = await this.backend.get(key);
    if (raw === undefined) return undefined;
    let parsed: ReturnType<typeof PairingMarkSchema.safeParse>;
    try {
      parsed = PairingMarkSchema.safeParse(decodeRaw(raw));
    } catch (err) {
      throw corrupt(key, 'not UTF-8 JSON', err);
    }
    if (!parsed.success) throw corrupt(key, parsed.error.issues.map((i) => i.message).join('; '));
    return parsed.data;
  }

  private pendingAad(peerId: PeerId): Uint8Array {
    return recordAad(pendingKey(peerId), [STORE_SCHEMA_VERSION, peerId]);
  }

  private async readPending(peerId: PeerId): Promise<Uint8Array | undefined> {
    const key = pendingKey(peerId);
    const raw = await this.backend.get(key);
    if (raw === undefined) return undefined;
    try {
      const parsed = PendingPskSchema.parse(decodeRaw(raw));
      const psk = await this.cipher.open(parsed.psk, this.pendingAad(peerId));
      if (psk.length !== PSK_LENGTH) throw new Error(`pending psk has ${psk.length} bytes`);
      return psk;
    } catch (err) {
      throw corrupt(key, 'the pending PSK does not decrypt', err);
    }
  }

  async pairingState(peerId: PeerId): Promise<PairingState> {
    this.ensureOpen();
    if (!isPeerId(peerId)) throw fail('invalid_argument', 'not a peerId');
    const [record, mark] = await Promise.all([this.existingForWrite(peerId), this.readMark(peerId)]);
    return {
      ...(record ? { trust: record.trust } : {}),
      ...(mark ? { pairedAt: mark.at, pairingNonce: mark.nonce } : {}),
    };
  }

  savePairing(input: SavedPairing): Promise<'paired' | 'pending'> {
    return this.serialized(async () => {
      checkTime('at', input.at);
      const pub = await this.publicOf(input);
      const mark = await this.readMark(pub.peerId);
      if (mark && input.at <= mark.at) {
        throw fail('replay', `not newer than the last pairing accepted from ${pub.peerId}`);
      }
      const existing = await this.existingForWrite(pub.peerId);
      if (existing?.trust === 'blocked') throw fail('pairing_dropped', `${pub.peerId} is blocked`);
      const ops: KvOp[] = [
        {
          type: 'put',
          key: pairingKey(pub.peerId),
          value: { v: STORE_SCHEMA_VERSION, at: input.at, nonce: input.nonce },
        },
      ];
      let result: 'paired' | 'pending';
      if (existing) {
        // Never replace a working PSK on the strength of a pairing message alone: the new one waits for a
        // handshake that proves the peer holds it too.
        if (!(input.psk instanceof Uint8Array) || input.psk.length !== PSK_LENGTH) {
          throw fail('invalid_argument', `psk must be a Uint8Array of ${PSK_LENGTH} bytes`);
        }
        const psk = await this.cipher.seal(input.psk, this.pendingAad(pub.peerId));
        ops.push({ type: 'put', key: pendingKey(pub.peerId), value: { v: STORE_SCHEMA_VERSION, psk } });
        result = 'pending';
      } else {
        const record = this.normalize(
          { publicIdentity: pub, psk: input.psk, ...(input.label ? { label: input.label } : {}) },
          pub,
          undefined,
        );
        ops.push({ type: 'put', key: peerKey(pub.peerId), value: await this.encodePeer(record) });
        ops.push({ type: 'del', key: pendingKey(pub.peerId) });
        result = 'paired';
      }
      await this.backend.batch(ops);
      this.lookupCache.delete(pub.peerId);
      return result;
    });
  }

  confirmPsk(peerId: PeerId, psk: Uint8Array): Promise<boolean> {
    return this.serialized(async () => {
      const pending = await this.readPending(peerId);
      if (!pending) return false;
      const record = await this.get(peerId);
      if (!record) return false;
      if (equalBytes(pending, psk)) {
        const next: PeerRecord = { ...record, psk: pending, updatedAt: Date.now() };
        await this.backend.batch([
          { type: 'put', key: peerKey(peerId), value: await this.encodePeer(next) },
          { type: 'del', key: pendingKey(peerId) },
        ]);
        return true;
      }
      // The dialer always offers its newest PSK first, so a handshake under the old one means the peer
      // never got the new one (a re-pairing that did not complete there, or a replayed request).
      if (equalBytes(record.psk, psk)) {
        await this.backend.batch([{ type: 'del', key: pendingKey(peerId) }]);
        return true;
      }
      return false;
    });
  }

  async getIdentity(): Promise<Identity | undefined> {
    this.ensureOpen();
    if (this.identityCache) return this.identityCache;
    const raw = await this.backend.get(IDENTITY);
    if (raw === undefined) return undefined;
    this.identityCache = await this.decodeIdentity(raw);
    return this.identityCache;
  }

  setIdentity(identity: Identity): Promise<void> {
    return this.serialized(async () => {
      await this.backend.batch([{ type: 'put', key: IDENTITY, value: await this.encodeIdentity(identity) }]);
      this.identityCache = identity;
    });
  }

  loadOrCreateIdentity(options: CreateIdentityOptions = {}): Promise<Identity> {
    return this.serialized(async () => {
      const existing = await this.getIdentity();
      if (existing) return existing;
      const identity = await Identity.generate({
        ...(options.modulusLength === undefined ? {} : { modulusLength: options.modulusLength }),
        extractable: options.extractable ?? !this.backend.canStoreCryptoKeys,
      });
      await this.backend.batch([{ type: 'put', key: IDENTITY, value: await this.encodeIdentity(identity) }]);
      this.identityCache = identity;
      return identity;
    });
  }

  async snapshot(): Promise<StoreSnapshot> {
    const { peers, problems } = await this.list();
    let identity: Identity | undefined;
    try {
      identity = await this.getIdentity();
    } catch (err) {
      problems.push({ key: IDENTITY, error: asStoreError(err) });
    }
    const exportable =
      identity?.privateKeys.signingPrivateKey.extractable &&
      identity.privateKeys.encryptionPrivateKey.extractable;
    return { ...(identity && exportable ? { identity } : {}), peers, problems };
  }

  merge(
    incoming: { identity?: Identity; peers: readonly PeerRecord[] },
    options: MergeOptions = {},
  ): Promise<MergeReport> {
    return this.serialized(async () => {
      const ops: KvOp[] = [];
      let added = 0;
      let updated = 0;
      let kept = 0;
      const pskChanges: PeerId[] = [];
      const stillBlocked: PeerId[] = [];
      const acceptPsk = new Set(options.acceptPskChanges ?? []);
      // A record dated in the future would win every merge until that date (the year 275760 fits the
      // schema), so a later genuine copy could never correct it: refuse it before anything is written.
      const latest = Date.now() + MAX_CLOCK_SKEW_MS;
      const byId = new Map<PeerId, PeerRecord>();
      for (const p of incoming.peers) {
        const n = this.normalize(p, await this.publicOf(p), undefined);
        for (const [name, t] of [
          ['addedAt', n.addedAt],
          ['lastSeenAt', n.lastSeenAt],
          ['updatedAt', n.updatedAt],
        ] as const) {
          if (t !== undefined && t > latest) {
            throw fail(
              'invalid_argument',
              `${name} of ${n.peerId} is in the future (${new Date(t).toISOString()})`,
            );
          }
        }
        const dup = byId.get(n.peerId);
        if (!dup || n.updatedAt > dup.updatedAt) byId.set(n.peerId, n);
      }
      const winners: PeerRecord[] = [];
      for (const inc of byId.values()) {
        const cur = await this.existingForWrite(inc.peerId);
        if (!cur) {
          added++;
          winners.push(inc);
          continue;
        }
        // Only a change of the record counts: `lastSeenAt` moves whenever the peer connects, so a copy
        // from a device that merely saw the peer later must not undo a change made here (a block).
        if (inc.updatedAt <= cur.updatedAt) {
          kept++;
          continue;
        }
        // A block is the user's decision about this peer and is undone only by the user (put).
        if (cur.trust === 'blocked' && inc.trust !== 'blocked') {
          kept++;
          stillBlocked.push(inc.peerId);
          continue;
        }
        // Field by field the oldest "added" and the newest "seen" are both true facts worth keeping.
        const lastSeenAt = Math.max(inc.lastSeenAt ?? 0, cur.lastSeenAt ?? 0);
        const merged: PeerRecord = {
          ...inc,
          addedAt: Math.min(inc.addedAt, cur.addedAt),
          ...(lastSeenAt > 0 ? { lastSeenAt } : {}),
        };
        // A different PSK cuts the working pair (the peer holds the stored one) or hands it to whoever
        // made the copy: the caller must have asked for it by name.
        if (!equalBytes(inc.psk, cur.psk) && !acceptPsk.has(inc.peerId)) {
          pskChanges.push(inc.peerId);
          // A block only takes trust away, so a newer one is applied all the same, with the stored PSK.
          if (inc.trust === 'blocked') {
            updated++;
            winners.push({ ...merged, psk: cur.psk });
          } else {
            kept++;
          }
          continue;
        }
        updated++;
        winners.push(merged);
      }
      for (const r of winners)
        ops.push({ type: 'put', key: peerKey(r.peerId), value: await this.encodePeer(r) });

      let identityResult: MergeReport['identity'] = 'unchanged';
      let newIdentity: Identity | undefined;
      if (incoming.identity) {
        let current: Identity | undefined;
        try {
          current = await this.getIdentity();
        } catch (err) {
          if (!isP2PTLSError(err, 'corrupt_record')) throw err;
        }
        if (!current) identityResult = 'imported';
        else if (current.peerId === incoming.identity.peerId) identityResult = 'unchanged';
        else identityResult = options.replaceIdentity ? 'replaced' : 'kept-existing';
        if (identityResult === 'imported' || identityResult === 'replaced') {
          newIdentity = incoming.identity;
          ops.push({ type: 'put', key: IDENTITY, value: await this.encodeIdentity(newIdentity) });
        }
      }
      if (ops.length > 0) await this.backend.batch(ops);
      for (const r of winners) this.lookupCache.delete(r.peerId);
      if (newIdentity) this.identityCache = newIdentity;
      return { added, updated, kept, identity: identityResult, pskChanges, stillBlocked };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.identityCache = undefined;
    this.lookupCache.clear();
    await this.backend.close();
  }
}

/** Problems are always p2ptls errors; an unexpected engine error is wrapped as corrupt. */
function asStoreError(err: unknown): P2PTLSError {
  if (isP2PTLSError(err)) return err;
  return fail('corrupt_record', 'stored record could not be read', err);
}
