// The Redis directory on its own, against a real redis-server: presence only ever belongs to the newest
// connection, refresh keeps it alive without overwriting a newer one, and offline peers keep their key.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type RedisClientType } from 'redis';
import { MemoryDirectory, RedisDirectory } from '../../signaling-server/directory.js';
import { Identity, type PublicIdentityJson } from '../../src/identity/index.js';
import { type RedisProcess, startRedis } from '../helpers/processes.js';

describe('signaling directories', () => {
  let redis: RedisProcess;
  let client: RedisClientType;
  let pub: PublicIdentityJson;
  before(async () => {
    const [r, id] = await Promise.all([startRedis(), Identity.generate()]);
    redis = r;
    pub = id.exportPublic();
    client = createClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await client?.quit();
    await redis?.kill();
  });

  for (const kind of ['memory', 'redis'] as const) {
    it(`${kind}: register, replace, unregister only by the current connection, lookup after offline`, async () => {
      const dir =
        kind === 'redis'
          ? new RedisDirectory(client, { prefix: 'test:', presenceTtlSeconds: 30 })
          : new MemoryDirectory();
      const id = pub.peerId;
      assert.deepEqual(await dir.lookup(id), { identity: null, online: false });
      await dir.register(id, pub, 'conn-1');
      assert.deepEqual(await dir.lookup(id), { identity: pub, online: true });
      await dir.register(id, pub, 'conn-2');
      // The replaced connection going away must not take the new one offline.
      await dir.unregister(id, 'conn-1');
      assert.equal(await dir.isOnline(id), true);
      // A late refresh from the old connection's process must not steal the registration either.
      await dir.refresh([[id, 'conn-1']]);
      await dir.unregister(id, 'conn-2');
      if (kind === 'redis') assert.equal(await dir.isOnline(id), false);
      await dir.register(id, pub, 'conn-3');
      await dir.refresh([[id, 'conn-3']]);
      await dir.unregister(id, 'conn-3');
      assert.deepEqual(await dir.lookup(id), { identity: pub, online: false });
      if (kind === 'redis') {
        assert.ok((await client.ttl(`test:identity:${id}`)) > 86400);
        await dir.register(id, pub, 'conn-4');
        const ttl = await client.ttl(`test:online:${id}`);
        assert.ok(ttl > 0 && ttl <= 30, `presence TTL ${ttl}`);
      }
      await dir.close();
    });
  }
});
