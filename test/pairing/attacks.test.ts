// Issue 13, points 3, 4 and 6: the pairing attacks, replayed on loopback with real parts — a signaling
// server process, hosts, a LevelDB store that survives a restart — and attackers that speak the wire
// protocol through raw socket.io connections (they are not bound by the client's rules).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import type { Host } from '../../src/host/host.js';
import { Identity } from '../../src/identity/index.js';
import { parseInvite, ReplayCache } from '../../src/pairing/index.js';
import { createPairingRequest, openPairingMessage, pairingSignedBytes } from '../../src/pairing/messages.js';
import { derivePairPsk } from '../../src/pairing/psk.js';
import { openMemoryPeerStore, type PeerStore } from '../../src/store/index.js';
import { openLevelPeerStore } from '../../src/store/level.js';
import { toBase64Url, toHex } from '../../src/util/bytes.js';
import { autoAccept, type Env, startEnv, within } from '../helpers/hosts.js';
import { ask, rawAuthed } from '../signaling/_util.js';

type Msg = Awaited<ReturnType<typeof createPairingRequest>>['message'];

/** Pairing messages a raw socket receives, and a way to wait for the answer to one of its requests. */
function inbox(socket: Socket) {
  const got: { from: string; msg: Msg }[] = [];
  const waiters: (() => void)[] = [];
  socket.on('pairing', (e: { from: string; msg: Msg }) => {
    got.push(e);
    for (const w of waiters.splice(0)) w();
  });
  return {
    got,
    async answerTo(nonce: string, ms = 15_000): Promise<Msg> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = got.find((e) => e.msg.replyTo === nonce);
        if (hit) return hit.msg;
        const left = deadline - Date.now();
        if (left <= 0) assert.fail(`no answer to ${nonce} within ${ms} ms`);
        await within(new Promise<void>((r) => waiters.push(r)), left, 'answer').catch(() => {});
      }
    },
  };
}

/** Resolves with the answer `socket` receives to request `nonce`, or with why `host` dropped a request of `from`. */
function fate(socket: Socket, host: Host, from: string, nonce: string): Promise<string> {
  return new Promise((resolve) => {
    const done = (what: string) => {
      socket.off('pairing', onAnswer);
      offDropped();
      resolve(what);
    };
    const onAnswer = (e: { msg: Msg }) => {
      if (e.msg.replyTo === nonce) done(`answered ${e.msg.kind}`);
    };
    const offDropped = host.pairing.on('dropped', (d) => {
      if (d.from === from) done(`dropped ${d.error.code}`);
    });
    socket.on('pairing', onAnswer);
  });
}

async function send(socket: Socket, msg: Msg): Promise<unknown> {
  return ask(socket, 'pairing', { msg });
}

/** `mallory` re-signs `victim`'s request as her own, keeping the victim's encrypted secret. */
async function resign(mallory: Identity, to: Identity, victim: Msg): Promise<Msg> {
  const { message } = await createPairingRequest({ identity: mallory, to: to.publicIdentity });
  const forged = { ...message, secret: victim.secret };
  return { ...forged, sig: toBase64Url(await mallory.sign(pairingSignedBytes(forged))) };
}

/** Counts an identity's private-key operations (RSA-OAEP decrypt and RSA-PSS sign). */
function countPrivateOps(identity: Identity): { readonly decrypt: number; readonly sign: number } {
  const counts = { decrypt: 0, sign: 0 };
  const decrypt = identity.decrypt.bind(identity);
  const sign = identity.sign.bind(identity);
  identity.decrypt = (d: Uint8Array) => {
    counts.decrypt++;
    return decrypt(d);
  };
  identity.sign = (d: Uint8Array) => {
    counts.sign++;
    return sign(d);
  };
  return counts;
}

