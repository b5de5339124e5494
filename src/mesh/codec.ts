/**
 * Tensor encodings of mesh chunks (PROTOCOL.md §12.2): float32, float16, and int8 with one float32
 * scale per block of 256 elements. Pure: bytes in, bytes out. All multi-byte values are little-endian.
 *
 *   none     count × binary32
 *   float16  count × binary16 (round to nearest even; beyond ±65504 becomes ±Inf; NaN stays NaN)
 *   int8     per block of up to 256 elements: binary32 scale ‖ block × int8 q, where
 *            scale = absmax(block) / 127 and value = q × scale. A block holding any NaN or ±Inf is
 *            sent with scale NaN, so all of its elements decode as NaN (int8 cannot carry the others'
 *            values next to a non-finite one; NaN makes the damage visible instead of hiding it).
 *
 * int8 costs 1 + 4/256 bytes per element (0.254 of float32), float16 2 bytes (0.5).
 */
import { fail } from '../errors.js';

/** Encodings a chunk may use, as carried in READY and CHUNK (byte 3). */
export const Codec = {
  NONE: 0,
  FLOAT16: 1,
  INT8: 2,
} as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

/** The `compression` option of `allReduce`. */
export type Compression = 'none' | 'float16' | 'int8';

export const COMPRESSIONS: Record<Compression, Codec> = {
  none: Codec.NONE,
  float16: Codec.FLOAT16,
  int8: Codec.INT8,
};

/** Elements per int8 block (each block has its own scale). */
export const INT8_BLOCK = 256;

export function isCodec(c: number): c is Codec {
  return c === Codec.NONE || c === Codec.FLOAT16 || c === Codec.INT8;
}

/** Bytes that `count` elements take in `codec`. */
export function encodedLength(codec: Codec, count: number): number {
  switch (codec) {
    case Codec.NONE:
      return 4 * count;
    case Codec.FLOAT16:
      return 2 * count;
    case Codec.INT8:
      return count + 4 * Math.ceil(count / INT8_BLOCK);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** binary32 → binary16 bits, round to nearest even. */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: value = m × 2^-24 with m = (1.mant) × 2^(e − 14 + 23 − 23).
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa rounds up into the exponent, and from the largest finite into Inf.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** binary16 bits → value. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Every binary16 value, indexed by its bits: decoding is one table read per element. */
const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = fromHalf(h);
  return t;
})();

/**
 * Encodes `values` into `out` at `at` (which must have `encodedLength(codec, values.length)` bytes
 * there); returns `out`.
 */
export function encodeInto(codec: Codec, values: Float32Array, out: Uint8Array, at: number): Uint8Array {
  const count = values.length;
  if (out.length - at < encodedLength(codec, count)) {
    throw fail('invalid_argument', `${encodedLength(codec, count)} bytes needed, ${out.length - at} given`);
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  switch (codec) {
    case Codec.NONE:
      if (LITTLE_ENDIAN) out.set(new Uint8Array(values.buffer, values.byteOffset, 4 * count), at);
      else for (let i = 0; i < count; i++) view.setFloat32(at + 4 * i, values[i]!, true);
      return out;
    case Codec.FLOAT16:
      for (let i = 0; i < count; i++) {
        const h = toHalf(values[i]!);
        out[at + 2 * i] = h & 0xff;
        out[at + 2 * i + 1] = h >>> 8;
      }
      return out;
    case Codec.INT8: {
      let p = at;
      for (let b = 0; b < count; b += INT8_BLOCK) {
        const end = Math.min(count, b + INT8_BLOCK);
        let absmax = 0;
        for (let i = b; i < end; i++) {
          const a = Math.abs(values[i]!);
          // NaN fails `a <= Infinity`, ±Inf is Infinity: both poison the block.
          if (!(a < Number.POSITIVE_INFINITY)) {
            absmax = Number.NaN;
            break;
          }
          if (a > absmax) absmax = a;
        }
        const scale = Math.fround(absmax / 127);
        view.setFloat32(p, scale, true);
        p += 4;
        // q = round(v / scale), clamped: float32 rounding of the scale can put |v/scale| a hair over 127.
        const inv = scale > 0 ? 1 / scale : 0;
        for (let i = b; i < end; i++) {
          const q = Number.isNaN(scale) ? 0 : Math.max(-127, Math.min(127, Math.round(values[i]! * inv)));
          out[p++] = q & 0xff;
        }
      }
      return out;
    }
    default:
      throw fail('invalid_argument', `unknown tensor encoding ${String(codec)}`);
  }
}

/** Encodes `values` into new bytes. */
export function encode(codec: Codec, values: Float32Array): Uint8Array {
  if (!(values instanceof Float32Array)) throw fail('invalid_argument', 'encode takes a Float32Array');
  if (!isCodec(codec)) throw fail('invalid_argument', `unknown tensor encoding ${String(codec)}`);
  return encodeInto(codec, values, new Uint8Array(encodedLength(codec, values.length)), 0);
}

/**
 * Decodes `count` elements from `payload` into `target` at `at`, adding to what is there (`add`) or
 * overwriting it. `payload` must be exactly `encodedLength(codec, count)` bytes, else `malformed`.
 */
export function decodeInto(
  codec: Codec,
  payload: Uint8Array,
  count: number,
  target: Float32Array,
  at: number,
  add: boolean,
): void {
  if (!isCodec(codec)) throw fail('malformed', `unknown tensor encoding ${String(codec)}`);
  if (payload.length !== encodedLength(codec, count)) {
    throw fail(
      'malformed',
      `${count} elements take ${encodedLength(codec, count)} bytes, not ${payload.length}`,
    );
  }
  if (at < 0 || at + count > target.length) {
    throw fail('invalid_argument', `elements ${at}+${count} are outside a tensor of ${target.length}`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  switch (codec) {
    case Codec.NONE: {
      // A float32 view when the bytes allow one (a copy otherwise): no per-element DataView reads.
      const values = !LITTLE_ENDIAN
        ? Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true))
        : payload.byteOffset % 4 === 0
          ? new Float32Array(payload.buffer, payload.byteOffset, count)
          : new Float32Array(payload.slice().buffer);
      if (add) for (let i = 0; i < count; i++) target[at + i]! += values[i]!;
      else target.set(values, at);
      return;
    }
    case Codec.FLOAT16:
      for (let i = 0; i < count; i++) {
        const v = HALF_TABLE[payload[2 * i]! | (payload[2 * i + 1]! << 8)]!;
        if (add) target[at + i]! += v;
        else target[at + i] = v;
      }
      return;
    case Codec.INT8: {
      let p = 0;
      for (let b = 0; b < count; b += INT8_BLOCK) {
        const end = Math.min(count, b + INT8_BLOCK);
        const scale = view.getFloat32(p, true);
        p += 4;
        for (let i = b; i < end; i++) {
          // Rounded to binary32 before adding, so a copy and an add see the same decoded value.
          const v = Math.fround(view.getInt8(p++) * scale);
          if (add) target[at + i]! += v;
          else target[at + i] = v;
        }
      }
      return;
    }
  }
}

/** Replaces `values` by what they decode to after encoding (in place); returns them. */
export function roundTrip(codec: Codec, values: Float32Array): Float32Array {
  if (codec === Codec.NONE) return values;
  decodeInto(codec, encode(codec, values), values.length, values, 0, false);
  return values;
}
