/**
 * A mesh member in its own process, for tests that kill one mid-operation. Configured by the JSON in
 * the P2PTLS_MESH_WORKER environment variable ({@link MeshWorkerConfig}). It joins the room, waits for
 * `members` members, then runs one allReduce per entry of `ops` (a tensor of `n` elements from
 * randomTensor(n, seed)), printing:
 *   ready <peerId>          once its host has started
 *   members <count>         once the mesh has them all
 *   op <i> started          just before calling allReduce
 *   op <i> ok <sum> <k>     when it finished (sum of the result, k contributors)
 *   op <i> error <code>     when it failed
 * and then waits until it is killed. Loopback only.
 */

import { joinMesh } from '../../src/mesh/index.js';
import { startWorkerHost, type WorkerHostConfig } from '../helpers/worker-host.js';
import { randomTensor } from './_mesh.js';

export interface MeshWorkerConfig extends WorkerHostConfig {
  room: string;
  members: number;
  ops: { n: number; seed: number }[];
  /** Mesh mode (default elastic) and reduction (default sum). */
  elastic?: boolean;
  reduce?: 'sum' | 'mean';
}

const config = JSON.parse(process.env.P2PTLS_MESH_WORKER ?? '') as MeshWorkerConfig;
const host = await startWorkerHost(config);
const mesh = await joinMesh(host, config.room, { elastic: config.elastic ?? true });
await mesh.waitForMembers(config.members);
console.log(`members ${mesh.members.length + 1}`);
for (const [i, op] of config.ops.entries()) {
  const tensor = randomTensor(op.n, op.seed);
  console.log(`op ${i} started`);
  try {
    await mesh.allReduce(tensor, config.reduce ?? 'sum');
    let sum = 0;
    for (const x of tensor) sum += x;
    console.log(`op ${i} ok ${sum} ${mesh.lastContributors.length}`);
  } catch (err) {
    console.log(`op ${i} error ${(err as { code?: string }).code ?? String(err)}`);
  }
}
setInterval(() => {}, 60_000);
