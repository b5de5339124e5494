import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { Identity } from '../../src/identity/index.js';
import { exportBackup, importBackup, openMemoryPeerStore, type PeerStore } from '../../src/store/index.js';
import { openLevelPeerStore } from '../../src/store/level.js';
import { fakePublicIdentity, randomPsk, withCode } from './fixtures.js';

const STORE_PASS = 'store passphrase';
const BACKUP_PASS = 'backup passphrase';

describe('encrypted backup (export / import)', () => {
  let dir: string;
  let n = 0;
  const open = () => openLevelPeerStore({ path: join(dir, `db${n++}`), encryption: STORE_PASS });
  let source: PeerStore;
  let identity: Identity;
  let blob: Uint8Array;
  let friend: Identity;
  const friendPsk = randomPsk();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-backup-'));
    source = await open();
    identity = await source.loadOrCreateIdentity();
    friend = await Identity.generate();
    await source.put({
      publicIdentity: friend.publicIdentity,
      psk: friendPsk,
      label: 'friend',
      updatedAt: 100,
    });
    for (let i = 0; i < 20; i++) {
      await source.put({ publicIdentity: await fakePublicIdentity(), psk: randomPsk(), label: `p${i}` });
    }
    const exported = await exportBackup(source, BACKUP_PASS);
    assert.equal(exported.peers, 21);
    assert.equal(exported.identity, true);
    assert.deepEqual(exported.skipped, []);
    blob = exported.bytes;
  });
  after(async () => {
    await source.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips identity and peers into a fresh store', async () => {
    const target = await open();
    const report = await importBackup(target, blob, BACKUP_PASS);
    assert.deepEqual(report, {
      added: 21,
      updated: 0,
      kept: 0,
      identity: 'imported',
      pskChanges: [],
      stillBlocked: [],
    });
    assert.equal((await target.getIdentity())?.peerId, identity.peerId);
    const a = (await source.list()).peers;
    const b = (await target.list()).peers;
    assert.deepEqual(b, a);
    const keys = await target.lookup(friend.peerId);
    assert.deepEqual(keys?.psk, friendPsk);
    // The imported identity signs like the original.
    const msg = new TextEncoder().encode('m');
    assert.ok(await identity.publicIdentity.verify(await (await target.getIdentity())!.sign(msg), msg));
    // Importing the same backup again changes nothing.
    assert.deepEqual(await importBackup(target, blob, BACKUP_PASS), {
      added: 0,
      updated: 0,
      kept: 21,
      identity: 'unchanged',
      pskChanges: [],
      stillBlocked: [],
    });
    await target.close();
  });

  it('merge keeps newer records on both sides and does not replace a different identity', async () => {
    const target = await openMemoryPeerStore();
    const own = await target.loadOrCreateIdentity();
    // The target's copy of friend is newer than the backup's (updatedAt 100): it must survive.
    await target.put({
      publicIdentity: friend.publicIdentity,
      psk: randomPsk(),
      label: 'newer',
      updatedAt: 5000,
    });
    const report = await importBackup(target, blob, BACKUP_PASS);
    assert.deepEqual(report, {
      added: 20,
      updated: 0,
      kept: 1,
      identity: 'kept-existing',
      pskChanges: [],
      stillBlocked: [],
    });
    assert.equal((await target.get(friend.peerId))?.label, 'newer');
    assert.equal((await target.getIdentity())?.peerId, own.peerId);

    // And the other way: an older local copy is replaced by the backup's newer one (its different PSK
    // only because the caller accepts it; see the describe below).
    const older = await openMemoryPeerStore();
    await older.put({
      publicIdentity: friend.publicIdentity,
      psk: randomPsk(),
      label: 'stale',
      updatedAt: 50,
    });
    const r2 = await importBackup(older, blob, BACKUP_PASS, {
      replaceIdentity: true,
      acceptPskChanges: [friend.peerId],
    });
    assert.equal(r2.updated, 1);
    assert.deepEqual(r2.pskChanges, []);
    assert.equal(r2.identity, 'imported');
    const got = await older.get(friend.peerId);
    assert.equal(got?.label, 'friend');
    assert.deepEqual(got?.psk, friendPsk);
    await Promise.all([target.close(), older.close()]);
  });

  it('rejects a damaged blob whole, and a wrong passphrase, importing nothing', async () => {
    const target = await open();
    const damage = (at: number) => {
      const b = blob.slice();
      b[at]! ^= 0x01;
      return b;
    };
    await assert.rejects(
      importBackup(target, damage(blob.length - 100), BACKUP_PASS),
      withCode('bad_backup'),
    );
    await assert.rejects(importBackup(target, damage(blob.length - 1), BACKUP_PASS), withCode('bad_backup'));
    await assert.rejects(importBackup(target, damage(2), BACKUP_PASS), withCode('bad_backup'));
    // The IV is in the header, covered by the tag as AAD and as the nonce.
    await assert.rejects(importBackup(target, damage(70), BACKUP_PASS), withCode('bad_backup'));
    await assert.rejects(
      importBackup(target, blob.slice(0, blob.length - 1), BACKUP_PASS),
      withCode('bad_backup'),
    );
    await assert.rejects(importBackup(target, blob.slice(0, 20), BACKUP_PASS), withCode('bad_backup'));
    await assert.rejects(importBackup(target, new Uint8Array(0), BACKUP_PASS), withCode('bad_backup'));
    await assert.rejects(importBackup(target, blob, 'not it'), withCode('wrong_passphrase'));
    assert.equal((await target.list()).peers.length, 0);
    assert.equal(await target.getIdentity(), undefined);
    await target.close();
  });

  it('skips damaged records on export and says so', async () => {
    const path = join(dir, `db${n++}`);
    const s = await openLevelPeerStore({ path, encryption: STORE_PASS });
    const [a, b] = await Promise.all([fakePublicIdentity(), fakePublicIdentity()]);
    await s.put({ publicIdentity: a, psk: randomPsk() });
    await s.put({ publicIdentity: b, psk: randomPsk() });
    await s.close();
    const db = new ClassicLevel<string, string>(path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.put(`peer:${b.peerId}`, '{"v":1,');
    await db.close();
    const s2 = await openLevelPeerStore({ path, encryption: STORE_PASS });
    const exported = await exportBackup(s2, BACKUP_PASS);
    assert.equal(exported.peers, 1);
    assert.equal(exported.identity, false);
    assert.deepEqual(
      exported.skipped.map((p) => [p.key, p.error.code]),
      [[b.peerId, 'corrupt_record']],
    );
    await s2.close();
    const target = await openMemoryPeerStore();
    await importBackup(target, exported.bytes, BACKUP_PASS);
    assert.deepEqual(
      (await target.list()).peers.map((p) => p.peerId),
      [a.peerId],
    );
    await target.close();
  });
});

