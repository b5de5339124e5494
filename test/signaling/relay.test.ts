import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { freePort, type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { next, withCode } from './_util.js';

describe('signal relay, lookup, rooms, reconnection (real server process)', () => {
  let server: SignalingProcess;
  let ids: Identity[];
  const clients: SignalingClient[] = [];
  const client = (identity: Identity, url = server.url) => {
    const c = new SignalingClient({ url, identity, reconnectionDelayMs: 100, reconnectionDelayMaxMs: 500 });
    clients.push(c);
    return c;
  };

  before(async () => {
    [server, ...ids] = await Promise.all([
      startSignalingProcess(),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.kill();
  });

  it('relays signed signals in order, with the verified sender', async () => {
    const [a, b] = [client(ids[0]!), client(ids[1]!)];
    await Promise.all([a.connect(), b.connect()]);
    const got: unknown[] = [];
    const all = new Promise<void>((resolve) => {
      b.on('signal', (s) => {
        assert.equal(s.from, a.peerId);
        got.push(s.data);
        if (got.length === 20) resolve();
      });
    });
    const rejected: unknown[] = [];
    b.on('rejected', (r) => rejected.push(r));
    await a.sendSignal(b.peerId, { type: 'offer', sdp: 'v=0\r\n...' });
    for (let i = 1; i < 20; i++) await a.sendSignal(b.peerId, { type: 'candidate', i });
    await all;
    assert.deepEqual(got[0], { type: 'offer', sdp: 'v=0\r\n...' });
    assert.deepEqual(
      got.slice(1).map((g) => (g as { i: number }).i),
      Array.from({ length: 19 }, (_, i) => i + 1),
    );
    assert.deepEqual(rejected, []);
  });

  it('delivers signals sent without waiting in the order of the calls (a dial sends its SDP, then candidates)', async () => {
    const [a, b] = [client(ids[0]!), client(ids[1]!)];
    await Promise.all([a.connect(), b.connect()]);
    const n = 24;
    const got: number[] = [];
    const all = new Promise<void>((resolve) => {
      b.on('signal', (s) => {
        got.push((s.data as { i: number }).i);
        if (got.length === n) resolve();
      });
    });
    // Not awaited one by one: each envelope's RSA signature runs in the thread pool; signed concurrently
    // they finished, and were sent, in whatever order the pool completed them.
    await Promise.all(Array.from({ length: n }, (_, i) => a.sendSignal(b.peerId, { i })));
    await all;
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => i),
    );
  });

  it('answers peer_offline for a peer that is not connected, and lookups with verified keys', async () => {
    const a = client(ids[0]!);
    await a.connect();
    await assert.rejects(a.sendSignal(ids[2]!.peerId, { x: 1 }), withCode('peer_offline'));
    const unknown = await a.lookup(ids[2]!.peerId);
    assert.deepEqual(unknown, { identity: null, online: false });
    const c = client(ids[2]!);
    await c.connect();
    const found = await a.lookup(c.peerId);
    assert.equal(found.online, true);
    assert.equal(found.identity?.peerId, c.peerId);
    // The server learns of c's close asynchronously: a room both are in says when it has (under load, a
    // lookup right after close() reached the server first and still found c online).
    await a.joinRoom('offline-check');
    const joined = next(a, 'room:joined', (e) => e.peerId === c.peerId);
    await c.joinRoom('offline-check');
    await joined;
    const gone = next(a, 'room:left', (e) => e.peerId === c.peerId);
    await c.close();
    await gone;
    // Still known after going offline: its key stays available for verification.
    const later = await a.lookup(ids[2]!.peerId);
    assert.equal(later.online, false);
    assert.equal(later.identity?.peerId, ids[2]!.peerId);
  });

  it('rooms: join, member list, joined/left events, leave on disconnect', async () => {
    const [a, b, c] = [client(ids[0]!), client(ids[1]!), client(ids[2]!)];
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    assert.deepEqual(await a.joinRoom('mesh/1'), [a.peerId]);
    const joined = next(a, 'room:joined', (e) => e.peerId === b.peerId);
    const members = await b.joinRoom('mesh/1');
    assert.deepEqual(members, [a.peerId, b.peerId].sort());
    assert.deepEqual(await joined, { room: 'mesh/1', peerId: b.peerId });
    await c.joinRoom('mesh/1');
    assert.equal((await a.roomMembers('mesh/1')).length, 3);
    const left = next(a, 'room:left', (e) => e.peerId === b.peerId);
    await b.leaveRoom('mesh/1');
    assert.deepEqual(await left, { room: 'mesh/1', peerId: b.peerId });
    const gone = next(a, 'room:left', (e) => e.peerId === c.peerId);
    await c.close();
    await gone;
    assert.deepEqual(await a.roomMembers('mesh/1'), [a.peerId]);
    await assert.rejects(a.joinRoom('bad room name with spaces'), withCode('malformed'));
  });

  it('reconnects with backoff after a server restart, re-authenticates and re-joins its rooms', async () => {
    const port = await freePort();
    let s2 = await startSignalingProcess({ args: ['--port', String(port)] });
    try {
      const url = s2.url;
      const [a, b] = [client(ids[0]!, url), client(ids[1]!, url)];
      await Promise.all([a.connect(), b.connect()]);
      await a.joinRoom('r');
      const lost = next(a, 'disconnected');
      const back = next(a, 'authenticated', () => true, 20_000);
      const backB = next(b, 'authenticated', () => true, 20_000);
      await s2.kill();
      await lost;
      s2 = await startSignalingProcess({ args: ['--port', String(port)] });
      await Promise.all([back, backB]);
      // Room re-join runs right after authentication; give it a moment to land.
      for (let i = 0; i < 50 && !(await b.roomMembers('r')).includes(a.peerId); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(await b.roomMembers('r'), [a.peerId]);
      const got = next(b, 'signal');
      await a.sendSignal(b.peerId, 'after restart');
      assert.equal((await got).data, 'after restart');
    } finally {
      await s2.kill();
    }
  });
});
