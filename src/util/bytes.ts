import { fail } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 encode. */
export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/** Strict UTF-8 decode: invalid sequences are a `malformed` error, not U+FFFD. */
export function fromUtf8(b: Uint8Array): string {
  try {
    return decoder.decode(b);
  } catch (err) {
    throw fail('malformed', 'invalid UTF-8', err);
  }
}

/** Concatenates byte arrays into one new array. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Compares without an early exit, so the time taken does not reveal where two MACs first differ.
 * (JavaScript gives no hard constant-time guarantee; this removes the obvious leak.)
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lexicographic comparison: negative, zero or positive like `Array.prototype.sort`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex))
    throw fail('invalid_argument', 'invalid hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_REV = new Map([...B64URL].map((c, i) => [c, i]));
const B64URL_CODES = Uint8Array.from(B64URL, (c) => c.charCodeAt(0));
const B64URL_CHARS = /^[A-Za-z0-9_-]*$/;
const ASCII = new TextDecoder();

/** base64url without padding (RFC 4648 §5). */
export function toBase64Url(b: Uint8Array): string {
  // Written as character codes and decoded once: a string grown by `+=` is a rope of one heap object
  // per step, which whoever keeps the result keeps too (a 2048-bit key's 392 characters held ~98 of them,
  // ~5 KB; the signaling server kept ~15 KB of them per connection in its directory: heap snapshot).
  const out = new Uint8Array(Math.ceil((b.length * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out[o++] = B64URL_CODES[n >> 18]!;
    out[o++] = B64URL_CODES[(n >> 12) & 63]!;
    out[o++] = B64URL_CODES[(n >> 6) & 63]!;
    out[o++] = B64URL_CODES[n & 63]!;
  }
  if (i < b.length) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    out[o++] = B64URL_CODES[n >> 18]!;
    out[o++] = B64URL_CODES[(n >> 12) & 63]!;
    if (i + 1 < b.length) out[o++] = B64URL_CODES[(n >> 6) & 63]!;
  }
  return ASCII.decode(out);
}

/**
 * Whether {@link fromBase64Url} accepts `s`: the alphabet, a length that is not 1 more than a multiple of
 * 4, and zero bits after the last byte. What the schemas of network input check, so that a string that
 * passed them decodes without throwing (a relayed `handshake: ['A']` used to throw inside a signal
 * listener and end the process).
 */
export function isBase64Url(s: string): boolean {
  if (s.length % 4 === 1 || !B64URL_CHARS.test(s)) return false;
  // The last character carries 4 (length ≡ 2 mod 4) or 2 (≡ 3) bits past the final byte; they must be 0.
  const spare = s.length % 4 === 2 ? 0b1111 : s.length % 4 === 3 ? 0b11 : 0;
  return spare === 0 || (B64URL_REV.get(s[s.length - 1]!)! & spare) === 0;
}

/** Strict base64url decode (no padding, no whitespace, canonical trailing bits). */
export function fromBase64Url(s: string): Uint8Array {
  if (s.length % 4 === 1) throw fail('malformed', 'invalid base64url length');
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of s) {
    const v = B64URL_REV.get(c);
    if (v === undefined) throw fail('malformed', 'invalid base64url character');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw fail('malformed', 'non-canonical base64url');
  return out;
}

/** A view that WebCrypto accepts under strict DOM typings (`BufferSource` wants an ArrayBuffer backing). */
export function bs(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b as Uint8Array<ArrayBuffer>;
}

/** Appends big-endian integers and byte strings to a growing buffer. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for n bytes and returns where they go. Callers must call it before touching buf/view. */
  private reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.len += n;
    return at;
  }

  u8(v: number): this {
    const at = this.reserve(1);
    this.view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.reserve(2);
    this.view.setUint16(at, v);
    return this;
  }
  u32(v: number): this {
    const at = this.reserve(4);
    this.view.setUint32(at, v);
    return this;
  }
  /** 48-bit unsigned, for datagram sequence numbers. */
  u48(v: number): this {
    const at = this.reserve(6);
    this.view.setUint16(at, Math.floor(v / 2 ** 32));
    this.view.setUint32(at + 2, v >>> 0);
    return this;
  }
  u64(v: bigint): this {
    const at = this.reserve(8);
    this.view.setBigUint64(at, v);
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** u8 length prefix, then the bytes. */
  vec8(b: Uint8Array): this {
    if (b.length > 0xff) throw fail('invalid_argument', 'vector too long for u8 length');
    return this.u8(b.length).bytes(b);
  }
  /** u16 length prefix, then the bytes. */
  vec16(b: Uint8Array): this {
    if (b.length > 0xffff) throw fail('invalid_argument', 'vector too long for u16 length');
    return this.u16(b.length).bytes(b);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads big-endian fields; any read past the end is a `malformed` error. */
export class ByteReader {
  private readonly view: DataView;
  private off = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what = 'message',
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private take(n: number): number {
    if (this.off + n > this.buf.length) throw fail('malformed', `${this.what} truncated`);
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }
  u16(): number {
    return this.view.getUint16(this.take(2));
  }
  u32(): number {
    return this.view.getUint32(this.take(4));
  }
  u48(): number {
    const at = this.take(6);
    return this.view.getUint16(at) * 2 ** 32 + this.view.getUint32(at + 2);
  }
  u64(): bigint {
    return this.view.getBigUint64(this.take(8));
  }
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }
  vec8(): Uint8Array {
    return this.bytes(this.u8());
  }
  vec16(): Uint8Array {
    return this.bytes(this.u16());
  }
  /** u32 length prefix (at most `max`), then the bytes. */
  vec32(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) throw fail('message_too_large', `length ${n} exceeds ${max}`);
    return this.bytes(n);
  }
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
  /** Asserts the whole input was consumed: trailing bytes are a sign of tampering or a bug. */
  end(): void {
    if (this.off !== this.buf.length)
      throw fail('malformed', `${this.what} has ${this.remaining} trailing bytes`);
  }
}
