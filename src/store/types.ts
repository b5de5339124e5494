import { z } from 'zod';
import type { P2PTLSError } from '../errors.js';
import {
  type Identity,
  type ModulusLength,
  type PublicIdentity,
  type PublicIdentityJson,
  PublicIdentityJsonSchema,
} from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';

/** Schema version written into every record (`v`). Bump it and add a migration when the layout changes. */
export const STORE_SCHEMA_VERSION = 1;

/** Length of a pair's pre-shared key in bytes. */
export const PSK_LENGTH = 32;

/** How much we trust a stored peer. Only `paired` peers are returned by {@link PeerStore.lookup}. */
export type TrustState = 'paired' | 'blocked';
export const TrustStateSchema = z.enum(['paired', 'blocked']);

/** A known peer, as returned by the store (secrets decrypted). Times are milliseconds since the epoch. */
export interface PeerRecord {
  readonly peerId: PeerId;
  /** The peer's public keys; its `peerId` equals the record's. */
  readonly publicIdentity: PublicIdentityJson;
  /** The pair's 32-byte pre-shared key. */
  readonly psk: Uint8Array;
  readonly label?: string;
  readonly trust: TrustState;
  readonly addedAt: number;
  readonly lastSeenAt?: number;
  /** When this record last changed (put); alone it decides which copy wins when backups merge. */
  readonly updatedAt: number;
}

/** What a caller gives to {@link PeerStore.put}. Missing times are filled in; `trust` defaults to `paired`. */
export interface PeerInput {
  readonly publicIdentity: PublicIdentityJson | PublicIdentity;
  readonly psk: Uint8Array;
  readonly label?: string;
  readonly trust?: TrustState;
  readonly addedAt?: number;
  readonly lastSeenAt?: number;
  readonly updatedAt?: number;
}

/** A stored record that could not be read; the rest of the store is unaffected. */
export interface StoreProblem {
  /** The peerId the record is stored under (or `identity`). */
  readonly key: string;
  /** A `corrupt_record` error saying what is wrong (`unsupported_version` if a newer p2ptls wrote it). */
  readonly error: P2PTLSError;
}

/** Result of {@link PeerStore.list}: readable records, plus the damaged ones that were skipped. */
export interface PeerListing {
  readonly peers: PeerRecord[];
  readonly problems: StoreProblem[];
}

/** What {@link PeerStore.lookup} gives the handshake: the pinned keys and the pair's PSK. */
export interface PeerKeys {
  readonly publicIdentity: PublicIdentity;
  readonly psk: Uint8Array;
  /** A newer PSK from a re-pairing, not yet confirmed by a handshake (see {@link PeerStore.confirmPsk}). */
  readonly pendingPsk?: Uint8Array;
}

/** What the store knows about pairing with a peer (see {@link PeerStore.pairingState}). */
export interface PairingState {
  /** Trust of the stored record, when there is one. */
  readonly trust?: TrustState;
  /** Timestamp and nonce of the newest pairing message accepted from this peer. */
  readonly pairedAt?: number;
  readonly pairingNonce?: string;
}

/** A completed pairing to record (see {@link PeerStore.savePairing}). */
export interface SavedPairing {
  readonly publicIdentity: PublicIdentityJson | PublicIdentity;
  readonly psk: Uint8Array;
  /** Timestamp and nonce of the peer's pairing message this pairing answers or was answered by. */
  readonly at: number;
  readonly nonce: string;
  readonly label?: string;
}

/** Everything a backup carries. The identity is missing when the store has none or it is non-extractable. */
export interface StoreSnapshot {
  readonly identity?: Identity;
  readonly peers: PeerRecord[];
  readonly problems: StoreProblem[];
}

/**
 * How far in the future (by this device's clock) a merged record's times may be: 5 minutes, the clock
 * skew signed messages are allowed too. A later `updatedAt` would win every merge until that date.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** What {@link PeerStore.merge} did. */
