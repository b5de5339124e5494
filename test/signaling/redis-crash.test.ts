// Issue 17, point 6: three signaling processes share one real redis-server and one is SIGKILLed. Its
// peers must go offline within a few seconds (heartbeats), `room:left` must reach the remaining members
// exactly once, signals to its peers must be answered `peer_offline` and never `ok`, and room requests in
// flight meanwhile must be answered from the surviving data.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type RedisClientType } from 'redis';
import { isP2PTLSError } from '../../src/errors.js';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { within } from '../helpers/hosts.js';
import {
  type RedisProcess,
  type SignalingProcess,
  startRedis,
  startSignalingProcess,
} from '../helpers/processes.js';
import { next, sleep } from './_util.js';

/** Upper bound of every wait below; the expected times are a few seconds (heartbeat TTL 3 s). */
const BOUND_MS = 20_000;

describe('a SIGKILLed process in Redis mode (three processes, real redis-server)', () => {
  let redis: RedisProcess;
  let probe: RedisClientType;
  let servers: SignalingProcess[] = [];
  const clients: SignalingClient[] = [];

  before(async () => {
    redis = await startRedis();
    servers = await Promise.all(
      [0, 1, 2].map(() => startSignalingProcess({ env: { REDIS_URL: redis.url } })),
    );
    probe = createClient({ url: redis.url });
    await probe.connect();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await probe?.quit();
    await Promise.all(servers.map((s) => s.kill()));
    await redis?.kill();
  });

  it('peers go offline, room:left arrives once, signals are refused, room requests are answered', async (t) => {
    const [a, b, v1, v2] = await Promise.all([0, 1, 2, 3].map(() => Identity.generate()));
    const [s1, s2, s3] = servers as [SignalingProcess, SignalingProcess, SignalingProcess];
    const client = (identity: Identity, url: string) => {
      const c = new SignalingClient({ url, identity, reconnectionDelayMs: 200 });
      clients.push(c);
      return c;
    };
    const ca = client(a!, s1.url);
    const cb = client(b!, s2.url);
    const cv1 = client(v1!, s3.url);
    const cv2 = client(v2!, s3.url);
    await Promise.all([ca, cb, cv1, cv2].map((c) => c.connect()));
    await ca.joinRoom('train');
    await cb.joinRoom('train');
    await cv1.joinRoom('train');
    assert.deepEqual(await ca.roomMembers('train'), [a!.peerId, b!.peerId, v1!.peerId].sort());
    assert.equal((await ca.lookup(cv1.peerId)).online, true);
    const got = next(cv1, 'signal');
    await cb.sendSignal(cv1.peerId, 'before the crash');
    assert.equal((await got).data, 'before the crash');

    const leftAt = { a: 0, b: 0 };
    ca.on('room:left', (e) => {
      if (e.peerId === cv1.peerId) leftAt.a++;
    });
    cb.on('room:left', (e) => {
      if (e.peerId === cv1.peerId) leftAt.b++;
    });
    const aSawLeft = next(ca, 'room:left', (e) => e.peerId === cv1.peerId, BOUND_MS);
    const bSawLeft = next(cb, 'room:left', (e) => e.peerId === cv1.peerId, BOUND_MS);
    assert.equal((await probe.sMembers('p2ptls:procs')).length, 3);

    s3.proc.child.kill('SIGKILL');
    await s3.proc.exited;
    const killedAt = performance.now();

    // Room requests in flight while the process is dead but not yet reaped: answered, never server_error.
    const inFlight = await within(
      Promise.all([ca.roomMembers('train'), cb.joinRoom('train'), cb.roomMembers('train')]),
      BOUND_MS,
      'room requests during the crash',
    );
    for (const members of inFlight) assert.ok(members.includes(a!.peerId) && members.includes(b!.peerId));

    // Signals to the dead process's peers until a lookup says offline: none may be acknowledged ok.
    let acked = 0;
    let refused = 0;
    let offlineAfterMs = -1;
    while (offlineAfterMs < 0) {
      assert.ok(performance.now() - killedAt < BOUND_MS, `still online ${BOUND_MS} ms after SIGKILL`);
      for (const [from, to] of [
        [ca, cv1],
        [cb, cv2],
      ] as const) {
        try {
          await from.sendSignal(to.peerId, { n: acked + refused });
          acked++;
        } catch (err) {
          assert.ok(isP2PTLSError(err, 'peer_offline'), `refused with ${String(err)}`);
          refused++;
        }
      }
      const [l1, l2] = await Promise.all([ca.lookup(cv1.peerId), cb.lookup(cv2.peerId)]);
      if (!l1.online && !l2.online) offlineAfterMs = performance.now() - killedAt;
      // Pacing only (the server allows 100 events/s per connection), not a wait for anything.
      else await sleep(50);
    }
    assert.equal(acked, 0, 'a signal to a dead process was acknowledged ok');

    await within(Promise.all([aSawLeft, bSawLeft]), BOUND_MS, 'room:left at both survivors');
    const leftAfterMs = performance.now() - killedAt;
    // Reaping is done once the dead process is struck off; a later duplicate could only come from a
    // second reaper, which the claim excludes. One more round trip through each survivor flushes events.
    while ((await probe.sMembers('p2ptls:procs')).length !== 2) {
      assert.ok(performance.now() - killedAt < BOUND_MS, 'the dead process was never struck off');
      await sleep(50);
    }
    const members = await Promise.all([ca.roomMembers('train'), cb.roomMembers('train')]);
    assert.deepEqual(members, [[a!.peerId, b!.peerId].sort(), [a!.peerId, b!.peerId].sort()]);
    assert.deepEqual(leftAt, { a: 1, b: 1 }, 'room:left exactly once at each remaining member');
    await assert.rejects(ca.sendSignal(cv1.peerId, 'after'), (err) => isP2PTLSError(err, 'peer_offline'));

    // Survivors keep relaying between themselves.
    const live = next(cb, 'signal');
    await ca.sendSignal(cb.peerId, 'still here');
    assert.equal((await live).data, 'still here');
    t.diagnostic(
      `offline in lookup ${offlineAfterMs.toFixed(0)} ms, room:left ${leftAfterMs.toFixed(0)} ms after SIGKILL; ` +
        `${refused} signals refused peer_offline, ${acked} acknowledged`,
    );
  });
});
