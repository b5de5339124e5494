// Two Node hosts through a real signaling server process, on loopback: connect, then TCP mode and SLLP
// mode both ways, for wrtc↔wrtc, node-datachannel↔node-datachannel and the interop pairs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Datagram } from '../../src/host/connection-types.js';
import type { Identity } from '../../src/identity/identity.js';
import { autoAccept, type Backend, type Env, nextMessage, startEnv, text, within } from '../helpers/hosts.js';

/** Sends datagrams `label#i` until the peer gets one (loopback loses none, but SLLP promises nothing). */
async function datagramArrives(from: Connection, to: Connection, label: string): Promise<Datagram> {
  const got = new Promise<Datagram>((resolve) => {
    const off = to.datagrams.on('datagram', (d) => {
      if (text(d.data).startsWith(label)) {
        off();
        resolve(d);
      }
    });
  });
  let done = false;
  void got.then(() => {
    done = true;
  });
  const sender = (async () => {
    for (let i = 0; i < 50 && !done; i++) {
      const seq = await from.datagrams.send(`${label}#${i}`);
      assert.ok(seq >= 0, 'datagram dropped locally on an idle channel');
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const d = await within(got, 10_000, `datagram ${label}`);
  await sender;
  return d;
}

const PAIRS: [Backend, Backend][] = [
  ['wrtc', 'wrtc'],
  ['node-datachannel', 'node-datachannel'],
  ['wrtc', 'node-datachannel'],
  ['node-datachannel', 'wrtc'],
];

describe('two hosts through a signaling server process', () => {
  let env: Env;
  let ids: Identity[];
  before(async () => {
    env = await startEnv(2 * PAIRS.length);
    ids = env.ids;
  });
  after(async () => {
    await env?.close();
  });

  PAIRS.forEach(([dialerBackend, responderBackend], i) => {
    it(`${dialerBackend} dials ${responderBackend}: TCP and SLLP both ways`, async () => {
      const a = ids[2 * i]!;
      const b = ids[2 * i + 1]!;
      const ha = await env.host(a, { peers: [b], backend: dialerBackend });
      const hb = await env.host(b, { peers: [a], backend: responderBackend });
      const acceptor = autoAccept(hb);
      const ca = await within(ha.connect(b.peerId), 20_000, 'connect');
      const cb = await acceptor.next();
      assert.equal(ca.peerId, b.peerId);
      assert.equal(cb.peerId, a.peerId);
      assert.deepEqual(ca.sessionId, cb.sessionId);
      assert.equal(ha.openConnections.length, 1);
      assert.equal(hb.openConnections.length, 1);

      // TCP mode, both ways, including a multi-record message and order.
      const fromA = nextMessage(cb);
      await ca.send('hello from A');
      assert.equal(text(await fromA), 'hello from A');
      const fromB = nextMessage(ca);
      await cb.send('hello from B');
      assert.equal(text(await fromB), 'hello from B');

      const big = crypto.getRandomValues(new Uint8Array(60_000));
      const many: Uint8Array[] = [];
      const received = new Promise<void>((resolve) => {
        const off = ca.on('message', (m) => {
          many.push(m);
          if (many.length === 21) {
            off();
            resolve();
          }
        });
      });
      const big3 = new Uint8Array(3 * big.length);
      for (let k = 0; k < 3; k++) big3.set(big, k * big.length);
      const sends: Promise<void>[] = [];
      for (let k = 0; k < 20; k++) sends.push(cb.send(`m${k}`));
      sends.push(cb.send(big3));
      await Promise.all(sends);
      await within(received, 15_000, '21 messages');
      assert.deepEqual(
        many.slice(0, 20).map(text),
        Array.from({ length: 20 }, (_, k) => `m${k}`),
      );
      assert.deepEqual(many[20], big3);

      // SLLP mode, both ways.
      const dAB = await datagramArrives(ca, cb, 'dg A→B');
      assert.match(text(dAB.data), /^dg A→B#\d+$/);
      assert.ok(dAB.sentAt > Date.now() - 60_000 && dAB.sentAt <= Date.now() + 1000);
      const dBA = await datagramArrives(cb, ca, 'dg B→A');
      assert.match(text(dBA.data), /^dg B→A#\d+$/);

      const stats = await ca.stats();
      assert.equal(stats.messagesSent, 1, 'messagesSent');
      assert.equal(stats.messagesReceived, 22, 'messagesReceived');
      assert.ok(stats.datagrams.sent >= 1, 'datagrams.sent');
      assert.ok(stats.datagrams.received >= 1, 'datagrams.received');
      assert.equal(stats.localCandidateType, 'host');

      const closedB = cb.closed;
      await ca.close(0, 'done');
      const info = await within(closedB, 10_000, 'peer close');
      assert.equal(info.byPeer, true);
      assert.equal(info.reason, 'done');
      await env.closeHost(ha);
      await env.closeHost(hb);
    });
  });
});
