// A lying signaling server, in process: it authenticates anyone, answers lookups with whatever the test
// says, and delivers whatever the test hands it. The client must detect every forgery.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Server, type Socket } from 'socket.io';
import { Identity, type PublicIdentityJson } from '../../src/identity/index.js';
import { createPairingRequest, PairingService } from '../../src/pairing/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import type { PairingMessage, SignedSignal } from '../../src/signaling/messages.js';
import { createSignedSignal } from '../../src/signaling/wire.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';
import { weakIdentities } from '../helpers/rsa-keys.js';
import { next, sleep, withCode } from './_util.js';

type Ack = (answer: unknown) => void;

class FakeServer {
  readonly io: Server;
  url = '';
  /** What `lookup` answers, by requested peerId. */
  readonly directory = new Map<string, PublicIdentityJson>();
  /** Connected sockets by the peerId they claimed. */
  readonly sockets = new Map<string, Socket>();
  authAnswer: ((identity: PublicIdentityJson) => unknown) | undefined;
  private readonly http = createServer();

  constructor() {
    this.io = new Server(this.http);
    this.io.on('connection', (socket) => {
      socket.emit('challenge', { v: 1, nonce: toBase64Url(crypto.getRandomValues(new Uint8Array(32))) });
      socket.on('auth', (req: { identity: PublicIdentityJson }, ack: Ack) => {
        this.sockets.set(req.identity.peerId, socket);
        ack(this.authAnswer ? this.authAnswer(req.identity) : { ok: true, peerId: req.identity.peerId });
      });
      socket.on('lookup', (req: { peerId: string }, ack: Ack) => {
        const identity = this.directory.get(req.peerId) ?? null;
        ack({ ok: true, identity, online: identity !== null });
      });
      // Swallow outgoing messages: the test decides what gets "relayed".
      socket.on('signal', (_req: unknown, ack: Ack) => ack({ ok: true }));
      socket.on('pairing', (_req: unknown, ack: Ack) => ack({ ok: true }));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  deliverSignal(to: string, from: string, env: SignedSignal): void {
    this.sockets.get(to)!.emit('signal', { from, env });
  }

  deliverPairing(to: string, from: string, msg: PairingMessage): void {
    this.sockets.get(to)!.emit('pairing', { from, msg });
  }

  async close(): Promise<void> {
    await this.io.close();
  }
}

describe('a malicious signaling server is detected by the receiving client', () => {
  const fake = new FakeServer();
  let alice: Identity;
  let bob: Identity;
  let carol: Identity;
  let mallory: Identity;
  let bobClient: SignalingClient;
  let bobPairing: PairingService;
  const signals: unknown[] = [];

  before(async () => {
    await fake.start();
    [alice, bob, carol, mallory] = await Promise.all([
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ]);
    bobClient = new SignalingClient({ url: fake.url, identity: bob });
    bobPairing = new PairingService({ identity: bob, transport: bobClient });
    await bobClient.connect();
    bobClient.on('signal', (s) => signals.push(s.data));
  });
  after(async () => {
    await bobClient?.close();
    await fake.close();
  });

  async function expectRejected(deliver: () => void, code: string): Promise<void> {
    const before = signals.length;
    const rejected = next(bobClient, 'rejected');
    deliver();
    const r = await rejected;
    assert.equal(r.error.code, code);
    await sleep(20);
    assert.equal(signals.length, before, 'a rejected message must not be delivered');
  }

  it('delivers a genuine envelope (control), fetching and hash-checking the sender key', async () => {
    fake.directory.set(alice.peerId, alice.exportPublic());
    const env = await createSignedSignal(alice, bob.peerId, { sdp: 'genuine' });
    const got = next(bobClient, 'signal');
    fake.deliverSignal(bob.peerId, alice.peerId, env);
    assert.deepEqual((await got).data, { sdp: 'genuine' });
  });

  it('detects an altered payload, a forged sender stamp, a redirect, a replay and an old envelope', async () => {
    const env = await createSignedSignal(alice, bob.peerId, { sdp: 'original' });
    const altered = { ...env, payload: JSON.stringify({ sdp: 'swapped fingerprint' }) };
    await expectRejected(() => fake.deliverSignal(bob.peerId, alice.peerId, altered), 'bad_signature');
    await expectRejected(() => fake.deliverSignal(bob.peerId, carol.peerId, env), 'peer_id_mismatch');
    const forCarol = await createSignedSignal(alice, carol.peerId, { sdp: 'for carol' });
    await expectRejected(() => fake.deliverSignal(bob.peerId, alice.peerId, forCarol), 'wrong_peer');
    const once = await createSignedSignal(alice, bob.peerId, { n: 1 });
    const got = next(bobClient, 'signal');
    fake.deliverSignal(bob.peerId, alice.peerId, once);
    await got;
    await expectRejected(() => fake.deliverSignal(bob.peerId, alice.peerId, once), 'replay');
    const old = await createSignedSignal(alice, bob.peerId, { n: 2 }, Date.now() - 10 * 60_000);
    await expectRejected(() => fake.deliverSignal(bob.peerId, alice.peerId, old), 'signal_expired');
  });

  it('detects a substituted key: mallory signs as "dave" and the server vouches for her key', async () => {
    const dave = await Identity.generate();
    // The server claims mallory's keys belong to dave's id.
    fake.directory.set(dave.peerId, { ...mallory.exportPublic(), peerId: dave.peerId });
    const forged = await createSignedSignal(mallory, bob.peerId, { sdp: 'evil' });
    const asDave = { ...forged, from: dave.peerId };
    await expectRejected(() => fake.deliverSignal(bob.peerId, dave.peerId, asDave), 'peer_id_mismatch');
    // Or the server answers with mallory's genuine identity for dave's id.
    fake.directory.set(dave.peerId, mallory.exportPublic());
    await assert.rejects(bobClient.lookup(dave.peerId), withCode('peer_id_mismatch'));
  });

  it('refuses a lookup answer whose key has an RSA exponent other than 65537 (bad_key)', async () => {
    for (const { name, identity } of await weakIdentities()) {
      fake.directory.set(identity.json.peerId, identity.json);
      await assert.rejects(bobClient.lookup(identity.json.peerId), withCode('bad_key'), name);
    }
  });

  async function expectDropped(pairing: PairingService, deliver: () => void, code: string): Promise<void> {
    const dropped = next(pairing, 'dropped');
    deliver();
    assert.equal((await dropped).error.code, code);
  }

  it('detects an altered pairing request; the application is never asked', async () => {
    let asked = 0;
    bobPairing.onPairingRequest(
      () => {
        asked++;
        return true;
      },
      { uninvited: true },
    );
    const { message } = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
    const secret = fromBase64Url(message.secret!);
    secret[0]! ^= 1;
    const altered = { ...message, secret: toBase64Url(secret) };
    const deliver = (from: string, msg: PairingMessage) => () => fake.deliverPairing(bob.peerId, from, msg);
    await expectDropped(bobPairing, deliver(alice.peerId, altered), 'bad_signature');
    // Mallory re-signs alice's request with her own key but keeps alice's identity.
    const { message: mal } = await createPairingRequest({ identity: mallory, to: bob.publicIdentity });
    const mixed = { ...message, sig: mal.sig };
    await expectDropped(bobPairing, deliver(alice.peerId, mixed), 'bad_signature');
    await expectDropped(bobPairing, deliver(carol.peerId, message), 'peer_id_mismatch');
    assert.equal(asked, 0);
    bobPairing.onPairingRequest(() => false);
  });

  it('pairing nonces have their own cache: stranger signals cannot push them out, and a full cache refuses (issue 13, point 4)', async () => {
    // Dave's pairing service remembers at most 4 request nonces.
    const dave = await Identity.generate();
    const daveClient = new SignalingClient({ url: fake.url, identity: dave });
    const pairing = new PairingService({
      identity: dave,
      transport: daveClient,
      limits: { nonceCapacity: 4, requestsPerPeerPerMinute: 100, rejectsPerPeerPerMinute: 100 },
    });
    try {
      await daveClient.connect();
      let asked = 0;
      pairing.onPairingRequest(
        () => {
          asked++;
          return false;
        },
        { uninvited: true },
      );
      const deliver = (msg: PairingMessage) => () => fake.deliverPairing(dave.peerId, alice.peerId, msg);
      // Alice's request, declined by the user.
      const recorded = (await createPairingRequest({ identity: alice, to: dave.publicIdentity })).message;
      const answered = new Promise<void>((resolve) => {
        fake.sockets.get(dave.peerId)!.once('pairing', () => resolve());
      });
      fake.deliverPairing(dave.peerId, alice.peerId, recorded);
      await answered;
      assert.equal(asked, 1);
      // A stranger floods Dave with 20 valid signals.
      const stranger = await Identity.generate();
      fake.directory.set(stranger.peerId, stranger.exportPublic());
      for (let n = 0; n < 20; n++) {
        const got = next(daveClient, 'signal');
        fake.deliverSignal(
          dave.peerId,
          stranger.peerId,
          await createSignedSignal(stranger, dave.peerId, { n }),
        );
        await got;
      }
      // The recorded request is still known.
      await expectDropped(pairing, deliver(recorded), 'replay');
      // Three more requests fill the cache; the next is refused, not let in by forgetting an old nonce.
      for (let n = 0; n < 3; n++) {
        const { message } = await createPairingRequest({ identity: alice, to: dave.publicIdentity });
        const answer = new Promise<void>((resolve) => {
          fake.sockets.get(dave.peerId)!.once('pairing', () => resolve());
        });
        fake.deliverPairing(dave.peerId, alice.peerId, message);
        await answer;
      }
      const { message: fifth } = await createPairingRequest({ identity: alice, to: dave.publicIdentity });
      await expectDropped(pairing, deliver(fifth), 'rate_limited');
      await expectDropped(pairing, deliver(recorded), 'replay');
      assert.equal(asked, 4);
    } finally {
      pairing.close();
      await daveClient.close();
    }
  });

  it('signal nonces are never forgotten early: a full cache refuses new signals, a replay stays a replay, and strangers cannot fill the paired lane', async () => {
    // Erin remembers at most 4 stranger nonces, 2 per stranger, and 3 of her paired peer alice's.
    const erin = await Identity.generate();
    const erinClient = new SignalingClient({
      url: fake.url,
      identity: erin,
      inbound: { nonces: { paired: 3, pairedPerPeer: 3, strangers: 4, perStranger: 2 } },
    });
    const delivered: unknown[] = [];
    erinClient.on('signal', (e) => delivered.push(e.data));
    const send = async (from: Identity, n: number) => {
      const env = await createSignedSignal(from, erin.peerId, { n });
      return { env, deliver: () => fake.deliverSignal(erin.peerId, from.peerId, env) };
    };
    const accepted = async (signal: { deliver: () => void }) => {
      const got = next(erinClient, 'signal');
      signal.deliver();
      await got;
    };
    const refused = async (signal: { deliver: () => void }, code: string) => {
      const before = delivered.length;
      const rejected = next(erinClient, 'rejected');
      signal.deliver();
      assert.equal((await rejected).error.code, code);
      assert.equal(delivered.length, before, 'a refused signal is not delivered');
    };
    try {
      await erinClient.connect();
      erinClient.trustPeer(alice.publicIdentity);
      fake.directory.set(carol.peerId, carol.exportPublic());
      fake.directory.set(mallory.peerId, mallory.exportPublic());
      const first = await send(alice, 0);
      await accepted(first);
      // Strangers fill their lane: two each, then carol's third is over her share, and a third stranger's
      // first over the lane's bound. Nothing of theirs is forgotten to make room.
      const carols = [await send(carol, 1), await send(carol, 2), await send(carol, 3)];
      await accepted(carols[0]!);
      await accepted(carols[1]!);
      await refused(carols[2]!, 'rate_limited');
      await accepted(await send(mallory, 4));
      await accepted(await send(mallory, 5));
      const dave = await Identity.generate();
      fake.directory.set(dave.peerId, dave.exportPublic());
      await refused(await send(dave, 6), 'rate_limited');
      await refused(carols[0]!, 'replay');
      // Alice's lane is her own: the strangers' flood took none of it.
      await refused(first, 'replay');
      await accepted(await send(alice, 7));
      await accepted(await send(alice, 8));
      // Her share is full now: a new signal waits for the window; her first, replayed, is still known.
      await refused(await send(alice, 9), 'rate_limited');
      await refused(first, 'replay');
      // Carol is paired now: what she sent as a stranger stays a replay in her new lane.
      erinClient.trustPeer(carol.publicIdentity);
      await refused(carols[0]!, 'replay');
      assert.deepEqual(
        delivered.map((d) => (d as { n: number }).n),
        [0, 1, 2, 4, 5, 7, 8],
      );
    } finally {
      await erinClient.close();
    }
  });

  it('an invite protects first contact: a server substituting the inviter’s key is caught by the requester', async () => {
    const aliceClient = new SignalingClient({ url: fake.url, identity: alice });
    try {
      await aliceClient.connect();
      const alicePairing = new PairingService({ identity: alice, transport: aliceClient });
      const invite = bobPairing.createInvite();
      fake.directory.set(bob.peerId, { ...mallory.exportPublic(), peerId: bob.peerId });
      await assert.rejects(alicePairing.pair(invite), withCode('peer_id_mismatch'));
      fake.directory.set(bob.peerId, mallory.exportPublic());
      await assert.rejects(alicePairing.pair(invite), withCode('peer_id_mismatch'));
    } finally {
      await aliceClient.close();
    }
  });

  it('a client refuses a server that fails or mis-binds its authentication', async () => {
    fake.authAnswer = () => ({ ok: false, error: { code: 'auth_failed', message: 'nope' } });
    const c1 = new SignalingClient({ url: fake.url, identity: carol });
    await assert.rejects(c1.connect(), withCode('auth_failed'));
    fake.authAnswer = () => ({ ok: true, peerId: mallory.peerId });
    const c2 = new SignalingClient({ url: fake.url, identity: carol });
    await assert.rejects(c2.connect(), withCode('auth_failed'));
    fake.authAnswer = () => ({ ok: true, peerId: 'not even a peer id' });
    const c3 = new SignalingClient({ url: fake.url, identity: carol });
    await assert.rejects(c3.connect(), withCode('malformed'));
    fake.authAnswer = undefined;
    await Promise.all([c1.close(), c2.close(), c3.close()]);
  });
});
