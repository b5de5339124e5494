// The in-memory directory keeps identities packed (signaling-server/packed-identity.ts): what a lookup
// answers must be the identity that was registered, byte for byte.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryDirectory } from '../../signaling-server/directory.js';
import { packIdentity, unpackIdentity } from '../../signaling-server/packed-identity.js';
import { Identity, PublicIdentity, type PublicIdentityJson } from '../../src/identity/index.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';

describe('packed identities', () => {
  it('unpack(pack(x)) is x for a real identity, which still imports, in one byte a key byte', async () => {
    const pub = (await Identity.generate()).exportPublic();
    const packed = packIdentity(pub);
    assert.deepEqual(unpackIdentity(pub.peerId, packed), pub);
    const again = await PublicIdentity.import(unpackIdentity(pub.peerId, packed));
    assert.equal(again.peerId, pub.peerId);
    const bytes = [pub.signingKey, pub.encryptionKey, pub.binding].map((f) => fromBase64Url(f).length);
    assert.equal(packed.length, 5 + bytes[0]! + bytes[1]! + bytes[2]!);
    assert.ok(packed.length < JSON.stringify(pub).length * 0.8, `${packed.length} characters`);
  });

  it('keeps every field apart at lengths from 0 to 65,535 bytes, and refuses a longer key (malformed)', () => {
    const peerId = 'a'.repeat(52);
    // 900 bytes are 1,200 base64url characters, the schema's bound; 255/256 and 65535 cross the
    // length's first byte.
    for (const [s, e, b] of [
      [0, 0, 0],
      [1, 2, 3],
      [255, 256, 0],
      [256, 255, 1],
      [900, 900, 900],
      [65535, 1, 2],
    ] as const) {
      const pub: PublicIdentityJson = {
        v: 1,
        peerId,
        signingKey: toBase64Url(randomBytes(s)),
        encryptionKey: toBase64Url(randomBytes(e)),
        binding: toBase64Url(randomBytes(b)),
      };
      assert.deepEqual(unpackIdentity(peerId, packIdentity(pub)), pub, `lengths ${s}, ${e}, ${b}`);
    }
    const long = toBase64Url(randomBytes(65536));
    const pub = { v: 1, peerId, signingKey: 'AA', encryptionKey: 'AA', binding: '' } as const;
    assert.throws(() => packIdentity({ ...pub, signingKey: long }), { code: 'malformed' });
    assert.throws(() => packIdentity({ ...pub, encryptionKey: long }), { code: 'malformed' });
  });

  it('refuses base64url that is not canonical, as an identity import does (malformed)', async () => {
    const peerId = 'b'.repeat(52);
    const canonical = { v: 1, peerId, signingKey: 'AA', encryptionKey: 'AAA', binding: 'AAA' } as const;
    assert.deepEqual(unpackIdentity(peerId, packIdentity(canonical)), canonical);
    // 'AB' has a non-zero bit past its one byte: a second spelling of 'AA', which would not come back.
    for (const field of ['signingKey', 'encryptionKey', 'binding'] as const) {
      const pub = { ...canonical, [field]: canonical[field].replace(/A$/, 'B') };
      assert.throws(() => packIdentity(pub), { code: 'malformed' }, field);
      await assert.rejects(new MemoryDirectory().register(peerId, pub, 'conn'), { code: 'malformed' });
    }
  });
});
