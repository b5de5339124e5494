/**
 * The TCP-mode record layer of an established session: messages of every size, batching, close, ping,
 * key updates and the exporter; then tampering, replay, reordering, loss, truncation, oversize, foreign
 * and reflected records, and authentic-but-malformed records — each fatal with its exact code, with no
 * plaintext delivered and a PROTOCOL_ERROR close sent to the peer.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import type { Identity } from '../../src/identity/identity.js';
import { CloseCode, DataFlag, RecordType } from '../../src/protocol/constants.js';
import {
  type AeadProvider,
  type HandshakeResult,
  type SessionEvent,
  Suite,
  webCryptoAead,
} from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import type { InMemoryEnd } from '../../src/testing/in-memory.js';
import { ByteWriter, concat, utf8 } from '../../src/util/bytes.js';
import {
  endFrom,
  flipBit,
  type HandshakeRun,
  outcome,
  type PlainEvent,
  pairFrom,
  plain,
  pumpReliable,
  RawSender,
  randomPsk,
  runHandshake,
  settle,
  tagged,
  twoRuns,
  waitForReliable,
  withCode,
} from '../helpers/protocol.js';

const messagesOf = (events: readonly PlainEvent[]) =>
  events
    .filter((e): e is Extract<PlainEvent, { type: 'message' }> => e.type === 'message')
    .map((e) => e.data);

/** Opens the victim's outgoing records with a fresh peer session and returns what they say. */
async function closeSentBy(victim: InMemoryEnd, reader: InMemoryEnd): Promise<PlainEvent[]> {
  await waitForReliable(victim, 1);
  return pumpReliable(victim, reader);
}

/**
 * Checks the aftermath of a fatal receive error: the victim is closed with that error, and it told the
 * peer with an authenticated close record carrying `closeCode` and the error code as reason.
 */
async function assertFatal(
  victim: InMemoryEnd,
  peerReader: InMemoryEnd,
  code: string,
  closeCode: number = CloseCode.PROTOCOL_ERROR,
) {
  assert.equal(victim.session.state, 'failed');
  assert.equal(victim.session.closed?.byPeer, false);
  assert.equal(victim.session.closed?.code, closeCode);
  assert.equal(victim.session.closed?.error?.code, code);
  const told = await closeSentBy(victim, peerReader);
  assert.deepEqual(told, [{ type: 'close', code: closeCode, reason: code }]);
  assert.equal(peerReader.session.state, 'closed');
  assert.equal(peerReader.session.closed?.byPeer, true);
  assert.equal(peerReader.session.closed?.error?.code, 'peer_error');
  // Nothing can be sent or received any more.
  await assert.rejects(async () => victim.session.send('x'), withCode('closed'));
}

