// Many connections at once from one host, and glare (two hosts dialing each other at the same time).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import {
  autoAccept,
  type Backend,
  type Env,
  nextMessage,
  sleep,
  startEnv,
  text,
  until,
  within,
} from '../helpers/hosts.js';

/** A message each way over (mine, theirs). */
async function talk(mine: Connection, theirs: Connection, label: string): Promise<void> {
  const there = nextMessage(theirs, 20_000);
  await mine.send(`${label} →`);
  assert.equal(text(await there), `${label} →`);
  const back = nextMessage(mine, 20_000);
  await theirs.send(`${label} ←`);
  assert.equal(text(await back), `${label} ←`);
}

describe('many connections and glare', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(14);
  });
  after(async () => {
    await env?.close();
  });

  it('10 concurrent connections from one host to 10 different peers (both backends)', async () => {
    const [hubId, ...rest] = env.ids;
    const peerIds = rest.slice(0, 10);
    const hub = await env.host(hubId!, { peers: peerIds });
    const peers: Host[] = [];
    for (const [i, id] of peerIds.entries()) {
      peers.push(await env.host(id, { peers: [hubId!], backend: i % 2 ? 'node-datachannel' : 'wrtc' }));
    }
    const acceptors = peers.map((h) => autoAccept(h));
    const conns = await within(
      Promise.all(peerIds.map((id) => hub.connect(id.peerId))),
      40_000,
      '10 concurrent connects',
    );
    assert.equal(hub.openConnections.length, 10);
    assert.deepEqual(
      conns.map((c) => c.peerId),
      peerIds.map((id) => id.peerId),
    );
    const remote = await Promise.all(acceptors.map((a) => a.next()));
    await Promise.all(conns.map((c, i) => talk(c, remote[i]!, `peer ${i}`)));
    for (const h of peers) assert.equal(h.openConnections.length, 1);
    // Each connection is its own session.
    assert.equal(new Set(conns.map((c) => Buffer.from(c.sessionId).toString('hex'))).size, 10);
    await Promise.all(conns.map((c) => c.close(0, 'bye')));
    await until(() => hub.openConnections.length === 0, 5_000, 'hub connections closed');
    await until(() => peers.every((h) => h.openConnections.length === 0), 5_000, 'peer connections closed');
    await env.closeHost(hub);
    for (const h of peers) await env.closeHost(h);
  });

  it('10 concurrent connections from one host to the same peer', async () => {
    const a = env.ids[11]!;
    const b = env.ids[12]!;
    const ha = await env.host(a, { peers: [b] });
    const hb = await env.host(b, { peers: [a], backend: 'node-datachannel' });
    const acceptor = autoAccept(hb);
    const conns = await within(
      Promise.all(Array.from({ length: 10 }, () => ha.connect(b.peerId))),
      40_000,
      '10 concurrent connects to one peer',
    );
    assert.equal(ha.openConnections.length, 10);
    const remote = await Promise.all(conns.map(() => acceptor.next()));
    assert.equal(hb.openConnections.length, 10);
    // Pair the ends by session id, then talk on each.
    const byId = new Map(remote.map((c) => [Buffer.from(c.sessionId).toString('hex'), c]));
    assert.equal(byId.size, 10);
    await Promise.all(
      conns.map((c, i) => {
        const other = byId.get(Buffer.from(c.sessionId).toString('hex'));
        assert.ok(other, `connection ${i} has no counterpart`);
        return talk(c, other, `conn ${i}`);
      }),
    );
    await env.closeHost(ha);
    await env.closeHost(hb);
  });

  const GLARE: [Backend, Backend, number, number][] = [
    ['wrtc', 'wrtc', 0, 13],
    ['node-datachannel', 'wrtc', 11, 12],
  ];
  for (const [backendA, backendB, ia, ib] of GLARE) {
    it(`glare (${backendA}, ${backendB}): both dial each other at once → one connection each side, talking (5 rounds)`, async () => {
      const a = env.ids[ia]!;
      const b = env.ids[ib]!;
      const ha = await env.host(a, { peers: [b], backend: backendA });
      const hb = await env.host(b, { peers: [a], backend: backendB });
      // Neither side expects incoming requests: anything in incoming() is an extra connection.
      const extraA = autoAccept(ha);
      const extraB = autoAccept(hb);
      try {
        for (let round = 0; round < 5; round++) {
          const [ca, cb] = await within(
            Promise.all([ha.connect(b.peerId), hb.connect(a.peerId)]),
            20_000,
            `glare round ${round}`,
          );
          assert.equal(ca.peerId, b.peerId);
          assert.equal(cb.peerId, a.peerId);
          // Both callers got the two ends of the same connection.
          assert.deepEqual(ca.sessionId, cb.sessionId, `round ${round}: the two connections differ`);
          await talk(ca, cb, `glare ${round}`);
          await sleep(300); // let any losing dial finish
          assert.equal(ha.openConnections.length, 1, `round ${round}: A has ${ha.openConnections.length}`);
          assert.equal(hb.openConnections.length, 1, `round ${round}: B has ${hb.openConnections.length}`);
          assert.equal(extraA.accepted.length + extraA.errors.length, 0, 'A saw an incoming request');
          assert.equal(extraB.accepted.length + extraB.errors.length, 0, 'B saw an incoming request');
          const closed = cb.closed;
          await ca.close(0, 'next round');
          await within(closed, 5_000, 'close');
          await until(
            () => ha.openConnections.length === 0 && hb.openConnections.length === 0,
            5_000,
            'connections gone',
          );
        }
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  }
});
