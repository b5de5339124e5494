import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { Identity, isPeerId, PublicIdentity, peerIdOf, verifyPeerId } from '../../src/identity/index.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';

const rejectsWith = (code: string) => (err: unknown) => isP2PTLSError(err) && err.code === code;

describe('Identity', () => {
  let alice: Identity;
  let bob: Identity;
  before(async () => {
    [alice, bob] = await Promise.all([Identity.generate(), Identity.generate()]);
  });

  it('has a self-certifying peerId: base32 SHA-256 of the signing SPKI', async () => {
    assert.ok(isPeerId(alice.peerId));
    assert.equal(alice.peerId.length, 52);
    assert.equal(await peerIdOf(alice.publicIdentity.signingSpki), alice.peerId);
    assert.notEqual(alice.peerId, bob.peerId);
    await verifyPeerId(alice.peerId, alice.publicIdentity.signingKey);
  });

  it('verifyPeerId rejects a key that hashes to another id', async () => {
    await assert.rejects(
      verifyPeerId(alice.peerId, bob.publicIdentity.signingSpki),
      rejectsWith('peer_id_mismatch'),
    );
  });

  it('round-trips the public part and verifies signatures with it', async () => {
    const pub = await PublicIdentity.import(JSON.stringify(alice.exportPublic()));
    assert.equal(pub.peerId, alice.peerId);
    const msg = new TextEncoder().encode('hello');
    assert.ok(await pub.verify(await alice.sign(msg), msg));
    assert.ok(!(await pub.verify(await bob.sign(msg), msg)));
  });

  it('rejects a public identity whose keys belong to someone else', async () => {
    const forged = { ...bob.exportPublic(), peerId: alice.peerId };
    await assert.rejects(PublicIdentity.import(forged), rejectsWith('peer_id_mismatch'));
  });

  it('rejects an encryption key that the signing key did not bind', async () => {
    const swapped = { ...alice.exportPublic(), encryptionKey: bob.exportPublic().encryptionKey };
    await assert.rejects(PublicIdentity.import(swapped), rejectsWith('bad_signature'));
    const sig = fromBase64Url(alice.exportPublic().binding);
    sig[10]! ^= 1;
    await assert.rejects(
      PublicIdentity.import({ ...alice.exportPublic(), binding: toBase64Url(sig) }),
      rejectsWith('bad_signature'),
    );
  });

  it('rejects malformed JSON with a typed error', async () => {
    await assert.rejects(PublicIdentity.import('{nope'), rejectsWith('malformed'));
    await assert.rejects(PublicIdentity.import({ v: 2 }), rejectsWith('malformed'));
    await assert.rejects(
      PublicIdentity.import({ ...alice.exportPublic(), signingKey: 'AAAA' }),
      rejectsWith('bad_key'),
    );
  });

  it('round-trips the secret export and keeps signing and decrypting', async () => {
    const secret = await alice.exportSecret();
    const again = await Identity.importSecret(JSON.stringify(secret));
    assert.equal(again.peerId, alice.peerId);
    const msg = new TextEncoder().encode('still me');
    assert.ok(await alice.publicIdentity.verify(await again.sign(msg), msg));
    const ct = await alice.publicIdentity.encrypt(msg);
    assert.deepEqual(await again.decrypt(ct), msg);
    await assert.rejects(bob.decrypt(ct), rejectsWith('bad_key'));
  });

  it('refuses a secret export whose private key does not match the peerId', async () => {
    const a = await alice.exportSecret();
    const b = await bob.exportSecret();
    await assert.rejects(
      Identity.importSecret({ ...a, signingKey: b.signingKey }),
      rejectsWith('peer_id_mismatch'),
    );
  });

  it('non-extractable identities sign but cannot be exported', async () => {
    const sealed = await Identity.importSecret(await alice.exportSecret(), { extractable: false });
    await assert.rejects(sealed.exportSecret(), rejectsWith('invalid_argument'));
    const msg = new Uint8Array([1, 2, 3]);
    assert.ok(await alice.publicIdentity.verify(await sealed.sign(msg), msg));
  });

  it('rejects unsupported modulus sizes', async () => {
    // @ts-expect-error: 1024 is deliberately not a ModulusLength
    await assert.rejects(Identity.generate({ modulusLength: 1024 }), rejectsWith('invalid_argument'));
  });
});
