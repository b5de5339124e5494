/**
 * The handshake's ECDHE and RSA-PSS through node:crypto (what Node hosts use) against WebCrypto (what
 * browsers use): each side may use either and they agree; node:crypto refuses every bad key share and
 * bad signature WebCrypto refuses, with the same codes.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { webCryptoHandshake } from '../../src/host/dial.js';
import type { HandshakeCrypto } from '../../src/host/types.js';
import { Identity } from '../../src/identity/identity.js';
import { deriveShared } from '../../src/protocol/ecdh.js';
import {
  generateEphemeral,
  type HandshakeOptions,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
} from '../../src/protocol/index.js';
import { earlySecrets, hmac, sha256 } from '../../src/protocol/key-schedule.js';
import { nodeHandshakeCrypto } from '../../src/runtime/node-handshake.js';
import { concat, fromHex, utf8 } from '../../src/util/bytes.js';
import {
  badP256Shares,
  flipBit,
  identities,
  randomPsk,
  runHandshake,
  SUITES,
  withCode,
  X25519_LOW_ORDER,
} from '../helpers/protocol.js';

const PROVIDERS = [
  ['node:crypto', nodeHandshakeCrypto],
  ['WebCrypto', webCryptoHandshake],
] as const;

describe('node:crypto handshake crypto', () => {
  let alice: Identity;
  let bob: Identity;
  let mallory: Identity;
  let psk: Uint8Array;

  before(async () => {
    [alice, bob, , mallory] = (await identities()) as [Identity, Identity, Identity, Identity];
    psk = randomPsk();
  });

  /** Handshake options for `me` dialing or answering `peer`, with the public-key work done by `crypto`. */
  const side = (
    crypto: HandshakeCrypto,
    me: Identity,
    peer: Identity,
    extra: Partial<HandshakeOptions> = {},
  ) => ({
    identity: crypto.signer(me),
    peer: crypto.verifier(peer.publicIdentity),
    psk,
    keyExchange: crypto.keyExchange,
    ...extra,
  });

  for (const s of SUITES) {
    describe(`suite ${s.name}`, () => {
      for (const [iName, iCrypto] of PROVIDERS) {
        for (const [rName, rCrypto] of PROVIDERS) {
          it(`initiator on ${iName}, responder on ${rName}: same transcript and secrets`, async () => {
            const run = await runHandshake(
              side(iCrypto, alice, bob, { suite: s.suite }),
              side(rCrypto, bob, alice),
            );
            assert.equal(run.initiator.suite, s.suite);
            assert.deepEqual(run.initiator.transcriptHash, run.responder.transcriptHash);
            assert.deepEqual(run.initiator.secrets, run.responder.secrets);
          });
        }
      }

      it('node:crypto makes shares of the wire length and the same shared secret as WebCrypto', async () => {
        const ours = await generateEphemeral(s.suite, nodeHandshakeCrypto.keyExchange);
        const theirs = await generateEphemeral(s.suite);
        assert.equal(ours.share.length, s.shareLen);
        if (s.name === 'P-256') assert.equal(ours.share[0], 0x04, 'uncompressed point');
        assert.deepEqual(
          await deriveShared(s.suite, ours, theirs.share, nodeHandshakeCrypto.keyExchange),
          await deriveShared(s.suite, theirs, ours.share),
        );
      });

      it('node:crypto refuses invalid and low-order shares (bad_key) and wrong lengths (malformed), both roles', async () => {
        const bad = s.name === 'X25519' ? X25519_LOW_ORDER.map((h) => fromHex(h)) : await badP256Shares();
        const own = await generateEphemeral(s.suite, nodeHandshakeCrypto.keyExchange);
        for (const share of bad) {
          await assert.rejects(
            deriveShared(s.suite, own, share, nodeHandshakeCrypto.keyExchange),
            withCode('bad_key'),
          );
        }
        await assert.rejects(
          deriveShared(s.suite, own, own.share.subarray(1), nodeHandshakeCrypto.keyExchange),
          withCode('malformed'),
        );
        // Through the handshake: a responder on node:crypto, a ClientHello share replaced behind a valid
        // binder (only a PSK holder can make one); an initiator on node:crypto, a ServerHello share replaced.
        const i = await InitiatorHandshake.start(side(nodeHandshakeCrypto, alice, bob, { suite: s.suite }));
        const shareAt = 108; // record header 2 + magic 4 + version + type + suite 2 + ids 64 + random 32 + length 2
        const body = i.hello.slice(2, i.hello.length - 32);
        body.set(bad[0]!, shareAt - 2);
        const { binderKey } = await earlySecrets(psk);
        const hello = concat(new Uint8Array([1, 0]), body, await hmac(binderKey, await sha256(body)));
        await assert.rejects(
          ResponderHandshake.accept(parseClientHello(hello), side(nodeHandshakeCrypto, bob, alice)),
          withCode('bad_key'),
        );
        const r = await ResponderHandshake.accept(
          parseClientHello(i.hello),
          side(nodeHandshakeCrypto, bob, alice),
        );
        const serverHello = r.records[0]!.slice();
        serverHello.set(bad[0]!, 44); // header 2 + magic 4 + version + type + suite 2 + random 32 + length 2
        await assert.rejects(i.receive(serverHello), withCode('bad_key'));
      });
    });
  }

  it('P-256 shares in compressed or hybrid form (the same point) are refused: bad_key', async () => {
    const suite = SUITES[1].suite;
    const own = await generateEphemeral(suite, nodeHandshakeCrypto.keyExchange);
    const peer = (await generateEphemeral(suite)).share;
    const hybrid = peer.slice();
    hybrid[0] = 0x06 | (peer[64]! & 1);
    const compressedPadded = peer.slice();
    compressedPadded[0] = 0x02 | (peer[64]! & 1);
    for (const share of [hybrid, compressedPadded]) {
      await assert.rejects(
        deriveShared(suite, own, share, nodeHandshakeCrypto.keyExchange),
        withCode('bad_key'),
      );
    }
  });

  it("an ephemeral of the other provider is the caller's mistake (invalid_argument), not a bad share", async () => {
    for (const s of SUITES) {
      const web = await generateEphemeral(s.suite);
      const node = await generateEphemeral(s.suite, nodeHandshakeCrypto.keyExchange);
      await assert.rejects(
        deriveShared(s.suite, web, node.share, nodeHandshakeCrypto.keyExchange),
        withCode('invalid_argument'),
      );
      await assert.rejects(deriveShared(s.suite, node, web.share), withCode('invalid_argument'));
    }
  });

  it('signatures: node:crypto and WebCrypto verify each other; a flipped bit, a truncation or garbage is false, never a throw', async () => {
    const data = utf8('p2ptls1 responder signature\0transcript');
    const signer = nodeHandshakeCrypto.signer(alice);
    const verifier = nodeHandshakeCrypto.verifier(alice.publicIdentity);
    const nodeSig = await signer.sign(data);
    const webSig = await alice.sign(data);
    assert.equal(signer.peerId, alice.peerId);
    assert.equal(verifier.peerId, alice.peerId);
    assert.equal(await alice.publicIdentity.verify(nodeSig, data), true);
    assert.equal(await verifier.verify(webSig, data), true);
    assert.equal(await verifier.verify(nodeSig, data), true);
    for (const bad of [
      flipBit(nodeSig, 0, 0),
      flipBit(nodeSig, nodeSig.length - 1, 7),
      nodeSig.subarray(1),
      new Uint8Array(0),
      new Uint8Array(4096),
    ]) {
      assert.equal(await verifier.verify(bad, data), false);
    }
    assert.equal(await verifier.verify(nodeSig, flipBit(data, 3, 1)), false);
    assert.equal(await nodeHandshakeCrypto.verifier(mallory.publicIdentity).verify(nodeSig, data), false);
  });

  it('a pinned key that is not the signer’s fails the handshake on node:crypto: bad_signature at either end', async () => {
    const i = await InitiatorHandshake.start(
      side(nodeHandshakeCrypto, alice, bob, {
        // Bob's peerId, Mallory's key: what a store holding the wrong key for Bob would pin.
        peer: { ...nodeHandshakeCrypto.verifier(mallory.publicIdentity), peerId: bob.peerId },
      }),
    );
    const r = await ResponderHandshake.accept(
      parseClientHello(i.hello),
      side(nodeHandshakeCrypto, bob, alice),
    );
    await i.receive(r.records[0]!);
    await assert.rejects(i.receive(r.records[1]!), withCode('bad_signature'));

    const i2 = await InitiatorHandshake.start(side(nodeHandshakeCrypto, mallory, bob));
    const r2 = await ResponderHandshake.accept(parseClientHello(i2.hello.slice()), {
      ...side(nodeHandshakeCrypto, bob, mallory),
      peer: { ...nodeHandshakeCrypto.verifier(alice.publicIdentity), peerId: mallory.peerId },
    });
    await i2.receive(r2.records[0]!);
    const { records } = await i2.receive(r2.records[1]!);
    await assert.rejects(r2.receive(records[0]!), withCode('bad_signature'));
  });

  it('a 3072-bit identity signs in the thread pool: the signature verifies under WebCrypto', async () => {
    const big = await Identity.generate({ modulusLength: 3072 });
    const data = utf8('p2ptls1 initiator signature\0transcript');
    const sig = await nodeHandshakeCrypto.signer(big).sign(data);
    assert.equal(sig.length, 384);
    assert.equal(await big.publicIdentity.verify(sig, data), true);
  });
});
