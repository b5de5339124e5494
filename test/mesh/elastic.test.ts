// Elastic collectives (PROTOCOL.md §12.4): a member process SIGKILLed in the middle of an all-reduce
// leaves the other three with the same result — the mean over the members that contributed — and they
// go on; a member that joins a running mesh takes part from the next operation; a signaling server
// restart in the middle of an operation does not abort it. Real signaling server processes, WebRTC on
// loopback; every wait is bounded.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { joinMesh, type Mesh } from '../../src/mesh/index.js';
import { toBase64Url } from '../../src/util/bytes.js';
import { type Env, startEnv, until, within } from '../helpers/hosts.js';
import { ROOT, type SignalingProcess, spawnProcess, startSignalingProcess } from '../helpers/processes.js';
import { firstMismatch, randomTensor, startMeshGroup } from './_mesh.js';
import type { MeshWorkerConfig } from './mesh-worker.js';

// A heartbeat timeout of a minute: survivors must learn of a killed member from the room (its signaling
// socket closes) and a probe of its connections, not from the heartbeat; and a stall of the loaded
// machine (three members share this process's event loop) never looks like a dead link.
const HEARTBEAT = { heartbeatIntervalMs: 250, heartbeatTimeoutMs: 60_000 };
const bytesOf = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

describe('elastic collectives', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(6);
  });
  after(async () => {
    await env?.close();
  });

  it('a member process killed mid-allReduce: the other three complete it alike and go on, long before a heartbeat timeout', async (t) => {
    const ids = env.ids.slice(0, 4);
    const [w, ...local] = ids as [(typeof ids)[0], ...typeof ids];
    const N = 2 * 1024 * 1024;
    const config: MeshWorkerConfig = {
      url: env.url,
      room: 'elastic-kill',
      identity: await w.exportSecret(),
      peers: local.map((p) => ({ identity: p.exportPublic(), psk: toBase64Url(env.psk(w, p)) })),
      members: 4,
      ops: [
        { n: 1001, seed: 1 },
        { n: N, seed: 2 },
      ],
      reduce: 'mean',
      ...HEARTBEAT,
    };
    const worker = spawnProcess(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'test/mesh/mesh-worker.ts')],
      {
        env: { P2PTLS_MESH_WORKER: JSON.stringify(config) },
      },
    );
    env.defer(() => worker.kill(0));
    const workerId = (await worker.waitForLine(/^ready (\S+)$/, 30_000))[1]!;
    const g = await startMeshGroup(env, local, 'elastic-kill', { host: HEARTBEAT, pairedWith: ids });
    try {
      await within(Promise.all(g.meshes.map((m) => m.waitForMembers(4))), 30_000, 'members');
      const small = local.map((_, i) => randomTensor(1001, 10 + i));
      await within(Promise.all(g.meshes.map((m, i) => m.allReduce(small[i]!, 'mean'))), 30_000, 'op 0');
      await worker.waitForLine(/^op 0 ok \S+ 4$/, 30_000);

      const inputs = new Map(local.map((id, i) => [id.peerId, randomTensor(N, 20 + i)]));
      inputs.set(workerId, randomTensor(N, 2));
      const tensors = local.map((id) => inputs.get(id.peerId)!.slice());
      const ops = Promise.all(g.meshes.map((m, i) => m.allReduce(tensors[i]!, 'mean')));
      ops.catch(() => {}); // awaited below; a rejection before that is not unhandled
      await worker.waitForLine(/^op 1 started$/, 30_000);
      worker.child.kill('SIGKILL');
      const killedAt = performance.now();
      await within(ops, 20_000, 'the survivors complete (a third of the heartbeat timeout)');
      const contributors = g.meshes[0]!.lastContributors;
      t.diagnostic(
        `completed ${(performance.now() - killedAt).toFixed(0)} ms after the kill, over ${contributors.length} members`,
      );
      for (const m of g.meshes) assert.deepEqual(m.lastContributors, contributors, 'the same contributors');
      for (const id of local) assert.ok(contributors.includes(id.peerId), 'every survivor contributed');
      for (const r of tensors.slice(1))
        assert.ok(bytesOf(r).equals(bytesOf(tensors[0]!)), 'identical results');
      const used = contributors.map((p) => inputs.get(p)!);
      assert.equal(firstMismatch(tensors[0]!, used, 1 / used.length), -1, 'the mean over the contributors');

      // And they go on without it.
      await until(() => g.meshes.every((m) => m.members.length === 2), 15_000, 'the worker left');
      const next = local.map((_, i) => randomTensor(999, 40 + i));
      const copies = next.map((x) => x.slice());
      await within(Promise.all(g.meshes.map((m, i) => m.allReduce(copies[i]!, 'mean'))), 30_000, 'op 2');
      for (const r of copies) assert.equal(firstMismatch(r, next, 1 / 3), -1);
      for (const m of g.meshes) assert.equal(m.lastContributors.length, 3);
    } finally {
      for (const h of g.hosts) await env.closeHost(h);
    }
  });

  it('a member that joins after 3 operations takes part in the next ones (broadcast, then all-reduce)', async () => {
    const g = await startMeshGroup(env, env.ids.slice(0, 3), 'joiner');
    try {
      for (let k = 0; k < 3; k++) {
        const inputs = g.meshes.map((_, i) => randomTensor(500, 100 * k + i));
        const out = inputs.map((x) => x.slice());
        await within(Promise.all(g.meshes.map((m, i) => m.allReduce(out[i]!))), 30_000, `op ${k}`);
        for (const r of out) assert.equal(firstMismatch(r, inputs), -1);
      }
      const late = await env.host(env.ids[3]!, { peers: env.ids.slice(0, 3) });
      const lateMesh = await joinMesh(late, 'joiner');
      const all: Mesh[] = [...g.meshes, lateMesh];
      await within(Promise.all(all.map((m) => m.waitForMembers(4))), 30_000, 'everyone sees the joiner');
      // Its first operation: the parameters from a member that was there.
      const root = g.meshes[0]!.peerId;
      const params = randomTensor(3001, 9);
      const received = all.map((m) => (m.peerId === root ? params.slice() : new Float32Array(3001)));
      await within(
        Promise.all(all.map((m, i) => m.broadcastTensor(root, received[i]!))),
        30_000,
        'broadcast',
      );
      for (const r of received) assert.ok(bytesOf(r).equals(bytesOf(params)));
      for (let k = 0; k < 2; k++) {
        const inputs = all.map((_, i) => randomTensor(1001, 1000 + 10 * k + i));
        const out = inputs.map((x) => x.slice());
        await within(
          Promise.all(all.map((m, i) => m.allReduce(out[i]!, 'mean'))),
          30_000,
          `with the joiner ${k}`,
        );
        for (const r of out) assert.equal(firstMismatch(r, inputs, 1 / 4), -1);
        for (const m of all) assert.equal(m.lastContributors.length, 4);
      }
      await env.closeHost(late);
    } finally {
      for (const h of g.hosts) await env.closeHost(h);
    }
  });
});

