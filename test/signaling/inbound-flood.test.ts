// Issue 17, point 3: a SignalingClient under a flood of signals from strangers keeps up. A real server
// process relays (its own limits off, so the whole flood reaches the victim: the client is what is
// tested); strangers send thousands of signals, one of them with bad signatures, while a peer paired in
// the victim's LevelDB PeerStore sends legitimate ones. Every legitimate signal is delivered in order,
// the queue never exceeds its bounds, every other signal is accounted for (delivered, dropped unread or
// refused), and the sustained shedding is reported once.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import type { SignedSignal } from '../../src/signaling/messages.js';
import { createSignedSignal, randomNonce } from '../../src/signaling/wire.js';
import { openLevelPeerStore } from '../../src/store/level.js';
import type { PeerStore } from '../../src/store/types.js';
import { until } from '../helpers/hosts.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { rawAuthed } from './_util.js';

const STRANGERS = 4;
const PER_STRANGER = 1500;
const BAD_SIGNATURES = 2000;
const LEGIT = 40;
const LIMITS = { maxPaired: 256, maxStrangers: 64 };

describe('a SignalingClient under a signal flood (real server process, LevelDB PeerStore)', () => {
  let server: SignalingProcess;
  let dir: string;
  let store: PeerStore;
  let victim: SignalingClient;
  let friend: SignalingClient;
  const sockets: Socket[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-flood-'));
    server = await startSignalingProcess({
      args: [
        '--events-per-second',
        '0',
        '--ip-events-per-second',
        '0',
        '--recipient-signals-per-second',
        '0',
        '--max-pending-packets',
        '0',
      ],
    });
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    await Promise.all([victim?.close(), friend?.close()]);
    await store?.close();
    await server?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the paired peer first, stays within its bounds, counts every drop and reports once', async () => {
    const ids = await Promise.all(Array.from({ length: STRANGERS + 3 }, () => Identity.generate()));
    const [me, paired, liar, ...strangers] = ids as [Identity, Identity, Identity, ...Identity[]];
    store = await openLevelPeerStore({ path: join(dir, 'victim'), encryption: { mode: 'unencrypted' } });
    await store.put({ publicIdentity: paired.publicIdentity, psk: new Uint8Array(32).fill(7) });

    victim = new SignalingClient({
      url: server.url,
      identity: me,
      peers: store,
      inbound: { ...LIMITS, reportWindowMs: 10 * 60_000 },
    });
    friend = new SignalingClient({ url: server.url, identity: paired });
    await Promise.all([victim.connect(), friend.connect()]);

    const legit: unknown[] = [];
    let strangerDelivered = 0;
    let liarDelivered = 0;
    let overloads = 0;
    let rejectedEvents = 0;
    let maxPaired = 0;
    let maxStrangers = 0;
    const sample = () => {
      const s = victim.stats();
      maxPaired = Math.max(maxPaired, s.queuedPaired);
      maxStrangers = Math.max(maxStrangers, s.queuedStrangers);
    };
    victim.on('signal', ({ from, data }) => {
      sample();
      if (from === paired.peerId) legit.push(data);
      else if (from === liar.peerId) liarDelivered++;
      else strangerDelivered++;
    });
    victim.on('rejected', () => {
      sample();
      rejectedEvents++;
    });
    victim.on('overload', () => {
      sample();
      overloads++;
    });

    // Strangers replay a handful of genuine envelopes (each still costs a signature check before the
    // replay is seen); the liar sends envelopes whose nonce no longer matches the signature.
    const floods: { socket: Socket; envs: SignedSignal[] }[] = [];
    for (const s of strangers) {
      const genuine = await Promise.all(
        Array.from({ length: 5 }, (_, i) => createSignedSignal(s, me.peerId, { i })),
      );
      const envs = Array.from({ length: PER_STRANGER }, (_, i) => genuine[i % genuine.length]!);
      floods.push({ socket: await rawAuthed(server.url, s), envs });
    }
    const template = await createSignedSignal(liar, me.peerId, { forged: true });
    floods.push({
      socket: await rawAuthed(server.url, liar),
      envs: Array.from({ length: BAD_SIGNATURES }, () => ({ ...template, nonce: randomNonce() })),
    });
    for (const f of floods) sockets.push(f.socket);
    const flooded = STRANGERS * PER_STRANGER + BAD_SIGNATURES;

    for (const { socket, envs } of floods) for (const env of envs) socket.emit('signal', { env });
    for (let n = 0; n < LEGIT; n++) await friend.sendSignal(me.peerId, { n });

    await until(() => legit.length === LEGIT, 120_000, 'every legitimate signal delivered');
    assert.deepEqual(
      legit,
      Array.from({ length: LEGIT }, (_, n) => ({ n })),
      'in the order sent',
    );
    const accounted = () => {
      const s = victim.stats();
      const refused = Object.values(s.rejected).reduce((a, b) => a + b, 0);
      return s.delivered + s.dropped + refused;
    };
    await until(() => accounted() === flooded + LEGIT, 120_000, 'every relayed signal accounted for');
    sample();
    const s = victim.stats();
    assert.ok(maxStrangers <= LIMITS.maxStrangers, `stranger lane reached ${maxStrangers}`);
    assert.ok(maxPaired <= LIMITS.maxPaired, `paired lane reached ${maxPaired}`);
    assert.ok(s.dropped > 0, 'the flood overflowed the stranger lane and was dropped unread');
    // Which strangers' signals were verified and which dropped unread depends on arrival order; some
    // were verified (strangers keep a share), and none of the forged ones got through.
    assert.ok((s.rejected.bad_signature ?? 0) + (s.rejected.replay ?? 0) > 0, 'strangers were verified');
    assert.equal(liarDelivered, 0, 'no forged signal delivered');
    assert.ok(strangerDelivered <= STRANGERS * 5, 'a stranger envelope is delivered at most once');
    assert.equal(s.delivered, LEGIT + strangerDelivered);
    assert.equal(overloads, 1, 'sustained shedding is reported once per window');
    assert.ok(rejectedEvents <= 10, `${rejectedEvents} rejected events: only the window's quota`);
    assert.equal(
      s.unreported + rejectedEvents,
      Object.values(s.rejected).reduce((a, b) => a + b, 0),
    );
    assert.deepEqual([s.queuedPaired, s.queuedStrangers, s.classifying], [0, 0, 0]);
  });

  it("a paired peer's first signals find room while a flood fills the hold of unknown senders", async () => {
    const [me, paired, flooder] = await Promise.all([0, 1, 2].map(() => Identity.generate()));
    // The PeerStore answers only when the test lets it: until then every sender is unknown, and the
    // flooder's signals fill the hold (64 signals) before the paired peer's first one arrives.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const peers = {
      lookup: async (peerId: string) => {
        await gate;
        return peerId === paired!.peerId ? { publicIdentity: paired!.publicIdentity } : undefined;
      },
    };
    const client = new SignalingClient({ url: server.url, identity: me!, peers, inbound: LIMITS });
    const friendly = new SignalingClient({ url: server.url, identity: paired! });
    const socket = await rawAuthed(server.url, flooder!);
    try {
      await Promise.all([client.connect(), friendly.connect()]);
      const got: unknown[] = [];
      client.on('signal', ({ from, data }) => {
        if (from === paired!.peerId) got.push(data);
      });
      const env = await createSignedSignal(flooder!, me!.peerId, { flood: true });
      for (let i = 0; i < 500; i++) socket.emit('signal', { env });
      await until(() => client.stats().classifying >= LIMITS.maxStrangers, 30_000, 'the hold is full');
      // Acknowledged by the server once handed to our socket: each one reached the client.
      for (let n = 0; n < 3; n++) await friendly.sendSignal(me!.peerId, { n });
      assert.ok(client.stats().classifying <= LIMITS.maxStrangers, 'the hold stays within its bound');
      open();
      await until(() => got.length === 3, 30_000, "the paired peer's signals delivered");
      assert.deepEqual(got, [{ n: 0 }, { n: 1 }, { n: 2 }]);
      assert.ok(client.stats().dropped > 0, "the flooder's signals beyond the hold were dropped");
    } finally {
      socket.disconnect();
      await Promise.all([client.close(), friendly.close()]);
    }
  });
});
