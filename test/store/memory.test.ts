import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { openMemoryPeerStore, type PeerStore } from '../../src/store/index.js';
import { fakePublicIdentity, randomPsk, withCode } from './fixtures.js';

describe('PeerStore (memory engine; shared core behaviour)', () => {
  let alice: Identity;
  before(async () => {
    alice = await Identity.generate();
  });

  const withStore = async (fn: (s: PeerStore) => Promise<void>) => {
    const s = await openMemoryPeerStore();
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };

  it('put / get / has / list / delete', () =>
    withStore(async (s) => {
      assert.equal(s.kind, 'memory');
      assert.equal(s.encrypted, true);
      const pub = await fakePublicIdentity();
      const psk = randomPsk();
      const put = await s.put({ publicIdentity: pub, psk, label: 'laptop', addedAt: 1000, updatedAt: 1000 });
      assert.equal(put.peerId, pub.peerId);
      const got = await s.get(pub.peerId);
      assert.ok(got);
      assert.deepEqual(got.psk, psk);
      assert.deepEqual(got.publicIdentity, pub);
      assert.equal(got.label, 'laptop');
      assert.equal(got.trust, 'paired');
      assert.equal(got.addedAt, 1000);
      assert.equal(got.lastSeenAt, undefined);
      assert.ok(await s.has(pub.peerId));
      const other = await fakePublicIdentity();
      assert.equal(await s.get(other.peerId), undefined);
      assert.equal(await s.has(other.peerId), false);
      await s.put({ publicIdentity: other, psk: randomPsk() });
      const list = await s.list();
      assert.equal(list.peers.length, 2);
      assert.equal(list.problems.length, 0);
      assert.equal(await s.delete(pub.peerId), true);
      assert.equal(await s.delete(pub.peerId), false);
      assert.equal(await s.has(pub.peerId), false);
      assert.equal((await s.list()).peers.length, 1);
    }));

  it('a replacing put keeps addedAt and label unless given; psk is copied, not aliased', () =>
    withStore(async (s) => {
      const pub = await fakePublicIdentity();
      const psk = randomPsk();
      await s.put({ publicIdentity: pub, psk, label: 'a', addedAt: 5, updatedAt: 5 });
      psk.fill(0);
      const r = await s.put({ publicIdentity: pub, psk: randomPsk(), trust: 'blocked', updatedAt: 9 });
      assert.equal(r.addedAt, 5);
      assert.equal(r.label, 'a');
      assert.equal(r.trust, 'blocked');
      assert.equal(r.updatedAt, 9);
      assert.notDeepEqual((await s.get(pub.peerId))?.psk, new Uint8Array(32));
    }));

  it('rejects invalid input with typed errors and writes nothing (putMany is all or nothing)', () =>
    withStore(async (s) => {
      const pub = await fakePublicIdentity();
      await assert.rejects(
        s.put({ publicIdentity: pub, psk: new Uint8Array(31) }),
        withCode('invalid_argument'),
      );
      const forged = { ...pub, peerId: (await fakePublicIdentity()).peerId };
      await assert.rejects(s.put({ publicIdentity: forged, psk: randomPsk() }), withCode('peer_id_mismatch'));
      await assert.rejects(
        s.putMany([
          { publicIdentity: pub, psk: randomPsk() },
          { publicIdentity: await fakePublicIdentity(), psk: randomPsk(), trust: 'friend' as 'paired' },
        ]),
        withCode('invalid_argument'),
      );
      assert.equal((await s.list()).peers.length, 0);
      await assert.rejects(s.get('not-a-peer-id'), withCode('invalid_argument'));
    }));

  it('lookup gives verified keys for paired peers only', () =>
    withStore(async (s) => {
      const psk = randomPsk();
      await s.put({ publicIdentity: alice.publicIdentity, psk });
      const keys = await s.lookup(alice.peerId);
      assert.ok(keys);
      assert.equal(keys.publicIdentity.peerId, alice.peerId);
      assert.deepEqual(keys.psk, psk);
      const msg = new TextEncoder().encode('hi');
      assert.ok(await keys.publicIdentity.verify(await alice.sign(msg), msg));
      await s.put({ publicIdentity: alice.exportPublic(), psk, trust: 'blocked' });
      assert.equal(await s.lookup(alice.peerId), undefined);
      assert.equal(await s.lookup((await fakePublicIdentity()).peerId), undefined);
    }));

  it('lookup of a record with forged keys fails (binding signature checked)', () =>
    withStore(async (s) => {
      const fake = await fakePublicIdentity();
      await s.put({ publicIdentity: fake, psk: randomPsk() });
      await assert.rejects(s.lookup(fake.peerId), withCode('bad_signature'));
    }));

  it('markSeen moves lastSeenAt forward only', () =>
    withStore(async (s) => {
      const pub = await fakePublicIdentity();
      await s.put({ publicIdentity: pub, psk: randomPsk(), updatedAt: 10 });
      assert.equal(await s.markSeen(pub.peerId, 500), true);
      assert.equal(await s.markSeen(pub.peerId, 400), true);
      const r = await s.get(pub.peerId);
      assert.equal(r?.lastSeenAt, 500);
      assert.equal(r?.updatedAt, 10);
      assert.equal(await s.markSeen((await fakePublicIdentity()).peerId), false);
    }));

  it('keeps the host identity; non-extractable keys are kept as CryptoKeys', () =>
    withStore(async (s) => {
      assert.equal(await s.getIdentity(), undefined);
      const id = await s.loadOrCreateIdentity();
      assert.equal(id.privateKeys.signingPrivateKey.extractable, false);
      assert.equal((await s.loadOrCreateIdentity()).peerId, id.peerId);
      assert.equal((await s.getIdentity())?.peerId, id.peerId);
      // A non-extractable identity cannot go into a backup, so the snapshot leaves it out.
      assert.equal((await s.snapshot()).identity, undefined);
      await s.setIdentity(alice);
      assert.equal((await s.getIdentity())?.peerId, alice.peerId);
      assert.equal((await s.snapshot()).identity?.peerId, alice.peerId);
    }));

  it('merge keeps the newer copy of each peer (by updatedAt) and is all or nothing', () =>
    withStore(async (s) => {
      const [a, b, c, e] = await Promise.all([
        fakePublicIdentity(),
        fakePublicIdentity(),
        fakePublicIdentity(),
        fakePublicIdentity(),
      ]);
      const pskB = randomPsk();
      const pskE = randomPsk();
      await s.put({ publicIdentity: a, psk: randomPsk(), label: 'a-stored', addedAt: 1, updatedAt: 100 });
      await s.put({ publicIdentity: b, psk: pskB, label: 'b-stored', addedAt: 1, updatedAt: 100 });
      await s.put({ publicIdentity: e, psk: pskE, label: 'e-stored', addedAt: 1, updatedAt: 100 });
      const base = { trust: 'paired' as const, addedAt: 0 };
      const report = await s.merge({
        peers: [
          { ...base, peerId: a.peerId, publicIdentity: a, psk: randomPsk(), label: 'a-old', updatedAt: 50 },
          { ...base, peerId: b.peerId, publicIdentity: b, psk: pskB, label: 'b-new', updatedAt: 200 },
          { ...base, peerId: c.peerId, publicIdentity: c, psk: randomPsk(), label: 'c', updatedAt: 1 },
          // Seen later, changed earlier: lastSeenAt does not make a copy newer.
          {
            ...base,
            peerId: e.peerId,
            publicIdentity: e,
            psk: pskE,
            label: 'e-old',
            updatedAt: 10,
            lastSeenAt: 900,
          },
        ],
      });
      assert.deepEqual(report, {
        added: 1,
        updated: 1,
        kept: 2,
        identity: 'unchanged',
        pskChanges: [],
        stillBlocked: [],
      });
      assert.equal((await s.get(a.peerId))?.label, 'a-stored');
      const rb = await s.get(b.peerId);
      assert.equal(rb?.label, 'b-new');
      assert.equal(rb?.addedAt, 0);
      assert.equal((await s.get(c.peerId))?.label, 'c');
      assert.equal((await s.get(e.peerId))?.label, 'e-stored');
      const d = await fakePublicIdentity();
      await assert.rejects(
        s.merge({
          peers: [
            { ...base, peerId: d.peerId, publicIdentity: d, psk: randomPsk(), updatedAt: 900 },
            { ...base, peerId: a.peerId, publicIdentity: a, psk: new Uint8Array(3), updatedAt: 900 },
          ],
        }),
        withCode('invalid_argument'),
      );
      assert.equal(await s.has(d.peerId), false);
      assert.equal((await s.get(a.peerId))?.label, 'a-stored');
    }));

  it('rejects every call after close with store_closed', async () => {
    const s = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
    assert.equal(s.encrypted, false);
    await s.close();
    const pub = await fakePublicIdentity();
    await assert.rejects(s.get(pub.peerId), withCode('store_closed'));
    await assert.rejects(s.put({ publicIdentity: pub, psk: randomPsk() }), withCode('store_closed'));
    await assert.rejects(s.list(), withCode('store_closed'));
    await s.close();
  });
});
