// One dial (src/host/dial.ts) over an in-memory link, the test playing the other side by hand: what
// arrives before the handshake completes costs nothing (datagrams dropped and counted, reliable bytes
// capped), and a link that dies as the handshake completes fails the dial with a typed error instead of
// yielding a connection on a dead link. PROTOCOL.md §5.5 and §8.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import { DialAttempt, type DialContext, MAX_EARLY_RELIABLE_BYTES } from '../../src/host/dial.js';
import type { ConnectionRequest } from '../../src/host/request.js';
import type { Identity } from '../../src/identity/identity.js';
import { InitiatorHandshake, parseClientHello, ResponderHandshake } from '../../src/protocol/index.js';
import { InMemoryNetwork } from '../../src/testing/in-memory-link.js';
import { dtlsChannelBinding } from '../../src/transport/channel-binding.js';
import type { RtcImplementation } from '../../src/transport/rtc.js';
import { identities, randomPsk, withCode } from '../helpers/protocol.js';

/** The dial's context, with its link taken from `net` (side a) and its signals recorded. */
function context(net: InMemoryNetwork, identity: Identity, side: 'a' | 'b' = 'a') {
  const signals: unknown[] = [];
  const ctx: DialContext = {
    identity,
    link: { rtc: {} as RtcImplementation },
    connection: {},
    handshakeTimeoutMs: 10_000,
    signal: (m) => signals.push(m),
    ended: () => {},
    createLink: () => net[side],
  };
  return { ctx, signals };
}

/** The next reliable record that arrives on `link`. */
function nextRecord(link: InMemoryNetwork['b']): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const off = link.on('reliable', (r) => {
      off();
      resolve(r);
    });
  });
}

describe('a dial before its handshake completes', () => {
  let alice: Identity;
  let bob: Identity;
  before(async () => {
    [alice, bob] = (await identities()) as [Identity, Identity];
  });

  /** Plays bob, the responder, on net.b: answers the ClientHello; `beforeAnswer` runs first. */
  async function respond(net: InMemoryNetwork, psk: Uint8Array, beforeAnswer?: () => void) {
    const hello = parseClientHello(await nextRecord(net.b));
    beforeAnswer?.();
    const fp = net.b.fingerprints();
    const resp = await ResponderHandshake.accept(hello, {
      identity: bob,
      peer: alice.publicIdentity,
      psk,
      channelBinding: dtlsChannelBinding(fp.remote, fp.local),
    });
    const auth = nextRecord(net.b);
    for (const r of resp.records) net.b.sendReliable(r);
    return { resp, auth };
  }

  it('datagrams that arrive before the handshake are dropped and counted, never kept', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { ctx } = context(net, alice);
    const dial = new DialAttempt(
      'd1',
      bob.peerId,
      { outgoing: true, credentials: { publicIdentity: bob.publicIdentity, psk } },
      ctx,
    );
    const answering = respond(net, psk, () => {
      // 256 datagrams of 60 KiB from the not yet authenticated peer (15 MiB) before it answers.
      for (let i = 0; i < 256; i++) net.b.sendDatagram(new Uint8Array(60 * 1024).fill(i));
    });
    net.open();
    const { resp, auth } = await answering;
    await resp.receive(await auth);
    const connection = await dial.result;
    const stats = await connection.stats();
    assert.equal(stats.datagrams.dropped.early, 256);
    assert.equal(stats.datagrams.received, 0);
    assert.equal(dial.state, 'established');
    void connection.close(0, '', { flushMs: 10 });
  });

  it('a link that dies as the handshake completes fails the dial (typed), never a connection on a dead link', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { ctx } = context(net, alice);
    const dial = new DialAttempt(
      'd2',
      bob.peerId,
      { outgoing: true, credentials: { publicIdentity: bob.publicIdentity, psk } },
      ctx,
    );
    const hello = nextRecord(net.b);
    net.open();
    const resp = await ResponderHandshake.accept(parseClientHello(await hello), {
      identity: bob,
      peer: alice.publicIdentity,
      psk,
      channelBinding: dtlsChannelBinding(net.b.fingerprints().remote, net.b.fingerprints().local),
    });
    // Both answers reach the initiator, and in the same moment the link dies (the peer's stack tore the
    // RTCPeerConnection down): the initiator still completes its handshake computation.
    net.hold('ba');
    for (const r of resp.records) net.b.sendReliable(r);
    net.release('ba');
    await new Promise((r) => queueMicrotask(() => r(undefined)));
    net.cut('the peer tore the link down');
    const error = await dial.result.then(
      (c: Connection) => {
        throw new Error(`a connection was built on a dead link (state ${c.state})`);
      },
      (err: unknown) => err,
    );
    assert.ok(isP2PTLSError(error), `untyped: ${String(error)}`);
    assert.ok(['closed', 'truncated'].includes(error.code), error.code);
    assert.equal(dial.state, 'failed');
    // The link closed under the peer too.
    assert.equal(net.b.isOpen, false);
  });

  it('more reliable bytes before the handshake than the initial window allows: the dial fails flow_control', async () => {
    const net = new InMemoryNetwork();
    const { ctx } = context(net, bob, 'b');
    let request: ConnectionRequest | undefined;
    const dial = new DialAttempt(
      'd3',
      alice.peerId,
      {
        outgoing: false,
        paired: true,
        peers: { lookup: async () => undefined },
        onRequest: (r) => {
          request = r;
        },
      },
      ctx,
    );
    // Alice's real ClientHello, then a flood the application never asked for.
    const init = await InitiatorHandshake.start({
      identity: alice,
      peer: bob.publicIdentity,
      psk: randomPsk(),
      channelBinding: dtlsChannelBinding('sha-256 AA:AA', 'sha-256 BB:BB'),
    });
    net.open();
    net.a.sendReliable(init.hello);
    const chunk = new Uint8Array(32 * 1024);
    for (let sent = 0; sent <= MAX_EARLY_RELIABLE_BYTES; sent += chunk.length) net.a.sendReliable(chunk);
    await assert.rejects(dial.result, withCode('flow_control'));
    assert.equal(dial.state, 'failed');
    // The application's request, if it saw one, cannot be accepted any more.
    if (request)
      await assert.rejects(
        request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk: randomPsk() }),
      );
  });
});
