// examples/train-logistic.ts: data-parallel SGD over 4 mesh members gives, step for step, the losses of
// full-batch training on one node (float32 gradient exchange: within 1e-5), and the loss falls.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generate, trainMesh, trainSingle } from '../../examples/train-logistic.js';

describe('example: data-parallel logistic regression', () => {
  it('4 members follow single-node training step for step', async () => {
    const data = generate(2048, 8, 11);
    const steps = 8;
    const single = trainSingle(data, steps, 0.5);
    const members = await trainMesh(data, 4, steps, 0.5);
    assert.equal(members.length, 4);
    for (const losses of members) {
      assert.equal(losses.length, steps);
      for (const [s, l] of losses.entries()) {
        assert.ok(Math.abs(l - single[s]!) < 1e-5, `step ${s}: ${l} vs ${single[s]}`);
      }
    }
    for (let s = 1; s < steps; s++) assert.ok(single[s]! < single[s - 1]!, `loss did not fall at step ${s}`);
  });
});
