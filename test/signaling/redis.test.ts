// Scale-out: a real redis-server and two signaling server processes sharing it form one network.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { PairingService } from '../../src/pairing/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { toHex } from '../../src/util/bytes.js';
import {
  type RedisProcess,
  type SignalingProcess,
  startRedis,
  startSignalingProcess,
} from '../helpers/processes.js';
import { httpGet, metricValue, next, sleep, withCode } from './_util.js';

describe('scale-out: two server processes joined by Redis', () => {
  let redis: RedisProcess;
  let s1: SignalingProcess;
  let s2: SignalingProcess;
  let ids: Identity[];
  const clients: SignalingClient[] = [];
  const client = (identity: Identity, url: string) => {
    const c = new SignalingClient({ url, identity });
    clients.push(c);
    return c;
  };

  before(async () => {
    const [r, ...generated] = await Promise.all([
      startRedis(),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ]);
    redis = r;
    ids = generated;
    [s1, s2] = await Promise.all([
      startSignalingProcess({ env: { REDIS_URL: redis.url } }),
      startSignalingProcess({ env: { REDIS_URL: redis.url } }),
    ]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([s1?.kill(), s2?.kill()]);
    await redis?.kill();
  });

  it('peers on different processes authenticate, look each other up and relay signals both ways', async () => {
    assert.notEqual(s1.url, s2.url);
    const a = client(ids[0]!, s1.url);
    const b = client(ids[1]!, s2.url);
    await Promise.all([a.connect(), b.connect()]);
    const seen = await a.lookup(b.peerId);
    assert.equal(seen.online, true);
    assert.equal(seen.identity?.peerId, b.peerId);
    const toB = next(b, 'signal');
    await a.sendSignal(b.peerId, { type: 'offer', sdp: 'from s1' });
    assert.deepEqual(await toB, {
      from: a.peerId,
      data: { type: 'offer', sdp: 'from s1' },
      ts: (await toB).ts,
    });
    const toA = next(a, 'signal');
    await b.sendSignal(a.peerId, { type: 'answer' });
    assert.equal((await toA).from, b.peerId);
    // Each process counts only what it relayed itself.
    const m1 = (await httpGet(s1.url, '/metrics')).text;
    assert.equal(metricValue(m1, 'p2ptls_signaling_connected_peers'), 1);
  });

  it('peers on different processes pair with an invite and get the same PSK', async () => {
    const a = client(ids[0]!, s1.url);
    const b = client(ids[1]!, s2.url);
    await Promise.all([a.connect(), b.connect()]);
    const pa = new PairingService({ identity: a.identity, transport: a });
    const pb = new PairingService({ identity: b.identity, transport: b });
    const invite = pb.createInvite();
    const bSide = next(pb, 'paired');
    const aSide = await pa.pair(invite);
    assert.equal(toHex(aSide.psk), toHex((await bSide).psk));
    assert.equal(aSide.peer.peerId, b.peerId);
  });

  it('rooms span processes: member lists and joined/left events', async () => {
    const a = client(ids[0]!, s1.url);
    const b = client(ids[1]!, s2.url);
    const c = client(ids[2]!, s1.url);
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    await a.joinRoom('train');
    const joined = next(a, 'room:joined', (e) => e.peerId === b.peerId);
    assert.deepEqual(await b.joinRoom('train'), [a.peerId, b.peerId].sort());
    await joined;
    await c.joinRoom('train');
    assert.equal((await b.roomMembers('train')).length, 3);
    const left = next(a, 'room:left', (e) => e.peerId === b.peerId);
    await b.close();
    await left;
    assert.deepEqual(await c.roomMembers('train'), [a.peerId, c.peerId].sort());
  });

  it('a newer connection on the other process replaces the older one; offline is seen everywhere', async () => {
    const old = client(ids[0]!, s1.url);
    const watcher = client(ids[2]!, s1.url);
    await Promise.all([old.connect(), watcher.connect()]);
    const replaced = next(old, 'replaced');
    const fresh = client(ids[0]!, s2.url);
    await fresh.connect();
    await replaced;
    // Signals to that peerId now reach the new connection only.
    const got = next(fresh, 'signal');
    await watcher.sendSignal(fresh.peerId, 'to the new one');
    assert.equal((await got).data, 'to the new one');
    await fresh.close();
    let online = true;
    for (let i = 0; i < 50 && online; i++) {
      online = (await watcher.lookup(fresh.peerId)).online;
      if (online) await sleep(50);
    }
    assert.equal(online, false);
    await assert.rejects(watcher.sendSignal(fresh.peerId, 'gone'), withCode('peer_offline'));
  });
});
