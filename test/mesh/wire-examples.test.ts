// The byte-exact mesh frames of docs/PROTOCOL.md §12.4: the encoder produces them, the decoder reads
// them back, and the document still shows them (so the spec cannot drift from the code).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { decodeFrame, encodeAbort, encodeChunk, encodeData, encodeReady } from '../../src/mesh/wire.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { ROOT } from '../helpers/processes.js';

const examples = [
  { hex: '01016869', bytes: () => encodeData(new TextEncoder().encode('hi')) },
  {
    hex: '0102010000000007deadbeef000003e80000000100000000',
    bytes: () => encodeReady({ kind: 1, seq: 7, group: 0xdeadbeef, length: 1000, param: 1 }),
  },
  {
    hex: '010300000000000700000001000000fa00000002000000000000c03f000000c0',
    bytes: () => encodeChunk({ phase: 0, seq: 7, step: 1, offset: 250 }, new Float32Array([1.5, -2])),
  },
  {
    hex: '0104000000000007106d6573685f6d656d6265725f6c656674627965',
    bytes: () => encodeAbort({ seq: 7, code: 'mesh_member_left', reason: 'bye' }),
  },
];

it('PROTOCOL.md §12.4: each example is what the encoder writes, decodes, and is in the document', () => {
  const spec = readFileSync(join(ROOT, 'docs', 'PROTOCOL.md'), 'utf8');
  const section = spec.slice(spec.indexOf('### 12.4 Examples'));
  for (const { hex, bytes } of examples) {
    assert.equal(toHex(bytes()), hex);
    assert.ok(section.includes(`\`${hex}\``), `PROTOCOL.md §12.4 shows ${hex}`);
    const frame = decodeFrame(fromHex(hex));
    assert.deepEqual(decodeFrame(bytes()), frame);
  }
  const chunk = decodeFrame(fromHex(examples[2]!.hex));
  assert.ok(chunk.type === 3, 'a CHUNK');
  assert.equal(chunk.count, 2);
  const view = new DataView(chunk.payload.buffer, chunk.payload.byteOffset, chunk.payload.byteLength);
  assert.deepEqual([view.getFloat32(0, true), view.getFloat32(4, true)], [1.5, -2]);
});
