// examples/train.ts: a TensorFlow.js MLP trained data-parallel by 3 mesh members (real signaling server,
// WebRTC on loopback) follows single-node training on the same global batch step for step, and learns.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { DEFAULTS, trainMesh, trainSingle } from '../../examples/train.js';

tf.enableProdMode();

describe('example: data-parallel TensorFlow.js training', () => {
  it('3 members track single-node training on the same global batch', async () => {
    await tf.setBackend('cpu');
    const config = { ...DEFAULTS, members: 3, steps: 40 };
    const single = trainSingle(config);
    const members = await trainMesh(config);
    assert.equal(members.length, 3);
    for (const reports of members) {
      assert.equal(reports.length, config.steps);
      for (const [s, r] of reports.entries()) {
        assert.equal(r.step, s);
        assert.equal(r.members.length, 3);
        // The exchange rounds the mean of three float32 shard gradients once more than one node does.
        const tol = 1e-4 * Math.max(1, single[s]!.loss);
        assert.ok(
          Math.abs(r.loss - single[s]!.loss) <= tol,
          `step ${s}: mesh ${r.loss}, single ${single[s]!.loss}`,
        );
        assert.ok(
          Math.abs(r.metric - single[s]!.metric) <= 1e-6,
          `step ${s}: accuracy ${r.metric} vs ${single[s]!.metric}`,
        );
      }
    }
    // Step 0 aligned everyone on the parameters of the lowest peerId; later steps needed no transfer.
    assert.equal(members[0]![0]!.synced.length, 2);
    for (const r of members[0]!.slice(1)) assert.deepEqual(r.synced, []);
    const first = single.slice(0, 5).reduce((a, b) => a + b.loss, 0) / 5;
    const last = single.slice(-5).reduce((a, b) => a + b.loss, 0) / 5;
    assert.ok(last < 0.7 * first, `loss fell from ${first} to only ${last}`);
  });
});
