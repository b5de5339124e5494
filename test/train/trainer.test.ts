// DataParallel against a scripted one-member mesh (the real mesh is in train.test.ts, elastic.test.ts):
// a compression request made while a header is on the wire survives to the next step, and a step whose
// exchange loses a member is tried again from the header.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { fail } from '../../src/errors.js';
import {
  accuracy,
  batchOf,
  crossEntropy,
  DataParallel,
  spiralModel,
  spiralShard,
} from '../../src/train/index.js';
import type { TrainingMesh } from '../../src/train/trainer.js';

tf.enableProdMode();

type Call = { op: 'sum' | 'mean'; compression: string | undefined };

/** One member alone: every all-reduce returns its input; `onCall` may act or throw on any call. */
function soloMesh(onCall: (call: Call, index: number) => void): TrainingMesh & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    peerId: 'me',
    ring: ['me'],
    calls,
    async allReduce(t, op, options) {
      const call = { op, compression: options?.compression };
      calls.push(call);
      onCall(call, calls.length - 1);
      return t;
    },
    async broadcastTensor(_root, t) {
      return t;
    },
    on: () => () => {},
  };
}

function trainer(mesh: TrainingMesh): DataParallel {
  return new DataParallel(mesh, {
    model: spiralModel(3),
    optimizer: tf.train.adam(0.01),
    loss: crossEntropy,
    metric: accuracy,
  });
}

describe('DataParallel', () => {
  it('keeps a compression request made while the header is on the wire, for the next step', async () => {
    await tf.setBackend('cpu');
    let dp: DataParallel | undefined;
    const mesh = soloMesh((call, i) => {
      // The first header: the user switches while it is in flight.
      if (i === 0 && call.op === 'sum') dp!.setCompression('int8');
    });
    dp = trainer(mesh);
    const shard = spiralShard(1, 0, 64);
    const used: string[] = [];
    for (let s = 0; s < 2; s++) {
      const { x, y } = batchOf(shard, s, 8);
      used.push((await dp.step(x, y)).compression);
      tf.dispose([x, y]);
    }
    assert.deepEqual(used, ['none', 'int8']);
    assert.deepEqual(
      mesh.calls.filter((c) => c.op === 'mean').map((c) => c.compression),
      ['none', 'int8'],
    );
  });

  it('a step whose exchange loses a member is tried again from the header', async () => {
    await tf.setBackend('cpu');
    let failed = false;
    const mesh = soloMesh((call) => {
      if (call.op === 'mean' && !failed) {
        failed = true;
        throw fail('mesh_member_left', 'lost a member');
      }
    });
    const dp = trainer(mesh);
    const { x, y } = batchOf(spiralShard(1, 0, 64), 0, 8);
    const report = await dp.step(x, y);
    tf.dispose([x, y]);
    assert.equal(report.attempts, 2);
    assert.equal(report.step, 0);
    assert.deepEqual(
      mesh.calls.map((c) => c.op),
      ['sum', 'mean', 'sum', 'mean'],
    );
    // Errors that are not about membership are not retried.
    const bad = soloMesh((call) => {
      if (call.op === 'mean') throw fail('invalid_argument', 'no');
    });
    const { x: x2, y: y2 } = batchOf(spiralShard(1, 0, 64), 0, 8);
    await assert.rejects(trainer(bad).step(x2, y2), { code: 'invalid_argument' });
    tf.dispose([x2, y2]);
  });
});
