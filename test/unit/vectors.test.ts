import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { buildVector, replaySigner, type Vector } from '../vectors/build.js';

for (const name of ['x25519', 'p256']) {
  const vector = JSON.parse(
    readFileSync(new URL(`../vectors/handshake-${name}.json`, import.meta.url), 'utf8'),
  ) as Vector;

  describe(`test vectors: ${vector.description}`, () => {
    it('rebuilds every key-schedule value, handshake message and record byte for byte', async () => {
      const again = await buildVector(vector.inputs, replaySigner(vector.inputs));
      assert.deepEqual(again.keySchedule, vector.keySchedule);
      assert.deepEqual(again.handshake, vector.handshake);
      assert.deepEqual(again.signaling, vector.signaling);
      assert.deepEqual(again.records, vector.records);
    });

    it('rejects the vector if a recorded signature is altered', async () => {
      const sig = vector.inputs.responder.signature!;
      const bad = {
        ...vector.inputs,
        responder: { ...vector.inputs.responder, signature: `${sig.slice(0, -2)}00` },
      };
      await assert.rejects(buildVector(bad, replaySigner(bad)), { code: 'bad_signature' });
    });
  });
}
