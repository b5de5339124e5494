// Compressed all-reduce over 4 Node members (real signaling server process, WebRTC on loopback):
// float16 and int8 results are bit-identical on every member and within the encodings' error of the
// exact mean; int8 puts ≤ 0.3 of float32's bytes on the wire; the residual keeps what compression lost;
// members that disagree on the compression get mesh_mismatch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Compression, Mesh } from '../../src/mesh/index.js';
import { type Env, startEnv, withCode, within } from '../helpers/hosts.js';
import { randomTensor, startMeshGroup } from './_mesh.js';

const bytesOf = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
const N = 100_003;

/** Largest |got − exact mean| over the elements. */
function maxError(got: Float32Array, inputs: Float32Array[]): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    let sum = 0;
    for (const t of inputs) sum += t[i]!;
    worst = Math.max(worst, Math.abs(got[i]! - sum / inputs.length));
  }
  return worst;
}

async function bytesSent(meshes: Mesh[]): Promise<number> {
  let total = 0;
  for (const m of meshes) for (const s of await m.stats()) total += s.bytesSent;
  return total;
}

describe('compressed all-reduce', () => {
  let env: Env;
  let meshes: Mesh[];
  before(async () => {
    env = await startEnv(4);
    meshes = (await startMeshGroup(env, env.ids, 'compressed')).meshes;
    // Connections up, so the byte counts below are tensor traffic only.
    await within(Promise.all(meshes.map((m) => m.barrier())), 30_000, 'barrier');
  });
  after(async () => {
    await env?.close();
  });

  const run = async (compression: Compression, seed: number, residuals?: Float32Array[]) => {
    const inputs = meshes.map((_, i) => randomTensor(N, seed + i));
    const out = inputs.map((x) => x.slice());
    const before = await bytesSent(meshes);
    await within(
      Promise.all(
        meshes.map((m, i) => m.allReduce(out[i]!, 'mean', { compression, residual: residuals?.[i] })),
      ),
      60_000,
      compression,
    );
    return { inputs, out, bytes: (await bytesSent(meshes)) - before };
  };

  it('float16 and int8: identical on every member, close to the exact mean, int8 ≤ 0.3 of the bytes', async (t) => {
    const plain = await run('none', 10);
    // Bounds: each hop re-encodes a partial sum of up to 4 values in [-1, 1]; 3 reduce-scatter hops and
    // one all-gather encoding, then / 4. float16: 4 × 4 × 2^-11 / 4; int8: 4 × (4 / 254) / 4.
    const bounds: Record<string, number> = { float16: 4 * 2 ** -11, int8: 4 / 254 };
    for (const compression of ['float16', 'int8'] as const) {
      const r = await run(compression, 10);
      for (const o of r.out.slice(1))
        assert.ok(bytesOf(o).equals(bytesOf(r.out[0]!)), `${compression}: identical`);
      const err = maxError(r.out[0]!, r.inputs);
      const ratio = r.bytes / plain.bytes;
      t.diagnostic(
        `${compression}: max error ${err.toExponential(2)}, ${ratio.toFixed(3)} of float32's bytes`,
      );
      assert.ok(err <= bounds[compression]!, `${compression}: error ${err} > ${bounds[compression]}`);
      assert.ok(err > 0, `${compression} loses something`);
      assert.ok(ratio <= (compression === 'int8' ? 0.3 : 0.55), `${compression}: ${ratio} of the bytes`);
    }
  });

  it('the residual keeps what int8 lost of each input, and is added to the next one', async () => {
    const residuals = meshes.map(() => new Float32Array(N));
    const first = await run('int8', 20, residuals);
    for (const [i, e] of residuals.entries()) {
      let worst = 0;
      let nonzero = 0;
      for (let k = 0; k < N; k++) {
        worst = Math.max(worst, Math.abs(e[k]!));
        if (e[k] !== 0) nonzero++;
      }
      assert.ok(nonzero > N / 2, `member ${i}: residual set`);
      assert.ok(worst <= 1 / 254 + 1e-7, `member ${i}: residual within half a step (${worst})`);
    }
    // Error feedback: the second step carries the first one's residual. Regress what the second result
    // has beyond its inputs (4 × mean − Σ inputs) on the residuals it started with: the slope is 1
    // when the residual went in (0 if it did not), the rest is the ring's own rounding noise.
    const kept = residuals.map((e) => e.slice());
    const second = await run('int8', 30, residuals);
    let xy = 0;
    let xx = 0;
    for (let k = 0; k < N; k++) {
      let inputs = 0;
      let carried = 0;
      for (let i = 0; i < 4; i++) {
        inputs += second.inputs[i]![k]!;
        carried += kept[i]![k]!;
      }
      const extra = 4 * second.out[0]![k]! - inputs;
      xy += extra * carried;
      xx += carried * carried;
    }
    const slope = xy / xx;
    assert.ok(slope > 0.8 && slope < 1.2, `the residual went into the next step (slope ${slope})`);
    assert.ok(first.out.every((o) => bytesOf(o).equals(bytesOf(first.out[0]!))));
  });

  it('members that disagree on the compression: mesh_mismatch everywhere, tensors unchanged', async () => {
    const tensors = meshes.map((_, i) => Float32Array.of(i, i + 1));
    const outcomes = await within(
      Promise.allSettled(
        meshes.map((m, i) => m.allReduce(tensors[i]!, 'sum', { compression: i === 2 ? 'int8' : 'float16' })),
      ),
      30_000,
      'mismatch',
    );
    for (const o of outcomes) withCode('mesh_mismatch')((o as PromiseRejectedResult).reason);
    for (const [i, x] of tensors.entries()) assert.deepEqual([...x], [i, i + 1]);
    await assert.rejects(
      meshes[0]!.allReduce(new Float32Array(2), 'sum', { residual: new Float32Array(3) }),
      withCode('invalid_argument'),
    );
    await assert.rejects(
      meshes[0]!.allReduce(new Float32Array(2), 'sum', { compression: 'zip' as Compression }),
      withCode('invalid_argument'),
    );
  });
});
