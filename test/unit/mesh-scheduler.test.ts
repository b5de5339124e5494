// The elastic scheduler over an in-memory network whose deliveries the test controls (in addition to
// the WebRTC tests of test/mesh/elastic.test.ts, whose timing it cannot choose): a member that completed
// an operation before another lost a link hands its result over (RESULT), so both end with the same
// tensor and contributors; and a live member that the others left out fails instead of waiting.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fail } from '../../src/errors.js';
import { Codec } from '../../src/mesh/codec.js';
import { Scheduler } from '../../src/mesh/scheduler.js';
import { decodeFrame, FrameType, type MeshFrame, OpKind } from '../../src/mesh/wire.js';
import { withCode, within } from '../helpers/hosts.js';

const ids = ['a', 'b', 'c'].map((ch) => ch.repeat(52));

/** Three schedulers; frames wait in `queue` until `deliver` passes them on (in order). */
function network() {
  const queue: { from: string; to: string; frame: MeshFrame }[] = [];
  const nodes = new Map<string, Scheduler>();
  for (const self of ids) {
    const s = new Scheduler({
      self,
      room: 'test',
      chunkElements: 4,
      window: 8,
      ring: () => [...ids],
      isMember: () => true,
      // A copy, as a connection's send seals it: the operation writes its next chunk over a sent frame.
      send: async (to, bytes) => {
        queue.push({ from: self, to, frame: decodeFrame(bytes.slice()) });
      },
      post: (to, bytes) => {
        queue.push({ from: self, to, frame: decodeFrame(bytes) });
      },
      pin: () => () => {},
      stale: () => {},
    });
    if (self === ids[0]) s.startsMesh();
    nodes.set(self, s);
  }
  /** Delivers queued frames (and what they cause) while `keep` allows; returns how many it held back. */
  const deliver = async (keep: (f: { from: string; to: string; frame: MeshFrame }) => boolean) => {
    const held: typeof queue = [];
    for (let rounds = 0; rounds < 10_000; rounds++) {
      await new Promise((r) => setImmediate(r));
      const next = queue.shift();
      if (!next) break;
      if (!keep(next)) held.push(next);
      else if (next.frame.type !== FrameType.DATA) nodes.get(next.to)!.onFrame(next.from, next.frame);
    }
    queue.push(...held);
    return held.length;
  };
  return { nodes, queue, deliver };
}

const spec = (tensor: Float32Array) => ({
  kind: OpKind.ALL_REDUCE,
  tensor,
  param: 1,
  elastic: true,
  codec: Codec.NONE,
  residual: undefined,
  timeoutMs: 10_000,
});

it('a member that completed hands its result to one that lost a link: same tensor, same contributors', async () => {
  const [a, b, c] = ids as [string, string, string];
  const net = network();
  const tensors = ids.map((_, i) => Float32Array.from({ length: 12 }, (_, k) => i * 100 + k));
  const expected = tensors[0]!.map((_, k) => (tensors[0]![k]! + tensors[1]![k]! + tensors[2]![k]!) / 3);
  const ops = ids.map((id, i) => net.nodes.get(id)!.run(spec(tensors[i]!)));
  for (const op of ops) op.catch(() => {});
  // Everything flows except the last all-gather step's chunks to c (which c would not forward): a and b
  // complete, c is left one segment short.
  const lastStep = (f: { to: string; frame: MeshFrame }) =>
    f.to === c && f.frame.type === FrameType.CHUNK && f.frame.phase === 1 && f.frame.step === 1;
  const held = await net.deliver((f) => !lastStep(f));
  assert.ok(held > 0, 'c was kept waiting');
  await within(Promise.all([ops[0], ops[1]]), 5_000, 'a and b complete');
  // c's link to b (its predecessor) fails; the chunks it was waiting for are lost with it.
  net.queue.length = 0;
  net.nodes.get(c)!.linkLost(b, fail('closed', 'link failed'));
  await net.deliver(() => true);
  const cContributors = await within(ops[2]!, 5_000, 'c completes');
  for (const t of tensors) assert.deepEqual([...t], [...expected]);
  assert.deepEqual(net.nodes.get(a)!.lastContributors, [a, b, c]);
  assert.deepEqual(cContributors, [a, b, c], "c adopted the result made of everyone's tensors");
});

it('a live member left out by the others fails with mesh_member_left, its tensor unchanged', async () => {
  const [a, b, c] = ids as [string, string, string];
  const net = network();
  const tensors = ids.map((_, i) => Float32Array.from({ length: 6 }, (_, k) => i + k));
  const before = tensors.map((t) => [...t]);
  const ops = ids.map((id, i) => net.nodes.get(id)!.run(spec(tensors[i]!)));
  for (const op of ops) op.catch(() => {});
  // Nothing reaches c from the others' chunks: a and b lose their links to c before the data goes round.
  await net.deliver((f) => f.frame.type !== FrameType.CHUNK);
  net.queue.length = 0;
  net.nodes.get(a)!.linkLost(c, fail('closed', 'link failed'));
  net.nodes.get(b)!.linkLost(c, fail('closed', 'link failed'));
  await net.deliver(() => true);
  await within(Promise.all([ops[0], ops[1]]), 5_000, 'a and b complete without c');
  await assert.rejects(within(ops[2]!, 5_000, 'c fails'), withCode('mesh_member_left'));
  assert.deepEqual([...tensors[2]!], before[2]);
  assert.deepEqual(tensors[0], tensors[1]);
  assert.deepEqual(net.nodes.get(a)!.lastContributors, [a, b]);
  for (let k = 0; k < 6; k++) assert.equal(tensors[0]![k], (before[0]![k]! + before[1]![k]!) / 2);
});
