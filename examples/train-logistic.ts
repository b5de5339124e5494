/**
 * npm run example:train — data-parallel SGD of a logistic regression across N mesh members.
 *
 * Every member holds an equal shard of the same generated data set. Each step, every member computes
 * the gradient of the mean log-loss over its shard, the members average their gradients with
 * `mesh.allReduce(grad, 'mean')` (ring all-reduce over p2ptls, WebRTC on loopback, a real signaling
 * server), and all apply the same update — so all members hold the same weights, and the loss falls
 * exactly as full-batch training on one node does (up to float32 rounding of the gradient exchange).
 *
 *   npm run example:train -- [--members 4] [--steps 30]
 */
import { reexecInLoopbackNamespace } from '../scripts/netns.mjs';
import type { Compression } from '../src/mesh/index.js';
import { type LocalMesh, startLocalMesh } from './local-mesh.js';

/** A generated binary classification problem: labels from a hidden weight vector, with label noise. */
export interface Dataset {
  x: Float64Array; // samples × features, row-major
  y: Float64Array; // 0 or 1
  samples: number;
  features: number;
}

/** Deterministic data (xorshift32): the same on every member and in the single-node reference. */
export function generate(samples: number, features: number, seed = 7): Dataset {
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const truth = Array.from({ length: features }, () => rand() * 4 - 2);
  const x = new Float64Array(samples * features);
  const y = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    let z = 0;
    for (let j = 0; j < features; j++) {
      const v = rand() * 2 - 1;
      x[i * features + j] = v;
      z += v * truth[j]!;
    }
    y[i] = rand() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { x, y, samples, features };
}

/**
 * Gradient of the mean log-loss over samples [from, to) at weights `w` (last weight is the bias),
 * written to `grad` (one entry per weight) followed by the mean loss itself.
 */
export function gradient(d: Dataset, w: Float64Array, from: number, to: number, grad: Float64Array): void {
  const f = d.features;
  grad.fill(0);
  for (let i = from; i < to; i++) {
    let z = w[f]!;
    for (let j = 0; j < f; j++) z += w[j]! * d.x[i * f + j]!;
    const p = 1 / (1 + Math.exp(-z));
    const err = p - d.y[i]!;
    for (let j = 0; j < f; j++) grad[j]! += err * d.x[i * f + j]!;
    grad[f]! += err;
    // Log-loss, clamped away from log(0).
    grad[f + 1]! -= d.y[i]! ? Math.log(Math.max(p, 1e-12)) : Math.log(Math.max(1 - p, 1e-12));
  }
  const n = to - from;
  for (let k = 0; k < grad.length; k++) grad[k]! /= n;
}

/** Full-batch gradient descent on one node: the loss before each step; `w` ends with the weights. */
export function trainSingle(
  d: Dataset,
  steps: number,
  lr: number,
  w = new Float64Array(d.features + 1),
): number[] {
  const g = new Float64Array(d.features + 2);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    gradient(d, w, 0, d.samples, g);
    losses.push(g[d.features + 1]!);
    for (let k = 0; k <= d.features; k++) w[k]! -= lr * g[k]!;
  }
  return losses;
}

/** Mean log-loss of weights `w` over the whole data set. */
export function loss(d: Dataset, w: Float64Array): number {
  const g = new Float64Array(d.features + 2);
  gradient(d, w, 0, d.samples, g);
  return g[d.features + 1]!;
}

/**
 * The same training, data-parallel over `members` mesh members: each member's losses, per step. With
 * `compression`, gradients cross the wire compressed, with error feedback (a residual per member);
 * `weights` receives member 0's final weights.
 */
export async function trainMesh(
  d: Dataset,
  members: number,
  steps: number,
  lr: number,
  options: { compression?: Compression; weights?: Float64Array; local?: LocalMesh } = {},
): Promise<number[][]> {
  if (d.samples % members !== 0) throw new Error('samples must divide evenly among members');
  const local = options.local ?? (await startLocalMesh(members, { room: 'train-logistic' }));
  const compression = options.compression ?? 'none';
  try {
    const shard = d.samples / members;
    return await Promise.all(
      // Ring order decides the shard, so that the shards cover the data set exactly once.
      local.meshes.map(async (mesh) => {
        const rank = mesh.ring.indexOf(mesh.peerId);
        const w = new Float64Array(d.features + 1);
        const g = new Float64Array(d.features + 2);
        const exchanged = new Float32Array(d.features + 2);
        const residual = compression === 'none' ? undefined : new Float32Array(d.features + 2);
        const losses: number[] = [];
        for (let s = 0; s < steps; s++) {
          gradient(d, w, rank * shard, (rank + 1) * shard, g);
          exchanged.set(g);
          // Equal shards: the mean of the shard means is the mean over the whole data set.
          await mesh.allReduce(exchanged, 'mean', { compression, residual });
          losses.push(exchanged[d.features + 1]!);
          for (let k = 0; k <= d.features; k++) w[k]! -= lr * exchanged[k]!;
        }
        if (rank === 0) options.weights?.set(w);
        return losses;
      }),
    );
  } finally {
    if (!options.local) await local.close();
  }
}

async function main(): Promise<void> {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const members = arg('members', 4);
  const steps = arg('steps', 30);
  const lr = 0.5;
  const data = generate(4096 * members, 16);
  console.log(`logistic regression: ${data.samples} samples, ${data.features} features, ${members} members`);
  const t0 = performance.now();
  const mesh = await trainMesh(data, members, steps, lr);
  const ms = performance.now() - t0;
  const single = trainSingle(data, steps, lr);
  console.log('step  single-node   mesh (member 0)   max |diff| over members');
  let worst = 0;
  for (let s = 0; s < steps; s++) {
    const diff = Math.max(...mesh.map((l) => Math.abs(l[s]! - single[s]!)));
    worst = Math.max(worst, diff);
    if (s < 5 || s % 5 === 4 || s === steps - 1) {
      console.log(
        `${String(s).padStart(4)}  ${single[s]!.toFixed(6).padStart(11)}   ${mesh[0]![s]!.toFixed(6).padStart(15)}   ${diff.toExponential(2)}`,
      );
    }
  }
  console.log(
    `largest difference from single-node training: ${worst.toExponential(2)} (${ms.toFixed(0)} ms)`,
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