describe('protocol records (TCP mode)', () => {
  let alice: Identity;
  let bob: Identity;
  let run: HandshakeRun;
  let other: HandshakeRun;

  before(async () => {
    ({ alice, bob, run, other } = await twoRuns());
  });

  describe('happy paths', () => {
    it('an empty message arrives as an empty message', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      await a.session.send(new Uint8Array(0));
      assert.equal(a.sentReliable.length, 1);
      assert.deepEqual(await pumpReliable(a, b), [{ type: 'message', data: new Uint8Array(0) }]);
      await b.session.send('');
      assert.deepEqual(await pumpReliable(b, a), [{ type: 'message', data: new Uint8Array(0) }]);
    });

    // node:crypto's reassembly buffer is not zeroed first (AeadProvider.allocate): every byte of it must be
    // the message's, whatever the allocator hands back. The third provider's buffers come filled with 0xAA.
    const poisoned: AeadProvider = {
      ...nodeCryptoAead,
      name: 'node:crypto, allocate poisoned',
      allocate: (n) => new Uint8Array(n).fill(0xaa),
    };
    for (const aead of [webCryptoAead, nodeCryptoAead, poisoned]) {
      it(`messages of recordSize-4..recordSize+1 and multi-record sizes round-trip in the expected record counts, ${aead.name}`, async () => {
        const R = 1024;
        const { initiator: a, responder: b } = pairFrom(run, { recordSize: R, aead });
        const records = (n: number) => (n <= R ? 1 : 1 + Math.ceil((n - (R - 4)) / R));
        const sizes = [1, R - 4, R - 3, R - 1, R, R + 1, R + 2, 2 * R - 4, 2 * R - 3, 5 * R + 123, 40 * R];
        for (const n of sizes) {
          const m = tagged(n, n);
          await a.session.send(m);
          assert.equal(a.sentReliable.length, records(n), `records for a ${n}-byte message`);
          for (const r of a.sentReliable) assert.ok(r.length <= 2 + R + 16, `record of ${r.length} bytes`);
          const events = await pumpReliable(a, b);
          assert.equal(events.length, 1, `${n} bytes: one event`);
          assert.deepEqual(events[0], { type: 'message', data: m });
          // And the other way.
          await b.session.send(m);
          assert.deepEqual(await pumpReliable(b, a), [{ type: 'message', data: m }]);
        }
      });
    }

    it('a batch of many small messages arrives as separate messages, in order, in few records', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      const msgs = Array.from({ length: 600 }, (_, i) => tagged(i, i % 41));
      await a.session.send(...msgs);
      const framed = msgs.reduce((n, m) => n + 4 + m.length, 0);
      assert.ok(
        a.sentReliable.length <= Math.ceil(framed / (16 * 1024)) + 1,
        `${a.sentReliable.length} records`,
      );
      const got = messagesOf(await pumpReliable(a, b));
      assert.equal(got.length, msgs.length);
      assert.deepEqual(got, msgs);
    });

    it('mixed batches (empty, small, fragmented) and unawaited sends keep message boundaries and order', async () => {
      const { initiator: a, responder: b } = pairFrom(run, { recordSize: 256 });
      const batch1 = [new Uint8Array(0), tagged(1, 10), tagged(2, 1000), new Uint8Array(0), tagged(3, 252)];
      const batch2 = [tagged(4, 253), tagged(5, 256), tagged(6, 257)];
      const sends = [a.session.send(...batch1), a.session.send(...batch2), a.session.send('end')];
      await Promise.all(sends);
      const got = messagesOf(await pumpReliable(a, b));
      assert.deepEqual(got, [...batch1, ...batch2, utf8('end')]);
    });

    it('close is a handshake: CLOSE, the reply CLOSE and CLOSE_ACK both ways; sending after close → closed', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      await a.session.send('last words');
      await a.session.close(4001, 'see you');
      // Our direction is closed; the peer's is open until its CLOSE arrives (§5.3).
      assert.equal(a.session.state, 'closing');
      assert.deepEqual(a.session.closed, { code: 4001, reason: 'see you', byPeer: false });
      assert.equal(a.sentDatagrams.length, 1, 'the close goes on the datagram channel too');
      const events = await pumpReliable(a, b);
      assert.deepEqual(events, [
        { type: 'message', data: utf8('last words') },
        { type: 'close', code: 4001, reason: 'see you' },
      ]);
      assert.equal(b.session.state, 'closed');
      assert.deepEqual(b.session.closed, { code: 4001, reason: 'see you', byPeer: true });
      // b answered with its own CLOSE (echoing the code) and a CLOSE_ACK; a acknowledges b's CLOSE in turn.
      await waitForReliable(b, 2);
      assert.equal(b.sentReliable.length, 2);
      assert.deepEqual(await pumpReliable(b, a), [
        { type: 'close', code: 4001, reason: 'see you' },
        { type: 'close-ack' },
      ]);
      assert.equal(a.session.state, 'closed');
      assert.deepEqual(a.session.closed, { code: 4001, reason: 'see you', byPeer: false });
      await waitForReliable(a, 1);
      assert.deepEqual(await pumpReliable(a, b), [{ type: 'close-ack' }]);
      for (const s of [a.session, b.session]) {
        await assert.rejects(async () => s.send('more'), withCode('closed'));
        await assert.rejects(async () => s.ping(new Uint8Array(8)), withCode('closed'));
        await assert.rejects(async () => s.updateKeys(), withCode('closed'));
        await assert.rejects(async () => s.sendDatagram('dg', 0), withCode('closed'));
      }
      // Closing twice sends nothing more.
      await a.session.close(1, 'again');
      assert.equal(a.sentReliable.length, 0);
      assert.deepEqual(a.session.closed, { code: 4001, reason: 'see you', byPeer: false });
    });

    it('a normal close carries no error; a close reason over 1024 bytes is cut at a UTF-8 boundary', async () => {
      const p1 = pairFrom(run);
      await p1.initiator.session.close();
      assert.deepEqual(await pumpReliable(p1.initiator, p1.responder), [
        { type: 'close', code: CloseCode.NORMAL, reason: '' },
      ]);
      assert.equal(p1.responder.session.closed?.error, undefined);
      const p2 = pairFrom(run);
      const long = 'é'.repeat(600); // 1200 bytes
      await p2.responder.session.close(CloseCode.GOING_AWAY, long);
      const [ev] = await pumpReliable(p2.responder, p2.initiator);
      assert.ok(ev?.type === 'close');
      assert.equal(utf8(ev.reason).length, 1024);
      assert.equal(ev.reason, 'é'.repeat(512));
    });

    it('ping → pong with the same 8 bytes; a ping of another size is invalid_argument', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      const data = new Uint8Array([1, 2, 3, 4, 250, 251, 252, 253]);
      await a.session.ping(data);
      assert.deepEqual(await pumpReliable(a, b), [], 'a ping is answered, not surfaced');
      assert.equal(b.sentReliable.length, 1);
      assert.deepEqual(await pumpReliable(b, a), [{ type: 'pong', data }]);
      await b.session.ping(new Uint8Array(8).fill(7));
      await pumpReliable(b, a);
      assert.deepEqual(await pumpReliable(a, b), [{ type: 'pong', data: new Uint8Array(8).fill(7) }]);
      await assert.rejects(async () => a.session.ping(new Uint8Array(7)), withCode('invalid_argument'));
      await assert.rejects(async () => a.session.ping(new Uint8Array(9)), withCode('invalid_argument'));
      assert.equal(a.session.state, 'open');
    });

    it('updateKeys() both ways: the peer follows, messages keep flowing, generations advance', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      assert.equal(a.session.keyGeneration, 0);
      await a.session.updateKeys();
      await a.session.send('after a update');
      assert.equal(a.session.keyGeneration, 1);
      assert.deepEqual(await pumpReliable(a, b), [
        { type: 'key-update' },
        { type: 'message', data: utf8('after a update') },
      ]);
      assert.equal(b.session.keyGeneration, 1, 'b re-keyed its own direction on request');
      await b.session.send('reply');
      assert.deepEqual(await pumpReliable(b, a), [
        { type: 'key-update' },
        { type: 'message', data: utf8('reply') },
      ]);
      assert.equal(a.session.keyGeneration, 1, 'an answer to a request does not request again');
      await b.session.updateKeys();
      await b.session.updateKeys();
      await b.session.send('twice');
      assert.equal(b.session.keyGeneration, 3);
      const ev = await pumpReliable(b, a);
      assert.deepEqual(ev, [
        { type: 'key-update' },
        { type: 'key-update' },
        { type: 'message', data: utf8('twice') },
      ]);
      assert.equal(a.session.keyGeneration, 3);
      await a.session.send('ok');
      const back = await pumpReliable(a, b);
      assert.deepEqual(messagesOf(back), [utf8('ok')]);
      assert.equal(back.filter((e) => e.type === 'key-update').length, 2);
    });

    it('automatic key update every maxRecordsPerKey=4 records: many records, every message arrives', async () => {
      const { initiator: a, responder: b } = pairFrom(run, { maxRecordsPerKey: 4, recordSize: 64 });
      const msgs = Array.from({ length: 40 }, (_, i) => tagged(i, (i * 13) % 60));
      for (const m of msgs) await a.session.send(m);
      const big = tagged(99, 3000); // ~47 records of 64 bytes
      await a.session.send(big);
      const dataRecords = 40 + 1 + Math.ceil((3000 - 60) / 64);
      assert.equal(a.sentReliable.length, dataRecords + a.session.keyGeneration);
      assert.equal(a.session.keyGeneration, Math.ceil(dataRecords / 4) - 1);
      const events = await pumpReliable(a, b);
      assert.deepEqual(messagesOf(events), [...msgs, big]);
      assert.equal(events.filter((e) => e.type === 'key-update').length, a.session.keyGeneration);
      // The automatic updates do not ask the peer to update: b's direction still counts its own records.
      assert.equal(b.sentReliable.length, 0);
      await b.session.send(...msgs.map((m) => m.slice(0, 8)));
      assert.deepEqual(
        messagesOf(await pumpReliable(b, a)),
        msgs.map((m) => m.slice(0, 8)),
      );
    });

    it('exportKeyingMaterial: equal on both sides, differs by label, context, length and session', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      const ctx = utf8('ctx');
      const ka = await a.session.exportKeyingMaterial('app key', ctx, 32);
      assert.equal(ka.length, 32);
      assert.deepEqual(await b.session.exportKeyingMaterial('app key', ctx, 32), ka);
      assert.notDeepEqual(await a.session.exportKeyingMaterial('app key 2', ctx, 32), ka);
      assert.notDeepEqual(await a.session.exportKeyingMaterial('app key', utf8('ctx2'), 32), ka);
      const short = await b.session.exportKeyingMaterial('app key', ctx, 16);
      assert.equal(short.length, 16);
      const o = pairFrom(other);
      assert.notDeepEqual(await o.initiator.session.exportKeyingMaterial('app key', ctx, 32), ka);
      assert.notDeepEqual(ka, new Uint8Array(32));
    });
  });

  describe('edge cases of the API', () => {
    it('crossing key-update requests (both sides at once) converge; messages flow both ways', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      await a.session.updateKeys();
      await b.session.updateKeys();
      await a.session.send('a1');
      await b.session.send('b1');
      assert.deepEqual(messagesOf(await pumpReliable(a, b)), [utf8('a1')]);
      assert.deepEqual(messagesOf(await pumpReliable(b, a)), [utf8('b1')]);
      await pumpReliable(a, b);
      await a.session.send('a2');
      await b.session.send('b2');
      assert.deepEqual(messagesOf(await pumpReliable(a, b)), [utf8('a2')]);
      assert.deepEqual(messagesOf(await pumpReliable(b, a)), [utf8('b2')]);
      assert.equal(a.session.keyGeneration, 2);
      assert.equal(b.session.keyGeneration, 2);
      assert.equal(a.session.state, 'open');
      assert.equal(b.session.state, 'open');
    });

    it('close with a code outside 0..65535 → invalid_argument, and the session stays open', async () => {
      const { initiator: a, responder: b } = pairFrom(run);
      for (const code of [-1, 65536, 1.5]) {
        await assert.rejects(a.session.close(code, 'x'), withCode('invalid_argument'), `code ${code}`);
        assert.equal(a.session.state, 'open');
      }
      await settle();
      assert.equal(a.sentReliable.length, 0);
      assert.equal(a.sentDatagrams.length, 0);
      await a.session.send('still here');
      assert.deepEqual(messagesOf(await pumpReliable(a, b)), [utf8('still here')]);
    });

    it('session options out of range → invalid_argument', () => {
      const bad = [
        { recordSize: 63 },
        { recordSize: 256 * 1024 },
        { recordSize: 1000, maxRecordBytes: 1063 },
        { maxRecordsPerKey: 0 },
        { maxRecordsPerKey: 2 ** 48 },
        { replayWindow: 33 },
        { replayWindow: 0 },
      ];
      for (const o of bad)
        assert.throws(() => endFrom(run.initiator, o), withCode('invalid_argument'), JSON.stringify(o));
      for (const o of [
        { recordSize: 64 },
        { recordSize: 1000, maxRecordBytes: 1064 },
        { replayWindow: 32 },
      ]) {
        assert.equal(endFrom(run.initiator, o).session.state, 'open');
      }
    });

    it('exportKeyingMaterial: lengths outside 1..32 and over-long labels → invalid_argument', async () => {
      const { initiator: a } = pairFrom(run);
      const ctx = new Uint8Array(0);
      await assert.rejects(a.session.exportKeyingMaterial('l', ctx, 0), withCode('invalid_argument'));
      await assert.rejects(a.session.exportKeyingMaterial('l', ctx, 33), withCode('invalid_argument'));
      await assert.rejects(
        a.session.exportKeyingMaterial('x'.repeat(300), ctx, 32),
        withCode('invalid_argument'),
      );
      assert.equal((await a.session.exportKeyingMaterial('', ctx, 1)).length, 1);
    });
  });

  describe('tampering and misdelivery (fatal)', () => {
    it('flipping any bit position of a data record: typed error, nothing delivered, session closed, peer told', async () => {
      const sender = pairFrom(run).initiator;
      await sender.session.send(tagged(7, 100));
      const record = sender.sentReliable[0]!;
      assert.equal(record.length, 2 + 100 + 16);
      // Type and flags are inside the encryption (§5.1): every bit of the record is covered by the tag.
      const cases: { pos: number; bit: number }[] = [];
      for (let bit = 0; bit < 8; bit++) cases.push({ pos: 0, bit }, { pos: 1, bit });
      for (let pos = 2; pos < record.length; pos++) cases.push({ pos, bit: pos % 8 });
      const wrong: string[] = [];
      for (const { pos, bit } of cases) {
        const victim = endFrom(run.responder);
        const peer = endFrom(run.initiator);
        const bad = flipBit(record, pos, bit);
        const want = 'bad_record_mac';
        const got = await outcome(() => victim.session.receive(bad));
        if (got !== want) {
          wrong.push(`byte ${pos} bit ${bit}: ${got}, want ${want}`);
          continue;
        }
        await assertFatal(victim, peer, want);
        // Later records, even genuine ones, are refused.
        const later = await outcome(() => victim.session.receive(record));
        assert.ok(later === 'closed' || later === want, `later receive: ${later}`);
      }
      assert.deepEqual(wrong, []);
      // Control: the genuine record is accepted by a fresh victim.
      const ok = endFrom(run.responder);
      assert.deepEqual(plain(await ok.session.receive(record)), [{ type: 'message', data: tagged(7, 100) }]);
    });

    it('replayed, reordered and dropped records → bad_record_mac', async () => {
      const src = pairFrom(run).initiator;
      for (const m of ['one', 'two', 'three']) await src.session.send(m);
      const [r1, r2, r3] = src.sentReliable as [Uint8Array, Uint8Array, Uint8Array];

      const replay = endFrom(run.responder);
      assert.deepEqual(messagesOf(await replay.session.receive(r1)), [utf8('one')]);
      assert.deepEqual(messagesOf(await replay.session.receive(r2)), [utf8('two')]);
      await assert.rejects(replay.session.receive(r1), withCode('bad_record_mac'));
      await assertFatal(replay, endFrom(run.initiator), 'bad_record_mac');

      const swapped = endFrom(run.responder);
      await assert.rejects(swapped.session.receive(r2), withCode('bad_record_mac'));
      await assertFatal(swapped, endFrom(run.initiator), 'bad_record_mac');

      const gap = endFrom(run.responder);
      assert.deepEqual(messagesOf(await gap.session.receive(r1)), [utf8('one')]);
      await assert.rejects(gap.session.receive(r3), withCode('bad_record_mac'));
      await assertFatal(gap, endFrom(run.initiator), 'bad_record_mac');
    });

    it('records passed in without waiting: the first bad one fails itself and every later one', async () => {
      const src = pairFrom(run).initiator;
      for (const m of ['a', 'b', 'c', 'd']) await src.session.send(m);
      const [r1, r2, r3, r4] = src.sentReliable as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      const victim = endFrom(run.responder);
      const p = [r1, flipBit(r2, 5), r3, r4].map((r) => victim.session.receive(r));
      assert.deepEqual(plain(await p[0]!), [{ type: 'message', data: utf8('a') }]);
      for (const q of p.slice(1)) await assert.rejects(q, withCode('bad_record_mac'));
      await assertFatal(victim, endFrom(run.initiator), 'bad_record_mac');
    });

    it('truncated records → malformed; header+tag of garbage → bad_record_mac', async () => {
      const src = pairFrom(run).initiator;
      await src.session.send('hello');
      const rec = src.sentReliable[0]!;
      for (const len of [0, 1, 2, 3, 17]) {
        const victim = endFrom(run.responder);
        await assert.rejects(
          victim.session.receive(rec.subarray(0, len)),
          withCode('malformed'),
          `length ${len}`,
        );
        await assertFatal(victim, endFrom(run.initiator), 'malformed');
      }
      for (const len of [18, rec.length - 1]) {
        const victim = endFrom(run.responder);
        await assert.rejects(
          victim.session.receive(rec.subarray(0, len)),
          withCode('bad_record_mac'),
          `length ${len}`,
        );
      }
    });

    it('a record over maxRecordBytes → record_overflow (forged, and genuine from a peer with bigger records)', async () => {
      const victim = endFrom(run.responder, { recordSize: 512, maxRecordBytes: 1024 });
      const junk = new Uint8Array(1025);
      junk[0] = RecordType.DATA;
      await assert.rejects(victim.session.receive(junk), withCode('record_overflow'));
      await assertFatal(victim, endFrom(run.initiator), 'record_overflow');
      // Exactly at the limit passes the size check and fails the tag.
      const atLimit = endFrom(run.responder, { recordSize: 512, maxRecordBytes: 1024 });
      await assert.rejects(atLimit.session.receive(junk.subarray(0, 1024)), withCode('bad_record_mac'));

      const src = endFrom(run.initiator, { recordSize: 4096 });
      await src.session.send(new Uint8Array(4000));
      const small = endFrom(run.responder, { recordSize: 512, maxRecordBytes: 1024 });
      await assert.rejects(small.session.receive(src.sentReliable[0]!), withCode('record_overflow'));
    });

    it('sending a message over maxMessageBytes → message_too_large, nothing sent, session still open', async () => {
      const a = endFrom(run.initiator, { maxMessageBytes: 1000 });
      await assert.rejects(async () => a.session.send(new Uint8Array(1001)), withCode('message_too_large'));
      await assert.rejects(
        async () => a.session.send(new Uint8Array(10), new Uint8Array(5000)),
        withCode('message_too_large'),
      );
      await settle();
      assert.equal(a.sentReliable.length, 0);
      assert.equal(a.session.state, 'open');
      await a.session.send(new Uint8Array(1000));
      const b = endFrom(run.responder, { maxMessageBytes: 1000 });
      assert.deepEqual(await pumpReliable(a, b), [{ type: 'message', data: new Uint8Array(1000) }]);
    });

    it('a peer that allows bigger messages: the receiver fails with message_too_large (single, fragmented, batched)', async () => {
      const make = async (recordSize: number, ...msgs: Uint8Array[]) => {
        const a = endFrom(run.initiator, { recordSize });
        await a.session.send(...msgs);
        return a.sentReliable.splice(0);
      };
      const cases = [
        { name: 'single record', records: await make(16384, new Uint8Array(2000)) },
        { name: 'fragmented', records: await make(256, new Uint8Array(2000)) },
        { name: 'batched', records: await make(16384, new Uint8Array(10), new Uint8Array(1500)) },
      ];
      for (const c of cases) {
        const victim = endFrom(run.responder, { maxMessageBytes: 1000 });
        let delivered = 0;
        let code = 'ok';
        for (const r of c.records) {
          code = await outcome(async () => {
            delivered += messagesOf(await victim.session.receive(r)).length;
          });
          if (code !== 'ok') break;
        }
        assert.equal(code, 'message_too_large', c.name);
        assert.equal(delivered, 0, `${c.name}: nothing delivered`);
        await assertFatal(victim, endFrom(run.initiator), 'message_too_large', CloseCode.MESSAGE_TOO_LARGE);
      }
    });

    it('a record from another session, or reflected back to its sender → bad_record_mac', async () => {
      const foreign = pairFrom(other).initiator;
      await foreign.session.send('from elsewhere');
      const victim = endFrom(run.responder);
      await assert.rejects(victim.session.receive(foreign.sentReliable[0]!), withCode('bad_record_mac'));
      await assertFatal(victim, endFrom(run.initiator), 'bad_record_mac');

      const { initiator: a } = pairFrom(run);
      await a.session.send('boomerang');
      await assert.rejects(a.session.receive(a.sentReliable.shift()!), withCode('bad_record_mac'));
      assert.equal(a.session.state, 'failed');
      // The reflecting attacker also cannot reuse the handshake's own traffic: an Auth record is under
      // another key, and its cleartext header is no part of a record's plaintext.
      const b = endFrom(run.responder);
      await assert.rejects(b.session.receive(run.initiatorAuth), withCode('bad_record_mac'));
    });

    it('channel separation: a datagram fed to the reliable channel → bad_record_mac; a record fed to the datagram channel → invalid', async () => {
      const { initiator: a } = pairFrom(run);
      await a.session.sendDatagram(new Uint8Array(40), 0);
      await a.session.send(new Uint8Array(40));
      const victim = endFrom(run.responder);
      const asDatagram = await victim.session.receiveDatagram(a.sentReliable[0]!);
      assert.deepEqual(asDatagram, { ok: false, reason: 'invalid' });
      assert.equal(victim.session.state, 'open');
      await assert.rejects(victim.session.receive(a.sentDatagrams[0]!), withCode('bad_record_mac'));
      await assertFatal(victim, endFrom(run.initiator), 'bad_record_mac');
    });

    for (const aead of [webCryptoAead, nodeCryptoAead]) {
      it(`receive() promises resolve in the order the records were passed in (as Session.receive documents), ${aead.name}`, async () => {
        // Session.receive: "Results resolve in the order records were passed in, even if the caller does
        // not wait between calls." A transport may therefore emit each record's events when its promise
        // resolves. Records whose handling seals a reply (a pong, a key update) settle later than a plain
        // message would: the records after them must not overtake them, whether they were decrypted in
        // the call (node:crypto) or queued (WebCrypto).
        const src = endFrom(run.initiator, { aead });
        const victim = endFrom(run.responder, { aead });
        // A first record received on its own: the keys are derived after it, so that a synchronous
        // provider takes its within-the-call path for the records below.
        await src.session.send('first');
        assert.deepEqual(plain(await victim.session.receive(src.sentReliable.shift()!)), [
          { type: 'message', data: utf8('first') },
        ]);
        await src.session.ping(new Uint8Array(8));
        await src.session.send('after the ping');
        await src.session.updateKeys();
        await src.session.send('after the update');
        await src.session.ping(new Uint8Array(8));
        await src.session.send('after the second ping');
        const order: number[] = [];
        const results = await Promise.all(
          src.sentReliable.map((r, i) =>
            victim.session.receive(r).then((events) => {
              order.push(i);
              return events;
            }),
          ),
        );
        assert.deepEqual(results.map(plain), [
          [],
          [{ type: 'message', data: utf8('after the ping') }],
          [{ type: 'key-update' }],
          [{ type: 'message', data: utf8('after the update') }],
          [],
          [{ type: 'message', data: utf8('after the second ping') }],
        ]);
        assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
        // The replies went out in the same order: pong, key update, pong.
        const back = await Promise.all(victim.sentReliable.map((r) => src.session.receive(r)));
        const pong = { type: 'pong', data: new Uint8Array(8) };
        assert.deepEqual(back.map(plain), [[pong], [{ type: 'key-update' }], [pong]]);
      });
    }
  });

  // A record's type is inside its encryption (§5.1): a KEY_UPDATE is known only once decrypted, while the
  // records behind it are already decrypting under the key it retires (ReliableReader.rekeyAhead).
  describe('key updates with records in flight behind them', () => {
    it('records passed in before the KEY_UPDATEs ahead of them are decrypted arrive in order, under the next keys', async () => {
      const src = endFrom(run.initiator, { aead: webCryptoAead, recordSize: 64 });
      const victim = endFrom(run.responder, { aead: webCryptoAead });
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 4; i++) sent.push(tagged(i, 40));
      sent.push(tagged(4, 300)); // five records, fragmented across the second update
      await src.session.send(sent[0]!);
      await src.session.updateKeys();
      await src.session.send(sent[1]!, sent[2]!);
      await src.session.updateKeys();
      await src.session.updateKeys();
      await src.session.send(sent[3]!);
      const big = src.session.send(sent[4]!);
      await src.session.updateKeys();
      await big;
      await src.session.send('last');
      const results = await Promise.all(src.sentReliable.map((r) => victim.session.receive(r)));
      const events = results.flat().map((e) => (e.type === 'message' ? e.data : e.type));
      assert.deepEqual(
        events.filter((e) => e !== 'key-update'),
        [...sent, utf8('last')],
      );
      assert.equal(events.filter((e) => e === 'key-update').length, 4);
      assert.equal(victim.session.state, 'open');
    });

    it('a record under the retired key, with the sequence number it was first opened under, is refused behind the KEY_UPDATE', async () => {
      // Two raw senders share the initiator's first key: one sends DATA then KEY_UPDATE (sequence 0, 1),
      // the other three DATA records (0, 1, 2). Its third, passed in right behind the KEY_UPDATE, is first
      // decrypted under the retired key at sequence 2, and authenticates there; its place in the stream
      // says the next key at sequence 0, where it must fail.
      for (const concurrent of [true, false]) {
        const a = new RawSender(run.initiator.secrets.initiatorTcp);
        const b = new RawSender(run.initiator.secrets.initiatorTcp);
        const flags = DataFlag.FIRST | DataFlag.LAST;
        const first = await a.seal(RecordType.DATA, flags, utf8('genuine'));
        const update = await a.seal(RecordType.KEY_UPDATE, 0, new Uint8Array([0]));
        await b.seal(RecordType.DATA, flags, utf8('0'));
        await b.seal(RecordType.DATA, flags, utf8('1'));
        const stale = await b.seal(RecordType.DATA, flags, utf8('stale'));
        const victim = endFrom(run.responder, { aead: webCryptoAead });
        const delivered: SessionEvent[] = [];
        const results = concurrent
          ? await Promise.allSettled([first, update, stale].map((r) => victim.session.receive(r)))
          : [
              await victim.session.receive(first).then((v) => ({ status: 'fulfilled' as const, value: v })),
              await victim.session.receive(update).then((v) => ({ status: 'fulfilled' as const, value: v })),
              await victim.session.receive(stale).then(
                (v) => ({ status: 'fulfilled' as const, value: v }),
                (reason: unknown) => ({ status: 'rejected' as const, reason }),
              ),
            ];
        for (const r of results.slice(0, 2)) {
          assert.equal(r.status, 'fulfilled', `concurrent=${concurrent}`);
          if (r.status === 'fulfilled') delivered.push(...r.value);
        }
        assert.deepEqual(plain(delivered), [
          { type: 'message', data: utf8('genuine') },
          { type: 'key-update' },
        ]);
        const last = results[2]!;
        assert.equal(last.status, 'rejected', `concurrent=${concurrent}: the stale record was delivered`);
        if (last.status === 'rejected') assert.ok(isP2PTLSError(last.reason, 'bad_record_mac'));
        await assertFatal(victim, endFrom(run.initiator), 'bad_record_mac');
      }
    });

    it('a tampered record in flight behind a KEY_UPDATE → bad_record_mac; nothing after it is delivered', async () => {
      // KEY_UPDATE(0): the victim's only reply is then the CLOSE that tells the peer why.
      const raw = new RawSender(run.initiator.secrets.initiatorTcp);
      const flags = DataFlag.FIRST | DataFlag.LAST;
      const before = await raw.seal(RecordType.DATA, flags, utf8('before'));
      const update = await raw.seal(RecordType.KEY_UPDATE, 0, new Uint8Array([0]));
      const [x, y, z] = await Promise.all(
        ['x', 'y', 'z'].map((m) => raw.seal(RecordType.DATA, flags, utf8(m))),
      );
      const victim = endFrom(run.responder, { aead: webCryptoAead });
      const p = [before, update, flipBit(x!, 9), y!, z!].map((r) => victim.session.receive(r));
      assert.deepEqual(plain(await p[0]!), [{ type: 'message', data: utf8('before') }]);
      assert.deepEqual(plain(await p[1]!), [{ type: 'key-update' }]);
      for (const q of p.slice(2)) await assert.rejects(q, withCode('bad_record_mac'));
      await assertFatal(victim, endFrom(run.initiator), 'bad_record_mac');
    });
  });

  describe('authentic but malformed records from a keyed peer', () => {
    const cases: { name: string; records: [number, number, Uint8Array][]; code: string }[] = [];
    const u32 = (n: number) => new ByteWriter(4).u32(n).finish();
    const { FIRST, LAST, BATCH } = DataFlag;
    cases.push(
      {
        name: 'control record with flags',
        records: [[RecordType.CONTROL, 1, new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0])]],
        code: 'malformed',
      },
      {
        name: 'unknown control type',
        records: [[RecordType.CONTROL, 0, new Uint8Array([9])]],
        code: 'unexpected_message',
      },
      {
        name: 'empty control record',
        records: [[RecordType.CONTROL, 0, new Uint8Array(0)]],
        code: 'malformed',
      },
      {
        name: 'ping of 7 bytes',
        records: [[RecordType.CONTROL, 0, new Uint8Array([2, 1, 2, 3, 4, 5, 6, 7])]],
        code: 'malformed',
      },
      {
        name: 'ping of 9 bytes',
        records: [[RecordType.CONTROL, 0, new Uint8Array(10).fill(2)]],
        code: 'malformed',
      },
      {
        name: 'close reason not UTF-8',
        records: [[RecordType.CONTROL, 0, new Uint8Array([1, 0, 0, 0xff, 0xfe])]],
        code: 'malformed',
      },
      {
        // A CLOSE with a longer reason is longer than any control record may be (§7): refused by size.
        name: 'close reason over 1024 bytes',
        records: [[RecordType.CONTROL, 0, concat(new Uint8Array([1, 0, 0]), new Uint8Array(1025).fill(97))]],
        code: 'record_overflow',
      },
      {
        name: 'key update with value 2',
        records: [[RecordType.KEY_UPDATE, 0, new Uint8Array([2])]],
        code: 'malformed',
      },
      {
        name: 'key update with flags',
        records: [[RecordType.KEY_UPDATE, 1, new Uint8Array([0])]],
        code: 'malformed',
      },
      {
        name: 'empty key update',
        records: [[RecordType.KEY_UPDATE, 0, new Uint8Array(0)]],
        code: 'malformed',
      },
      {
        name: 'unknown data flag',
        records: [[RecordType.DATA, FIRST | LAST | 0x08, new Uint8Array(3)]],
        code: 'malformed',
      },
      {
        name: 'continuation without start',
        records: [[RecordType.DATA, 0, new Uint8Array(3)]],
        code: 'malformed',
      },
      {
        name: 'last fragment without start',
        records: [[RecordType.DATA, LAST, new Uint8Array(3)]],
        code: 'malformed',
      },
      {
        name: 'BATCH without FIRST|LAST',
        records: [[RecordType.DATA, BATCH, concat(u32(0), u32(0))]],
        code: 'malformed',
      },
      {
        name: 'BATCH with FIRST only',
        records: [[RecordType.DATA, BATCH | FIRST, concat(u32(0), u32(0))]],
        code: 'malformed',
      },
      {
        name: 'batch of one message',
        records: [[RecordType.DATA, FIRST | LAST | BATCH, concat(u32(1), new Uint8Array(1))]],
        code: 'malformed',
      },
      {
        name: 'batch with trailing bytes',
        records: [[RecordType.DATA, FIRST | LAST | BATCH, concat(u32(0), u32(0), new Uint8Array(3))]],
        code: 'malformed',
      },
      {
        name: 'batch length past the end',
        records: [[RecordType.DATA, FIRST | LAST | BATCH, concat(u32(0), u32(50), new Uint8Array(3))]],
        code: 'malformed',
      },
      {
        name: 'first fragment shorter than 4 bytes',
        records: [[RecordType.DATA, FIRST, new Uint8Array(2)]],
        code: 'malformed',
      },
      {
        name: 'first fragment holding the whole message',
        records: [[RecordType.DATA, FIRST, concat(u32(3), new Uint8Array(3))]],
        code: 'malformed',
      },
      {
        name: 'second FIRST before the message ended',
        records: [
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
        ],
        code: 'malformed',
      },
      {
        name: 'fragments longer than announced',
        records: [
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
          [RecordType.DATA, LAST, new Uint8Array(8)],
        ],
        code: 'malformed',
      },
      {
        name: 'LAST before the announced length',
        records: [
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
          [RecordType.DATA, LAST, new Uint8Array(6)],
        ],
        code: 'malformed',
      },
      {
        name: 'middle fragment completing the message without LAST',
        records: [
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
          [RecordType.DATA, 0, new Uint8Array(7)],
        ],
        code: 'malformed',
      },
      {
        name: 'empty middle fragment',
        records: [
          [RecordType.DATA, FIRST, concat(u32(10), new Uint8Array(3))],
          [RecordType.DATA, 0, new Uint8Array(0)],
        ],
        code: 'malformed',
      },
      {
        name: 'first fragment announcing more than maxMessageBytes',
        records: [[RecordType.DATA, FIRST, concat(u32(2 ** 32 - 1), new Uint8Array(3))]],
        code: 'message_too_large',
      },
      {
        name: 'batch member over maxMessageBytes',
        records: [[RecordType.DATA, FIRST | LAST | BATCH, concat(u32(0), u32(2 ** 31))]],
        code: 'message_too_large',
      },
    );
    for (const c of cases) {
      it(`${c.name} → ${c.code}`, async () => {
        const raw = new RawSender(run.initiator.secrets.initiatorTcp);
        const victim = endFrom(run.responder);
        let got = 'ok';
        let delivered = 0;
        for (const [type, flags, pt] of c.records) {
          const record = await raw.seal(type, flags, pt);
          got = await outcome(async () => {
            delivered += messagesOf(await victim.session.receive(record)).length;
          });
          if (got !== 'ok') break;
        }
        assert.equal(got, c.code);
        assert.equal(delivered, 0);
        const closeCode =
          c.code === 'message_too_large' ? CloseCode.MESSAGE_TOO_LARGE : CloseCode.PROTOCOL_ERROR;
        await assertFatal(victim, endFrom(run.initiator), c.code, closeCode);
      });
    }

    it('nothing is delivered after a CLOSE (PROTOCOL.md §5.3), even for records passed in before it was processed', async () => {
      for (const concurrent of [false, true]) {
        const raw = new RawSender(run.initiator.secrets.initiatorTcp);
        const victim = endFrom(run.responder);
        const close = await raw.seal(RecordType.CONTROL, 0, new Uint8Array([1, 0, 0]));
        const data = await raw.seal(RecordType.DATA, DataFlag.FIRST | DataFlag.LAST, utf8('after close'));
        const delivered: SessionEvent[] = [];
        const take = (p: Promise<SessionEvent[]>) =>
          p.then(
            (ev) => {
              delivered.push(...ev);
            },
            (err: unknown) => assert.ok(isP2PTLSError(err), 'typed rejection'),
          );
        if (concurrent)
          await Promise.all([take(victim.session.receive(close)), take(victim.session.receive(data))]);
        else {
          await take(victim.session.receive(close));
          await take(victim.session.receive(data));
        }
        assert.deepEqual(delivered, [{ type: 'close', code: 0, reason: '' }], `concurrent=${concurrent}`);
        assert.equal(victim.session.state, 'closed');
      }
    });

    it('control: the raw sender produces records the session accepts', async () => {
      const raw = new RawSender(run.initiator.secrets.initiatorTcp);
      const victim = endFrom(run.responder);
      const u32 = (n: number) => new ByteWriter(4).u32(n).finish();
      const events: SessionEvent[] = [];
      for (const [type, flags, pt] of [
        [RecordType.DATA, DataFlag.FIRST | DataFlag.LAST, utf8('plain')],
        [RecordType.DATA, DataFlag.FIRST | DataFlag.LAST | DataFlag.BATCH, concat(u32(1), utf8('x'), u32(0))],
        [RecordType.DATA, DataFlag.FIRST, concat(u32(5), utf8('ab'))],
        [RecordType.DATA, 0, utf8('c')],
        [RecordType.DATA, DataFlag.LAST, utf8('de')],
        [RecordType.KEY_UPDATE, 0, new Uint8Array([0])],
        [RecordType.CONTROL, 0, new Uint8Array([3, 1, 2, 3, 4, 5, 6, 7, 8])],
      ] as [number, number, Uint8Array][]) {
        events.push(...(await victim.session.receive(await raw.seal(type, flags, pt))));
      }
      assert.deepEqual(plain(events), [
        { type: 'message', data: utf8('plain') },
        { type: 'message', data: utf8('x') },
        { type: 'message', data: new Uint8Array(0) },
        { type: 'message', data: utf8('abcde') },
        { type: 'key-update' },
        { type: 'pong', data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) },
      ]);
      assert.equal(victim.session.state, 'open');
    });
  });

  it('handshake suites other than the default also carry records (P-256 session)', async () => {
    const psk = randomPsk();
    const p = await runHandshake(
      { identity: alice, peer: bob.publicIdentity, psk, suite: Suite.P256_AES256GCM_SHA256 },
      { identity: bob, peer: alice.publicIdentity, psk },
    );
    const results: HandshakeResult[] = [p.initiator, p.responder];
    assert.ok(results.every((r) => r.suite === Suite.P256_AES256GCM_SHA256));
    const { initiator: a, responder: b } = pairFrom(p, { recordSize: 100 });
    const m = tagged(5, 1234);
    await a.session.send(m);
    assert.deepEqual(await pumpReliable(a, b), [{ type: 'message', data: m }]);
    assert.ok(
      isP2PTLSError(await b.session.receive(new Uint8Array(1)).catch((e: unknown) => e), 'malformed'),
    );
  });
});
