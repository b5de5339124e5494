// Webcam frames over SLLP: split/reassemble, and the live-video rules (late frames dropped, incomplete
// frames given up, bounded memory) under loss, reordering, duplication and hostile pieces.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameAssembler, FrameSplitter, MAX_PIECES, VIDEO_HEADER_BYTES } from '../../web-demo/src/video.js';
import { withCode } from '../helpers/hosts.js';

const image = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 251);

describe('web demo: video frames over datagrams', () => {
  it('reassembles frames of any size from pieces in any order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 40, max: 4000 }),
        fc.infiniteStream(fc.nat()),
        (size, mtu, rnd) => {
          const s = new FrameSplitter(mtu);
          const a = new FrameAssembler();
          const pieces = s.split(image(size), 1234.5);
          assert.ok(pieces.every((p) => p.length <= mtu));
          const order = pieces.map((p, i) => ({ p, k: rnd.next().value ?? i })).sort((x, y) => x.k - y.k);
          const frames = order.map(({ p }) => a.accept(p)).filter((f) => f !== undefined);
          assert.equal(frames.length, 1);
          assert.deepEqual(frames[0]?.data, image(size));
          assert.equal(frames[0]?.captureMs, 1234.5);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('drops late frames, gives up incomplete ones, ignores duplicates', () => {
    const s = new FrameSplitter(100 + VIDEO_HEADER_BYTES);
    const a = new FrameAssembler();
    const f0 = s.split(image(250, 0), 0);
    const f1 = s.split(image(250, 1), 1);
    const f2 = s.split(image(250, 2), 2);
    assert.equal(a.accept(f0[0]!), undefined); // frame 0 starts, never completes
    for (const p of f2) a.accept(p); // frame 2 completes: frame 0 is given up
    assert.equal(a.stats.framesCompleted, 1);
    assert.equal(a.stats.framesIncomplete, 1);
    assert.equal(a.stats.piecesLost, 2);
    for (const p of f1) assert.equal(a.accept(p), undefined); // older than what is on screen: late
    assert.equal(a.stats.framesLate, 3);
    const f3 = s.split(image(250, 3), 3);
    a.accept(f3[0]!);
    assert.equal(a.accept(f3[0]!), undefined);
    a.accept(f3[1]!);
    assert.deepEqual(a.accept(f3[2]!)?.data, image(250, 3));
  });

  it('keeps a bounded number of partial frames under loss', () => {
    const s = new FrameSplitter(100 + VIDEO_HEADER_BYTES);
    const a = new FrameAssembler();
    for (let i = 0; i < 1000; i++) a.accept(s.split(image(500, i), i)[0]!);
    assert.equal(a.stats.framesCompleted, 0);
    assert.ok(a.stats.framesIncomplete >= 1000 - 8);
  });

  it('starts over when the sender restarts its camera (new stream)', () => {
    const a = new FrameAssembler();
    const first = new FrameSplitter(1000);
    for (let i = 0; i < 5; i++) for (const p of first.split(image(10), i)) a.accept(p);
    const second = new FrameSplitter(1000);
    const frames = second.split(image(10, 9), 9).map((p) => a.accept(p));
    // A fresh stream id (random) resets the frame counter: frame 0 of it is shown, not dropped as late.
    if (second.stream !== first.stream) assert.ok(frames.some((f) => f !== undefined));
  });

  it('rejects hostile pieces with a typed error and keeps working', () => {
    const s = new FrameSplitter(1000);
    const a = new FrameAssembler();
    const [good] = s.split(image(10), 5);
    const bad = (mutate: (d: Uint8Array, v: DataView) => void) => {
      const d = good!.slice();
      mutate(d, new DataView(d.buffer));
      return d;
    };
    for (const d of [
      new Uint8Array(5),
      bad((d) => (d[0] = 0x57)),
      bad((_, v) => v.setUint16(9, 0)),
      bad((_, v) => v.setUint16(9, MAX_PIECES + 1)),
      bad((_, v) => v.setUint16(7, 1)),
      bad((_, v) => v.setFloat64(11, Number.NaN)),
    ]) {
      assert.throws(() => a.accept(d), withCode('malformed'));
    }
    const two = new FrameSplitter(20 + VIDEO_HEADER_BYTES).split(image(30), 7);
    a.accept(two[0]!);
    const liar = two[1]!.slice();
    new DataView(liar.buffer).setFloat64(11, 8);
    assert.throws(() => a.accept(liar), withCode('malformed'));
    assert.deepEqual(a.accept(two[1]!)?.data, image(30));
  });
});
