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
    assert.deepEqual(report, { added: 21, updated: 0, kept: 0, identity: 'imported' });
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
    assert.deepEqual(report, { added: 20, updated: 0, kept: 1, identity: 'kept-existing' });
    assert.equal((await target.get(friend.peerId))?.label, 'newer');
    assert.equal((await target.getIdentity())?.peerId, own.peerId);

    // And the other way: an older local copy is replaced by the backup's newer one.
    const older = await openMemoryPeerStore();
    await older.put({
      publicIdentity: friend.publicIdentity,
      psk: randomPsk(),
      label: 'stale',
      updatedAt: 50,
    });
    const r2 = await importBackup(older, blob, BACKUP_PASS, { replaceIdentity: true });
    assert.equal(r2.updated, 1);
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