describe('elastic collectives across a signaling restart', () => {
  let env: Env;
  let restarted: SignalingProcess | undefined;
  before(async () => {
    env = await startEnv(3);
  });
  after(async () => {
    await env?.close();
    await restarted?.kill();
  });

  it('the signaling server is restarted while an all-reduce runs: it completes with every member', async () => {
    const g = await startMeshGroup(env, env.ids, 'blip');
    const [a, b, c] = g.meshes as [Mesh, Mesh, Mesh];
    const inputs = g.meshes.map((_, i) => randomTensor(100_003, 200 + i));
    const out = inputs.map((x) => x.slice());
    // Warm up, so the ring's connections exist (an operation that has to dial needs signaling).
    await within(Promise.all(g.meshes.map((m) => m.barrier())), 30_000, 'barrier');
    // Two members start; the third only once the server has gone and come back, so the operation is
    // running during the outage whatever the timing.
    const running = Promise.all([a.allReduce(out[0]!), b.allReduce(out[1]!)]);
    const port = env.server.port;
    await env.server.kill();
    await until(() => g.hosts.every((h) => !env.signalingOf(h).isAuthenticated), 15_000, 'clients notice');
    restarted = await startSignalingProcess({ args: ['--port', String(port)] });
    await until(() => g.hosts.every((h) => env.signalingOf(h).isAuthenticated), 30_000, 're-authenticated');
    const last = c.allReduce(out[2]!);
    await within(Promise.all([running, last]), 30_000, 'the operation completes');
    for (const r of out) assert.equal(firstMismatch(r, inputs), -1);
    for (const m of g.meshes) assert.equal(m.lastContributors.length, 3, 'nobody was left out');
    for (const h of g.hosts) await env.closeHost(h);
  });
});
