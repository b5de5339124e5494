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
import { Host } from '../../src/host/host.js';
import { Identity, PublicIdentity } from '../../src/identity/identity.js';
import type { PublicIdentityJson, SecretIdentityJson } from '../../src/identity/index.js';
import { joinMesh } from '../../src/mesh/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { nodeRtc } from '../../src/runtime/node-rtc.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { openMemoryPeerStore } from '../../src/store/index.js';
import {
  accuracy,
  batchOf,
  type Compression,
  crossEntropy,
  DataParallel,
  spiralModel,
  spiralShard,
} from '../../src/train/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { fromBase64Url } from '../../src/util/bytes.js';

export interface TrainWorkerConfig {
  url: string;
  room: string;
  identity: SecretIdentityJson;
  /** Paired peers: public identity and base64url PSK. */
  peers: { identity: PublicIdentityJson; psk: string }[];
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
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  timeoutMs: number;
}

const config = JSON.parse(process.env.P2PTLS_TRAIN_WORKER ?? '') as TrainWorkerConfig;
tf.enableProdMode();
await tf.setBackend('cpu');
const identity = await Identity.importSecret(config.identity);
const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
for (const p of config.peers) {
  await store.put({ publicIdentity: await PublicIdentity.import(p.identity), psk: fromBase64Url(p.psk) });
}
const host = await Host.start({
  identity,
  peers: store,
  signaling: new SignalingClient({ url: config.url, identity }),
  rtc: await nodeRtc('wrtc'),
  candidateFilter: loopbackOnly,
  aead: nodeCryptoAead,
  heartbeatIntervalMs: config.heartbeatIntervalMs,
  heartbeatTimeoutMs: config.heartbeatTimeoutMs,
});
console.log(`ready ${identity.peerId}`);
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
