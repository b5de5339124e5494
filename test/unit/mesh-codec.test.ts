// Tensor encodings of mesh chunks (src/mesh/codec.ts, PROTOCOL.md §12.2): round-trip error bounds,
// NaN and ±Inf, block edges, exact binary16 conversion, and typed errors for bad input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  Codec,
  decodeInto,
  encode,
  encodedLength,
  fromHalf,
  INT8_BLOCK,
  roundTrip,
  toHalf,
} from '../../src/mesh/codec.js';
import { withCode } from '../helpers/hosts.js';

const decode = (codec: Codec, bytes: Uint8Array, count: number) => {
  const out = new Float32Array(count);
  decodeInto(codec, bytes, count, out, 0, false);
  return out;
};
const f32 = (xs: number[]) => Float32Array.from(xs);

describe('mesh tensor encodings', () => {
  it('sizes: float32 4, float16 2, int8 1 byte per element plus a 4-byte scale per 256', () => {
    assert.equal(encodedLength(Codec.NONE, 1000), 4000);
    assert.equal(encodedLength(Codec.FLOAT16, 1000), 2000);
    assert.equal(encodedLength(Codec.INT8, 256), 260);
    assert.equal(encodedLength(Codec.INT8, 257), 265);
    assert.equal(encodedLength(Codec.INT8, 0), 0);
    // int8 on the wire: ≤ 0.3 of float32 (issue 15's target) for any chunk of 16 000 elements.
    assert.ok(encodedLength(Codec.INT8, 16_000) / encodedLength(Codec.NONE, 16_000) < 0.26);
  });

  it('float32 round-trips exactly, NaN and ±Inf included', () => {
    const x = f32([0, -0, 1.5, -2, 3.4e38, 1e-45, Number.NaN, Number.POSITIVE_INFINITY, -Infinity]);
    const y = decode(Codec.NONE, encode(Codec.NONE, x), x.length);
    assert.deepEqual(Buffer.from(y.buffer), Buffer.from(x.buffer));
  });

  it('binary16: exact for every half value, round to nearest even, overflow to Inf, NaN stays NaN', () => {
    for (let h = 0; h < 65536; h++) {
      const v = fromHalf(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(fromHalf(toHalf(v))), `NaN ${h}`);
      else assert.equal(toHalf(v), h, `half 0x${h.toString(16)}`);
    }
    assert.equal(toHalf(1 + 2 ** -11), toHalf(1)); // a tie rounds to the even mantissa
    assert.equal(toHalf(1 + 3 * 2 ** -11), toHalf(1 + 2 ** -9)); // a tie rounds up to even
    assert.equal(fromHalf(toHalf(65520)), Number.POSITIVE_INFINITY); // past the largest half, 65504
    assert.equal(fromHalf(toHalf(65519)), 65504);
    assert.equal(fromHalf(toHalf(-1e6)), Number.NEGATIVE_INFINITY);
    assert.equal(fromHalf(toHalf(2 ** -25)), 0); // halfway to the smallest subnormal: to even, 0
    assert.equal(fromHalf(toHalf(2 ** -24)), 2 ** -24);
  });

  it('float16 round-trip: relative error ≤ 2^-11 for normal values', () => {
    fc.assert(
      fc.property(
        fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 300 }),
        (x) => {
          const y = roundTrip(Codec.FLOAT16, x.slice());
          for (let i = 0; i < x.length; i++) {
            const a = Math.abs(x[i]!);
            if (a >= 2 ** -14 && a <= 65504) {
              assert.ok(Math.abs(y[i]! - x[i]!) <= a * 2 ** -11, `${x[i]} → ${y[i]}`);
            } else if (a < 2 ** -14) assert.ok(Math.abs(y[i]! - x[i]!) <= 2 ** -25);
          }
        },
      ),
    );
  });

  it('int8 round-trip: error ≤ half a step (absmax/254) of its block, block by block (normal scales)', () => {
    fc.assert(
      fc.property(
        fc.float32Array({
          noNaN: true,
          noDefaultInfinity: true,
          min: Math.fround(-1e30),
          max: Math.fround(1e30),
          maxLength: 1100,
        }),
        (x) => {
          const y = roundTrip(Codec.INT8, x.slice());
          for (let b = 0; b < x.length; b += INT8_BLOCK) {
            let absmax = 0;
            for (let i = b; i < Math.min(x.length, b + INT8_BLOCK); i++)
              absmax = Math.max(absmax, Math.abs(x[i]!));
            // Plus what a subnormal scale cannot hold (a block below 127 × 2^-149 decodes as zeros).
            const bound = (absmax / 127) * 0.5 * (1 + 1e-6) + 127 * 2 ** -149;
            for (let i = b; i < Math.min(x.length, b + INT8_BLOCK); i++) {
              assert.ok(Math.abs(y[i]! - x[i]!) <= bound, `element ${i}: ${x[i]} → ${y[i]} (bound ${bound})`);
            }
          }
        },
      ),
    );
  });

  it('int8 blocks are independent: each has its own scale; the last may be short', () => {
    const x = new Float32Array(2 * INT8_BLOCK + 3);
    x.fill(0.001, 0, INT8_BLOCK);
    x.fill(1000, INT8_BLOCK, 2 * INT8_BLOCK);
    x.set([5, -5, 2.5], 2 * INT8_BLOCK);
    const bytes = encode(Codec.INT8, x);
    assert.equal(bytes.length, 3 * 4 + x.length);
    const view = new DataView(bytes.buffer);
    assert.equal(view.getFloat32(0, true), Math.fround(0.001 / 127));
    assert.equal(view.getFloat32(4 + INT8_BLOCK, true), Math.fround(1000 / 127));
    assert.equal(view.getFloat32(2 * (4 + INT8_BLOCK), true), Math.fround(5 / 127));
    const y = decode(Codec.INT8, bytes, x.length);
    // The small block keeps its precision next to the large one.
    assert.ok(Math.abs(y[0]! - 0.001) < 1e-6);
    assert.deepEqual([...y.subarray(2 * INT8_BLOCK)], [5, -5, Math.fround(64 * Math.fround(5 / 127))]);
  });

  it('int8: a block with NaN or ±Inf decodes as NaN; the other blocks are untouched; zeros stay zeros', () => {
    const x = new Float32Array(3 * INT8_BLOCK).fill(0.5);
    x[10] = Number.NaN;
    x[INT8_BLOCK + 7] = Number.NEGATIVE_INFINITY;
    x.fill(0, 2 * INT8_BLOCK);
    const y = roundTrip(Codec.INT8, x.slice());
    assert.ok(y.subarray(0, 2 * INT8_BLOCK).every((v) => Number.isNaN(v)));
    assert.ok(y.subarray(2 * INT8_BLOCK).every((v) => v === 0));
    const z = roundTrip(Codec.FLOAT16, f32([Number.NaN, Number.POSITIVE_INFINITY, -Infinity, 1]));
    assert.ok(Number.isNaN(z[0]!));
    assert.deepEqual([...z.subarray(1)], [Number.POSITIVE_INFINITY, -Infinity, 1]);
  });

  it('decoding adds in float32 when asked, the value a copy would hold', () => {
    const x = f32([0.3, -0.7, 0.11]);
    for (const codec of [Codec.NONE, Codec.FLOAT16, Codec.INT8]) {
      const bytes = encode(codec, x);
      const copy = decode(codec, bytes, 3);
      const target = f32([1, 2, 3]);
      decodeInto(codec, bytes, 3, target, 0, true);
      assert.deepEqual(
        [...target],
        [1, 2, 3].map((v, i) => Math.fround(v + copy[i]!)),
      );
    }
  });

  it('bad input is a typed error: wrong lengths, unknown encodings, a target too small', () => {
    const bytes = encode(Codec.INT8, new Float32Array(300));
    assert.throws(
      () => decodeInto(Codec.INT8, bytes.subarray(1), 300, new Float32Array(300), 0, false),
      withCode('malformed'),
    );
    assert.throws(
      () => decodeInto(Codec.FLOAT16, new Uint8Array(5), 3, new Float32Array(3), 0, false),
      withCode('malformed'),
    );
    assert.throws(
      () => decodeInto(7 as Codec, new Uint8Array(4), 1, new Float32Array(1), 0, false),
      withCode('malformed'),
    );
    assert.throws(
      () => decodeInto(Codec.NONE, new Uint8Array(8), 2, new Float32Array(2), 1, false),
      withCode('invalid_argument'),
    );
    assert.throws(() => encode(3 as Codec, new Float32Array(1)), withCode('invalid_argument'));
    assert.throws(() => encode(Codec.INT8, [1, 2] as unknown as Float32Array), withCode('invalid_argument'));
  });
});
