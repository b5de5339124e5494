import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { Identity } from '../../src/identity/index.js';
import {
  createPairingAccept,
  createPairingReject,
  createPairingRequest,
  derivePairPsk,
  encodeInvite,
  openPairingMessage,
  parseInvite,
  ReplayCache,
} from '../../src/pairing/index.js';
import { pairingSignedBytes } from '../../src/pairing/messages.js';
import type { PairingMessage } from '../../src/pairing/schema.js';
import { fromBase64Url, toBase64Url, toHex } from '../../src/util/bytes.js';

const code = (c: string) => (err: unknown) => isP2PTLSError(err) && err.code === c;
const flip = (b64: string) => {
  const b = fromBase64Url(b64);
  b[b.length >> 1]! ^= 1;
  return toBase64Url(b);
};

describe('pairing crypto (pure)', () => {
  let alice: Identity;
  let bob: Identity;
  let mallory: Identity;
  before(async () => {
    [alice, bob, mallory] = await Promise.all([
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ]);
  });

  it('request → accept gives both sides the same 32-byte PSK, carrying the invite token', async () => {
    const token = crypto.getRandomValues(new Uint8Array(16));
    const req = await createPairingRequest({ identity: alice, to: bob.publicIdentity, token });
    const opened = await openPairingMessage(bob, req.message, { replay: new ReplayCache(600_000) });
    assert.equal(opened.kind, 'request');
    assert.equal(opened.from.peerId, alice.peerId);
    assert.deepEqual(opened.token, token);
    assert.deepEqual(opened.share, req.share);
    const acc = await createPairingAccept({ identity: bob, request: opened });
    const back = await openPairingMessage(alice, acc.message, {
      replay: new ReplayCache(600_000),
      expectedFrom: bob.peerId,
    });
    assert.equal(back.kind, 'accept');
    assert.equal(back.replyTo, req.message.nonce);
    const pskA = await derivePairPsk(
      { peerId: alice.peerId, share: req.share },
      { peerId: bob.peerId, share: back.share! },
    );
    const pskB = await derivePairPsk(
      { peerId: bob.peerId, share: acc.share },
      { peerId: alice.peerId, share: opened.share! },
    );
    assert.equal(pskA.length, 32);
    assert.equal(toHex(pskA), toHex(pskB));
    // The server only ever sees ciphertext: neither share nor the token appears in the message.
    const wire = JSON.stringify(req.message) + JSON.stringify(acc.message);
    for (const secret of [req.share, acc.share, token]) assert.ok(!wire.includes(toBase64Url(secret)));
  });

  it('the PSK depends on both shares and both peerIds', async () => {
    const s1 = new Uint8Array(32).fill(1);
    const s2 = new Uint8Array(32).fill(2);
    const base = await derivePairPsk({ peerId: alice.peerId, share: s1 }, { peerId: bob.peerId, share: s2 });
    const swappedArgs = await derivePairPsk(
      { peerId: bob.peerId, share: s2 },
      { peerId: alice.peerId, share: s1 },
    );
    assert.equal(toHex(base), toHex(swappedArgs));
    const otherShare = await derivePairPsk(
      { peerId: alice.peerId, share: s2 },
      { peerId: bob.peerId, share: s2 },
    );
    const otherPeer = await derivePairPsk(
      { peerId: alice.peerId, share: s1 },
      { peerId: mallory.peerId, share: s2 },
    );
    const sharesSwapped = await derivePairPsk(
      { peerId: alice.peerId, share: s2 },
      { peerId: bob.peerId, share: s1 },
    );
    assert.notEqual(toHex(base), toHex(otherShare));
    assert.notEqual(toHex(base), toHex(otherPeer));
    assert.notEqual(toHex(base), toHex(sharesSwapped));
    await assert.rejects(
      derivePairPsk({ peerId: alice.peerId, share: s1 }, { peerId: alice.peerId, share: s2 }),
      code('invalid_argument'),
    );
  });

  it('rejects tampered messages: secret, timestamp, recipient, nonce, signature, substituted identity', async () => {
    const { message } = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
    const tampered: [string, PairingMessage, string][] = [
      ['secret', { ...message, secret: flip(message.secret!) }, 'bad_signature'],
      ['ts', { ...message, ts: message.ts - 1 }, 'bad_signature'],
      ['nonce', { ...message, nonce: flip(message.nonce) }, 'bad_signature'],
      ['sig', { ...message, sig: flip(message.sig) }, 'bad_signature'],
      ['to', { ...message, to: mallory.peerId }, 'wrong_peer'],
      // Mallory swaps in her own keys under alice's id: the key hash gives her away.
      [
        'from keys',
        { ...message, from: { ...mallory.exportPublic(), peerId: alice.peerId } },
        'peer_id_mismatch',
      ],
      // Mallory swaps in her whole identity: the signature was not made by her key.
      ['from identity', { ...message, from: mallory.exportPublic() }, 'bad_signature'],
      ['schema', { ...message, kind: 'accept' }, 'malformed'],
    ];
    for (const [what, msg, expected] of tampered) {
      await assert.rejects(
        openPairingMessage(bob, msg, { replay: new ReplayCache(600_000) }),
        code(expected),
        `tampered ${what}`,
      );
    }
    await assert.rejects(
      openPairingMessage(bob, { ...message, extra: 1 }, { replay: new ReplayCache(600_000) }),
      code('malformed'),
    );
    await assert.rejects(
      openPairingMessage(bob, message, { replay: new ReplayCache(600_000), expectedFrom: mallory.peerId }),
      code('peer_id_mismatch'),
    );
    // Mallory cannot read alice's share: it is encrypted to bob.
    await assert.rejects(mallory.decrypt(fromBase64Url(message.secret!)), code('bad_key'));
  });

  it('a secret re-signed into another message fails after decryption, before its token is seen (issue 13, point 3)', async () => {
    const token = crypto.getRandomValues(new Uint8Array(16));
    const { message } = await createPairingRequest({ identity: alice, to: bob.publicIdentity, token });
    const base = (await createPairingRequest({ identity: mallory, to: bob.publicIdentity })).message;
    const copy = { ...base, secret: message.secret };
    const forged = { ...copy, sig: toBase64Url(await mallory.sign(pairingSignedBytes(copy))) };
    await assert.rejects(
      openPairingMessage(bob, forged, { replay: new ReplayCache(600_000) }),
      code('pairing_secret_mismatch'),
    );
    // Alice herself, re-sending the same secret under a new nonce, is refused too: the nonce is bound.
    const { message: again } = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
    const moved = { ...again, secret: message.secret };
    const resigned = { ...moved, sig: toBase64Url(await alice.sign(pairingSignedBytes(moved))) };
    await assert.rejects(
      openPairingMessage(bob, resigned, { replay: new ReplayCache(600_000) }),
      code('pairing_secret_mismatch'),
    );
  });

  it('rejects replays and expired or future-dated messages', async () => {
    const replay = new ReplayCache(600_000);
    const { message } = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
    await openPairingMessage(bob, message, { replay });
    await assert.rejects(openPairingMessage(bob, message, { replay }), code('replay'));
    const old = await createPairingRequest({
      identity: alice,
      to: bob.publicIdentity,
      now: Date.now() - 6 * 60_000,
    });
    await assert.rejects(openPairingMessage(bob, old.message, { replay }), code('pairing_expired'));
    const future = await createPairingRequest({
      identity: alice,
      to: bob.publicIdentity,
      now: Date.now() + 6 * 60_000,
    });
    await assert.rejects(openPairingMessage(bob, future.message, { replay }), code('pairing_expired'));
    const recent = await createPairingRequest({
      identity: alice,
      to: bob.publicIdentity,
      now: Date.now() - 4 * 60_000,
    });
    await openPairingMessage(bob, recent.message, { replay });
  });

  it('a reject carries no secret and answers a specific request', async () => {
    const req = await createPairingRequest({ identity: alice, to: bob.publicIdentity });
    const opened = await openPairingMessage(bob, req.message, { replay: new ReplayCache(600_000) });
    const rej = await createPairingReject({ identity: bob, request: opened });
    assert.equal(rej.secret, undefined);
    const got = await openPairingMessage(alice, rej, { replay: new ReplayCache(600_000) });
    assert.equal(got.kind, 'reject');
    assert.equal(got.replyTo, req.message.nonce);
    assert.equal(got.share, undefined);
    // A reject with a secret smuggled in, or an accept without one, does not parse as valid.
    await assert.rejects(
      openPairingMessage(alice, { ...rej, secret: req.message.secret }, { replay: new ReplayCache(600_000) }),
      code('malformed'),
    );
  });

  it('invites round-trip and reject anything malformed or expired', () => {
    const token = crypto.getRandomValues(new Uint8Array(16));
    const expires = Date.now() + 60_000;
    const text = encodeInvite({ peerId: alice.peerId, token, url: 'http://127.0.0.1:8080', expires });
    assert.match(text, /^p2ptls:\/\/invite\?v=1&peer=[a-z2-7]{52}&token=/);
    const inv = parseInvite(text);
    assert.equal(inv.peerId, alice.peerId);
    assert.deepEqual(inv.token, token);
    assert.equal(inv.url, 'http://127.0.0.1:8080');
    assert.equal(inv.expires, expires);
    const bad = [
      '',
      'https://example.org/?peer=x',
      text.replace('v=1', 'v=2'),
      text.replace(alice.peerId, alice.peerId.slice(1)),
      text.replace(/token=[^&]+/, 'token=AAAA'),
      text.replace(/token=[^&]+/, 'token=!!!'),
      `${text}&peer=${bob.peerId}`,
      `${text}&evil=1`,
      text.replace(/url=[^&]+/, 'url=javascript%3Aalert(1)'),
      `p2ptls://invite?${'x'.repeat(3000)}`,
    ];
    for (const b of bad) assert.throws(() => parseInvite(b), code('bad_invite'), b);
    assert.throws(() => parseInvite(text, expires + 1), code('bad_invite'));
  });

  it('the replay cache forgets nonces only after their window, and refuses when full', () => {
    const r = new ReplayCache(1000);
    assert.equal(r.checkAndRemember('a', 0, 0), true);
    assert.equal(r.checkAndRemember('a', 0, 999), false);
    assert.equal(r.checkAndRemember('b', 1500, 1500), true);
    assert.equal(r.checkAndRemember('a', 0, 1001), true);
    // Full, it refuses rather than forget: per sender, then in all; expired entries make room.
    const small = new ReplayCache(1000, 2, 1);
    assert.equal(small.remember('x', 'n1', 0, 0), 'fresh');
    assert.equal(small.remember('x', 'n2', 0, 0), 'full');
    assert.equal(small.remember('y', 'n1', 0, 0), 'fresh');
    assert.equal(small.remember('z', 'n1', 0, 0), 'full');
    assert.equal(small.remember('x', 'n1', 0, 999), 'replay');
    assert.equal(small.remember('z', 'n1', 0, 1000), 'fresh');
    assert.equal(small.size, 1);
  });
});
