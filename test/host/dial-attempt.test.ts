// One dial (src/host/dial.ts) over an in-memory link, the test playing the other side by hand: the
// handshake rides with the offer and the answer, a wrong binder costs no link, what arrives before the
// handshake completes costs nothing (datagrams dropped and counted, reliable bytes capped), a live DTLS
// certificate other than the one the SDP named fails either side, and a link that dies as the handshake
// completes fails the dial with a typed error instead of yielding a connection on a dead link.
// PROTOCOL.md §5.5 and §8.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { fail, isP2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import { DialAttempt, type DialContext, MAX_EARLY_RELIABLE_BYTES } from '../../src/host/dial.js';
import type { ConnectionRequest } from '../../src/host/request.js';
import type { Identity } from '../../src/identity/identity.js';
import {
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
  Session,
} from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { InMemoryNetwork } from '../../src/testing/in-memory-link.js';
import { dtlsChannelBinding, dtlsOfferBinding } from '../../src/transport/channel-binding.js';
import { within } from '../helpers/hosts.js';
import { identities, randomPsk, withCode } from '../helpers/protocol.js';

/** The dial's context, with its link taken from `net` (side a) and its signals recorded. */
function context(net: InMemoryNetwork, identity: Identity, side: 'a' | 'b' = 'a') {
  const signals: unknown[] = [];
  const ctx: DialContext = {
    identity,
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

type Sent = { kind: string; signal?: unknown; handshake?: Uint8Array[] };

/**
 * A connection's set-up timings (bench:transport's split) are in order, and its dial's start is on the
 * epoch clock that puts both sides on one time line.
 */
function assertSetup(connection: Connection, who: string): void {
  const s = connection.setup;
  assert.ok(s, `${who} has set-up timings`);
  assert.ok(s.startedAt !== undefined && Math.abs(s.startedAt - Date.now()) < 60_000, `${who}: startedAt`);
  assert.ok(s.signaled !== undefined && s.signaled <= s.established, `${who}: signaled`);
  assert.ok(s.peerVerified !== undefined && s.peerVerified <= s.established, `${who}: peer verified`);
  assert.ok(s.open !== undefined && s.open <= s.established, `${who}: open`);
}

/** The first signal the dial sent that carries handshake records (its offer or its answer). */
async function handshakeSignal(signals: unknown[]): Promise<Sent> {
  for (;;) {
    const found = (signals as Sent[]).find((m) => m.kind === 'signal' && m.handshake);
    if (found) return found;
    await new Promise((r) => setImmediate(r));
  }
}

// The in-memory ends' fingerprints (src/testing/in-memory-link.ts): a = dialer, b = responder.
const FP_A = 'sha-256 AA:AA';
const FP_B = 'sha-256 BB:BB';
const ANSWER = { type: 'answer', sdp: 'v=0\r\na=fingerprint:sha-256 BB:BB\r\n' };
const OFFER = { type: 'offer', sdp: 'v=0\r\na=fingerprint:sha-256 AA:AA\r\n' };

describe('a dial before its handshake completes', () => {
  let alice: Identity;
  let bob: Identity;
  before(async () => {
    [alice, bob] = (await identities()) as [Identity, Identity];
  });

  /** Plays bob, the responder, through the outgoing dial's signals: checks its offer, answers it. */
  async function answer(dial: DialAttempt, signals: unknown[], psk: Uint8Array) {
    const offer = await handshakeSignal(signals);
    const resp = await ResponderHandshake.accept(parseClientHello(offer.handshake![0]!), {
      identity: bob,
      peer: alice.publicIdentity,
      psk,
      offerBinding: dtlsOfferBinding(FP_A),
      channelBinding: dtlsChannelBinding(FP_A, FP_B),
    });
    dial.signal({ signal: ANSWER, handshake: resp.records });
    return resp;
  }

  /** An incoming dial at bob (side b) for alice's real offer + ClientHello; the request it raises. */
  async function incoming(net: InMemoryNetwork, psk: Uint8Array, id: string) {
    const { ctx, signals } = context(net, bob, 'b');
    let links = 0;
    const createLink = ctx.createLink!;
    ctx.createLink = (o) => {
      links++;
      return createLink(o);
    };
    const init = await InitiatorHandshake.start({
      identity: alice,
      peer: bob.publicIdentity,
      psk,
      offerBinding: dtlsOfferBinding(FP_A),
    });
    let resolveRequest!: (r: ConnectionRequest) => void;
    const request = new Promise<ConnectionRequest>((r) => {
      resolveRequest = r;
    });
    const dial = new DialAttempt(
      id,
      alice.peerId,
      {
        outgoing: false,
        paired: true,
        peers: { lookup: async () => undefined },
        onRequest: resolveRequest,
        offer: { signal: OFFER, handshake: [init.hello] },
      },
      ctx,
    );
    return { dial, init, request: await request, signals, links: () => links };
  }

  /** An outgoing dial from alice (side a) to bob with `psk`; the signals it sends. */
  function outgoing(net: InMemoryNetwork, psk: Uint8Array, id: string, options: Partial<DialContext> = {}) {
    const { ctx, signals } = context(net, alice);
    Object.assign(ctx, options);
    const dial = new DialAttempt(
      id,
      bob.peerId,
      { outgoing: true, credentials: Promise.resolve({ publicIdentity: bob.publicIdentity, psk }) },
      ctx,
    );
    return { dial, signals };
  }

  it('the initiator sends nothing behind InitiatorAuth until the responder has spoken (§8 step 4)', async () => {
    // @roamhq/wrtc delivered the first messages of a channel its peer opened out of order (9 of 100
    // set-ups): a record right behind InitiatorAuth could reach the responder first and fail the dial.
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    // A synchronous AEAD: what the connection seals is handed over within the call, no timing involved.
    const { dial, signals } = outgoing(net, psk, 'd0', { aead: nodeCryptoAead });
    net.hold('ab');
    net.open();
    const resp = await answer(dial, signals, psk);
    const connection = await dial.result;
    const sent = connection.send('right behind the handshake');
    const ping = connection.probe(60_000);
    await new Promise((r) => setImmediate(r));
    // Its WINDOW (§5.5), the probe's ping and the message wait; only InitiatorAuth is out.
    assert.equal(net.recordsInFlight('ab'), 1);
    const inBob: Uint8Array[] = [];
    net.b.on('reliable', (r) => inBob.push(r));
    net.release('ab');
    await new Promise((r) => setImmediate(r));
    assert.equal(inBob.length, 1);
    const bobSide = new Session(await resp.receive(inBob[0]!), {
      reliable: (r) => net.b.sendReliable(r),
      datagram: () => true,
    });
    bobSide.announceWindow(); // the responder's WINDOW right after the handshake: alice has heard bob
    assert.equal(await ping, true);
    await sent;
    await new Promise((r) => setImmediate(r));
    const events = (await Promise.all(inBob.slice(1).map((r) => bobSide.receive(r)))).flat();
    assert.deepEqual(
      events.filter((e) => e.type === 'message').map((e) => new TextDecoder().decode(e.data)),
      ['right behind the handshake'],
    );
    void connection.close(0, '', { flushMs: 10 });
  });

  it('InitiatorAuth leaves the moment the reliable channel opens, before the link is open; the connection exists only once it is (§8 step 4)', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { dial, signals } = outgoing(net, psk, 'd13');
    const resp = await answer(dial, signals, psk);
    let settled = false;
    const done = () => {
      settled = true;
    };
    dial.result.then(done, done);
    const arrived = nextRecord(net.b);
    net.openReliable(); // the datagram channel (and so the link) not open yet
    const iAuth = await within(arrived, 5000, 'InitiatorAuth on the reliable channel');
    const verified = await resp.receive(iAuth); // throws unless it is the genuine InitiatorAuth
    assert.equal(verified.remotePeerId, alice.peerId);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'no connection while the link is not open');
    assert.equal(net.a.reliableSent, 1, 'InitiatorAuth alone');
    net.open();
    const connection = await dial.result;
    assertSetup(connection, 'alice');
    const s = connection.setup!;
    assert.ok(
      s.reliableOpen !== undefined && s.reliableOpen <= s.open!,
      'reliable channel open, then the link',
    );
    void connection.close(0, '', { flushMs: 10 });
  });

  it("a live DTLS certificate that is not the SDP's: the dialer fails channel_binding_mismatch before its connection exists, nothing behind InitiatorAuth, the peer told (§8 step 4)", async () => {
    // The check of §8 step 4, against a WebRTC stack that let another certificate through DTLS than the
    // one the SDP named (and the handshake bound): InitiatorAuth may have left (sealed for the responder
    // that this handshake authenticated), but no connection and no record after it.
    const net = new InMemoryNetwork();
    net.a.remoteCertificate = async () => 'sha-256 EE:EE';
    const psk = randomPsk();
    const { dial, signals } = outgoing(net, psk, 'd10');
    await answer(dial, signals, psk);
    net.open();
    await assert.rejects(dial.result, withCode('channel_binding_mismatch'));
    assert.equal(net.a.reliableSent, 1, 'InitiatorAuth and nothing after it');
    assert.deepEqual(signals.at(-1), { kind: 'abort', reason: 'channel_binding_mismatch' });
  });

  it("a live DTLS certificate that is not the SDP's: the responder fails channel_binding_mismatch even with a valid InitiatorAuth, the peer told (§8 step 4)", async () => {
    const net = new InMemoryNetwork();
    net.b.remoteCertificate = async () => 'sha-256 EE:EE';
    const psk = randomPsk();
    const { init, request, signals } = await incoming(net, psk, 'd11');
    const accepted = request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const answered = await handshakeSignal(signals);
    await init.receive(answered.handshake![0]!, dtlsChannelBinding(FP_A, FP_B));
    const { records } = await init.receive(answered.handshake![1]!);
    net.open();
    for (const r of records) net.a.sendReliable(r); // a genuine InitiatorAuth
    await assert.rejects(accepted, withCode('channel_binding_mismatch'));
    assert.equal(net.b.reliableSent, 0, 'no WINDOW: the responder has no connection');
    assert.deepEqual(signals.at(-1), { kind: 'abort', reason: 'channel_binding_mismatch' });
  });

  it("the dialer's link starts before the peer's keys are read; keys that cannot be had fail the dial, the peer told nothing", async () => {
    const net = new InMemoryNetwork();
    const { ctx, signals } = context(net, alice);
    let created = 0;
    ctx.createLink = () => {
      created++;
      return net.a;
    };
    let refuse!: (err: unknown) => void;
    const credentials = new Promise<never>((_, reject) => {
      refuse = reject;
    });
    const closed = new Promise((r) => net.a.once('close', r));
    const dial = new DialAttempt('d12', bob.peerId, { outgoing: true, credentials }, ctx);
    assert.equal(created, 1, 'the link (and its offer) before the keys');
    refuse(fail('unknown_peer', 'not paired'));
    await assert.rejects(dial.result, withCode('unknown_peer'));
    assert.deepEqual(signals, [], 'no offer, no abort: the peer does not know of the dial');
    await within(closed, 5_000, 'the link closing');
  });

  it('datagrams that arrive before the handshake are dropped and counted, never kept', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { dial, signals } = outgoing(net, psk, 'd1');
    const auth = nextRecord(net.b);
    net.open();
    // 256 datagrams of 60 KiB from the not yet authenticated peer (15 MiB) before its answer is in.
    for (let i = 0; i < 256; i++) net.b.sendDatagram(new Uint8Array(60 * 1024).fill(i));
    const resp = await answer(dial, signals, psk);
    await resp.receive(await auth);
    const connection = await dial.result;
    const stats = await connection.stats();
    assert.equal(stats.datagrams.dropped.early, 256);
    assert.equal(stats.datagrams.received, 0);
    assert.equal(dial.state, 'established');
    assertSetup(connection, 'the initiator');
    void connection.close(0, '', { flushMs: 10 });
  });

  it('the ClientHello rides with the offer, candidates behind it; the answer brings the responder authenticated', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { dial, signals } = outgoing(net, psk, 'd0');
    const offer = await handshakeSignal(signals);
    assert.equal(signals[0], offer, 'the offer (with its ClientHello) is the first signal');
    assert.equal((offer.signal as { type: string }).type, 'offer');
    assert.equal(offer.handshake!.length, 1);
    assert.equal(dial.state, 'linking');
    // A forged answer (bob's real records, but bound to other fingerprints) is refused.
    const forged = await ResponderHandshake.accept(parseClientHello(offer.handshake![0]!), {
      identity: bob,
      peer: alice.publicIdentity,
      psk,
      offerBinding: dtlsOfferBinding(FP_A),
      channelBinding: dtlsChannelBinding(FP_A, 'sha-256 EE:EE'),
    });
    dial.signal({ signal: ANSWER, handshake: forged.records });
    await assert.rejects(dial.result, withCode('channel_binding_mismatch'));
    assert.equal(net.a.reliableSent, 0, 'no InitiatorAuth went out');
    assert.deepEqual(signals.at(-1), { kind: 'abort', reason: 'channel_binding_mismatch' });
  });

  it('a link whose SDP names another fingerprint than it reported early: channel_binding_mismatch, no SDP sent', async () => {
    // The handshake binds the fingerprint the link reports from createOffer/createAnswer, before the
    // SDP is emitted (src/transport/peer-link.ts). A stack whose emitted SDP named another certificate
    // must fail the dial instead of sending a binding its peer would refuse.
    const lie = (link: InMemoryNetwork['a']) => {
      link.localFingerprint = async () => 'sha-256 EE:EE';
    };
    const psk = randomPsk();
    const outNet = new InMemoryNetwork();
    lie(outNet.a);
    const out = outgoing(outNet, psk, 'd8');
    await assert.rejects(out.dial.result, withCode('channel_binding_mismatch'));
    const inNet = new InMemoryNetwork();
    lie(inNet.b);
    const inc = await incoming(inNet, psk, 'd9');
    await assert.rejects(
      inc.request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk }),
      withCode('channel_binding_mismatch'),
    );
    for (const signals of [out.signals, inc.signals] as Sent[][]) {
      assert.ok(!signals.some((m) => m.handshake), 'no offer or answer with handshake records went out');
      assert.deepEqual(signals.at(-1), { kind: 'abort', reason: 'channel_binding_mismatch' });
    }
  });

  it('incoming: a wrong PSK is refused before any link exists; the right one links and authenticates on InitiatorAuth', async () => {
    const psk = randomPsk();
    const wrong = await incoming(new InMemoryNetwork(), psk, 'd4');
    await assert.rejects(
      wrong.request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk: randomPsk() }),
      withCode('bad_binder'),
    );
    assert.equal(wrong.links(), 0, 'no link (no RTCPeerConnection) for a wrong binder');
    assert.deepEqual(wrong.signals.at(-1), { kind: 'abort', reason: 'bad_binder' });

    const net = new InMemoryNetwork();
    const right = await incoming(net, psk, 'd5');
    assert.equal(right.links(), 0, 'no link before the application accepts');
    const accepted = right.request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const answerSignal = await handshakeSignal(right.signals);
    assert.equal(right.links(), 1);
    assert.equal((answerSignal.signal as { type: string }).type, 'answer');
    const [sh, ra] = answerSignal.handshake!;
    await right.init.receive(sh!, dtlsChannelBinding(FP_A, FP_B));
    const { records } = await right.init.receive(ra!);
    net.open();
    await new Promise((r) => setImmediate(r));
    assert.equal(right.dial.state, 'authenticating', 'not authenticated before InitiatorAuth');
    net.a.sendReliable(records[0]!);
    const connection = await accepted;
    assert.equal(right.dial.state, 'established');
    assert.equal(connection.peerId, alice.peerId);
    assertSetup(connection, 'the responder');
    void connection.close(0, '', { flushMs: 10 });
  });

  it('a replayed offer + ClientHello is answered afresh, but nobody can complete it: the old InitiatorAuth → bad_record_mac', async () => {
    const psk = randomPsk();
    const net1 = new InMemoryNetwork();
    const first = await incoming(net1, psk, 'd6');
    const accepted = first.request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const firstAnswer = await handshakeSignal(first.signals);
    await first.init.receive(firstAnswer.handshake![0]!, dtlsChannelBinding(FP_A, FP_B));
    const { records } = await first.init.receive(firstAnswer.handshake![1]!);
    net1.open();
    net1.a.sendReliable(records[0]!);
    void (await accepted).close(0, '', { flushMs: 10 });

    // The same offer and ClientHello again (a replay), with everything the first dial's initiator sent.
    const net2 = new InMemoryNetwork();
    const { ctx, signals } = context(net2, bob, 'b');
    let request!: ConnectionRequest;
    const replayed = new DialAttempt(
      'd7',
      alice.peerId,
      {
        outgoing: false,
        paired: true,
        peers: { lookup: async () => undefined },
        onRequest: (r) => {
          request = r;
        },
        offer: { signal: OFFER, handshake: [first.init.hello] },
      },
      ctx,
    );
    await new Promise((r) => setImmediate(r));
    const replayAccepted = request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const replayAnswer = await handshakeSignal(signals);
    assert.notDeepEqual(replayAnswer.handshake![0], firstAnswer.handshake![0], 'a fresh ServerHello');
    net2.open();
    net2.a.sendReliable(records[0]!);
    await assert.rejects(replayAccepted, withCode('bad_record_mac'));
    assert.equal(replayed.state, 'failed');
  });

  it('a link that dies as the handshake completes fails the dial (typed), never a connection on a dead link', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { dial, init, request, signals } = await incoming(net, psk, 'd2');
    const accepted = request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const [sh, ra] = (await handshakeSignal(signals)).handshake!;
    await init.receive(sh!, dtlsChannelBinding(FP_A, FP_B));
    const { records } = await init.receive(ra!);
    net.open();
    // InitiatorAuth reaches the responder, and in the same moment the link dies (the peer's stack tore
    // the RTCPeerConnection down): the responder still completes its handshake computation.
    net.hold('ab');
    net.a.sendReliable(records[0]!);
    net.release('ab');
    await new Promise((r) => queueMicrotask(() => r(undefined)));
    net.cut('the peer tore the link down');
    const error = await accepted.then(
      (c: Connection) => {
        throw new Error(`a connection was built on a dead link (state ${c.state})`);
      },
      (err: unknown) => err,
    );
    assert.ok(isP2PTLSError(error), `untyped: ${String(error)}`);
    assert.ok(['closed', 'truncated'].includes(error.code), error.code);
    assert.equal(dial.state, 'failed');
    assert.equal(net.a.isOpen, false);
  });

  it('more reliable bytes before the handshake than the initial window allows: the dial fails flow_control', async () => {
    const net = new InMemoryNetwork();
    const psk = randomPsk();
    const { dial, init, request, signals } = await incoming(net, psk, 'd3');
    const accepted = request.acceptUnverified({ publicIdentity: alice.publicIdentity, psk });
    const [sh, ra] = (await handshakeSignal(signals)).handshake!;
    await init.receive(sh!, dtlsChannelBinding(FP_A, FP_B));
    const { records } = await init.receive(ra!);
    net.open();
    // Alice's real InitiatorAuth, then a flood while the responder verifies it.
    net.a.sendReliable(records[0]!);
    const chunk = new Uint8Array(32 * 1024);
    for (let sent = 0; sent <= MAX_EARLY_RELIABLE_BYTES; sent += chunk.length) net.a.sendReliable(chunk);
    await assert.rejects(accepted, withCode('flow_control'));
    assert.equal(dial.state, 'failed');
  });
});
