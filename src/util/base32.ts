import { fail } from '../errors.js';

// RFC 4648 §6 alphabet, lower case, no padding: case-insensitive to read aloud, safe in URLs and file names.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const REVERSE = new Map([...ALPHABET].map((c, i) => [c, i]));

export function toBase32(b: Uint8Array): string {
  let s = '';
  let acc = 0;
  let bits = 0;
  for (const x of b) {
    acc = ((acc << 8) | x) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      s += ALPHABET[(acc >> bits) & 31]!;
    }
  }
  if (bits > 0) s += ALPHABET[(acc << (5 - bits)) & 31]!;
  return s;
}

/** Strict decode: lower or upper case accepted, anything else (padding, spaces, 0/1/8/9) is `malformed`. */
export function fromBase32(s: string): Uint8Array {
  const out = new Uint8Array(Math.floor((s.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of s.toLowerCase()) {
    const v = REVERSE.get(c);
    if (v === undefined) throw fail('malformed', 'invalid base32 character');
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) throw fail('malformed', 'non-canonical base32');
  return out;
}
