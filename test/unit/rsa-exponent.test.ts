// Issue 13 point 7: identities whose RSA public exponent is not 65537 (e = 3, or a 2038-bit exponent that
// makes every verification ~20× slower) must be refused with `bad_key` wherever a key enters: identity
// import, secret import, pairing messages, the peer store and backups. (Signaling auth and lookup are in
// test/signaling/auth.test.ts and test/signaling/malicious-server.test.ts.)
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { Identity, PublicIdentity } from '../../src/identity/index.js';
import { peerIdToBytes } from '../../src/identity/peer-id.js';
import { openPairingMessage, ReplayCache } from '../../src/pairing/index.js';
import { pairingSignedBytes } from '../../src/pairing/messages.js';
import { randomNonce } from '../../src/signaling/wire.js';
import { exportBackup, importBackup, openMemoryPeerStore, type PeerStore } from '../../src/store/index.js';
import { concat, fromBase64Url, toBase64Url } from '../../src/util/bytes.js';
import { type CustomIdentity, weakIdentities, weakIdentity } from '../helpers/rsa-keys.js';

const badKey = (err: unknown) => isP2PTLSError(err, 'bad_key');
const psk = () => crypto.getRandomValues(new Uint8Array(32));

describe('RSA public exponent: only 65537 is accepted (PROTOCOL.md §2)', () => {
  let weak: Array<{ name: string; identity: CustomIdentity }>;
  let standard: CustomIdentity;
  let bob: Identity;

  before(async () => {
    [weak, standard, bob] = await Promise.all([weakIdentities(), weakIdentity({}), Identity.generate()]);
  });

  it('control: an identity built the same way with e = 65537 is accepted by every entry point', async () => {
    assert.equal((await PublicIdentity.import(standard.json)).peerId, standard.json.peerId);
    assert.equal((await Identity.importSecret(standard.secretJson)).peerId, standard.json.peerId);
    const store = await openMemoryPeerStore();
    await store.put({ publicIdentity: standard.json, psk: psk() });
    assert.ok(await store.lookup(standard.json.peerId));
    await store.close();
    const opened = await openPairingMessage(bob, await pairingRequest(standard, bob), {
      replay: new ReplayCache(600_000),
    });
    assert.equal(opened.from.peerId, standard.json.peerId);
  });

  it('PublicIdentity.import refuses e = 3 and a 2038-bit e, on the signing and on the encryption key', async () => {
    for (const { name, identity } of weak) {
      await assert.rejects(PublicIdentity.import(identity.json), badKey, name);
    }
  });

  it('PublicIdentity.import refuses a modulus other than 2048, 3072 or 4096 bits: bad_key, or malformed past the size of any allowed key', async () => {
    for (const bits of [1024, 2056]) {
      await assert.rejects(
        PublicIdentity.import((await weakIdentity({ signingBits: bits })).json),
        badKey,
        `${bits}`,
      );
      await assert.rejects(
        PublicIdentity.import((await weakIdentity({ encryptionBits: bits })).json),
        badKey,
        `${bits}`,
      );
    }
    // A key encoding longer than the schema allows (1200 characters; a 4096-bit key's is 734) is refused
    // before any key import: an 8192-bit key's is 1416.
    const long = { ...standard.json, signingKey: `${standard.json.signingKey}${'A'.repeat(1200)}` };
    await assert.rejects(PublicIdentity.import(long), (err) => isP2PTLSError(err, 'malformed'));
  });

  it('Identity.importSecret refuses them', async () => {
    for (const { name, identity } of weak) {
      await assert.rejects(Identity.importSecret(identity.secretJson), badKey, name);
    }
  });

  it('a correctly signed pairing request from such an identity is refused bad_key', async () => {
    const replay = new ReplayCache(600_000);
    for (const { name, identity } of weak) {
      await assert.rejects(
        openPairingMessage(bob, await pairingRequest(identity, bob), { replay }),
        badKey,
        name,
      );
    }
    assert.equal(replay.size, 0, 'nothing refused reaches the replay cache');
  });

  it('PeerStore.put refuses such a key and stores nothing', async () => {
    const store = await openMemoryPeerStore();
    for (const { name, identity } of weak) {
      await assert.rejects(store.put({ publicIdentity: identity.json, psk: psk() }), badKey, name);
      assert.equal(await store.has(identity.json.peerId), false, name);
    }
    await store.close();
  });

  it('importBackup refuses a backup holding such a peer and imports nothing from it', async () => {
    for (const { name, identity } of weak) {
      const bytes = await backupOf([
        { peerId: standard.json.peerId, publicIdentity: standard.json },
        { peerId: identity.json.peerId, publicIdentity: identity.json },
      ]);
      const target = await openMemoryPeerStore();
      await assert.rejects(importBackup(target, bytes, 'pass'), badKey, name);
      assert.equal((await target.list()).peers.length, 0, name);
      // The backup's own identity is checked the same way.
      const withIdentity = await backupOf(
        [{ peerId: standard.json.peerId, publicIdentity: standard.json }],
        identity,
      );
      await assert.rejects(importBackup(target, withIdentity, 'pass'), badKey, `identity with ${name}`);
      assert.equal(await target.getIdentity(), undefined);
      assert.equal((await target.list()).peers.length, 0, name);
      await target.close();
    }
  });
});

/** A pairing request signed by `from`'s own (non-WebCrypto) key, exactly as a client would build it. */
async function pairingRequest(from: CustomIdentity, to: Identity) {
  const nonce = randomNonce();
  // The secret's plaintext starts with the message it belongs to (PROTOCOL.md §9): kind, from, to, nonce.
  const binding = concat(
    new Uint8Array([1]),
    peerIdToBytes(from.json.peerId),
    peerIdToBytes(to.peerId),
    fromBase64Url(nonce),
  );
  const unsigned = {
    v: 2 as const,
    kind: 'request' as const,
    from: from.json,
    to: to.peerId,
    ts: Date.now(),
    nonce,
    secret: toBase64Url(await to.publicIdentity.encrypt(concat(binding, psk()))),
  };
  return { ...unsigned, sig: toBase64Url(from.sign(pairingSignedBytes(unsigned))) };
}

/**
 * A genuine backup blob (exportBackup's own format and encryption) whose peers are whatever we say: the
 * "store" it is exported from is a stand-in that answers `snapshot()` only, so no store check is involved.
 */
async function backupOf(
  peers: Array<{ peerId: string; publicIdentity: CustomIdentity['json'] }>,
  identity?: CustomIdentity,
): Promise<Uint8Array> {
  const source = {
    snapshot: async () => ({
      ...(identity ? { identity: { exportSecret: async () => identity.secretJson } } : {}),
      peers: peers.map((p) => ({ ...p, psk: psk(), trust: 'paired', addedAt: 1, updatedAt: 1 })),
      problems: [],
    }),
  } as unknown as PeerStore;
  return (await exportBackup(source, 'pass')).bytes;
}
