// keepConnected(): a link that dies comes back with a fresh handshake (no pairing again); a deliberate
// close by either side ends it; a peer that no longer knows us ends it with the peer's refusal.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { autoAccept, type Env, nextMessage, startEnv, text, within } from '../helpers/hosts.js';

/** Kills a connection's WebRTC link without a p2ptls close, as a crash or a failed ICE would. */
function breakLink(c: Connection): void {
  (c as unknown as { link: PeerLink }).link.close();
}

describe('keepConnected: reconnection', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(2);
  });
  after(async () => {
    await env?.close();
  });

  async function pair(): Promise<{ ha: Host; hb: Host; acceptor: ReturnType<typeof autoAccept> }> {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const options = { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1_500 };
    const ha = await env.host(a, { peers: [b], ...options });
    const hb = await env.host(b, { peers: [a], ...options });
    return { ha, hb, acceptor: autoAccept(hb) };
  }

  it('comes back after the link dies, and messages flow again', async () => {
    const { ha, hb, acceptor } = await pair();
    try {
      const rc = await within(ha.keepConnected(hb.peerId, { initialDelayMs: 50 }), 20_000, 'keepConnected');
      const first = await acceptor.next();
      const got1 = nextMessage(first);
      await rc.send('before');
      assert.equal(text(await got1), 'before');

      const events: string[] = [];
      rc.on('reconnecting', () => events.push('reconnecting'));
      const reconnected = new Promise((r) => rc.once('reconnected', r));
      breakLink(first);
      await within(reconnected, 20_000, 'reconnected');
      assert.deepEqual(events.slice(0, 1), ['reconnecting']);
      const second = await acceptor.next();
      assert.notEqual(second, first);
      const received = new Promise<Uint8Array>((r) => second.once('message', r));
      await rc.send('after');
      assert.equal(text(await received), 'after');
      const echo = new Promise<Uint8Array>((r) => rc.once('message', r));
      await second.send('back');
      assert.equal(text(await echo), 'back');
      await rc.close(0, 'done');
      const info = await within(second.closed, 10_000, 'peer sees the close');
      assert.equal(info.reason, 'done');
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  it('stops when the peer closes deliberately', async () => {
    const { ha, hb, acceptor } = await pair();
    try {
      const rc = await ha.keepConnected(hb.peerId, { initialDelayMs: 50 });
      const remote = await acceptor.next();
      let reconnects = 0;
      rc.on('reconnecting', () => reconnects++);
      await remote.close(1000, 'bye');
      const info = await within(rc.closed, 10_000, 'closed');
      assert.equal(info.code, 1000);
      assert.equal(info.reason, 'bye');
      assert.equal(info.byPeer, true);
      assert.equal(reconnects, 0);
      await assert.rejects(rc.send('x'), { code: 'closed' });
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  it('ends with the refusal when the peer no longer knows us', async () => {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const options = { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1_500 };
    const bStore = await env.store(b, [a]);
    const ha = await env.host(a, { peers: [b], ...options });
    const hb = await env.host(b, { store: bStore, ...options });
    const acceptor = autoAccept(hb);
    try {
      const rc = await ha.keepConnected(hb.peerId, { initialDelayMs: 50 });
      const remote = await acceptor.next();
      // b unpairs a, then the link dies: the reconnect dial is refused with unknown_peer.
      await bStore.delete(a.peerId);
      breakLink(remote);
      const info = await within(rc.closed, 30_000, 'closed for good');
      assert.equal(info.error?.code, 'unknown_peer');
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });
});
