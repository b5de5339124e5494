// Collectives over a real signaling server process and WebRTC on loopback: 4 and then 8 Node members
// in one room. allReduce equals the element-wise float64 sum within float32 rounding for sizes from 1
// element (fewer than members: most ring segments are empty) up to 16 Mi, on 4 and on 8; mean; broadcastTensor from
// a root that is not first in ring order; barrier; and the mesh's own messages and stats.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Mesh } from '../../src/mesh/index.js';
import { type Env, startEnv, within } from '../helpers/hosts.js';
import { firstMismatch, type MeshGroup, randomTensor, startMeshGroup } from './_mesh.js';

/** Runs allReduce on every member with its own random tensor and checks every result. */
async function checkAllReduce(meshes: Mesh[], n: number, op: 'sum' | 'mean', seed: number): Promise<void> {
  const inputs = meshes.map((_, i) => randomTensor(n, seed + i));
  const tensors = inputs.map((t) => t.slice());
  const results = await within(
    Promise.all(meshes.map((m, i) => m.allReduce(tensors[i]!, op))),
    180_000,
    `allReduce(${n}, ${op}) on ${meshes.length}`,
  );
  results.forEach((r, i) => {
    assert.equal(r, tensors[i], 'allReduce reduces in place');
    const bad = firstMismatch(r, inputs, op === 'mean' ? 1 / meshes.length : 1);
    assert.equal(bad, -1, `member ${i}, n=${n}: element ${bad} is ${r[bad]}`);
  });
  // Every member holds the very same float32 values, not merely close ones.
  for (const r of results.slice(1)) assert.deepEqual(r, results[0]);
}

async function checkBroadcast(g: MeshGroup, rootIndex: number, n: number): Promise<void> {
  const root = g.meshes[rootIndex]!.peerId;
  const data = randomTensor(n, 99);
  const tensors = g.meshes.map((m) => (m.peerId === root ? data.slice() : new Float32Array(n)));
  await within(
    Promise.all(g.meshes.map((m, i) => m.broadcastTensor(root, tensors[i]!))),
    60_000,
    'broadcastTensor',
  );
  for (const t of tensors) assert.deepEqual(t, data);
}

describe('mesh collectives', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(8);
  });
  after(async () => {
    await env?.close();
  });

  describe('4 members', () => {
    let g: MeshGroup;
    before(async () => {
      g = await startMeshGroup(env, env.ids.slice(0, 4), 'train-4');
    });
    after(async () => {
      for (const h of g?.hosts ?? []) await env.closeHost(h);
    });

    it('every member sees the other three; ring order is the sorted peerIds', () => {
      const all = g.meshes.map((m) => m.peerId).sort();
      for (const m of g.meshes) {
        assert.deepEqual(m.ring, all);
        assert.equal(m.members.length, 3);
      }
    });

    it('allReduce sum: 1, 3 (fewer elements than members), 1000, 100 003 and 1 Mi + 1 elements', async () => {
      const sizes = [1, 3, 1000, 100_003, (1 << 20) + 1];
      for (const [i, n] of sizes.entries()) await checkAllReduce(g.meshes, n, 'sum', 10 * i + 1);
    });

    it('allReduce sum of 16 Mi elements (64 MiB per member)', async (t) => {
      const t0 = performance.now();
      await checkAllReduce(g.meshes, 16 * 1024 * 1024, 'sum', 500);
      t.diagnostic(`16 Mi elements on 4 members: ${(performance.now() - t0).toFixed(0)} ms`);
    });

    it('allReduce mean', async () => {
      await checkAllReduce(g.meshes, 12_345, 'mean', 700);
    });

    it('broadcastTensor from a root that is not first in ring order, odd and tiny sizes', async () => {
      const order = g.meshes.map((m) => m.peerId).sort();
      const rootIndex = g.meshes.findIndex((m) => m.peerId === order[2]);
      await checkBroadcast(g, rootIndex, 77_777);
      await checkBroadcast(g, rootIndex, 1);
    });

    it('barrier: no member gets out before the last one gets in', async () => {
      let entered = 0;
      const enteredWhenLeaving: number[] = [];
      const runs = g.meshes.map(async (m, i) => {
        // The last member enters well after the others are waiting.
        if (i === 3) await new Promise((r) => setTimeout(r, 300));
        entered++;
        await m.barrier();
        enteredWhenLeaving.push(entered);
      });
      await within(Promise.all(runs), 30_000, 'barrier');
      assert.deepEqual(enteredWhenLeaving, [4, 4, 4, 4]);
    });

    it('send, broadcast and per-peer stats', async () => {
      const [a, b] = [g.meshes[0]!, g.meshes[1]!];
      const got = g.meshes.slice(1).map(
        (m) =>
          new Promise<string>((resolve) => {
            const off = m.on('message', ({ from, data }) => {
              if (from !== a.peerId) return;
              off();
              resolve(new TextDecoder().decode(data));
            });
          }),
      );
      const result = await a.broadcast('hello mesh');
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.sent.sort(), a.members);
      assert.deepEqual(await within(Promise.all(got), 20_000, 'broadcast'), [
        'hello mesh',
        'hello mesh',
        'hello mesh',
      ]);
      const reply = new Promise<string>((resolve) =>
        a.once('message', ({ data }) => resolve(new TextDecoder().decode(data))),
      );
      await b.send(a.peerId, 'hi a');
      assert.equal(await within(reply, 20_000, 'reply'), 'hi a');
      const stats = await a.peerStats(b.peerId);
      assert.equal(stats.connected, true);
      assert.ok(stats.framesSent > 0 && stats.framesReceived > 0 && stats.bytesReceived > 0);
      assert.equal(stats.framesRefused, 0);
      assert.ok(stats.connection, 'the open connection has its own stats');
      assert.equal((await a.stats()).length, 3);
    });
  });

  describe('8 members', () => {
    let g: MeshGroup;
    before(async () => {
      g = await startMeshGroup(env, env.ids, 'train-8');
    });
    after(async () => {
      for (const h of g?.hosts ?? []) await env.closeHost(h);
    });

    it('allReduce sum: 1, 5, 7 (fewer elements than members), 4099 and 1 Mi elements', async () => {
      const sizes = [1, 5, 7, 4099, 1 << 20];
      for (const [i, n] of sizes.entries()) await checkAllReduce(g.meshes, n, 'sum', 1000 + 10 * i);
    });

    it('allReduce sum of 16 Mi elements (64 MiB per member, all eight in this process)', async (t) => {
      const t0 = performance.now();
      await checkAllReduce(g.meshes, 16 * 1024 * 1024, 'sum', 1500);
      t.diagnostic(`16 Mi elements on 8 members: ${(performance.now() - t0).toFixed(0)} ms`);
    });

    it('allReduce mean, broadcastTensor and barrier', async () => {
      await checkAllReduce(g.meshes, 10_001, 'mean', 2000);
      await checkBroadcast(g, 5, 50_001);
      await within(Promise.all(g.meshes.map((m) => m.barrier())), 30_000, 'barrier');
    });

    it('a ring all-reduce opens only the two ring neighbours of each member', () => {
      // Lazy connections: nobody sent a message to anyone else in this group.
      for (const m of g.meshes) assert.equal(m.openConnections, 2, `${m.peerId} has ${m.openConnections}`);
    });
  });
});
