/**
 * The SLLP-mode datagram channel: every authentic datagram is delivered at most once with its own seq,
 * epoch and sentAt, whatever the network does (loss, reordering, duplication); forged, replayed and stale
 * datagrams are dropped and counted, never thrown; epochs advance with key updates.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { DatagramReader, DatagramWriter } from '../../src/protocol/datagram.js';
import {
  type AeadProvider,
  CloseCode,
  type DatagramResult,
  webCryptoAead,
} from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { type InMemoryEnd, pumpDatagrams } from '../../src/testing/in-memory.js';
import { utf8 } from '../../src/util/bytes.js';
import {
  endFrom,
  flipBit,
  type HandshakeRun,
  pairFrom,
  prng,
  pumpReliable,
  tagged,
  twoRuns,
  withCode,
} from '../helpers/protocol.js';

type DataResult = Extract<DatagramResult, { kind: 'data' }>;

const BASE_TIME = 1_700_000_000_000;

/** Sends `n` datagrams tagged with their index; returns the sealed datagrams (also left in sentDatagrams). */
async function sendTagged(end: InMemoryEnd, n: number, from = 0, size = 24): Promise<Uint8Array[]> {
  for (let i = from; i < from + n; i++) await end.session.sendDatagram(tagged(i, size), BASE_TIME + i * 3);
  return end.sentDatagrams.slice(-n);
}

const indexOf = (r: DataResult) => new DataView(r.data.buffer, r.data.byteOffset).getUint32(0);

function dataResults(results: DatagramResult[]): DataResult[] {
  return results.filter((r): r is DataResult => r.ok && r.kind === 'data');
}

