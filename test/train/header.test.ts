// The step header (src/train/header.ts): what the summed header tells every member, and the flat
// gradient layout (src/train/flat.ts) round trip.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { flattenInto, layoutOf, unflatten } from '../../src/train/flat.js';
import { decodeHeader, encodeHeader, type MemberHeader, SLOTS } from '../../src/train/header.js';

const ring = ['a', 'b', 'c', 'd'];
const none = { version: 0, compression: 'none' as const };

/** The element-wise sum of every member's header, as the all-reduce computes it. */
function summed(headers: Record<string, MemberHeader>): Float32Array {
  const out = new Float32Array(ring.length * SLOTS);
  for (const [peer, h] of Object.entries(headers)) {
    encodeHeader(ring, peer, h).forEach((v, i) => {
      out[i]! += v;
    });
  }
  return out;
}

describe('step header', () => {
  it('first step: nobody has parameters, the lowest peerId sends them to all others', () => {
    const h = { step: -1, setting: none, stepMs: 0 };
    const plan = decodeHeader(ring, summed({ a: h, b: h, c: h, d: h }));
    assert.equal(plan.step, 0);
    assert.equal(plan.root, 'a');
    assert.deepEqual(plan.behind, ['b', 'c', 'd']);
    assert.deepEqual(plan.present, ring);
  });

  it('steady state: everyone on the same step, nobody behind', () => {
    const h = { step: 17, setting: none, stepMs: 12.5 };
    const plan = decodeHeader(ring, summed({ a: h, b: h, c: h, d: h }));
    assert.equal(plan.step, 17);
    assert.deepEqual(plan.behind, []);
    assert.equal(plan.members.get('c')!.stepMs, 12.5);
  });

  it('a joiner and a straggler receive the state of the lowest up-to-date member', () => {
    const plan = decodeHeader(
      ring,
      summed({
        a: { step: 9, setting: none, stepMs: 0 },
        b: { step: -1, setting: none, stepMs: 0 },
        c: { step: 10, setting: none, stepMs: 0 },
        d: { step: 10, setting: none, stepMs: 0 },
      }),
    );
    assert.equal(plan.step, 10);
    assert.equal(plan.root, 'c');
    assert.deepEqual(plan.behind, ['a', 'b']);
  });

  it('a member lost during the header is neither root nor behind', () => {
    const h = { step: 4, setting: none, stepMs: 0 };
    const plan = decodeHeader(ring, summed({ b: h, c: h, d: h }));
    assert.deepEqual(plan.present, ['b', 'c', 'd']);
    assert.equal(plan.root, 'b');
    assert.deepEqual(plan.behind, []);
  });

  it('the newest compression setting wins, whoever holds it', () => {
    const plan = decodeHeader(
      ring,
      summed({
        a: { step: 3, setting: { version: 1, compression: 'float16' }, stepMs: 0 },
        b: { step: 3, setting: { version: 2, compression: 'int8' }, stepMs: 0 },
        c: { step: 3, setting: none, stepMs: 0 },
        d: { step: 3, setting: { version: 2, compression: 'none' }, stepMs: 0 },
      }),
    );
    assert.deepEqual(plan.setting, { version: 2, compression: 'int8' });
  });
});

describe('flat gradient layout', () => {
  it('tensors → one Float32Array → the same tensors, by variable name', async () => {
    const vars = [tf.variable(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3])), tf.variable(tf.tensor1d([7, 8]))];
    const layout = layoutOf(vars);
    assert.equal(layout.size, 8);
    const flat = new Float32Array(10);
    await flattenInto(layout, vars, flat, 1);
    assert.deepEqual([...flat], [0, 1, 2, 3, 4, 5, 6, 7, 8, 0]);
    const back = unflatten(tf, layout, flat, 1);
    assert.deepEqual(Object.keys(back), layout.names);
    assert.deepEqual(back[vars[0]!.name]!.shape, [2, 3]);
    assert.deepEqual([...(await back[vars[1]!.name]!.data())], [7, 8]);
    await assert.rejects(flattenInto(layout, [vars[0]!], flat), { code: 'invalid_argument' });
    tf.dispose([...vars, ...Object.values(back)]);
  });
});
