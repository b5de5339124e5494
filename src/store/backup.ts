import { z } from 'zod';
import { fail, isP2PTLSError } from '../errors.js';
import { Identity, PublicIdentityJsonSchema, SecretIdentityJsonSchema } from '../identity/identity.js';
import {
  ByteReader,
  ByteWriter,
  bs,
  equalBytes,
  fromBase64Url,
  fromUtf8,
  toBase64Url,
  utf8,
} from '../util/bytes.js';
import { deriveKeyFromPassphrase, MIN_PBKDF2_ITERATIONS, randomSalt } from './crypto.js';
import {
  MAX_CLOCK_SKEW_MS,
  type MergeOptions,
  type MergeReport,
  type PeerRecord,
  type PeerStore,
  PSK_LENGTH,
  type StoreProblem,
  TrustStateSchema,
} from './types.js';

// Backup blob, version 1 (all integers big-endian):
//   magic "P2PTLSBK" (8) | version u8 | PBKDF2 iterations u32 | salt (16) | key check (32) | IV (12)
//   | AES-256-GCM(JSON payload), with everything before the ciphertext as AAD.
// The key check tells a wrong passphrase apart from a damaged blob; the GCM tag covers header and payload,
// so any flipped bit anywhere rejects the whole blob before a single record is looked at.
const MAGIC = utf8('P2PTLSBK');
const BACKUP_VERSION = 1;
const SALT_LENGTH = 16;
const CHECK_LENGTH = 32;
const IV_LENGTH = 12;
/** Refuse absurd iteration counts so a crafted blob cannot make import spin for hours. */
const MAX_ITERATIONS = 10_000_000;

const b64 = z.string().regex(/^[A-Za-z0-9_-]*$/, 'base64url');
const time = z.number().int().nonnegative().max(8.64e15);

const BackupPeerSchema = z.object({
  peerId: PublicIdentityJsonSchema.shape.peerId,
  publicIdentity: PublicIdentityJsonSchema,
  psk: b64.length(43),
  label: z.string().max(1000).optional(),
  trust: TrustStateSchema,
  addedAt: time,
  lastSeenAt: time.optional(),
  updatedAt: time,
});

const BackupPayloadSchema = z.object({
  v: z.literal(1),
  kind: z.literal('p2ptls-backup'),
  createdAt: time,
  identity: SecretIdentityJsonSchema.optional(),
  peers: z.array(BackupPeerSchema).max(10_000_000),
});
type BackupPayload = z.infer<typeof BackupPayloadSchema>;

/** Result of {@link exportBackup}. */
export interface BackupExport {
  /** The encrypted blob; safe to store anywhere, as strong as the passphrase. */
  readonly bytes: Uint8Array;
  readonly peers: number;
  /** Whether the host identity is included (it is not when none is stored or it is non-extractable). */
  readonly identity: boolean;
  /** Damaged records that were left out. */
  readonly skipped: StoreProblem[];
}

/**
 * Writes the store's identity and all readable peers into one passphrase-encrypted blob (PBKDF2-SHA-256,
 * AES-256-GCM). Damaged records are skipped and listed in `skipped`.
 */
export async function exportBackup(
  store: PeerStore,
  passphrase: string,
  options: { iterations?: number } = {},
): Promise<BackupExport> {
  const iterations = options.iterations ?? MIN_PBKDF2_ITERATIONS;
  if (iterations > MAX_ITERATIONS) throw fail('invalid_argument', `iterations must be ≤ ${MAX_ITERATIONS}`);
  const snap = await store.snapshot();
  const payload: BackupPayload = {
    v: 1,
    kind: 'p2ptls-backup',
    createdAt: Date.now(),
    ...(snap.identity ? { identity: await snap.identity.exportSecret() } : {}),
    peers: snap.peers.map((p) => ({
      peerId: p.peerId,
      publicIdentity: p.publicIdentity,
      psk: toBase64Url(p.psk),
      ...(p.label === undefined ? {} : { label: p.label }),
      trust: p.trust,
      addedAt: p.addedAt,
      ...(p.lastSeenAt === undefined ? {} : { lastSeenAt: p.lastSeenAt }),
      updatedAt: p.updatedAt,
    })),
  };
  const salt = randomSalt();
  const { key, check } = await deriveKeyFromPassphrase(passphrase, salt, iterations);
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_LENGTH));
  const header = new ByteWriter(80)
    .bytes(MAGIC)
    .u8(BACKUP_VERSION)
    .u32(iterations)
    .bytes(salt)
    .bytes(check)
    .bytes(iv)
    .finish();
  const ct = await globalThis.crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: bs(iv), additionalData: bs(header) },
    key,
    bs(utf8(JSON.stringify(payload))),
  );
  const bytes = new Uint8Array(header.length + ct.byteLength);
  bytes.set(header);
  bytes.set(new Uint8Array(ct), header.length);
  return {
    bytes,
    peers: payload.peers.length,
    identity: snap.identity !== undefined,
    skipped: snap.problems,
  };
}

/** Options of {@link importBackup}: those of {@link PeerStore.merge}. */
export type ImportBackupOptions = MergeOptions;

/** What {@link importBackup} did. */
export type ImportReport = MergeReport;

const badBackup = (message: string, cause?: unknown) => fail('bad_backup', message, cause);

