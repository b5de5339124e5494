import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import {
  createPairingRequest,
  type PairingRequestInfo,
  PairingService,
  parseInvite,
} from '../../src/pairing/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { toHex } from '../../src/util/bytes.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { ask, errorCode, httpGet, metricValue, next, rawAuthed, sleep, withCode } from './_util.js';

describe('pairing end to end through a real server process', () => {
  let server: SignalingProcess;
  const clients: SignalingClient[] = [];
  // The pairing services over each peer's signaling client (memory records).
  let alice: PairingService;
  let bob: PairingService;
  let carol: PairingService;

  before(async () => {
    server = await startSignalingProcess();
    const ids = await Promise.all([Identity.generate(), Identity.generate(), Identity.generate()]);
    for (const identity of ids) clients.push(new SignalingClient({ url: server.url, identity }));
    await Promise.all(clients.map((c) => c.connect()));
    [alice, bob, carol] = clients.map(
      (transport) => new PairingService({ identity: transport.identity, transport }),
    ) as [PairingService, PairingService, PairingService];
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.kill();
  });

  it('an invited peer pairs; both sides end with the same PSK and each other’s verified identity', async () => {
    const invite = bob.createInvite();
    assert.equal(parseInvite(invite).peerId, bob.peerId);
    assert.equal(parseInvite(invite).url, server.url);
    const seen: PairingRequestInfo[] = [];
    const restore = bob.onPairingRequest((r) => {
      seen.push(r);
      return r.invited;
    });
    const bobPaired = next(bob, 'paired');
    const result = await alice.pair(invite);
    const other = await bobPaired;
    restore();
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.invited, true);
    assert.equal(seen[0]!.peer.peerId, alice.peerId);
    assert.equal(result.peer.peerId, bob.peerId);
    assert.equal(other.peer.peerId, alice.peerId);
    assert.equal(other.initiator, false);
    assert.equal(result.psk.length, 32);
    assert.equal(toHex(result.psk), toHex(other.psk));
  });

  it('an invite is single-use: a second request with the same token is not "invited" and the default rejects it', async () => {
    const invite = bob.createInvite();
    await alice.pair(invite);
    // Carol got hold of the same invite string. Nothing can approve her request (the token is spent, no
    // other invite is outstanding): it is dropped unread, and unanswered.
    const dropped = next(bob, 'dropped', (d) => d.from === carol.peerId);
    await assert.rejects(carol.pair(invite, { timeoutMs: 2_000 }), withCode('timeout'));
    assert.equal((await dropped).error.code, 'pairing_dropped');
  });

  it('the receiver’s application rejects: the requester gets pairing_rejected and nothing is derived', async () => {
    let asked = 0;
    bob.onPairingRequest(async () => {
      asked++;
      await sleep(50); // a human thinking
      return false;
    });
    const paired: unknown[] = [];
    const offB = bob.on('paired', (p) => paired.push(p));
    const offA = alice.on('paired', (p) => paired.push(p));
    await assert.rejects(alice.pair(bob.createInvite()), withCode('pairing_rejected'));
    await sleep(100);
    offA();
    offB();
    assert.equal(asked, 1);
    assert.deepEqual(paired, []);
  });

  it('pairs by bare peerId when the application approves, and separate pairings give different PSKs', async () => {
    bob.onPairingRequest((r) => r.peer.peerId === carol.peerId, { uninvited: true });
    const r1 = await carol.pair(bob.peerId);
    const r2 = await carol.pair(bob.peerId);
    assert.notEqual(toHex(r1.psk), toHex(r2.psk));
    await assert.rejects(alice.pair(bob.peerId), withCode('pairing_rejected'));
  });

  it('fails clearly for an offline peer, an expired invite, and times out when nobody answers', async () => {
    const ghost = await Identity.generate();
    await assert.rejects(alice.pair(ghost.peerId), withCode('peer_offline'));
    const expired = bob.createInvite({ ttlMs: -1000 });
    await assert.rejects(alice.pair(expired), withCode('bad_invite'));
    bob.onPairingRequest(() => new Promise<boolean>(() => {}), { uninvited: true });
    await assert.rejects(alice.pair(bob.peerId, { timeoutMs: 300 }), withCode('timeout'));
  });

  it('limits pairing messages per sender on the server: a flood from one peer is refused with rate_limited', async () => {
    const flooder = await Identity.generate();
    const socket = await rawAuthed(server.url, flooder);
    try {
      const codes: (string | undefined)[] = [];
      for (let n = 0; n < 40; n++) {
        const { message } = await createPairingRequest({
          identity: flooder,
          to: bob.identity.publicIdentity,
        });
        codes.push(errorCode(await ask(socket, 'pairing', { msg: message })));
      }
      const accepted = codes.filter((c) => c === undefined).length;
      assert.ok(accepted >= 1 && accepted <= 20, `relayed ${accepted} of 40`);
      assert.ok(
        codes.slice(accepted).every((c) => c === 'rate_limited'),
        codes.join(','),
      );
    } finally {
      socket.disconnect();
    }
  });

  it('counts pairing requests in /metrics', async () => {
    const m = await httpGet(server.url, '/metrics');
    assert.ok(metricValue(m.text, 'p2ptls_signaling_pairing_requests_total') >= 6);
    assert.ok(metricValue(m.text, 'p2ptls_signaling_relayed_messages_total{kind="pairing"}') >= 11);
  });
});
