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

  it('redis: a process whose heartbeat stops is reaped by exactly one of two survivors', async () => {
    const prefix = 'reap:';
    const left: string[] = [];
    const fencedAs: string[] = [];
    const dirs: RedisDirectory[] = [];
    const clientsOf: RedisClientType[] = [];
    const make = async () => {
      const c: RedisClientType = createClient({ url: redis.url });
      c.on('error', () => {});
      await c.connect();
      clientsOf.push(c);
      const d = new RedisDirectory(c, {
        prefix,
        heartbeatMs: 200,
        heartbeatTtlMs: 2000,
        onRoomLeft: (room, peerId) => left.push(`${room} ${peerId}`),
        onFenced: (id) => fencedAs.push(id),
      });
      await d.start();
      dirs.push(d);
      return d;
    };
    const [dead, s1, s2] = [await make(), await make(), await make()];
    const other = (await Identity.generate()).exportPublic();
    await dead.register(pub.peerId, pub, 'conn-dead');
    await dead.joinRoom('r1', pub.peerId, 'conn-dead');
    await dead.joinRoom('r2', pub.peerId, 'conn-dead');
    await s1.register(other.peerId, other, 'conn-live');
    await s1.joinRoom('r1', other.peerId, 'conn-live');
    assert.deepEqual(await s2.roomMembers('r1'), [pub.peerId, other.peerId].sort());
    assert.equal(await s2.isOnline(pub.peerId), true);

    // The crash: its connection to Redis is gone, so its heartbeat is never renewed again.
    await clientsOf[0]!.disconnect();
    const deadline = Date.now() + 15_000;
    while ((await client.sMembers(`${prefix}procs`)).includes(dead.processId)) {
      assert.ok(Date.now() < deadline, 'the dead process was never reaped');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(left.sort(), [`r1 ${pub.peerId}`, `r2 ${pub.peerId}`], 'room:left once per membership');
    for (const d of [s1, s2]) {
      assert.equal(await d.isOnline(pub.peerId), false);
      assert.equal(await d.isOnline(other.peerId), true);
      assert.deepEqual(await d.roomMembers('r1'), [other.peerId]);
      assert.deepEqual(await d.roomMembers('r2'), []);
    }
    assert.equal(await client.exists(`${prefix}proc-rooms:${dead.processId}`), 0);

    // A survivor that stalls past its TTL is fenced: a new id, and its old registrations are purged.
    const old = s1.processId;
    await client.del(`${prefix}proc:${old}`);
    while (fencedAs.length === 0) {
      assert.ok(Date.now() < deadline, 'the stalled process never noticed');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(fencedAs, [s1.processId]);
    assert.notEqual(s1.processId, old);
    while ((await client.sMembers(`${prefix}procs`)).includes(old)) {
      assert.ok(Date.now() < deadline, 'the fenced id was never reaped');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await s2.isOnline(other.peerId), false);
    assert.deepEqual(await s2.roomMembers('r1'), []);

    await Promise.all(dirs.slice(1).map((d) => d.close()));
    assert.deepEqual(await client.sMembers(`${prefix}procs`), [], 'a graceful close withdraws the process');
    await Promise.all(clientsOf.slice(1).map((c) => c.quit()));
  });
});