export interface MergeReport {
  /** Peers that were not in the store. */
  readonly added: number;
  /** Peers whose incoming copy was newer and replaced the stored one. */
  readonly updated: number;
  /** Peers whose stored copy was kept: as new or newer, blocked, or with a PSK change not accepted. */
  readonly kept: number;
  /**
   * Peers whose newer incoming copy carries a different PSK, which was not taken because the caller did
   * not list them in `acceptPskChanges`. Their stored record is kept (except that an incoming block is
   * applied, with the stored PSK). Ask the user, then merge again accepting the ones confirmed.
   */
  readonly pskChanges: PeerId[];
  /** Peers blocked here that the incoming copy has as paired: they stay blocked (only put lifts a block). */
  readonly stillBlocked: PeerId[];
  /**
   * `imported`: the store had no identity and now has the incoming one. `unchanged`: same peerId, or no
   * identity came in. `kept-existing`: the store already has a different identity, which was kept (pass
   * `replaceIdentity: true` to take the incoming one, which then reports `replaced`).
   */
  readonly identity: 'imported' | 'unchanged' | 'kept-existing' | 'replaced';
}

/** Options of {@link PeerStore.merge}. */
export interface MergeOptions {
  /** Take the incoming identity even when the store has a different one. Default false. */
  readonly replaceIdentity?: boolean;
  /**
   * Peers whose stored PSK the incoming copy's may replace. Import a backup once without it, ask the
   * user about each peer in the report's `pskChanges`, then import again naming the confirmed ones.
   */
  readonly acceptPskChanges?: readonly PeerId[];
}

/** Options of {@link PeerStore.loadOrCreateIdentity}. */
export interface CreateIdentityOptions {
  readonly modulusLength?: ModulusLength;
  /**
   * Whether a newly generated identity's private keys can be exported (needed for backups and for stores
   * that cannot hold CryptoKey objects, such as LevelDB). Default: `false` where the store can keep
   * CryptoKeys (IndexedDB, memory), `true` otherwise.
   */
  readonly extractable?: boolean;
}

/**
 * The peers a host knows and the host's own identity. `Host` asks it "is this peer known, and with which
 * keys?" ({@link PeerStore.lookup}). Every change is atomic. Methods reject with `store_closed` after
 * {@link PeerStore.close}, and with `corrupt_record` only for the one damaged record that was asked for.
 */
export interface PeerStore {
  /** Which engine backs the store. */
  readonly kind: 'memory' | 'leveldb' | 'indexeddb';
  /** Whether secrets are encrypted at rest (`false` only for the explicitly unencrypted mode). */
  readonly encrypted: boolean;

  /** The record for `peerId`, or `undefined` when unknown. Rejects with `corrupt_record` if it is damaged. */
  get(peerId: PeerId): Promise<PeerRecord | undefined>;
  /** True when a readable record for `peerId` exists (blocked peers included; unreadable records count as absent). */
  has(peerId: PeerId): Promise<boolean>;
  /** Adds or replaces the record of `input.publicIdentity.peerId`; returns what was stored. */
  put(input: PeerInput): Promise<PeerRecord>;
  /** Like {@link PeerStore.put} for many peers, all or nothing. */
  putMany(inputs: readonly PeerInput[]): Promise<PeerRecord[]>;
  /** Sets `lastSeenAt` (default: now) of a known peer; returns false when the peer is unknown. */
  markSeen(peerId: PeerId, at?: number): Promise<boolean>;
  /** Removes a peer; returns whether it existed. Damaged records can be deleted too. */
  delete(peerId: PeerId): Promise<boolean>;
  /** All readable records; damaged ones are skipped and reported in `problems`, never thrown. */
  list(): Promise<PeerListing>;
  /**
   * The pinned public identity and PSK of a `paired` peer, for the handshake. `undefined` for unknown and
   * blocked peers. The public keys are fully checked (peerId hash and binding signature).
   */
  lookup(peerId: PeerId): Promise<PeerKeys | undefined>;

  /**
   * Pairing bookkeeping of a peer (PROTOCOL.md §9): its trust, and the newest pairing message accepted from
   * it. Kept apart from the peer record, so deleting, replacing or importing the record never lowers it.
   */
  pairingState(peerId: PeerId): Promise<PairingState>;
  /**
   * Records a completed pairing in one atomic change, refusing (`replay`) unless `at` is newer than the
   * newest pairing accepted from that peer, and (`pairing_dropped`) a blocked peer. A new peer is stored
   * as paired with `psk` (`'paired'`); an already paired peer keeps its PSK and gets `psk` as its pending
   * PSK (`'pending'`), which a successful handshake confirms.
   */
  savePairing(input: SavedPairing): Promise<'paired' | 'pending'>;
  /**
   * Called after a handshake with `peerId` succeeded under `psk`. If that is the pending PSK it becomes the
   * pair's PSK (key confirmation); if it is the current one, the peer never got the pending one, which is
   * dropped. Returns whether anything changed.
   */
  confirmPsk(peerId: PeerId, psk: Uint8Array): Promise<boolean>;