// Issue 13 point 8: importing a backup must never be a way around the user. A blocked peer stays blocked
// (only an explicit put lifts it), records merge by `updatedAt` alone, timestamps from the future are
// refused, and a PSK is never replaced without the caller naming the peer.
describe('backup import cannot unblock a peer or replace its PSK', () => {
  let friend: Identity;
  const mine = randomPsk();
  const theirs = randomPsk();
  const MINUTE = 60_000;

  before(async () => {
    friend = await Identity.generate();
  });

  /** A real backup of a store holding only `friend`, as given. */
  async function backupOfFriend(fields: {
    psk: Uint8Array;
    trust?: 'paired' | 'blocked';
    updatedAt: number;
    lastSeenAt?: number;
    label?: string;
  }): Promise<Uint8Array> {
    const s = await openMemoryPeerStore();
    await s.put({ publicIdentity: friend.publicIdentity, ...fields });
    const { bytes } = await exportBackup(s, BACKUP_PASS);
    await s.close();
    return bytes;
  }

  /** A store in which the user blocked `friend` (at `blockedAt`) after pairing with PSK `mine`. */
  async function storeWithBlockedFriend(blockedAt = Date.now()): Promise<PeerStore> {
    const s = await openMemoryPeerStore();
    await s.put({ publicIdentity: friend.publicIdentity, psk: mine, updatedAt: blockedAt - 10 * MINUTE });
    await s.put({ publicIdentity: friend.publicIdentity, psk: mine, trust: 'blocked', updatedAt: blockedAt });
    return s;
  }

  const assertStillBlocked = async (s: PeerStore) => {
    const r = await s.get(friend.peerId);
    assert.equal(r?.trust, 'blocked');
    assert.deepEqual(r?.psk, mine);
    assert.equal(await s.lookup(friend.peerId), undefined);
  };

  it('refuses a record dated in the year 275760 (bad_backup) and leaves the blocked peer as it was', async () => {
    const target = await storeWithBlockedFriend();
    const crafted = await backupOfFriend({ psk: theirs, trust: 'paired', updatedAt: 8.64e15 });
    await assert.rejects(importBackup(target, crafted, BACKUP_PASS), withCode('bad_backup'));
    await assertStillBlocked(target);
    // Just beyond the allowed clock skew is refused too, for lastSeenAt as for updatedAt.
    const soon = await backupOfFriend({ psk: mine, updatedAt: Date.now() + 10 * MINUTE });
    await assert.rejects(importBackup(target, soon, BACKUP_PASS), withCode('bad_backup'));
    const seen = await backupOfFriend({ psk: mine, updatedAt: 1, lastSeenAt: Date.now() + 10 * MINUTE });
    await assert.rejects(importBackup(target, seen, BACKUP_PASS), withCode('bad_backup'));
    await assertStillBlocked(target);
    await target.close();
  });

  it('keeps a blocked peer blocked against a newer paired copy; only an explicit put unblocks it', async () => {
    const target = await storeWithBlockedFriend(Date.now() - 10 * MINUTE);
    const newer = await backupOfFriend({ psk: mine, trust: 'paired', updatedAt: Date.now() });
    const report = await importBackup(target, newer, BACKUP_PASS, { acceptPskChanges: [friend.peerId] });
    await assertStillBlocked(target);
    assert.deepEqual(report.stillBlocked, [friend.peerId]);
    assert.equal(report.updated, 0);
    // The user's own decision is what lifts a block.
    await target.put({ publicIdentity: friend.publicIdentity, psk: mine, trust: 'paired' });
    assert.ok(await target.lookup(friend.peerId));
    await target.close();
  });

  it('merges by updatedAt only: a copy that was merely seen later does not win', async () => {
    const blockedAt = Date.now() - 10 * MINUTE;
    const target = await storeWithBlockedFriend(blockedAt);
    // A genuine backup from before the block, of a device that saw the peer after it.
    const older = await backupOfFriend({
      psk: mine,
      updatedAt: blockedAt - MINUTE,
      lastSeenAt: blockedAt + MINUTE,
    });
    const report = await importBackup(target, older, BACKUP_PASS);
    await assertStillBlocked(target);
    assert.equal(report.kept, 1);

    const paired = await openMemoryPeerStore();
    await paired.put({ publicIdentity: friend.publicIdentity, psk: mine, label: 'current', updatedAt: 5000 });
    const seenLater = await backupOfFriend({ psk: mine, label: 'stale', updatedAt: 4000, lastSeenAt: 9000 });
    assert.equal((await importBackup(paired, seenLater, BACKUP_PASS)).kept, 1);
    assert.equal((await paired.get(friend.peerId))?.label, 'current');
    await Promise.all([target.close(), paired.close()]);
  });

  it('lists the peers whose PSK would change and replaces none unless the caller names them', async () => {
    const target = await openMemoryPeerStore();
    await target.put({ publicIdentity: friend.publicIdentity, psk: mine, label: 'mine', updatedAt: 1000 });
    const newer = await backupOfFriend({ psk: theirs, label: 'theirs', updatedAt: 2000 });
    const first = await importBackup(target, newer, BACKUP_PASS);
    assert.deepEqual((await target.get(friend.peerId))?.psk, mine);
    assert.deepEqual(first.pskChanges, [friend.peerId]);
    assert.equal(first.updated, 0);
    // The application asked its user, who said yes for this peer.
    const second = await importBackup(target, newer, BACKUP_PASS, { acceptPskChanges: [friend.peerId] });
    assert.deepEqual(second.pskChanges, []);
    assert.equal(second.updated, 1);
    const r = await target.get(friend.peerId);
    assert.deepEqual(r?.psk, theirs);
    assert.equal(r?.label, 'theirs');
    await target.close();
  });

  it('applies a newer block from a backup, keeping the stored PSK', async () => {
    const target = await openMemoryPeerStore();
    await target.put({ publicIdentity: friend.publicIdentity, psk: mine, updatedAt: 1000 });
    const blocked = await backupOfFriend({ psk: theirs, trust: 'blocked', updatedAt: 2000 });
    const report = await importBackup(target, blocked, BACKUP_PASS);
    assert.deepEqual(report.pskChanges, [friend.peerId]);
    await assertStillBlocked(target);
    await target.close();
  });
});
