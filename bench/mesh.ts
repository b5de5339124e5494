/**
 * npm run bench:mesh — ring all-reduce over a p2ptls mesh of N members in one process (real signaling
 * server, WebRTC on loopback, in a loopback-only network namespace when one can be created), against
 * the same ring all-reduce over raw data channels (bench/raw-ring.ts: same ring, segments and chunks, no
 * p2ptls), measured in the same run, rounds alternating.
 *
 *   algorithm bandwidth   tensor bytes / time of one all-reduce (sum), float32, float16 and int8 on the
 *                         mesh, float32 on the raw ring
 *   bytes per element     mesh frame bytes one member sends per tensor element (headers included)
 *   training              npm run example:train's logistic regression, data-parallel on the same mesh:
 *                         final full-data loss after the steps, per compression, and time per step
 *                         against single-node full-batch training
 *
 * Every figure is the median (min–max) over the rounds. The last line is the headline: p2ptls ring ÷
 * raw ring (float32). Flags: --quick (1 Mi elements instead of 4 Mi), --rounds R (default 5),
 * --backend wrtc|node-datachannel, --members N, --chunk <elements>, --window <chunks>, --steps S.
 */
import { startLocalMesh } from '../examples/local-mesh.js';
import { generate, loss, trainMesh, trainSingle } from '../examples/train-logistic.js';
import { reexecInLoopbackNamespace } from '../scripts/netns.mjs';
import type { Compression, Mesh } from '../src/mesh/index.js';
import { type NodeRtcBackend, nodeRtc } from '../src/runtime/node-rtc.js';
import { within } from '../test/helpers/hosts.js';
import { flag } from './flags.js';
import { openRawRing } from './raw-ring.js';

const MiB = 1024 * 1024;
const quick = process.argv.includes('--quick');
const backend = (flag('backend') ?? 'wrtc') as NodeRtcBackend;
const N = Number(flag('members') ?? 4);
const ELEMENTS = (quick ? 1 : 4) * MiB;
const ROUNDS = Number(flag('rounds') ?? 5);
const STEPS = Number(flag('steps') ?? 30);
const CHUNK = Number(flag('chunk') ?? 16_000);
const CODECS: Compression[] = ['none', 'float16', 'int8'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[], digits = 1) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

async function bytesSent(meshes: Mesh[]): Promise<number> {
  let total = 0;
  for (const m of meshes) for (const s of await m.stats()) total += s.bytesSent;
  return total;
}

/** One all-reduce (sum) of all-ones tensors on every member: seconds, and mesh bytes sent per member. */
async function meshOnce(meshes: Mesh[], tensors: Float32Array[], compression: Compression) {
  for (const t of tensors) t.fill(1);
  const before = await bytesSent(meshes);
  const t0 = performance.now();
  await Promise.all(meshes.map((m, i) => m.allReduce(tensors[i]!, 'sum', { compression })));
  const s = (performance.now() - t0) / 1000;
  const bytes = ((await bytesSent(meshes)) - before) / meshes.length;
  // 1 is exact in float16; int8 decodes 127 × binary32(1/127), a hair off 1.
  const last = tensors[0]![ELEMENTS - 1]!;
  if (!(Math.abs(last - N) <= N * 1e-3)) throw new Error(`${compression}: wrong sum ${last}`);
  return { s, bytes };
}