  /** This host's own identity, or `undefined` when none is stored yet. */
  getIdentity(): Promise<Identity | undefined>;
  /** Stores (replaces) this host's identity. */
  setIdentity(identity: Identity): Promise<void>;
  /** The stored identity, or a new one that is stored first: a node keeps its peerId across restarts. */
  loadOrCreateIdentity(options?: CreateIdentityOptions): Promise<Identity>;

  /** Identity (if exportable) and all readable peers, for backups. */
  snapshot(): Promise<StoreSnapshot>;
  /**
   * Merges peers (and optionally an identity) in one atomic change; a backup import is a merge. The rules
   * keep a merge from undoing the user's decisions:
   * - a stored peer is replaced only by a copy with a later `updatedAt` (never because of `lastSeenAt`,
   *   which only says the peer was seen);
   * - a blocked peer stays blocked, whatever the incoming copy says: only {@link PeerStore.put} unblocks;
   * - a PSK is replaced only for peers listed in `acceptPskChanges`; the others are reported in
   *   `pskChanges` and keep their record;
   * - a time more than {@link MAX_CLOCK_SKEW_MS} in the future is refused (`invalid_argument`), and
   *   nothing is written.
   * Whole-record rollback is not detected: an older copy of a record (from an old backup or an old copy
   * of the store's files) that still has the newest `updatedAt` on this device is indistinguishable from
   * the current one.
   */
  merge(
    incoming: { identity?: Identity; peers: readonly PeerRecord[] },
    options?: MergeOptions,
  ): Promise<MergeReport>;

  /** Releases the engine (and the LevelDB lock). Further calls reject with `store_closed`. */
  close(): Promise<void>;
}

// ---- Stored layout (what is on disk) ----

const b64 = z.string().regex(/^[A-Za-z0-9_-]*$/, 'base64url');
const time = z.number().int().nonnegative().max(8.64e15);

/** An encrypted (or, in the unencrypted mode, plain) secret field. */
export const SealedSchema = z.discriminatedUnion('alg', [
  z.object({ alg: z.literal('A256GCM'), iv: b64.length(16), data: b64.max(20000) }),
  z.object({ alg: z.literal('none'), data: b64.max(20000) }),
]);
export type Sealed = z.infer<typeof SealedSchema>;

/** A peer record as stored: public fields readable, the PSK sealed and bound to the record key. */
export const StoredPeerSchema = z.object({
  v: z.literal(STORE_SCHEMA_VERSION),
  peerId: PublicIdentityJsonSchema.shape.peerId,
  publicIdentity: PublicIdentityJsonSchema,
  label: z.string().max(1000).optional(),
  trust: TrustStateSchema,
  addedAt: time,
  lastSeenAt: time.optional(),
  updatedAt: time,
  psk: SealedSchema,
});
export type StoredPeer = z.infer<typeof StoredPeerSchema>;

const isCryptoKey = (v: unknown): v is CryptoKey =>
  typeof CryptoKey !== 'undefined' && v instanceof CryptoKey;

/** The host identity as stored: either the sealed `exportSecret()` JSON or non-extractable CryptoKeys. */
export const StoredIdentitySchema = z.discriminatedUnion('kind', [
  z.object({
    v: z.literal(STORE_SCHEMA_VERSION),
    kind: z.literal('secret'),
    publicIdentity: PublicIdentityJsonSchema,
    secret: SealedSchema,
  }),
  z.object({
    v: z.literal(STORE_SCHEMA_VERSION),
    kind: z.literal('crypto-keys'),
    publicIdentity: PublicIdentityJsonSchema,
    signingPrivateKey: z.custom<CryptoKey>(isCryptoKey, 'CryptoKey'),
    encryptionPrivateKey: z.custom<CryptoKey>(isCryptoKey, 'CryptoKey'),
  }),
]);
export type StoredIdentity = z.infer<typeof StoredIdentitySchema>;
