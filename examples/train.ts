/**
 * npm run example:train — a TensorFlow.js MLP trained data-parallel over a p2ptls mesh.
 *
 * N members (default 3) in one process, each with its own Node host: a real signaling server on
 * 127.0.0.1, WebRTC restricted to loopback (examples/local-mesh.ts). Each member generates its own shard
 * of a 3-class spiral data set (src/train/spirals.ts) and, every step, computes the gradients of a batch
 * of its shard; `DataParallel` (p2ptls/train) averages them over the mesh with `allReduce(mean)` and
 * applies them with the member's Adam optimizer. A single-node run of the same model on the same global
 * batch (the members' batches side by side) is the reference: the mesh's loss follows it step for step,
 * up to float32 rounding of the exchange.
 *
 *   npm run example:train -- [--members 3] [--steps 60] [--batch 32] [--compression none|float16|int8]
 */
import * as tf from '@tensorflow/tfjs';
import { reexecInLoopbackNamespace } from '../scripts/netns.mjs';
import {
  accuracy,
  batchOf,
  type Compression,
  crossEntropy,
  DataParallel,
  type StepReport,
  spiralModel,
  spiralShard,
} from '../src/train/index.js';
import { startLocalMesh } from './local-mesh.js';

export interface TrainConfig {
  members: number;
  steps: number;
  /** Samples per member per step: the global batch is members × batch. */
  batch: number;
  seed: number;
  learningRate: number;
  samplesPerShard: number;
  compression: Compression;
}

export const DEFAULTS: TrainConfig = {
  members: 3,
  steps: 60,
  batch: 32,
  seed: 42,
  learningRate: 0.02,
  samplesPerShard: 512,
  compression: 'none',
};

/** Single-node training on the same global batches: the loss, accuracy and time of each step. */
export function trainSingle(config: TrainConfig): { loss: number; metric: number; ms: number }[] {
  const model = spiralModel(config.seed);
  const optimizer = tf.train.adam(config.learningRate);
  const shards = Array.from({ length: config.members }, (_, k) =>
    spiralShard(config.seed, k, config.samplesPerShard),
  );
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const out: { loss: number; metric: number; ms: number }[] = [];
  for (let s = 0; s < config.steps; s++) {
    const t0 = performance.now();
    const parts = shards.map((shard) => batchOf(shard, s, config.batch));
    const x = tf.concat(parts.map((p) => p.x));
    const y = tf.concat(parts.map((p) => p.y));
    let metric = 0;
    const loss = optimizer.minimize(
      () => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        metric = accuracy(y, logits).dataSync()[0]!;
        return crossEntropy(y, logits);
      },
      true,
      vars,
    )!;
    out.push({ loss: loss.dataSync()[0]!, metric, ms: performance.now() - t0 });
    tf.dispose([loss, x, y, ...parts.flatMap((p) => [p.x, p.y])]);
  }
  tf.dispose([model, optimizer] as unknown as tf.Tensor[]);
  return out;
}

/** The same training data-parallel over `config.members` mesh members: every member's step reports. */
export async function trainMesh(config: TrainConfig): Promise<StepReport[][]> {
  const local = await startLocalMesh(config.members, { room: 'train-tfjs' });
  try {
    return await Promise.all(
      local.meshes.map(async (mesh) => {
        // Ring order decides the shard: member k holds shard k, as in the single-node reference.
        const shard = spiralShard(config.seed, mesh.ring.indexOf(mesh.peerId), config.samplesPerShard);
        const trainer = new DataParallel(mesh, {
          model: spiralModel(config.seed),
          optimizer: tf.train.adam(config.learningRate),
          loss: crossEntropy,
          metric: accuracy,
          compression: config.compression,
        });
        const reports: StepReport[] = [];
        for (let s = 0; s < config.steps; s++) {
          const { x, y } = batchOf(shard, s, config.batch);
          try {
            reports.push(await trainer.step(x, y));
          } finally {
            tf.dispose([x, y]);
          }
        }
        return reports;
      }),
    );
  } finally {
    await local.close();
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const config: TrainConfig = {
    ...DEFAULTS,
    members: Number(arg('members') ?? DEFAULTS.members),
    steps: Number(arg('steps') ?? DEFAULTS.steps),
    batch: Number(arg('batch') ?? DEFAULTS.batch),
    compression: (arg('compression') ?? DEFAULTS.compression) as Compression,
  };
  // tfjs's CPU backend asks Node users to install tfjs-node, which cannot be installed here.
  tf.enableProdMode();
  await tf.setBackend('cpu');
  console.log(
    `MLP on 3-class spirals: ${config.members} members × ${config.batch} samples per step ` +
      `(global batch ${config.members * config.batch}), Adam lr ${config.learningRate}, ` +
      `compression ${config.compression}`,
  );
  const t0 = performance.now();
  const mesh = await trainMesh(config);
  const ms = performance.now() - t0;
  const single = trainSingle(config);
  const columns = [
    'step',
    'mesh loss',
    'mesh accuracy',
    'single-node loss',
    '|loss diff|',
    'members',
    'step ms',
  ];
  const widths = columns.map((c) => Math.max(c.length, 8));
  const row = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(row(columns));
  let worst = 0;
  for (let s = 0; s < config.steps; s++) {
    const r = mesh[0]![s]!;
    const diff = Math.max(...mesh.map((m) => Math.abs(m[s]!.loss - single[s]!.loss)));
    worst = Math.max(worst, diff);
    if (s < 5 || s % 10 === 9 || s === config.steps - 1) {
      console.log(
        row([
          String(s),
          r.loss.toFixed(5),
          r.metric.toFixed(3),
          single[s]!.loss.toFixed(5),
          diff.toExponential(1),
          String(r.members.length),
          median(mesh.map((m) => m[s]!.ms.total)).toFixed(1),
        ]),
      );
    }
  }
  const steady = mesh[0]!.slice(1).map((r) => r.ms);
  console.log(
    `largest loss difference from single-node training: ${worst.toExponential(2)}; ` +
      `median step ${median(steady.map((m) => m.total)).toFixed(1)} ms ` +
      `(gradients ${median(steady.map((m) => m.compute)).toFixed(1)} ms, exchange ${median(steady.map((m) => m.exchange)).toFixed(1)} ms); ` +
      `single node (batch, gradients, update) on the global batch: median ${median(single.slice(1).map((r) => r.ms)).toFixed(1)} ms per step; ${(ms / 1000).toFixed(1)} s in all`,
  );
}

// Run as a script (not imported by the test): in a loopback-only network namespace when possible.
if (
  process.argv[1] &&
  import.meta.url.endsWith(process.argv[1].split('/').pop()!) &&
  reexecInLoopbackNamespace()
) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
