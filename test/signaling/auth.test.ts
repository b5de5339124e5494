import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { authSignedBytes, signalingOrigin } from '../../src/signaling/wire.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { weakIdentities } from '../helpers/rsa-keys.js';
import {
  ask,
  authRequest,
  disconnected,
  errorCode,
  httpGet,
  metricValue,
  next,
  rawConnect,
  withCode,
} from './_util.js';

describe('signaling authentication (real server process)', () => {
  let server: SignalingProcess;
  let alice: Identity;
  let bob: Identity;
  const clients: SignalingClient[] = [];

  before(async () => {
    [server, alice, bob] = await Promise.all([
      startSignalingProcess(),
      Identity.generate(),
      Identity.generate(),
    ]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.kill();
  });

  it('authenticates a correct proof and binds the socket to the key-hash peerId', async () => {
    const c = new SignalingClient({ url: server.url, identity: alice });
    clients.push(c);
    await c.connect();
    assert.equal(c.isAuthenticated, true);
    assert.equal(c.peerId, alice.peerId);
    const health = await httpGet(server.url, '/healthz');
    assert.equal(health.status, 200);
    assert.ok(JSON.parse(health.text).peers >= 1);
    await c.close();
  });

  it('answers any event before authentication with not_authenticated, then closes the connection', async () => {
    for (const [event, arg] of [
      ['lookup', { peerId: alice.peerId }],
      ['room:join', { room: 'x' }],
      ['signal', { env: {} }],
      ['pairing', { msg: {} }],
    ] as const) {
      const { socket, challenge } = rawConnect(server.url);
      await challenge;
      const closed = disconnected(socket);
      assert.equal(errorCode(await ask(socket, event, arg)), 'not_authenticated', event);
      assert.equal(await closed, 'io server disconnect', event);
    }
  });

  it('rejects a forged id: identity JSON claiming another peer’s id', async () => {
    const { socket, challenge } = rawConnect(server.url);
    const req = await authRequest(bob, server.url, await challenge);
    req.identity = { ...req.identity, peerId: alice.peerId };
    assert.equal(errorCode(await ask(socket, 'auth', req)), 'peer_id_mismatch');
    await disconnected(socket);
  });

  it('rejects the wrong key for an id: alice’s public identity, signed by bob', async () => {
    const { socket, challenge } = rawConnect(server.url);
    const good = await authRequest(bob, server.url, await challenge);
    const req = { ...good, identity: alice.exportPublic() };
    assert.equal(errorCode(await ask(socket, 'auth', req)), 'bad_signature');
    await disconnected(socket);
  });

  it('rejects a bad signature (flipped bit), a proof for another challenge and another origin', async () => {
    {
      const { socket, challenge } = rawConnect(server.url);
      const req = await authRequest(alice, server.url, await challenge);
      const sig = req.sig;
      req.sig = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
      assert.equal(errorCode(await ask(socket, 'auth', req)), 'bad_signature');
      await disconnected(socket);
    }
    {
      // A proof captured on one connection is useless on another: the challenge differs.
      const first = rawConnect(server.url);
      const captured = await authRequest(alice, server.url, await first.challenge);
      first.socket.disconnect();
      const { socket, challenge } = rawConnect(server.url);
      await challenge;
      assert.equal(errorCode(await ask(socket, 'auth', captured)), 'bad_signature');
      await disconnected(socket);
    }
    {
      // Signed for another server: a malicious server relaying this server's challenge gains nothing.
      const { socket, challenge } = rawConnect(server.url);
      const req = await authRequest(alice, 'http://evil.example:1234', await challenge);
      assert.equal(errorCode(await ask(socket, 'auth', req)), 'auth_failed');
      await disconnected(socket);
    }
    {
      // The same origin but a proof whose signed origin is not what it claims.
      const { socket, challenge } = rawConnect(server.url);
      const req = await authRequest(alice, 'http://evil.example:1234', await challenge);
      req.origin = new URL(server.url).origin;
      assert.equal(errorCode(await ask(socket, 'auth', req)), 'bad_signature');
      await disconnected(socket);
    }
  });

  it('refuses an identity whose RSA exponent is not 65537 (e = 3 or 2038 bits, either key) with bad_key', async () => {
    for (const { name, identity } of await weakIdentities()) {
      const { socket, challenge } = rawConnect(server.url);
      const origin = signalingOrigin(server.url);
      const signed = authSignedBytes(identity.json.peerId, fromBase64Url(await challenge), origin);
      const req = { identity: identity.json, origin, sig: toBase64Url(identity.sign(signed)) };
      assert.equal(errorCode(await ask(socket, 'auth', req)), 'bad_key', name);
      await disconnected(socket);
    }
  });

  it('accepts a client that connected by the name localhost (a loopback bind); a closed client stays closed', async () => {
    const c = new SignalingClient({ url: server.url.replace('127.0.0.1', 'localhost'), identity: bob });
    clients.push(c);
    await c.connect();
    assert.equal(c.isAuthenticated, true);
    await c.close();
    await assert.rejects(c.connect(), withCode('closed'));
    await assert.rejects(c.lookup(alice.peerId), withCode('closed'));
  });

  it('a second connection with the same peerId replaces the first, which is told why', async () => {
    const first = new SignalingClient({ url: server.url, identity: alice });
    clients.push(first);
    await first.connect();
    const replaced = next(first, 'replaced');
    const second = new SignalingClient({ url: server.url, identity: alice });
    clients.push(second);
    await second.connect();
    const ev = await replaced;
    assert.match(ev.reason, /another connection/);
    assert.equal(first.isAuthenticated, false);
    await assert.rejects(first.lookup(bob.peerId), withCode('replaced'));
    // The newer connection is the one that stays online.
    const other = new SignalingClient({ url: server.url, identity: bob });
    clients.push(other);
    await other.connect();
    const seen = await other.lookup(alice.peerId);
    assert.equal(seen.online, true);
    assert.equal(seen.identity?.peerId, alice.peerId);
    await Promise.all([second.close(), other.close()]);
  });

  it('counts authentications and rejections in /metrics', async () => {
    const m = await httpGet(server.url, '/metrics');
    assert.equal(m.status, 200);
    assert.ok(metricValue(m.text, 'p2ptls_signaling_auth_total{result="ok"}') >= 3);
    assert.ok(
      metricValue(m.text, 'p2ptls_signaling_rejected_messages_total{reason="not_authenticated"}') >= 4,
    );
    assert.ok(metricValue(m.text, 'p2ptls_signaling_rejected_messages_total{reason="bad_signature"}') >= 3);
    assert.match(m.text, /process_resident_memory_bytes \d+/);
  });
});
