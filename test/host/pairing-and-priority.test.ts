// The product flow end to end: two hosts with empty stores pair through the signaling server with an
// invite, then connect. Also: acceptUnverified for credentials the caller vouches for, and control
// traffic (a heartbeat ping) overtaking a bulk transfer instead of queueing behind it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openMemoryPeerStore } from '../../src/store/index.js';
import { autoAccept, type Env, nextMessage, startEnv, text, withCode, within } from '../helpers/hosts.js';

describe('host pairing, acceptUnverified, control priority', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(2);
  });
  after(async () => {
    await env?.close();
  });

  it('pairs two hosts with an invite, stores the pair on both sides, then connects', async () => {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const sa = await openMemoryPeerStore();
    const sb = await openMemoryPeerStore();
    const ha = await env.host(a, { store: sa });
    const hb = await env.host(b, { store: sb });
    try {
      await assert.rejects(ha.connect(b.peerId), withCode('unknown_peer'));
      const invite = hb.createInvite();
      // `paired` fires on each side only once its store holds the pair: a dial verifies from then on.
      const announced = (host: typeof ha, store: typeof sa, other: string) =>
        new Promise<boolean>((resolve) =>
          host.once('paired', ({ publicIdentity, initiator }) => {
            assert.equal(publicIdentity.peerId, other);
            void store.has(other).then((has) => resolve(has && initiator === (host === ha)));
          }),
        );
      const inviter = announced(hb, sb, a.peerId);
      const redeemer = announced(ha, sa, b.peerId);
      const creds = await within(ha.pair(invite, { label: 'bob' }), 20_000, 'pair');
      assert.equal(await within(redeemer, 1_000, 'the redeemer announced the stored pair'), true);
      assert.equal(await within(inviter, 10_000, 'the inviter announced the stored pair'), true);
      assert.equal(creds.publicIdentity.peerId, b.peerId);
      assert.deepEqual((await sa.lookup(b.peerId))?.psk, creds.psk);
      assert.deepEqual((await sb.lookup(a.peerId))?.psk, creds.psk);
      assert.equal((await sa.get(b.peerId))?.label, 'bob');

      const acceptor = autoAccept(hb);
      const conn = await within(ha.connect(b.peerId), 20_000, 'connect after pairing');
      const remote = await acceptor.next();
      const got = nextMessage(remote);
      await conn.send('paired and connected');
      assert.equal(text(await got), 'paired and connected');
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  it('acceptUnverified takes credentials the caller vouches for; verify() alone would refuse', async () => {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const ha = await env.host(a, { peers: [b] });
    // A peer not in the list reaches incoming() only when the host admits unpaired dialers.
    const hb = await env.host(b, { peers: [], admitUnpaired: (peerId) => peerId === a.peerId });
    try {
      const requests = hb.incoming();
      const dialing = within(ha.connect(b.peerId), 20_000, 'connect');
      const req = await within(requests.next(), 15_000, 'request');
      assert.equal(req.done, false);
      if (req.done) return;
      const remote = await req.value.acceptUnverified({
        publicIdentity: a.publicIdentity,
        psk: env.psk(a, b),
      });
      const conn = await dialing;
      const got = nextMessage(remote);
      await conn.send('vouched for');
      assert.equal(text(await got), 'vouched for');
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  it('a ping overtakes a 64 MiB message that is still being sent', async () => {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const ha = await env.host(a, { peers: [b], session: { maxMessageBytes: 128 * 1024 * 1024 } });
    const hb = await env.host(b, { peers: [a], session: { maxMessageBytes: 128 * 1024 * 1024 } });
    try {
      const acceptor = autoAccept(hb);
      const conn = await within(ha.connect(b.peerId), 20_000, 'connect');
      const remote = await acceptor.next();
      const order: string[] = [];
      const bulkArrived = new Promise<void>((resolve) =>
        remote.once('message', () => {
          order.push('bulk');
          resolve();
        }),
      );
      const rtt = new Promise<number>((resolve) => conn.once('rtt', resolve));
      const sending = conn.send(new Uint8Array(64 * 1024 * 1024));
      await new Promise((r) => setTimeout(r, 20));
      await conn.ping();
      const ms = await within(rtt, 20_000, 'pong');
      order.push('pong');
      await within(sending, 60_000, 'bulk queued');
      await within(bulkArrived, 60_000, 'bulk received');
      assert.deepEqual(
        order,
        ['pong', 'bulk'],
        `the pong waited for the bulk transfer (rtt ${ms.toFixed(0)} ms)`,
      );
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });
});
