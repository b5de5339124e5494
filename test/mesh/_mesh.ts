/**
 * Shared set-up of the mesh tests: `n` Node hosts, every pair paired, all in one room of a real
 * signaling server process (test/helpers/hosts.ts), each with its mesh.
 */
import type { Host } from '../../src/host/host.js';
import type { Identity } from '../../src/identity/identity.js';
import { joinMesh, type Mesh, type MeshOptions } from '../../src/mesh/index.js';
import { type Env, type TestHostOptions, within } from '../helpers/hosts.js';

export interface MeshGroup {
  hosts: Host[];
  meshes: Mesh[];
  ids: Identity[];
}

/** Starts hosts for `ids` (each paired with every other id of `env`) and joins them all to `room`. */
export async function startMeshGroup(
  env: Env,
  ids: Identity[],
  room: string,
  options: { host?: TestHostOptions; mesh?: MeshOptions; pairedWith?: Identity[] } = {},
): Promise<MeshGroup> {
  const paired = options.pairedWith ?? env.ids;
  const hosts = await Promise.all(
    ids.map((id) => env.host(id, { peers: paired.filter((p) => p !== id), ...options.host })),
  );
  const meshes = await Promise.all(hosts.map((h) => joinMesh(h, room, options.mesh)));
  await within(
    Promise.all(meshes.map((m) => m.waitForMembers(ids.length))),
    30_000,
    `${ids.length} members see each other`,
  );
  return { hosts, meshes, ids };
}

/** A deterministic pseudo-random tensor in [-1, 1) (xorshift32), different per seed. */
export function randomTensor(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Checks `got` against the element-wise float64 sum of `inputs` (times `scale`): the bound is N float32
 * roundings of the partial sums (|x| ≤ 1, so each partial is ≤ N). Returns the first bad index or -1.
 */
export function firstMismatch(got: Float32Array, inputs: Float32Array[], scale = 1): number {
  const n = inputs.length;
  const tol = n * n * 2 ** -23 * scale + 1e-7;
  for (let i = 0; i < got.length; i++) {
    let sum = 0;
    for (const t of inputs) sum += t[i]!;
    if (!(Math.abs(got[i]! - sum * scale) <= tol)) return i;
  }
  return -1;
}
