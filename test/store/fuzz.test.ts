import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type KvBackend, type KvOp, KvPeerStore, openMemoryPeerStore } from '../../src/store/index.js';
import { fakePublicIdentity, randomPsk } from './fixtures.js';

/** A Map engine whose raw values the test can overwrite, to feed the decoder arbitrary junk. */
class RawMap implements KvBackend {
  readonly kind = 'memory' as const;
  readonly canStoreCryptoKeys = true;
  readonly map = new Map<string, unknown>();
  async get(key: string) {
    return this.map.get(key);
  }
  async batch(ops: readonly KvOp[]) {
    for (const op of ops) op.type === 'put' ? this.map.set(op.key, op.value) : this.map.delete(op.key);
  }
  async entries(prefix: string) {
    return [...this.map].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1));
  }
  async insertIfAbsent(key: string, value: unknown) {
    if (this.map.has(key)) return this.map.get(key);
    this.map.set(key, value);
    return undefined;
  }
  async close() {}
}

describe('peer store decoding (property-based)', () => {
  it('any field values round-trip through put/get', async () => {
    const store = await openMemoryPeerStore();
    const pub = await fakePublicIdentity();
    const time = fc.integer({ min: 0, max: 8.64e15 });
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.string({ unit: 'grapheme', maxLength: 200 }), { nil: undefined }),
        fc.constantFrom('paired' as const, 'blocked' as const),
        time,
        fc.option(time, { nil: undefined }),
        time,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        async (label, trust, addedAt, lastSeenAt, updatedAt, psk) => {
          await store.delete(pub.peerId);
          const input = { publicIdentity: pub, psk, label, trust, addedAt, lastSeenAt, updatedAt };
          const put = await store.put(input);
          const got = await store.get(pub.peerId);
          assert.deepEqual(got, put);
          assert.equal(got?.label, label);
          assert.equal(got?.lastSeenAt, lastSeenAt);
          assert.deepEqual(got?.psk, psk);
        },
      ),
      { numRuns: 150 },
    );
    await store.close();
  });

  it('arbitrary junk under a record key is reported, never thrown by list()', async () => {
    const backend = new RawMap();
    const store = await KvPeerStore.open(backend, { encryption: { mode: 'device-key' } });
    const good = await fakePublicIdentity();
    await store.put({ publicIdentity: good, psk: randomPsk() });
    const victim = await fakePublicIdentity();
    await store.put({ publicIdentity: victim, psk: randomPsk() });
    const valid = backend.map.get(`peer:${victim.peerId}`) as Record<string, unknown>;
    const junk = fc.oneof(
      fc.anything(),
      fc.uint8Array({ maxLength: 64 }),
      // Valid records with one field replaced by anything: the hardest case for a decoder.
      fc.tuple(fc.constantFrom(...Object.keys(valid)), fc.anything()).map(([k, v]) => ({ ...valid, [k]: v })),
    );
    await fc.assert(
      fc.asyncProperty(junk, async (value) => {
        fc.pre(value !== undefined && JSON.stringify(value) !== JSON.stringify(valid));
        backend.map.set(`peer:${victim.peerId}`, value);
        const { peers, problems } = await store.list();
        assert.deepEqual(
          peers.map((p) => p.peerId),
          [good.peerId],
        );
        assert.equal(problems.length, 1);
        assert.equal(problems[0]?.key, victim.peerId);
        assert.ok(['corrupt_record', 'unsupported_version'].includes(problems[0]!.error.code));
        assert.equal(await store.has(victim.peerId), false);
      }),
      { numRuns: 300 },
    );
    await store.close();
  });
});
