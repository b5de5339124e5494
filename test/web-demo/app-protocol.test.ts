// The demo's TCP-mode messages: round trips, and every malformed or hostile input rejected with a typed
// error that leaves the receiver's state intact.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type Control,
  decodeAppMessage,
  encodeControl,
  encodeFileChunk,
  IncomingFile,
  MAX_FILE_BYTES,
  sha256OfBlob,
} from '../../web-demo/src/app-protocol.js';
import { withCode } from '../helpers/hosts.js';

const enc = new TextEncoder();
const control = (json: string) => new Uint8Array([0x01, ...enc.encode(json)]);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('web demo: app messages', () => {
  it('control messages and file chunks round-trip', () => {
    const messages: Control[] = [
      { type: 'chat', id: 'a', text: 'héllo ✓' },
      { type: 'file-offer', id: 7, name: 'w.bin', mime: '', size: 3, sha256: 'a'.repeat(64) },
      { type: 'file-result', id: 7, ok: false, reason: 'too many transfers' },
      { type: 'video', on: true },
    ];
    for (const m of messages) assert.deepEqual(decodeAppMessage(encodeControl(m)), m);
    const chunk = decodeAppMessage(encodeFileChunk(9, 2 ** 28, new Uint8Array([1, 2, 3])));
    assert.deepEqual(chunk, { type: 'file-chunk', id: 9, offset: 2 ** 28, data: new Uint8Array([1, 2, 3]) });
  });

  it('rejects empty, unknown, truncated, non-JSON, invalid UTF-8 and schema-violating messages', () => {
    const bad: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0x03, 1, 2]),
      new Uint8Array([0x02, 0, 0, 0, 1]),
      control('{not json'),
      new Uint8Array([0x01, 0xff, 0xfe]),
      control('{"type":"chat","id":"x"}'),
      control('{"type":"chat","id":"x","text":""}'),
      control(`{"type":"chat","id":"x","text":"${'a'.repeat(4001)}"}`),
      control('{"type":"chat","id":"x","text":"hi","extra":1}'),
      control('{"type":"file-offer","id":1,"name":"f","mime":"","size":-1,"sha256":"00"}'),
      control(
        `{"type":"file-offer","id":1,"name":"f","mime":"","size":${MAX_FILE_BYTES + 1},"sha256":"${'0'.repeat(64)}"}`,
      ),
      control('{"type":"__proto__"}'),
      control('null'),
    ];
    for (const b of bad) assert.throws(() => decodeAppMessage(b), withCode('malformed'));
  });

  it('never throws anything but a typed error on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(0x01, 0x02, 0x03), (body, type) => {
        try {
          decodeAppMessage(new Uint8Array([type, ...body]));
        } catch (err) {
          withCode('malformed')(err);
        }
      }),
    );
  });
});

describe('web demo: incoming file', () => {
  const data = crypto.getRandomValues(new Uint8Array(1000));
  const offer = {
    type: 'file-offer',
    id: 1,
    name: 'f',
    mime: '',
    size: data.length,
    sha256: sha(data),
  } as const;
  const chunk = (offset: number, bytes: Uint8Array) =>
    ({ type: 'file-chunk', id: 1, offset, data: bytes }) as const;

  it('accepts in-order chunks and verifies the hash', async () => {
    const f = new IncomingFile(offer);
    f.add(chunk(0, data.subarray(0, 600)));
    f.add(chunk(600, data.subarray(600)));
    const { blob, sha256 } = await f.finish();
    assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), data);
    assert.equal(sha256, offer.sha256);
  });

  it('refuses gaps, replays, overflow and a wrong hash without corrupting what it holds', async () => {
    const f = new IncomingFile(offer);
    f.add(chunk(0, data.subarray(0, 500)));
    assert.throws(() => f.add(chunk(600, data.subarray(600))), withCode('malformed'));
    assert.throws(() => f.add(chunk(0, data.subarray(0, 500))), withCode('malformed'));
    assert.throws(() => f.add(chunk(500, new Uint8Array(501))), withCode('message_too_large'));
    await assert.rejects(f.finish(), withCode('malformed'));
    f.add(chunk(500, data.subarray(500)));
    assert.deepEqual(new Uint8Array(await (await f.finish()).blob.arrayBuffer()), data);

    const flipped = data.slice();
    flipped[123] = (flipped[123] ?? 0) ^ 1;
    const g = new IncomingFile(offer);
    g.add(chunk(0, flipped));
    await assert.rejects(g.finish(), withCode('malformed'));
  });
});

describe('web demo: large files, slice by slice', () => {
  it('sha256OfBlob matches a one-shot SHA-256 across slice boundaries', async () => {
    for (const size of [0, 1, 63, 64, 65, 1000, 4096 + 3]) {
      const data = crypto.getRandomValues(new Uint8Array(size));
      assert.equal(await sha256OfBlob(new Blob([data]), 64), sha(data), `size ${size}`);
    }
  });

  it('a 40 MiB file in 256 KiB chunks comes out intact (received bytes moved into a Blob on the way)', async () => {
    const size = 40 * 1024 * 1024 + 123;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65_536)
      crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65_536)));
    const f = new IncomingFile({ type: 'file-offer', id: 2, name: 'big', mime: '', size, sha256: sha(data) });
    for (let at = 0; at < size; at += 256 * 1024) {
      f.add({ type: 'file-chunk', id: 2, offset: at, data: data.subarray(at, at + 256 * 1024) });
    }
    const { blob, sha256 } = await f.finish();
    assert.equal(blob.size, size);
    assert.equal(sha256, sha(data));
    assert.equal(sha(new Uint8Array(await blob.arrayBuffer())), sha(data));
  });
});
