/**
 * A training member in its own process (test/train/*.test.ts, test/e2e/train.spec.ts): a Node host on
 * loopback in a mesh room, training the spiral MLP with `DataParallel` on its own shard. Configured by
 * the JSON in P2PTLS_TRAIN_WORKER ({@link TrainWorkerConfig}). It prints:
 *   ready <peerId>                                          its host is up
 *   step <s> loss <l> acc <a> members <k> attempts <n> ms <t>  after each step
 *   done <step> <sha256 of parameters and optimizer state>  after its last step
 * then idles until killed. It stops after `stop.after` more steps once a step ran over `stop.members`
 * members (at most, or at least: `stop.when`), or at `maxSteps`, or once the loss went under
 * `lossBelow`: the same step on every member, since every member sees the same step reports.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { joinMesh } from '../../src/mesh/index.js';
import {
  accuracy,
  batchOf,
  type Compression,
  crossEntropy,
  DataParallel,
  spiralModel,
  spiralShard,
} from '../../src/train/index.js';
import { startWorkerHost, type WorkerHostConfig } from '../helpers/worker-host.js';

export interface TrainWorkerConfig extends WorkerHostConfig {
  room: string;
  /** Members (including this one) to wait for before the first step. */
  waitFor: number;
  seed: number;
  shard: number;
  batch: number;
  learningRate: number;
  compression: Compression;
  maxSteps: number;
  stop?: { when: 'at-most' | 'at-least'; members: number; after: number };
  lossBelow?: number;
  timeoutMs: number;
}

const config = JSON.parse(process.env.P2PTLS_TRAIN_WORKER ?? '') as TrainWorkerConfig;
tf.enableProdMode();
await tf.setBackend('cpu');
const host = await startWorkerHost(config);
const mesh = await joinMesh(host, config.room);
await mesh.waitForMembers(config.waitFor, 120_000);
const shard = spiralShard(config.seed, config.shard, 512);
const trainer = new DataParallel(mesh, {
  model: spiralModel(config.seed + config.shard),
  optimizer: tf.train.adam(config.learningRate),
  loss: crossEntropy,
  metric: accuracy,
  compression: config.compression,
  timeoutMs: config.timeoutMs,
});
let stopAt = config.maxSteps;
let last = -1;
while (trainer.currentStep < stopAt) {
  const { x, y } = batchOf(shard, trainer.currentStep * 7 + config.shard, config.batch);
  const r = await trainer.step(x, y);
  tf.dispose([x, y]);
  last = r.step;
  console.log(
    `step ${r.step} loss ${r.loss} acc ${r.metric} members ${r.members.length} attempts ${r.attempts} ms ${r.ms.total.toFixed(1)}`,
  );
  const s = config.stop;
  const k = r.members.length;
  if (s && stopAt === config.maxSteps && (s.when === 'at-most' ? k <= s.members : k >= s.members)) {
    stopAt = r.step + 1 + s.after;
  }
  if (config.lossBelow !== undefined && r.loss < config.lossBelow) break;
}
const state = await trainer.exportState();
console.log(`done ${last} ${createHash('sha256').update(new Uint8Array(state.buffer)).digest('hex')}`);
setInterval(() => {}, 60_000);