async function main(): Promise<void> {
  console.log(
    `bench:mesh — ${N} members in one process, ${backend}, ${ELEMENTS / MiB} Mi elements (${(ELEMENTS * 4) / MiB} MiB float32), ${ROUNDS} rounds`,
  );
  const mesh = { chunkElements: CHUNK, ...(flag('window') ? { window: Number(flag('window')) } : {}) };
  const local = await startLocalMesh(N, { room: 'bench-mesh', backend, mesh });
  const rtc =
    backend === 'node-datachannel'
      ? await nodeRtc('node-datachannel', { bindAddress: '127.0.0.1' })
      : await nodeRtc('wrtc');
  // A link that never opens fails the run and says which step, instead of hanging.
  const raw = await within(openRawRing(rtc, N, CHUNK), 30_000, 'the raw ring opening');
  try {
    const { meshes } = local;
    const tensors = meshes.map(() => new Float32Array(ELEMENTS));
    // Warm-up: the ring links are open and JIT-compiled paths hot before anything is timed.
    for (const c of CODECS) await meshOnce(meshes, tensors, c);
    await raw.allReduce(meshes.map(() => new Float32Array(ELEMENTS).fill(1)));

    const algbw: Record<string, number[]> = { raw: [], none: [], float16: [], int8: [] };
    const perElement: Record<string, number[]> = { none: [], float16: [], int8: [] };
    const ratios: number[] = [];
    const rawTensors = meshes.map(() => new Float32Array(ELEMENTS));
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of rawTensors) t.fill(1);
      const t0 = performance.now();
      await raw.allReduce(rawTensors);
      const rawS = (performance.now() - t0) / 1000;
      if (rawTensors[0]![ELEMENTS - 1] !== N) throw new Error('raw ring gave a wrong sum');
      algbw.raw!.push((ELEMENTS * 4) / MiB / rawS);
      const line = [`round ${r + 1}: raw ring ${(rawS * 1000).toFixed(0)} ms`];
      for (const c of CODECS) {
        const { s, bytes } = await meshOnce(meshes, tensors, c);
        algbw[c]!.push((ELEMENTS * 4) / MiB / s);
        perElement[c]!.push(bytes / ELEMENTS);
        line.push(`${c} ${(s * 1000).toFixed(0)} ms`);
        if (c === 'none') ratios.push(rawS / s);
      }
      console.log(line.join(', '));
    }
    console.log('\nring all-reduce, algorithm bandwidth (tensor MiB / s), median (min–max):');
    console.log(`  raw data channels, no p2ptls   ${spread(algbw.raw!)}`);
    for (const c of CODECS) {
      const speedup = algbw[c]!.map((x, i) => x / algbw.none![i]!);
      console.log(
        `  p2ptls ${c.padEnd(8)}               ${spread(algbw[c]!)}   ×${spread(speedup, 2)} vs float32   ` +
          `${spread(perElement[c]!, 3)} bytes sent per element per member`,
      );
    }
    const f32 = median(perElement.none!);
    console.log(
      `  bytes on the wire vs float32: float16 ${(median(perElement.float16!) / f32).toFixed(3)}, int8 ${(median(perElement.int8!) / f32).toFixed(3)} ` +
        `(a ring member sends 2(N−1)/N = ${((2 * (N - 1)) / N).toFixed(2)} of the tensor)`,
    );
    console.log(`  p2ptls ÷ raw ring (float32): ${spread(ratios, 2)}`);

    // Training: the logistic regression of npm run example:train on this mesh.
    const data = generate(4096 * N, 16);
    const lr = 0.5;
    const single = new Float64Array(data.features + 1);
    const t0 = performance.now();
    trainSingle(data, STEPS, lr, single);
    const singleMs = (performance.now() - t0) / STEPS;
    console.log(
      `\nlogistic regression (${data.samples} samples, ${data.features} features, ${STEPS} steps, ${N} members), final full-data loss:`,
    );
    console.log(
      `  single node           ${loss(data, single).toFixed(6)}   ${singleMs.toFixed(2)} ms per step`,
    );
    const finals: Record<string, number> = {};
    for (const c of CODECS) {
      const weights = new Float64Array(data.features + 1);
      const stepMs: number[] = [];
      for (let r = 0; r < Math.min(3, ROUNDS); r++) {
        const t1 = performance.now();
        await trainMesh(data, N, STEPS, lr, { compression: c, weights, local });
        stepMs.push((performance.now() - t1) / STEPS);
      }
      finals[c] = loss(data, weights);
      const rel = ((finals[c]! - finals.none!) / finals.none!) * 100;
      console.log(
        `  mesh ${c.padEnd(8)}         ${finals[c]!.toFixed(6)} (${rel >= 0 ? '+' : ''}${rel.toFixed(3)} % vs float32)   ` +
          `${spread(stepMs, 2)} ms per step (×${(median(stepMs) / singleMs).toFixed(1)} single-node)`,
      );
    }
    const ours = median(algbw.none!);
    const baseline = median(algbw.raw!);
    console.log(
      `headline: allreduce_algbw_vs_raw_ring_MiBps ours=${ours.toFixed(1)} baseline=${baseline.toFixed(1)} ratio=${median(ratios).toFixed(2)}`,
    );
  } finally {
    raw.close();
    await local.close();
  }
}

if (reexecInLoopbackNamespace()) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
