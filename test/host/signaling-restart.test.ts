// A signaling-server restart: established connections do not depend on the server and keep working;
// hosts re-authenticate by themselves when it comes back, and new dials succeed without pairing again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Host } from '../../src/host/host.js';
import { Identity } from '../../src/identity/identity.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { openMemoryPeerStore } from '../../src/store/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { autoAccept, loadRtc, nextMessage, randomPsk, text, until, within } from '../helpers/hosts.js';
import { freePort, type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';

describe('signaling server restart', () => {
  let port: number;
  let server: SignalingProcess | undefined;
  const hosts: Host[] = [];
  const clients: SignalingClient[] = [];

  before(async () => {
    port = await freePort();
    server = await startSignalingProcess({ args: ['--port', String(port)] });
  });
  after(async () => {
    for (const h of hosts) await h.close();
    for (const c of clients) await c.close();
    await server?.kill();
  });

  it('keeps connections up while it is down, and hosts dial again once it is back', async () => {
    const [a, b] = await Promise.all([Identity.generate(), Identity.generate()]);
    const psk = randomPsk();
    const rtc = await loadRtc('wrtc');
    const start = async (me: Identity, other: Identity) => {
      const peers = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
      await peers.put({ publicIdentity: other.exportPublic(), psk });
      const signaling = new SignalingClient({
        url: server!.url,
        identity: me,
        reconnectionDelayMs: 100,
        reconnectionDelayMaxMs: 500,
      });
      clients.push(signaling);
      const host = await Host.start({ identity: me, peers, signaling, rtc, candidateFilter: loopbackOnly });
      hosts.push(host);
      return { host, signaling };
    };
    const A = await start(a, b);
    const B = await start(b, a);
    const acceptor = autoAccept(B.host);
    const conn = await within(A.host.connect(b.peerId), 20_000, 'first connect');
    const remote = await acceptor.next();

    await server!.kill();
    await until(() => !A.signaling.isAuthenticated && !B.signaling.isAuthenticated, 10_000, 'clients notice');
    const reply = nextMessage(remote);
    await conn.send('still here without signaling');
    assert.equal(text(await reply), 'still here without signaling');
    assert.ok(conn.isOpen && remote.isOpen);

    server = await startSignalingProcess({ args: ['--port', String(port)] });
    await until(
      () => A.signaling.isAuthenticated && B.signaling.isAuthenticated,
      20_000,
      're-authentication',
    );
    const second = await within(A.host.connect(b.peerId), 20_000, 'connect after restart');
    const remote2 = await acceptor.next();
    const got = nextMessage(remote2);
    await second.send('new connection, same pairing');
    assert.equal(text(await got), 'new connection, same pairing');
    await second.close();
    await conn.close();
  });
});
