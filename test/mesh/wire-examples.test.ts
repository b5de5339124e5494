// The byte-exact mesh frames of docs/PROTOCOL.md §12.5: the encoder produces them, the decoder reads
// them back, and the document still shows them (so the spec cannot drift from the code).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { decodeInto } from '../../src/mesh/codec.js';
import {
  decodeFrame,
  encodeAbort,
  encodeChunk,
  encodeData,
  encodeLost,
  encodeReady,
  encodeResult,
} from '../../src/mesh/wire.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { ROOT } from '../helpers/processes.js';

const A = 'a'.repeat(52);
const B = 'b'.repeat(52);
const chunk = (codec: 0 | 1 | 2) =>
  ({ phase: 0, codec, seq: 7, step: 1, offset: 250, view: 0x01234567 }) as const;

const examples = [
  { hex: '02016869', bytes: () => encodeData(new TextEncoder().encode('hi')) },
  {
    hex: '0202018200000007deadbeef000003e80000000101234567',
    bytes: () =>
      encodeReady({
        kind: 1,
        seq: 7,
        group: 0xdeadbeef,
        length: 1000,
        param: 1,
        codec: 2,
        elastic: true,
        view: 0x01234567,
      }),
  },
  {
    hex: '020300000000000700000001000000fa00000002012345670000c03f000000c0',
    bytes: () => encodeChunk(chunk(0), new Float32Array([1.5, -2])),
    values: [1.5, -2],
  },
  {
    hex: '020300010000000700000001000000fa0000000201234567003e00c0',
    bytes: () => encodeChunk(chunk(1), new Float32Array([1.5, -2])),
    values: [1.5, -2],
  },
  {
    hex: '020300020000000700000001000000fa00000003012345670402813c5f8120',
    bytes: () => encodeChunk(chunk(2), new Float32Array([1.5, -2, 0.5])),
    // scale 2/127 in binary32; q = 95, −127, 32
    values: [95, -127, 32].map((q) => Math.fround(q * Math.fround(2 / 127))),
  },
  {
    hex: '0204000000000007106d6573685f6d656d6265725f6c656674627965',
    bytes: () => encodeAbort({ seq: 7, code: 'mesh_member_left', reason: 'bye' }),
  },
  {
    hex: `0205000000000007${'61'.repeat(52)}`,
    bytes: () => encodeLost({ seq: 7, peerId: A }),
  },
  {
    hex: `020600000000000701234567000003e8000234${'61'.repeat(52)}34${'62'.repeat(52)}`,
    bytes: () => encodeResult({ seq: 7, view: 0x01234567, length: 1000, contributors: [A, B] }),
  },
];

it('PROTOCOL.md §12.5: each example is what the encoder writes, decodes, and is in the document', () => {
  const spec = readFileSync(join(ROOT, 'docs', 'PROTOCOL.md'), 'utf8');
  const section = spec.slice(spec.indexOf('### 12.5 Examples')).replaceAll('` `', '');
  for (const { hex, bytes, values } of examples) {
    assert.equal(toHex(bytes()), hex);
    const shown = hex.replace(/(61){52}/g, '61×52').replace(/(62){52}/g, '62×52');
    assert.ok(section.includes(`\`${shown}\``), `PROTOCOL.md §12.5 shows ${shown}`);
    const frame = decodeFrame(fromHex(hex));
    assert.deepEqual(decodeFrame(bytes()), frame);
    if (values) {
      assert.ok(frame.type === 3, 'a CHUNK');
      const out = new Float32Array(frame.count);
      decodeInto(frame.codec, frame.payload, frame.count, out, 0, false);
      assert.deepEqual([...out], values);
    }
  }
});