describe('pairing attacks (issue 13)', () => {
  let env: Env;
  let dir: string;
  before(async () => {
    env = await startEnv(6);
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-pairing-attacks-'));
  });
  after(async () => {
    await env?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('point 3: Mallory re-signing Alice’s request with Alice’s encrypted secret is refused; Alice’s invite stays usable', async () => {
    const [alice, bob, mallory] = [env.ids[0]!, env.ids[1]!, env.ids[2]!];
    const hb = await env.host(bob, { store: await openMemoryPeerStore() });
    try {
      const seen: { peerId: string; invited: boolean }[] = [];
      hb.onPairingRequest(({ peer, invited }) => {
        seen.push({ peerId: peer.peerId, invited });
        return invited;
      });
      const { token } = parseInvite(hb.createInvite());
      const genuine = await createPairingRequest({ identity: alice, to: bob.publicIdentity, token });
      const malSock = await rawAuthed(env.url, mallory);
      const aliceSock = await rawAuthed(env.url, alice);
      const malBox = inbox(malSock);
      const aliceBox = inbox(aliceSock);
      try {
        const forged = await resign(mallory, bob, genuine.message);
        assert.deepEqual(await send(malSock, forged), { ok: true });
        // Alice's own request comes second, after the thief's copy.
        assert.deepEqual(await send(aliceSock, genuine.message), { ok: true });
        const answer = await aliceBox.answerTo(genuine.message.nonce);
        assert.equal(answer.kind, 'accept', 'Alice’s genuine request is accepted as invited');
        assert.deepEqual(
          seen.map((s) => s.peerId),
          [alice.peerId],
          'the application never saw Mallory’s request',
        );
        assert.equal(seen[0]!.invited, true);
        assert.deepEqual(
          malBox.got.map((e) => e.msg.kind),
          [],
          'Mallory got no answer',
        );
      } finally {
        malSock.disconnect();
        aliceSock.disconnect();
      }
    } finally {
      await env.closeHost(hb);
    }
  });

  it('point 4: a recorded pairing request replayed after the receiver restarts does not replace the working PSK', async () => {
    const [alice, bob, carol] = [env.ids[0]!, env.ids[3]!, env.ids[4]!];
    const path = join(dir, 'bob-restart');
    const approve = (h: Host) =>
      // An application that approves peers it knows by id (as `listen --accept-pairing` approves anyone).
      h.onPairingRequest(({ peer }) => peer.peerId === alice.peerId || peer.peerId === carol.peerId, {
        uninvited: true,
      } as never);
    let store = await openLevelPeerStore({ path, encryption: { mode: 'unencrypted' } });
    let hb = await env.host(bob, { store });
    approve(hb);
    const aliceSock = await rawAuthed(env.url, alice);
    const carolSock = await rawAuthed(env.url, carol);
    const aliceBox = inbox(aliceSock);
    const carolBox = inbox(carolSock);
    try {
      // Alice pairs; the request is recorded by the attacker on its way.
      const recorded = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
      await send(aliceSock, recorded.message);
      const accept = await aliceBox.answerTo(recorded.message.nonce);
      assert.equal(accept.kind, 'accept');
      const opened = await openPairingMessage(alice, accept, { replay: new ReplayCache(600_000) });
      const psk = await derivePairPsk(
        { peerId: alice.peerId, share: recorded.share },
        { peerId: bob.peerId, share: opened.share! },
      );
      assert.equal(toHex((await store.lookup(alice.peerId))!.psk), toHex(psk));

      // Bob's process restarts: a new signaling client, host and store handle on the same LevelDB.
      await env.closeHost(hb);
      await store.close();
      store = await openLevelPeerStore({ path, encryption: { mode: 'unencrypted' } });
      hb = await env.host(bob, { store });
      approve(hb);

      // The replay, then a marker request that Bob surely answers, processed after the replay.
      assert.deepEqual(await send(aliceSock, recorded.message), { ok: true });
      const marker = await createPairingRequest({ identity: carol, to: bob.publicIdentity });
      await send(carolSock, marker.message);
      assert.equal((await carolBox.answerTo(marker.message.nonce)).kind, 'accept');
      assert.equal(
        aliceBox.got.filter((e) => e.msg.replyTo === recorded.message.nonce).length,
        1,
        'the replay got no second answer',
      );
      const after = await store.lookup(alice.peerId);
      assert.equal(toHex(after!.psk), toHex(psk), 'Bob still holds the PSK Alice has');
      assert.equal(after!.pendingPsk, undefined, 'and no second one waiting');

      // Alice's next dial works.
      const ha = await env.host(alice, { store: await pairedStore(bob, psk) });
      const acceptor = autoAccept(hb);
      const conn = await within(ha.connect(bob.peerId, { attempts: 1 }), 20_000, 'Alice dials Bob');
      await acceptor.next();
      await conn.close();
      await env.closeHost(ha);
    } finally {
      aliceSock.disconnect();
      carolSock.disconnect();
      await env.closeHost(hb);
      await store.close();
    }
  });

  it('point 4: re-pairing keeps the old PSK until the first successful handshake with the new one', async () => {
    const [alice, bob] = [env.ids[0]!, env.ids[5]!];
    const sa = await openMemoryPeerStore();
    const sb = await openMemoryPeerStore();
    const ha = await env.host(alice, { store: sa });
    const hb = await env.host(bob, { store: sb });
    try {
      const first = await within(ha.pair(hb.createInvite()), 20_000, 'first pairing');
      const second = await within(ha.pair(hb.createInvite()), 20_000, 're-pairing');
      assert.notEqual(toHex(first.psk), toHex(second.psk));
      for (const [store, peer] of [
        [sa, bob],
        [sb, alice],
      ] as const) {
        const keys = await store.lookup(peer.peerId);
        assert.equal(toHex(keys!.psk), toHex(first.psk), 'the confirmed PSK is still the old one');
        assert.equal(toHex(keys!.pendingPsk!), toHex(second.psk), 'the new one waits for a handshake');
      }
      const acceptor = autoAccept(hb);
      const conn = await within(ha.connect(bob.peerId, { attempts: 1 }), 20_000, 'connect');
      await acceptor.next();
      await conn.close();
      for (const [store, peer] of [
        [sa, bob],
        [sb, alice],
      ] as const) {
        const keys = await store.lookup(peer.peerId);
        assert.equal(toHex(keys!.psk), toHex(second.psk), 'confirmed by the handshake');
        assert.equal(keys!.pendingPsk, undefined);
      }
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  it('point 6: 270 requests from strangers cause no private-key operation and no prompt', async () => {
    const bob = env.ids[1]!;
    const strangers = await Promise.all([Identity.generate(), Identity.generate(), Identity.generate()]);
    const hb = await env.host(bob, { store: await openMemoryPeerStore() });
    let prompts = 0;
    hb.onPairingRequest(({ invited }) => {
      prompts++;
      return invited;
    });
    const ops = countPrivateOps(bob);
    const sockets = await Promise.all(strangers.map((s) => rawAuthed(env.url, s)));
    const alice = env.ids[0]!;
    const aliceSock = await rawAuthed(env.url, alice);
    const aliceBox = inbox(aliceSock);
    try {
      const acks = await Promise.all(
        strangers.map(async (s, i) => {
          const out: unknown[] = [];
          for (let n = 0; n < 90; n++) {
            const { message } = await createPairingRequest({ identity: s, to: bob.publicIdentity });
            out.push(await send(sockets[i]!, message));
          }
          return out;
        }),
      );
      assert.equal(acks.flat().length, 270);
      // A genuine invited request afterwards is still answered (and is the only private-key work).
      const { token } = parseInvite(hb.createInvite());
      const genuine = await createPairingRequest({ identity: alice, to: bob.publicIdentity, token });
      await send(aliceSock, genuine.message);
      assert.equal((await aliceBox.answerTo(genuine.message.nonce)).kind, 'accept');
      assert.equal(prompts, 1, 'only the invited request reached the application');
      assert.ok(ops.decrypt <= 1, `decryptions: ${ops.decrypt}`);
      assert.ok(ops.sign <= 1, `signatures: ${ops.sign}`);
    } finally {
      for (const s of [...sockets, aliceSock]) s.disconnect();
      await env.closeHost(hb);
    }
  });

  it('point 6: repeated requests from one peer while its prompt is open are coalesced into one prompt', async () => {
    const bob = env.ids[3]!;
    const carol = env.ids[4]!;
    const hb = await env.host(bob, { store: await openMemoryPeerStore() });
    let prompts = 0;
    let decide!: (v: boolean) => void;
    const firstPrompt = new Promise<void>((asked) => {
      hb.onPairingRequest(
        () => {
          prompts++;
          asked();
          return new Promise<boolean>((r) => {
            decide = r;
          });
        },
        { uninvited: true } as never,
      );
    });
    const sock = await rawAuthed(env.url, carol);
    const box = inbox(sock);
    try {
      const msgs: Msg[] = [];
      for (let n = 0; n < 5; n++) {
        msgs.push((await createPairingRequest({ identity: carol, to: bob.publicIdentity })).message);
      }
      await send(sock, msgs[0]!);
      await within(firstPrompt, 10_000, 'first prompt');
      for (const m of msgs.slice(1)) await send(sock, m);
      // Requests are examined in arrival order: once a replay of the first is refused (over Carol's
      // request budget already), the four before it have been seen.
      const seen = new Promise<string>((resolve) =>
        hb.pairing.on('dropped', ({ error }) => resolve(error.code)),
      );
      await send(sock, msgs[0]!);
      assert.equal(await within(seen, 10_000, 'the replay refused'), 'rate_limited');
      // Carol's last request is the one she waits for; a decision answers it.
      const answered = box.answerTo(msgs[4]!.nonce);
      decide(false);
      assert.equal((await answered).kind, 'reject');
      assert.equal(prompts, 1);
      assert.equal(box.got.length, 1, 'one answer for the coalesced requests');
    } finally {
      sock.disconnect();
      await env.closeHost(hb);
    }
  });

  it('point 6: a sender the application keeps declining gets 2 rejects a minute; its further requests go unanswered', async () => {
    // A reject is signed (an RSA operation) and sent: without a budget, a stranger the user declines
    // could make this side sign one answer per request. PROTOCOL.md §9, step 9: at most 2 a sender and minute.
    const bob = env.ids[5]!;
    const [mallory, dave] = await Promise.all([Identity.generate(), Identity.generate()]);
    const hb = await env.host(bob, { store: await openMemoryPeerStore() });
    const asked: string[] = [];
    hb.onPairingRequest(
      ({ peer }) => {
        asked.push(peer.peerId);
        return false;
      },
      { uninvited: true },
    );
    const [malSock, daveSock] = await Promise.all([rawAuthed(env.url, mallory), rawAuthed(env.url, dave)]);
    const malBox = inbox(malSock);
    try {
      // One request at a time (5: Mallory's whole request budget), each followed to its end.
      const fates: string[] = [];
      for (let n = 0; n < 5; n++) {
        const { message } = await createPairingRequest({ identity: mallory, to: bob.publicIdentity });
        const settled = fate(malSock, hb, mallory.peerId, message.nonce);
        assert.deepEqual(await send(malSock, message), { ok: true });
        fates.push(await within(settled, 15_000, `Mallory's request ${n + 1}`));
      }
      assert.deepEqual(fates, [
        'answered reject',
        'answered reject',
        'dropped rate_limited',
        'dropped rate_limited',
        'dropped rate_limited',
      ]);
      assert.equal(asked.length, 5, 'the application declined every one: the limit is on rejects');
      assert.deepEqual(
        malBox.got.map((e) => e.msg.kind),
        ['reject', 'reject'],
        'Mallory received two answers in all',
      );
      // The budget is Mallory's: another sender declined in the same minute still gets its reject.
      const { message } = await createPairingRequest({ identity: dave, to: bob.publicIdentity });
      const settled = fate(daveSock, hb, dave.peerId, message.nonce);
      await send(daveSock, message);
      assert.equal(await within(settled, 15_000, "Dave's request"), 'answered reject');
    } finally {
      malSock.disconnect();
      daveSock.disconnect();
      await env.closeHost(hb);
    }
  });

  it('point 6: at most 8 prompts are open at once; a ninth and tenth sender are refused with rate_limited, unasked', async () => {
    // Every open prompt is a question to a human and a request held in memory; distinct senders each
    // have their own per-sender budgets, so only a total bound stops a crowd (PROTOCOL.md §9, step 7).
    const bob = env.ids[2]!;
    const senders = await Promise.all(Array.from({ length: 10 }, () => Identity.generate()));
    const hb = await env.host(bob, { store: await openMemoryPeerStore() });
    // The application answers only when the test says so; it is asked in arrival order.
    const open: { peerId: string; decide: (ok: boolean) => void }[] = [];
    let openNow = 0;
    let mostOpen = 0;
    const promptListeners = new Set<(peerId: string) => void>();
    hb.onPairingRequest(
      ({ peer }) =>
        new Promise<boolean>((resolve) => {
          openNow++;
          mostOpen = Math.max(mostOpen, openNow);
          open.push({
            peerId: peer.peerId,
            decide: (ok) => {
              openNow--;
              resolve(ok);
            },
          });
          for (const l of promptListeners) l(peer.peerId);
        }),
      { uninvited: true },
    );
    /** Resolves with "prompted" when the application is asked about `from`, or with why it was dropped. */
    const promptOrDrop = (from: string) =>
      new Promise<string>((resolve) => {
        const done = (what: string) => {
          promptListeners.delete(onPrompt);
          offDropped();
          resolve(what);
        };
        const onPrompt = (peerId: string) => {
          if (peerId === from) done('prompted');
        };
        const offDropped = hb.pairing.on('dropped', (d) => {
          if (d.from === from) done(`dropped ${d.error.code}`);
        });
        promptListeners.add(onPrompt);
      });
    const sockets = await Promise.all(senders.map((s) => rawAuthed(env.url, s)));
    const boxes = sockets.map(inbox);
    const request = async (k: number) => {
      const { message } = await createPairingRequest({ identity: senders[k]!, to: bob.publicIdentity });
      const settled = promptOrDrop(senders[k]!.peerId);
      assert.deepEqual(await send(sockets[k]!, message), { ok: true });
      return { nonce: message.nonce, fate: await within(settled, 15_000, `sender ${k}'s request`) };
    };
    try {
      const first = [];
      for (let k = 0; k < 10; k++) first.push(await request(k));
      assert.deepEqual(
        first.map((r) => r.fate),
        [...Array(8).fill('prompted'), 'dropped rate_limited', 'dropped rate_limited'],
      );
      assert.equal(mostOpen, 8);
      assert.deepEqual(
        open.map((o) => o.peerId),
        senders.slice(0, 8).map((s) => s.peerId),
        'the application was asked about the first eight senders only',
      );
      // The refused two were not answered, and are not waiting for an answer either: once the prompts
      // close, the eight get their rejects and nothing else is sent.
      const rejects = first.slice(0, 8).map((r, k) => boxes[k]!.answerTo(r.nonce));
      for (const o of open.splice(0)) o.decide(false);
      assert.deepEqual(
        (await Promise.all(rejects)).map((m) => m.kind),
        Array(8).fill('reject'),
      );
      assert.deepEqual(
        boxes.slice(8).map((b) => b.got.length),
        [0, 0],
      );
      // Control: with the prompts closed, the ninth sender's next request is put to the application.
      const again = await request(8);
      assert.equal(again.fate, 'prompted');
      const answer = boxes[8]!.answerTo(again.nonce);
      open.splice(0)[0]!.decide(false);
      assert.equal((await answer).kind, 'reject');
    } finally {
      for (const o of open.splice(0)) o.decide(false);
      for (const s of sockets) s.disconnect();
      await env.closeHost(hb);
    }
  });

  /** A store holding one paired peer. */
  async function pairedStore(peer: Identity, psk: Uint8Array): Promise<PeerStore> {
    const s = await openMemoryPeerStore();
    await s.put({ publicIdentity: peer.exportPublic(), psk });
    return s;
  }
});
