/**
 * npm run bench:mesh — ring all-reduce over a p2ptls mesh of 4 members in one process (real signaling
 * server, WebRTC on loopback, in a loopback-only network namespace when one can be created).
 *
 *   point-to-point      p2ptls TCP-mode throughput of one mesh link (64 000-byte messages), others idle
 *   ring point-to-point the same, with every member sending to its ring neighbour at once: the link
 *                       speed a ring really gets when all N members share this process and its cores
 *   ring all-reduce     algorithm bandwidth (tensor bytes / time) of mesh.allReduce
 *   ideal               link speed × N / (2(N−1)): what a ring moving 2(N−1)/N of the tensor per link
 *                       would give — from the concurrent ring link speed (the headline's baseline), and
 *                       from the idle single link (as if every member had cores of its own)
 *   naive all-to-all    every member sends its whole tensor to every other member and sums what arrives
 *
 * The last line is the headline: ring all-reduce vs the ideal ring at the concurrent link speed.
 * Flags: --quick (1 Mi elements instead of 4 Mi), --backend wrtc|node-datachannel, --members N,
 * --chunk <elements> and --window <chunks> (the mesh's chunkElements and window).
 */
import { startLocalMesh } from '../examples/local-mesh.js';
import { reexecInLoopbackNamespace } from '../scripts/netns.mjs';
import type { Mesh } from '../src/mesh/index.js';
import type { NodeRtcBackend } from '../src/runtime/node-rtc.js';

const MiB = 1024 * 1024;
const quick = process.argv.includes('--quick');
const flag = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const backend = (flag('backend') ?? 'wrtc') as NodeRtcBackend;
const N = Number(flag('members') ?? 4);
const ELEMENTS = (quick ? 1 : 4) * MiB;
const ROUNDS = 3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * p2ptls TCP-mode throughput through the mesh, every `[from, to]` link sending `total` bytes at once;
 * per-link MiB/s, timed until every receiver has everything.
 */
async function linkThroughput(links: [Mesh, Mesh][], total: number): Promise<number> {
  const size = 64_000;
  const msg = new Uint8Array(size);
  const t0 = performance.now();
  await Promise.all(
    links.map(async ([from, to]) => {
      let received = 0;
      const done = new Promise<void>((resolve) => {
        const off = to.on('message', ({ from: sender, data }) => {
          if (sender !== from.peerId) return;
          received += data.length;
          if (received >= total) {
            off();
            resolve();
          }
        });
      });
      let last: Promise<void> = Promise.resolve();
      for (let sent = 0, k = 0; sent < total; sent += size, k++) {
        last = from.send(to.peerId, msg);
        if (k % 64 === 63) await last;
      }
      await last;
      await done;
    }),
  );
  return total / MiB / ((performance.now() - t0) / 1000);
}

/** One ring all-reduce of `n` elements on every member; seconds. */
async function ringOnce(meshes: Mesh[], tensors: Float32Array[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(meshes.map((m, i) => m.allReduce(tensors[i]!)));
  return (performance.now() - t0) / 1000;
}

/** The naive exchange: everyone sends its whole tensor to everyone else and sums locally; seconds. */
async function naiveOnce(meshes: Mesh[], tensors: Float32Array[]): Promise<number> {
  const n = tensors[0]!.length;
  const t0 = performance.now();
  await Promise.all(
    meshes.map(async (m, i) => {
      const sum = tensors[i]!.slice();
      let pending = meshes.length - 1;
      const summed = new Promise<void>((resolve) => {
        const off = m.on('message', ({ data }) => {
          if (data.length !== n * 4) return;
          // The message body is not 4-byte aligned inside its frame: copy, as a real receiver would.
          const values = new Float32Array(data.slice().buffer);
          for (let k = 0; k < n; k++) sum[k]! += values[k]!;
          if (--pending === 0) {
            off();
            resolve();
          }
        });
      });
      const bytes = new Uint8Array(tensors[i]!.buffer, tensors[i]!.byteOffset, n * 4);
      await Promise.all(meshes.filter((o) => o !== m).map((o) => m.send(o.peerId, bytes)));
      await summed;
      tensors[i]!.set(sum);
    }),
  );
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  console.log(
    `bench:mesh — ${N} members, ${backend}, ${ELEMENTS / MiB} Mi float32 elements (${(ELEMENTS * 4) / MiB} MiB)`,
  );
  const mesh = {
    ...(flag('chunk') ? { chunkElements: Number(flag('chunk')) } : {}),
    ...(flag('window') ? { window: Number(flag('window')) } : {}),
  };
  const local = await startLocalMesh(N, { room: 'bench-mesh', backend, mesh });
  try {
    const { meshes } = local;
    const tensors = meshes.map(() => new Float32Array(ELEMENTS).fill(1));
    // Warm-up: opens the ring links and the all-to-all links, so no round pays for a handshake.
    await ringOnce(
      meshes,
      meshes.map(() => new Float32Array(1024)),
    );
    await naiveOnce(
      meshes,
      meshes.map(() => new Float32Array(1024)),
    );

    const p2p = await linkThroughput([[meshes[0]!, meshes[1]!]], (quick ? 32 : 128) * MiB);
    console.log(`point-to-point p2ptls (one link, others idle): ${p2p.toFixed(1)} MiB/s`);
    const ringLinks = meshes.map((m, i): [Mesh, Mesh] => [m, meshes[(i + 1) % N]!]);
    const ringLink = await linkThroughput(ringLinks, (quick ? 8 : 32) * MiB);
    console.log(`ring point-to-point (all ${N} links at once), per link: ${ringLink.toFixed(1)} MiB/s`);

    const bytes = ELEMENTS * 4;
    const ring: number[] = [];
    const naive: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of tensors) t.fill(1);
      ring.push(await ringOnce(meshes, tensors));
      if (tensors[0]![ELEMENTS - 1] !== N) throw new Error('ring all-reduce gave a wrong sum');
      for (const t of tensors) t.fill(1);
      naive.push(await naiveOnce(meshes, tensors));
      if (tensors[0]![ELEMENTS - 1] !== N) throw new Error('naive exchange gave a wrong sum');
      console.log(
        `round ${r + 1}: ring ${(ring[r]! * 1000).toFixed(0)} ms, naive all-to-all ${(naive[r]! * 1000).toFixed(0)} ms`,
      );
    }
    const ours = bytes / MiB / median(ring);
    const baseline = bytes / MiB / median(naive);
    const ideal = (ringLink * N) / (2 * (N - 1));
    const idealIdle = (p2p * N) / (2 * (N - 1));
    console.log(`ring all-reduce algorithm bandwidth (median of ${ROUNDS}): ${ours.toFixed(1)} MiB/s`);
    console.log(
      `naive all-to-all algorithm bandwidth (median of ${ROUNDS}): ${baseline.toFixed(1)} MiB/s → ring/naive = ${(ours / baseline).toFixed(2)}`,
    );
    console.log(
      `ideal ring at the idle single-link speed, p2p × N/(2(N−1)): ${idealIdle.toFixed(1)} MiB/s → ours/ideal = ${(ours / idealIdle).toFixed(2)} (as if every member had its own cores)`,
    );
    console.log(
      `ideal ring at the concurrent ring-link speed: ${ideal.toFixed(1)} MiB/s → ours/ideal = ${(ours / ideal).toFixed(2)}`,
    );
    console.log(
      `headline: allreduce_algbw_vs_ideal_ring_MiBps ours=${ours.toFixed(1)} baseline=${ideal.toFixed(1)} ratio=${(ours / ideal).toFixed(2)}`,
    );
  } finally {
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
