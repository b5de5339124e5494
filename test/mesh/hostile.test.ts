// Hostile input to a mesh: random and hand-made malformed frames never parse as anything but a
// `malformed` P2PTLSError; and a paired member that speaks raw frames (no Mesh of its own) cannot crash
// its peer — each bad frame becomes an `error` event with a typed code, a bad frame inside an operation
// fails that operation with that code, and the connection keeps working afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isP2PTLSError, type P2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import { joinMesh, type Mesh } from '../../src/mesh/index.js';
import {
  CHUNK_HEADER_LEN,
  decodeFrame,
  encodeAbort,
  encodeChunk,
  encodeData,
  encodeReady,
  FrameType,
  MESH_WIRE_VERSION,
  OpKind,
  Phase,
} from '../../src/mesh/wire.js';
import { glareWinner } from '../../src/protocol/handshake.js';
import { autoAccept, type Env, startEnv, withCode, within } from '../helpers/hosts.js';

describe('mesh frames: decoding', () => {
  it('random bytes parse as a frame or fail with malformed, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, versioned) => {
        if (versioned && bytes.length > 0) bytes[0] = MESH_WIRE_VERSION;
        try {
          decodeFrame(bytes);
        } catch (err) {
          assert.ok(isP2PTLSError(err, 'malformed'), `threw ${String(err)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('every truncation of a valid frame is refused, and each frame round-trips', () => {
    const frames = [
      encodeReady({
        kind: OpKind.ALL_REDUCE,
        seq: 7,
        group: 0xdeadbeef,
        length: 5,
        param: 1,
        codec: 2,
        elastic: true,
        view: 0x01020304,
      }),
      encodeChunk(
        { phase: Phase.ALL_GATHER, codec: 0, seq: 3, step: 2, offset: 10, view: 5 },
        new Float32Array([1.5, -2, 3]),
      ),
      encodeAbort({ seq: 9, code: 'mesh_member_left', reason: 'gone' }),
    ];
    for (const f of frames) {
      // An ABORT's reason runs to the end of the frame: only cuts into its fixed part are detectable.
      const detectable = f[1] === FrameType.ABORT ? 9 + f[8]! : f.length;
      for (let cut = 0; cut < detectable; cut++) {
        assert.throws(
          () => decodeFrame(f.subarray(0, cut)),
          withCode('malformed'),
          `cut at ${cut} of ${f[1]}`,
        );
      }
    }
    const ready = decodeFrame(frames[0]!);
    assert.deepEqual(ready, {
      type: FrameType.READY,
      kind: OpKind.ALL_REDUCE,
      seq: 7,
      group: 0xdeadbeef,
      length: 5,
      param: 1,
      codec: 2,
      elastic: true,
      view: 0x01020304,
    });
    const chunk = decodeFrame(frames[1]!);
    assert.equal(chunk.type, FrameType.CHUNK);
    if (chunk.type === FrameType.CHUNK) {
      assert.deepEqual([chunk.seq, chunk.step, chunk.offset, chunk.count], [3, 2, 10, 3]);
      assert.deepEqual([...new Float32Array(chunk.payload.slice().buffer)], [1.5, -2, 3]);
    }
    assert.deepEqual(decodeFrame(frames[2]!), {
      type: FrameType.ABORT,
      seq: 9,
      code: 'mesh_member_left',
      reason: 'gone',
    });
  });

  it('refuses a chunk whose count disagrees with its bytes, unknown types, versions and kinds', () => {
    const chunk = encodeChunk(
      { phase: Phase.REDUCE_SCATTER, codec: 0, seq: 0, step: 0, offset: 0, view: 0 },
      new Float32Array(4),
    );
    const longer = new Uint8Array(chunk.length + 4);
    longer.set(chunk);
    const bad = [
      longer, // 5 values of bytes, header says 4
      chunk.subarray(0, CHUNK_HEADER_LEN + 6), // not a whole number of values
      Uint8Array.of(1, FrameType.DATA), // version 1 (before elastic operations)
      Uint8Array.of(1, 0x7f), // unknown type
      (() => {
        const r = encodeReady({
          kind: OpKind.BARRIER,
          seq: 0,
          group: 0,
          length: 1,
          param: 0,
          codec: 0,
          elastic: true,
          view: 0,
        });
        r[2] = 9; // unknown kind
        return r;
      })(),
      (() => {
        const c = chunk.slice();
        c[2] = 7; // unknown phase
        return c;
      })(),
      (() => {
        const a = encodeAbort({ seq: 1, code: 'x', reason: 'y' });
        a[8] = 200; // code length beyond the frame
        return a;
      })(),
      (() => {
        const a = encodeAbort({ seq: 1, code: 'x', reason: '' });
        const out = new Uint8Array(a.length + 2);
        out.set(a);
        out.set([0xc3, 0x28], a.length); // invalid UTF-8 in the reason
        return out;
      })(),
    ];
    for (const [i, b] of bad.entries())
      assert.throws(() => decodeFrame(b), withCode('malformed'), `case ${i}`);
  });
});

describe('mesh frames from a hostile member', () => {
  let env: Env;
  let victimHost: Host;
  let victim: Mesh;
  let raw: Connection;
  let hostilePeerId = '';
  const errors: P2PTLSError[] = [];

  /** The next `error` event of the victim's mesh, within 10 s. */
  const nextError = () =>
    within(
      new Promise<P2PTLSError>((r) => victim.once('error', ({ error }) => r(error))),
      10_000,
      'error event',
    );

  before(async () => {
    env = await startEnv(2);
    // The hostile peer must be the dialer of the pair (lower peerId), so that the victim's mesh takes
    // its dial as a mesh connection.
    const [x, y] = env.ids as [(typeof env.ids)[0], (typeof env.ids)[0]];
    const hostileId = glareWinner(x.peerId, y.peerId) === x.peerId ? x : y;
    const victimId = hostileId === x ? y : x;
    const hostile = await env.host(hostileId, { peers: [victimId] });
    hostilePeerId = hostile.peerId;
    autoAccept(hostile);
    victimHost = await env.host(victimId, { peers: [hostileId] });
    victim = await joinMesh(victimHost, 'hostile');
    victim.on('error', ({ error }) => errors.push(error));
    await env.signalingOf(hostile).joinRoom('hostile');
    await within(victim.waitForMembers(2), 20_000, 'the hostile peer is a member');
    raw = await within(hostile.connect(victimId.peerId), 20_000, 'connect');
  });
  after(async () => {
    await env?.close();
  });

  it('each malformed frame is an error event with code malformed; the process and link stay up', async () => {
    for (const bytes of [
      Uint8Array.of(),
      Uint8Array.of(1),
      Uint8Array.of(9, 1, 2, 3),
      Uint8Array.of(1, 0x55, 0, 0),
      encodeChunk(
        { phase: Phase.REDUCE_SCATTER, codec: 0, seq: 0, step: 0, offset: 0, view: 0 },
        new Float32Array(3),
      ).subarray(0, 30),
    ]) {
      const e = nextError();
      await raw.send(bytes);
      assert.equal((await e).code, 'malformed');
    }
    const msg = new Promise<string>((r) =>
      victim.once('message', ({ data }) => r(new TextDecoder().decode(data))),
    );
    await raw.send(encodeData(new TextEncoder().encode('still here')));
    assert.equal(await within(msg, 10_000, 'message'), 'still here');
    assert.equal((await victim.peerStats(hostilePeerId)).framesRefused, 5);
  });

  it('a chunk for an operation that has not started, or far in the future, is unexpected_message', async () => {
    let e = nextError();
    await raw.send(
      encodeChunk(
        { phase: Phase.REDUCE_SCATTER, codec: 0, seq: 0, step: 0, offset: 0, view: 0 },
        new Float32Array(1),
      ),
    );
    assert.equal((await e).code, 'unexpected_message');
    e = nextError();
    await raw.send(
      encodeReady({
        kind: OpKind.ALL_REDUCE,
        seq: 0xffffff00,
        group: 1,
        length: 1,
        param: 0,
        codec: 0,
        elastic: true,
        view: 1,
      }),
    );
    assert.equal((await e).code, 'unexpected_message');
  });

  /** Starts an allReduce of 10 elements on the victim and reads the READY it sends us. */
  async function startOp(): Promise<{ op: Promise<Float32Array>; seq: number; group: number }> {
    const ready = within(
      new Promise<Uint8Array>((resolve) => {
        const off = raw.on('message', (m) => {
          if (m[1] !== FrameType.READY) return;
          off();
          resolve(m);
        });
      }),
      20_000,
      'READY from the victim',
    );
    const op = victim.allReduce(new Float32Array(10));
    op.catch(() => {});
    const f = decodeFrame(await ready);
    assert.equal(f.type, FrameType.READY);
    if (f.type !== FrameType.READY) throw new Error('not READY');
    return { op, seq: f.seq, group: f.group };
  }

  /** Our READY for the victim's operation `seq`: an elastic all-reduce of `length` elements, no compression. */
  const readyFor = (seq: number, group: number, length = 10) =>
    encodeReady({
      kind: OpKind.ALL_REDUCE,
      seq,
      group,
      length,
      param: 0,
      codec: 0,
      elastic: true,
      view: group,
    });

  it('inside an operation: a wrong-length chunk, a wrong op id and a wrong READY fail it with a typed code', async () => {
    // 2 members: the hostile peer is both predecessor and successor; the victim expects elements 0..4.
    let { op, seq, group } = await startOp();
    await raw.send(readyFor(seq, group));
    await raw.send(
      encodeChunk(
        { phase: Phase.REDUCE_SCATTER, codec: 0, seq, step: 0, offset: 0, view: group },
        new Float32Array(7),
      ),
    );
    await assert.rejects(within(op, 10_000, 'op'), withCode('unexpected_message'));

    ({ op, seq, group } = await startOp());
    // A chunk whose header is right but whose operation id is the next one.
    await raw.send(
      encodeChunk(
        { phase: Phase.REDUCE_SCATTER, codec: 0, seq: seq + 1, step: 0, offset: 0, view: group },
        new Float32Array(5),
      ),
    );
    await assert.rejects(within(op, 10_000, 'op'), withCode('unexpected_message'));

    ({ op, seq, group } = await startOp());
    await raw.send(readyFor(seq, group, 11)); // one element more than the victim's
    await assert.rejects(within(op, 10_000, 'op'), withCode('mesh_mismatch'));

    ({ op, seq, group } = await startOp());
    const truncated = encodeChunk(
      { phase: Phase.REDUCE_SCATTER, codec: 0, seq, step: 0, offset: 0, view: group },
      new Float32Array(5),
    );
    await raw.send(readyFor(seq, group));
    await raw.send(truncated.subarray(0, truncated.length - 2));
    await assert.rejects(within(op, 10_000, 'op'), withCode('malformed'));

    // An ABORT with a code nobody knows becomes peer_error.
    ({ op, seq } = await startOp());
    await raw.send(encodeAbort({ seq, code: 'made_up', reason: 'because' }));
    await assert.rejects(within(op, 10_000, 'op'), withCode('peer_error'));

    // And an honest exchange still works: play the other member by hand for 10 elements.
    ({ op, seq, group } = await startOp());
    await raw.send(readyFor(seq, group));
    // Ring of 2: in reduce-scatter the victim receives our segment (ours is rank h), in all-gather its own.
    const h = victim.ring.indexOf(hostilePeerId);
    const v = 1 - h;
    await raw.send(
      encodeChunk(
        { phase: Phase.REDUCE_SCATTER, codec: 0, seq, step: 0, offset: 5 * h, view: group },
        Float32Array.of(1, 1, 1, 1, 1),
      ),
    );
    await raw.send(
      encodeChunk(
        { phase: Phase.ALL_GATHER, codec: 0, seq, step: 0, offset: 5 * v, view: group },
        Float32Array.of(2, 2, 2, 2, 2),
      ),
    );
    const result = await within(op, 10_000, 'honest op');
    const expected = new Float32Array(10);
    expected.fill(1, 5 * h, 5 * h + 5);
    expected.fill(2, 5 * v, 5 * v + 5);
    assert.deepEqual(result, expected);
    assert.ok(errors.every((e) => isP2PTLSError(e)));
  });
});