/** Receives datagrams one after the other (no concurrency), in the given order. */
async function deliverInOrder(to: InMemoryEnd, datagrams: Uint8Array[]): Promise<DatagramResult[]> {
  const out: DatagramResult[] = [];
  for (const d of datagrams) out.push(await to.session.receiveDatagram(d));
  return out;
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('protocol datagrams (SLLP mode)', () => {
  let run: HandshakeRun;
  let other: HandshakeRun;

  before(async () => {
    ({ run, other } = await twoRuns());
  });

  it('delivers datagrams both ways with their seq, epoch, sentAt and payload', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    for (const [i, t] of [0, 1, 2 ** 32 - 1, 2 ** 32, BASE_TIME, 2 ** 48 - 1].entries()) {
      assert.equal(await a.session.sendDatagram(tagged(i, 10), t), i);
      const [r] = await pumpDatagrams(a, b);
      assert.deepEqual(r, {
        ok: true,
        kind: 'data',
        data: tagged(i, 10),
        seq: i,
        epoch: 0,
        sentAt: t,
        reordered: false,
      });
    }
    assert.equal(await b.session.sendDatagram('', 5), 0);
    assert.equal(await b.session.sendDatagram('pong', 6), 1);
    const back = await pumpDatagrams(b, a);
    assert.deepEqual(
      back.map((r) => r.ok && r.kind === 'data' && [r.seq, r.sentAt, new TextDecoder().decode(r.data)]),
      [
        [0, 5, ''],
        [1, 6, 'pong'],
      ],
    );
    assert.deepEqual(b.session.datagramStats, {
      received: 6,
      reordered: 0,
      dropped: { invalid: 0, replay: 0, stale: 0 },
    });
  });

  it('random loss, reordering and duplication (concurrent delivery): each authentic datagram at most once', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { initiator: a, responder: b } = pairFrom(run);
      const N = 300;
      await sendTagged(a, N);
      const rand = prng(seed);
      const fates = new Map<number, 'deliver' | 'drop' | 'duplicate'>();
      const results = await pumpDatagrams(
        a,
        b,
        (_d, i) => {
          const x = rand();
          const f = x < 0.2 ? 'drop' : x < 0.35 ? 'duplicate' : 'deliver';
          fates.set(i, f);
          return f;
        },
        (items) => shuffle(items, rand),
      );
      const data = dataResults(results);
      const seen = new Set<number>();
      for (const r of data) {
        const i = indexOf(r);
        assert.ok(!seen.has(i), `datagram ${i} delivered twice`);
        seen.add(i);
        assert.equal(r.seq, i);
        assert.equal(r.epoch, 0);
        assert.equal(r.sentAt, BASE_TIME + i * 3);
        assert.deepEqual(r.data, tagged(i, 24));
      }
      const survivors = [...fates].filter(([, f]) => f !== 'drop').map(([i]) => i);
      const dups = [...fates].filter(([, f]) => f === 'duplicate').length;
      assert.deepEqual(
        [...seen].sort((x, y) => x - y),
        survivors,
        'every surviving datagram is delivered',
      );
      const stats = b.session.datagramStats;
      assert.equal(stats.received, survivors.length);
      assert.equal(stats.dropped.replay, dups);
      assert.equal(stats.dropped.invalid, 0);
      assert.equal(stats.dropped.stale, 0);
      assert.equal(stats.reordered, data.filter((r) => r.reordered).length);
      assert.equal(results.filter((r) => !r.ok).length, dups);
    }
  });

  it('reordered datagrams are flagged and counted exactly (sequential delivery)', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const sent = await sendTagged(a, 200);
    const order = shuffle(
      sent.map((_, i) => i),
      prng(42),
    );
    const results = await deliverInOrder(
      b,
      order.map((i) => sent[i]!),
    );
    let highest = -1;
    let reordered = 0;
    for (const [k, r] of results.entries()) {
      assert.ok(r.ok && r.kind === 'data');
      assert.equal(r.seq, order[k]);
      assert.equal(r.reordered, r.seq < highest, `seq ${r.seq} after ${highest}`);
      if (r.reordered) reordered++;
      highest = Math.max(highest, r.seq);
    }
    assert.ok(reordered > 0);
    assert.equal(b.session.datagramStats.reordered, reordered);
    assert.equal(b.session.datagramStats.received, 200);
  });

  it('flipping any bit of a datagram: dropped as invalid and counted, never thrown; the session carries on', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0, d1] = await sendTagged(a, 2, 0, 50);
    let n = 0;
    for (let pos = 0; pos < d0!.length; pos++) {
      for (let bit = 0; bit < 8; bit++) {
        const r = await b.session.receiveDatagram(flipBit(d0!, pos, bit));
        assert.deepEqual(r, { ok: false, reason: 'invalid' }, `byte ${pos} bit ${bit}`);
        n++;
      }
    }
    assert.equal(b.session.datagramStats.dropped.invalid, n);
    assert.equal(b.session.state, 'open');
    const [r0, r1] = await deliverInOrder(b, [d0!, d1!]);
    assert.ok(r0?.ok && r0.kind === 'data' && r0.seq === 0 && !r0.reordered);
    assert.ok(r1?.ok && r1.kind === 'data' && r1.seq === 1);
    assert.equal(b.session.datagramStats.received, 2);
  });

  it('truncated, oversized, garbage, foreign and reflected datagrams → invalid', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { maxDatagramBytes: 100 });
    const [d] = await sendTagged(a, 1, 0, 50);
    let n = 0;
    const expectInvalid = async (x: Uint8Array, what: string) => {
      assert.deepEqual(await b.session.receiveDatagram(x), { ok: false, reason: 'invalid' }, what);
      n++;
    };
    for (let len = 0; len < d!.length; len++) await expectInvalid(d!.subarray(0, len), `truncated to ${len}`);
    const rand = prng(7);
    for (let k = 0; k < 200; k++) {
      const g = new Uint8Array(Math.floor(rand() * 200));
      for (let i = 0; i < g.length; i++) g[i] = Math.floor(rand() * 256);
      if (k % 2 === 0 && g.length > 10) {
        g[0] = 2; // DATA, no flags, epoch 0: gets as far as the AEAD
        g[1] = 0;
        g[2] = 0;
        g[3] = 0;
      }
      await expectInvalid(g, `garbage #${k}`);
    }
    // Over the receiver's maxDatagramBytes (sent by a peer that allows more).
    const big = endFrom(run.initiator, { maxDatagramBytes: 1000 });
    await big.session.sendDatagram(new Uint8Array(101), 0);
    await expectInvalid(big.sentDatagrams[0]!, 'oversized');
    // Another session's datagram, and b's own datagram reflected back to it.
    const foreign = pairFrom(other).initiator;
    await foreign.session.sendDatagram('elsewhere', 0);
    await expectInvalid(foreign.sentDatagrams[0]!, 'foreign');
    await b.session.sendDatagram('boomerang', 0);
    await expectInvalid(b.sentDatagrams[0]!, 'reflected');
    assert.equal(b.session.datagramStats.dropped.invalid, n);
    assert.equal(b.session.state, 'open');
    // The genuine datagram still gets through afterwards.
    const r = await b.session.receiveDatagram(d!);
    assert.ok(r.ok && r.kind === 'data' && r.seq === 0);
  });

  it('sendDatagram over maxDatagramBytes → message_too_large; exactly at the limit works', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { maxDatagramBytes: 100 });
    await assert.rejects(a.session.sendDatagram(new Uint8Array(101), 0), withCode('message_too_large'));
    assert.equal(a.sentDatagrams.length, 0);
    assert.equal(
      await a.session.sendDatagram(new Uint8Array(100), 0),
      0,
      'the rejected one used no sequence number',
    );
    const [r] = await pumpDatagrams(a, b);
    assert.ok(r?.ok && r.kind === 'data' && r.data.length === 100);
  });

  it('sentAt that the 48-bit field cannot carry (negative, NaN, infinite, ≥ 2^48) → invalid_argument, not silently wrapped', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const got: string[] = [];
    for (const t of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 48, 2 ** 53]) {
      const code = await (async () => {
        try {
          await a.session.sendDatagram('t', t);
        } catch (err) {
          return isP2PTLSError(err) ? err.code : 'foreign';
        }
        const [r] = await pumpDatagrams(a, b);
        return r?.ok && r.kind === 'data' ? `delivered with sentAt ${r.sentAt}` : 'dropped';
      })();
      got.push(`${t}: ${code}`);
    }
    assert.deepEqual(got, [
      '-1: invalid_argument',
      'NaN: invalid_argument',
      'Infinity: invalid_argument',
      `${2 ** 48}: invalid_argument`,
      `${2 ** 53}: invalid_argument`,
    ]);
  });

  it('replays are dropped as replay and counted', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0, d1, d2] = await sendTagged(a, 3);
    const results = await deliverInOrder(b, [d0!, d1!, d0!, d1!, d1!, d2!, d0!]);
    assert.deepEqual(
      results.map((r) => (r.ok ? 'ok' : r.reason)),
      ['ok', 'ok', 'replay', 'replay', 'replay', 'ok', 'replay'],
    );
    assert.equal(b.session.datagramStats.dropped.replay, 4);
    assert.equal(b.session.datagramStats.received, 3);
    // Concurrent duplicates: exactly one copy wins.
    const [d3] = await sendTagged(a, 1, 3);
    const many = await Promise.all(Array.from({ length: 10 }, () => b.session.receiveDatagram(d3!)));
    assert.equal(many.filter((r) => r.ok).length, 1);
    assert.equal(many.filter((r) => !r.ok && r.reason === 'replay').length, 9);
  });

  it('datagrams older than the replay window → stale; inside the window → delivered late', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const sent = await sendTagged(a, 1100);
    const held = new Set([5, 75, 76, 100]);
    const first = await deliverInOrder(
      b,
      sent.filter((_, i) => !held.has(i)),
    );
    assert.ok(first.every((r) => r.ok));
    const late = await deliverInOrder(
      b,
      [5, 75, 76, 100].map((i) => sent[i]!),
    );
    // highest = 1099; window 1024: seq ≤ 75 is out of it.
    assert.deepEqual(
      late.map((r) => (r.ok ? `ok:${r.kind === 'data' && r.reordered}` : r.reason)),
      ['stale', 'stale', 'ok:true', 'ok:true'],
    );
    assert.equal(b.session.datagramStats.dropped.stale, 2);
    // With a small window the boundary moves with it.
    const small = pairFrom(run, { replayWindow: 64 });
    const s = await sendTagged(small.initiator, 100);
    await deliverInOrder(small.responder, s.slice(1));
    const [r0] = await deliverInOrder(small.responder, [s[0]!]);
    assert.deepEqual(r0, { ok: false, reason: 'stale' });
    const [r36] = await deliverInOrder(small.responder, [s[36]!]);
    assert.deepEqual(r36, { ok: false, reason: 'replay' });
  });

  it('dropStaleDatagrams: a datagram older than the newest delivered is dropped as stale', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { dropStaleDatagrams: true });
    const [d0, d1, d2, d3] = await sendTagged(a, 4);
    const results = await deliverInOrder(b, [d1!, d0!, d3!, d2!, d3!]);
    assert.deepEqual(
      results.map((r) => (r.ok ? `ok:${r.seq}` : r.reason)),
      ['ok:1', 'stale', 'ok:3', 'stale', 'replay'],
    );
    assert.deepEqual(b.session.datagramStats, {
      received: 2,
      reordered: 0,
      dropped: { invalid: 0, replay: 1, stale: 2 },
    });
    // Concurrent delivery: whatever the timing, nothing older than a delivered one is delivered after it.
    const c = pairFrom(run, { dropStaleDatagrams: true });
    const sent = await sendTagged(c.initiator, 100);
    const order: number[] = [];
    await Promise.all(
      shuffle(sent, prng(3)).map((d) =>
        Promise.resolve(c.responder.session.receiveDatagram(d)).then((r) => {
          if (r.ok && r.kind === 'data') order.push(r.seq);
        }),
      ),
    );
    for (let k = 1; k < order.length; k++)
      assert.ok(order[k]! > order[k - 1]!, `delivered ${order.join(',')}`);
  });

  it('epoch change via updateKeys(): old-epoch datagrams still in flight are delivered; two epochs back → stale', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const e0 = await sendTagged(a, 5, 0);
    await a.session.updateKeys();
    const e1 = await sendTagged(a, 5, 100);
    // The key update also went on the reliable channel; the peer follows it there.
    assert.deepEqual(await pumpReliable(a, b), [{ type: 'key-update' }]);
    const r = await deliverInOrder(b, [e1[0]!, e1[1]!, ...e0.slice(0, 4), e1[2]!]);
    assert.deepEqual(
      r.map((x) => x.ok && x.kind === 'data' && `${x.epoch}:${x.seq}:${indexOf(x)}`),
      ['1:0:100', '1:1:101', '0:0:0', '0:1:1', '0:2:2', '0:3:3', '1:2:102'],
    );
    await a.session.updateKeys();
    const e2 = await sendTagged(a, 2, 200);
    const r2 = await deliverInOrder(b, [e2[0]!, e1[3]!, e0[4]!, e2[1]!]);
    assert.deepEqual(
      r2.map((x) => (x.ok ? x.kind === 'data' && `${x.epoch}:${x.seq}` : x.reason)),
      ['2:0', '1:3', 'stale', '2:1'],
    );
    assert.equal(b.session.datagramStats.received, 10);
  });

  it('automatic epoch change every maxRecordsPerKey=4 datagrams: all delivered in order, epochs advance', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { maxRecordsPerKey: 4 });
    await sendTagged(a, 30);
    const results = dataResults(await deliverInOrder(b, a.sentDatagrams.splice(0)));
    assert.deepEqual(
      results.map((r) => [indexOf(r), r.epoch, r.seq]),
      Array.from({ length: 30 }, (_, i) => [i, Math.floor(i / 4), i % 4]),
    );
  });

  it('an old-epoch datagram arriving after a newer-epoch one is reported as reordered', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0] = await sendTagged(a, 1, 0);
    await a.session.updateKeys();
    const [e0] = await sendTagged(a, 1, 1);
    const [r1, r0] = await deliverInOrder(b, [e0!, d0!]);
    assert.ok(r1?.ok && r1.kind === 'data' && !r1.reordered);
    assert.ok(r0?.ok && r0.kind === 'data');
    assert.equal(r0.epoch, 0);
    assert.equal(r0.reordered, true, 'sent before a datagram already delivered');
    assert.equal(b.session.datagramStats.reordered, 1);
  });

  it('dropStaleDatagrams also drops an old-epoch datagram that arrives after a newer-epoch one', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { dropStaleDatagrams: true });
    const [d0] = await sendTagged(a, 1, 0);
    await a.session.updateKeys();
    const [e0] = await sendTagged(a, 1, 1);
    const results = await deliverInOrder(b, [e0!, d0!]);
    assert.deepEqual(
      results.map((r) => (r.ok ? `ok:${r.epoch}:${r.seq}` : r.reason)),
      ['ok:1:0', 'stale'],
    );
  });

  it('datagrams still arrive after two key updates with no datagram in between (an epoch skipped)', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0] = await sendTagged(a, 1, 0);
    assert.ok((await b.session.receiveDatagram(d0!)).ok);
    await a.session.updateKeys();
    await a.session.updateKeys();
    assert.deepEqual(await pumpReliable(a, b), [{ type: 'key-update' }, { type: 'key-update' }]);
    const later = await sendTagged(a, 3, 1);
    const results = await deliverInOrder(b, later);
    assert.deepEqual(
      results.map((r) => (r.ok ? `ok:${r.epoch}:${r.seq}` : r.reason)),
      ['ok:2:0', 'ok:2:1', 'ok:2:2'],
    );
  });

  it('a datagram whose epoch retires while it decrypts is still delivered, once', async () => {
    // The receiver's AEAD holds back the first datagram's decryption until the others were accepted: by then
    // a datagram two epochs newer retired its epoch. Deterministic form of a CI flake.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let opens = 0;
    const gated: AeadProvider = {
      ...webCryptoAead,
      name: 'gated',
      async open(key, nonce, aad, ciphertext) {
        if (opens++ === 0) await held;
        return webCryptoAead.open(key, nonce, aad, ciphertext);
      },
    };
    const { initiator: a, responder: b } = pairFrom(run, {
      initiator: { maxRecordsPerKey: 2 },
      responder: { maxRecordsPerKey: 2, aead: gated },
    });
    const sent = await sendTagged(a, 6);
    const first = b.session.receiveDatagram(sent[0]!);
    const rest = await Promise.all(sent.slice(1).map((d) => b.session.receiveDatagram(d)));
    assert.deepEqual(
      rest.map((r) => (r.ok ? `ok:${r.epoch}:${r.seq}` : r.reason)),
      ['ok:0:1', 'ok:1:0', 'ok:1:1', 'ok:2:0', 'ok:2:1'],
    );
    release();
    const r0 = await first;
    assert.ok(r0.ok && r0.kind === 'data' && indexOf(r0) === 0, 'the held datagram is delivered');
    assert.equal(r0.ok && r0.reordered, true);
    // Its copy now meets a retired epoch at the door.
    const again = await b.session.receiveDatagram(sent[0]!);
    assert.deepEqual(again, { ok: false, reason: 'stale' });
  });

  it('in-order datagrams spanning two epoch changes, received concurrently (as a transport does), all arrive', async () => {
    // With maxRecordsPerKey = 2 the epochs are 0,0,1,1,2,2. Each datagram is handed to receiveDatagram as
    // it arrives, without waiting for the previous one to decrypt (src/host/connection.ts does this).
    const { initiator: a, responder: b } = pairFrom(run, { maxRecordsPerKey: 2 });
    await sendTagged(a, 6);
    const results = await pumpDatagrams(a, b);
    assert.deepEqual(
      results.map((r) => (r.ok ? `ok:${r.epoch}:${r.seq}` : r.reason)),
      ['ok:0:0', 'ok:0:1', 'ok:1:0', 'ok:1:1', 'ok:2:0', 'ok:2:1'],
    );
  });

  it('a forged epoch far ahead is invalid and does not disturb the current epoch', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0, d1] = await sendTagged(a, 2);
    for (const epoch of [2, 3, 500, 0xffff]) {
      const f = d0!.slice();
      new DataView(f.buffer).setUint16(2, epoch);
      assert.deepEqual(
        await b.session.receiveDatagram(f),
        { ok: false, reason: 'invalid' },
        `epoch ${epoch}`,
      );
    }
    // A forged next epoch (derivable, but the tag fails) does not switch the receiver either.
    const next = d0!.slice();
    next[3] = 1;
    assert.deepEqual(await b.session.receiveDatagram(next), { ok: false, reason: 'invalid' });
    // A forged huge sequence number does not move the window.
    const far = d1!.slice();
    new DataView(far.buffer).setUint32(6, 0xffffffff);
    assert.deepEqual(await b.session.receiveDatagram(far), { ok: false, reason: 'invalid' });
    const ok = await deliverInOrder(b, [d0!, d1!]);
    assert.deepEqual(
      ok.map((r) => r.ok && r.kind === 'data' && `${r.epoch}:${r.seq}:${r.reordered}`),
      ['0:0:false', '0:1:false'],
    );
    assert.equal(b.session.datagramStats.dropped.invalid, 6);
  });

  it('a forged datagram racing a genuine one with the same seq does not block it', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    const [d0] = await sendTagged(a, 1);
    const forged = flipBit(d0!, 20);
    const [rf, rg] = await Promise.all([b.session.receiveDatagram(forged), b.session.receiveDatagram(d0!)]);
    assert.deepEqual(rf, { ok: false, reason: 'invalid' });
    assert.ok(rg.ok && rg.kind === 'data' && rg.seq === 0);
  });

  it('a CLOSE on the datagram channel ends SLLP only; the reliable CLOSE ends the session (§5.3)', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    await a.session.close(4002, 'bye over udp');
    const [r] = await pumpDatagrams(a, b);
    assert.deepEqual(r, {
      ok: true,
      kind: 'control',
      message: { type: 'close', code: 4002, reason: 'bye over udp' },
      seq: 0,
      epoch: 0,
    });
    // SLLP is over: nothing more is sent or delivered there.
    assert.equal(b.session.datagramsAccepted, false);
    await assert.rejects(b.session.sendDatagram('x', 0), withCode('closed'));
    const late = endFrom(run.initiator);
    await late.session.sendDatagram('late', 0);
    const after = await b.session.receiveDatagram(late.sentDatagrams[0]!);
    assert.equal(after.ok, false);
    // The reliable channel is not: its CLOSE is still on the way, behind the data sent before it.
    assert.equal(b.session.state, 'open');
    assert.equal(b.session.closed, undefined);
    assert.deepEqual(await pumpReliable(a, b), [{ type: 'close', code: 4002, reason: 'bye over udp' }]);
    assert.equal(b.session.state, 'closed');
    assert.deepEqual(b.session.closed, { code: 4002, reason: 'bye over udp', byPeer: true });
    await assert.rejects(b.session.send('x'), withCode('closed'));
  });

  it('a close that overtakes data on the datagram channel does not cut what was sent before it', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    await a.session.send('sent before the close');
    await a.session.send(new Uint8Array(200_000).fill(7));
    await a.session.close(CloseCode.NORMAL, 'done');
    // The close datagram wins the race against the ordered channel (it did, on loopback under load).
    await pumpDatagrams(a, b);
    assert.equal(b.session.state, 'open');
    const records = a.sentReliable.splice(0);
    const events = (await Promise.all(records.map((r) => b.session.receive(r)))).flat();
    assert.deepEqual(
      events.map((e) => e.type),
      ['message', 'message', 'close'],
    );
    assert.equal(
      events[0]?.type === 'message' && new TextDecoder().decode(events[0].data),
      'sent before the close',
    );
    assert.equal(events[1]?.type === 'message' && events[1].data.length, 200_000);
    assert.equal(b.session.state, 'closed');
    // The reliable CLOSE ends the reliable channel too: a replayed record after it is refused.
    await assert.rejects(b.session.receive(records[0]!), withCode('bad_record_mac'));
  });

  it('only p2ptls error codes in a CLOSE are errors; a datagram CLOSE alone decides nothing', async () => {
    for (const [code, error] of [
      [CloseCode.PROTOCOL_ERROR, 'peer_error'],
      [999, 'peer_error'],
      [CloseCode.NORMAL, undefined],
      [4003, undefined],
    ] as const) {
      const viaReliable = pairFrom(run);
      await viaReliable.initiator.session.close(code, 'failed');
      await pumpReliable(viaReliable.initiator, viaReliable.responder);
      const r = viaReliable.responder.session.closed;
      assert.equal(r?.code, code);
      assert.equal(r?.byPeer, true);
      assert.equal(r?.error?.code, error, `close code ${code}`);
      const viaDatagram = pairFrom(run);
      await viaDatagram.initiator.session.close(code, 'failed');
      await pumpDatagrams(viaDatagram.initiator, viaDatagram.responder);
      assert.equal(viaDatagram.responder.session.closed, undefined);
      assert.equal(viaDatagram.responder.session.state, 'open');
    }
  });

  it('with a synchronous AEAD (node:crypto), datagrams are sealed and opened within the call once the epoch key exists, across an epoch change', async () => {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const writer = new DatagramWriter(nodeCryptoAead, secret, 1000);
    const reader = new DatagramReader(nodeCryptoAead, secret, {
      replayWindow: 1024,
      dropStale: false,
      maxDatagramBytes: 1024,
    });
    for (let epoch = 0; epoch < 2; epoch++) {
      if (epoch > 0) writer.rotate();
      // The epoch's first datagram waits for its key on both sides.
      const whole = await writer.sealData(utf8(`first ${epoch}`), 1);
      assert.ok('record' in whole, 'a writer for an output that does not copy seals whole datagrams');
      const first = await reader.open(whole.record);
      assert.equal(first.ok && first.kind === 'data' && first.epoch, epoch);
      const sealed = writer.sealData(utf8(`second ${epoch}`), 2);
      assert.ok(!(sealed instanceof Promise), 'sealed within the call');
      const opened = reader.open(sealed.record);
      assert.ok(!(opened instanceof Promise), `epoch ${epoch}: opened within the call, not as a promise`);
      assert.ok(opened.ok && opened.kind === 'data');
      assert.equal(new TextDecoder().decode(opened.data), `second ${epoch}`);
      assert.equal(opened.sentAt, 2);
    }
  });

  it('never throws, whatever the bytes (empty, huge, typed-array views)', async () => {
    const b = endFrom(run.responder);
    const buf = new Uint8Array(200_000);
    const inputs = [new Uint8Array(0), buf, buf.subarray(3, 100), utf8('not a datagram at all, just text')];
    for (const x of inputs) {
      const r = await b.session.receiveDatagram(x);
      assert.equal(r.ok, false);
    }
    assert.equal(b.session.datagramStats.dropped.invalid, inputs.length);
  });
});
