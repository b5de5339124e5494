import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fromBase32, toBase32 } from '../../src/util/base32.js';
import {
  ByteReader,
  ByteWriter,
  fromBase64Url,
  fromHex,
  fromUtf8,
  isBase64Url,
  toBase64Url,
  toHex,
} from '../../src/util/bytes.js';
import { b64url, NonceSchema } from '../../src/util/wire-schemas.js';

describe('byte encodings', () => {
  it('base32, base64url and hex round-trip any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        assert.deepEqual(fromBase32(toBase32(b)), b);
        assert.deepEqual(fromBase64Url(toBase64Url(b)), b);
        assert.deepEqual(fromHex(toHex(b)), b);
      }),
    );
  });

  it('base32 and base64url match RFC 4648 test vectors', () => {
    const enc = new TextEncoder();
    assert.equal(toBase32(enc.encode('foobar')), 'mzxw6ytboi');
    assert.equal(toBase64Url(enc.encode('foob')), 'Zm9vYg');
  });

  it('rejects non-canonical and invalid encodings with malformed', () => {
    assert.throws(() => fromBase32('mzxw6ytbo1'), { code: 'malformed' });
    assert.throws(() => fromBase32('mzxw6ytboj'), { code: 'malformed' });
    assert.throws(() => fromBase64Url('Zm9vYh'), { code: 'malformed' });
    assert.throws(() => fromBase64Url('Zm9v+g'), { code: 'malformed' });
    assert.throws(() => fromUtf8(new Uint8Array([0xc3, 0x28])), { code: 'malformed' });
  });

  it('isBase64Url, and the schemas of network input, accept exactly what fromBase64Url decodes', () => {
    const decodes = (s: string) => {
      try {
        fromBase64Url(s);
        return true;
      } catch {
        return false;
      }
    };
    // Every string of up to 3 characters from the alphabet and a few outsiders, then random ones: the
    // trailing-bit rule depends on the length mod 4 and the last character only.
    const chars = ['A', 'B', 'E', 'Q', 'g', 'w', '_', '-', '8', '=', '+', '/', ' ', 'é'];
    const short = [''];
    for (let len = 1; len <= 3; len++) {
      for (const prefix of short.filter((s) => s.length === len - 1))
        short.push(...chars.map((c) => prefix + c));
    }
    const random = fc.sample(fc.string({ unit: fc.constantFrom(...chars), maxLength: 12 }), 2000);
    const schema = b64url(64);
    for (const s of [...short, ...random]) {
      assert.equal(isBase64Url(s), decodes(s), JSON.stringify(s));
      assert.equal(schema.safeParse(s).success, decodes(s), JSON.stringify(s));
    }
    // The strings that passed the alphabet check alone and then threw (a relayed `handshake: ['A']`).
    for (const s of ['A', 'AB', 'AAAAB', 'Zm9vYh']) assert.equal(schema.safeParse(s).success, false, s);
    // A 22-character nonce carries 4 bits past its 16 bytes: only 0 there decodes.
    assert.equal(NonceSchema.safeParse('AAAAAAAAAAAAAAAAAAAAAA').success, true);
    assert.equal(NonceSchema.safeParse('AAAAAAAAAAAAAAAAAAAAAB').success, false);
  });

  it('ByteWriter grows past its initial size without losing bytes', () => {
    const w = new ByteWriter(1);
    w.u8(1)
      .u16(0x0203)
      .u32(0x04050607)
      .u48(2 ** 40 + 5)
      .u64(9n)
      .bytes(new Uint8Array(100).fill(7))
      .vec8(new Uint8Array([8]));
    const r = new ByteReader(w.finish());
    assert.equal(r.u8(), 1);
    assert.equal(r.u16(), 0x0203);
    assert.equal(r.u32(), 0x04050607);
    assert.equal(r.u48(), 2 ** 40 + 5);
    assert.equal(r.u64(), 9n);
    assert.deepEqual(r.bytes(100), new Uint8Array(100).fill(7));
    assert.deepEqual(r.vec8(), new Uint8Array([8]));
    r.end();
  });

  it('ByteReader reports truncation and trailing bytes as malformed', () => {
    assert.throws(() => new ByteReader(new Uint8Array(3)).u32(), { code: 'malformed' });
    assert.throws(() => new ByteReader(new Uint8Array([5, 1])).vec8(), { code: 'malformed' });
    const r = new ByteReader(new Uint8Array(2));
    r.u8();
    assert.throws(() => r.end(), { code: 'malformed' });
  });
});