/** Decrypts and validates a backup completely; throws before anything could be written. */
async function openBackup(
  blob: Uint8Array,
  passphrase: string,
): Promise<{ identity?: Identity; peers: PeerRecord[] }> {
  if (!(blob instanceof Uint8Array)) throw fail('invalid_argument', 'backup must be a Uint8Array');
  const r = new ByteReader(blob, 'backup');
  let header: {
    iterations: number;
    salt: Uint8Array;
    check: Uint8Array;
    iv: Uint8Array;
    headerLength: number;
  };
  try {
    if (!equalBytes(r.bytes(MAGIC.length), MAGIC)) throw badBackup('not a p2ptls backup (bad magic)');
    const version = r.u8();
    if (version !== BACKUP_VERSION) {
      throw fail('unsupported_version', `backup format v${version}; this build reads v${BACKUP_VERSION}`);
    }
    const iterations = r.u32();
    const salt = r.bytes(SALT_LENGTH);
    const check = r.bytes(CHECK_LENGTH);
    const iv = r.bytes(IV_LENGTH);
    header = { iterations, salt, check, iv, headerLength: blob.length - r.remaining };
  } catch (err) {
    if (isP2PTLSError(err, 'bad_backup') || isP2PTLSError(err, 'unsupported_version')) throw err;
    throw badBackup('backup is truncated', err);
  }
  if (header.iterations < MIN_PBKDF2_ITERATIONS || header.iterations > MAX_ITERATIONS) {
    throw badBackup(`backup header has an implausible PBKDF2 iteration count (${header.iterations})`);
  }
  const { key, check } = await deriveKeyFromPassphrase(passphrase, header.salt, header.iterations);
  if (!equalBytes(check, header.check)) throw fail('wrong_passphrase', 'wrong passphrase for this backup');
  let plain: Uint8Array;
  try {
    plain = new Uint8Array(
      await globalThis.crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bs(header.iv), additionalData: bs(blob.subarray(0, header.headerLength)) },
        key,
        bs(blob.subarray(header.headerLength)),
      ),
    );
  } catch (err) {
    throw badBackup('backup is damaged (authentication failed); nothing was imported', err);
  }
  let payload: BackupPayload;
  try {
    const parsed = BackupPayloadSchema.safeParse(JSON.parse(fromUtf8(plain)));
    if (!parsed.success) throw badBackup(`backup payload is invalid: ${parsed.error.message}`);
    payload = parsed.data;
  } catch (err) {
    if (isP2PTLSError(err, 'bad_backup')) throw err;
    throw badBackup('backup payload is not JSON', err);
  }
  if (payload.createdAt > Date.now() + MAX_CLOCK_SKEW_MS) {
    throw badBackup(`backup claims to be made in the future (${new Date(payload.createdAt).toISOString()})`);
  }
  let identity: Identity | undefined;
  if (payload.identity) {
    try {
      identity = await Identity.importSecret(payload.identity, { extractable: true });
    } catch (err) {
      // A key p2ptls refuses (PROTOCOL.md §2) is reported as such, as it is for the peers' keys.
      if (isP2PTLSError(err, 'bad_key')) throw err;
      throw badBackup('the identity in the backup does not verify', err);
    }
  }
  const peers: PeerRecord[] = payload.peers.map((p) => {
    const psk = fromBase64Url(p.psk);
    if (psk.length !== PSK_LENGTH || p.publicIdentity.peerId !== p.peerId) {
      throw badBackup(`backup record for ${p.peerId} is inconsistent`);
    }
    return {
      peerId: p.peerId,
      publicIdentity: p.publicIdentity,
      psk,
      ...(p.label === undefined ? {} : { label: p.label }),
      trust: p.trust,
      addedAt: p.addedAt,
      ...(p.lastSeenAt === undefined ? {} : { lastSeenAt: p.lastSeenAt }),
      updatedAt: p.updatedAt,
    };
  });
  return { ...(identity ? { identity } : {}), peers };
}

/**
 * Imports a backup made by {@link exportBackup} into `store`, in one atomic change, by the rules of
 * {@link PeerStore.merge}: a stored peer is only replaced by a copy with a later `updatedAt`, a blocked
 * peer stays blocked, a PSK changes only for peers named in `acceptPskChanges` (the others are listed in
 * the report's `pskChanges`), and a record dated more than 5 minutes ahead is refused with `bad_backup`.
 * A damaged blob is rejected whole with `bad_backup`, a wrong passphrase with `wrong_passphrase`, a key
 * p2ptls refuses with `bad_key`; in all cases nothing is written. (Damage to the salt or key-check bytes
 * of the header looks exactly like a wrong passphrase and is reported so.)
 *
 * Not detected: rollback of a whole record. A backup is a valid older state of the store, so importing
 * an old backup into a store that lost its newer records (or restoring old store files) brings those
 * old records back as they were, PSK and trust included.
 */
export async function importBackup(
  store: PeerStore,
  blob: Uint8Array,
  passphrase: string,
  options: ImportBackupOptions = {},
): Promise<ImportReport> {
  const content = await openBackup(blob, passphrase);
  try {
    return await store.merge(content, options);
  } catch (err) {
    // merge validates every record before its single write, so these mean "bad content", not "half done".
    if (isP2PTLSError(err, 'invalid_argument') || isP2PTLSError(err, 'peer_id_mismatch')) {
      throw badBackup(`backup contains an invalid record: ${err.message}`, err);
    }
    throw err;
  }
}
