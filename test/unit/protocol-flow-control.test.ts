// Flow control (PROTOCOL.md §5.5), bounded reassembly (§5.2) and the close handshake (§5.3) at the
// protocol layer, over the in-memory harness: credit costs, a sender held at the window, a peer that
// ignores the window, a FIRST record declaring 64 MiB, CLOSE_ACK rules, and a version-1 hello.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  CloseCode,
  ControlType,
  DataFlag,
  INITIAL_WINDOW,
  MAX_CONTROL_RECORD_BYTES,
  RecordType,
} from '../../src/protocol/constants.js';
import { parseClientHello, ReceiveWindow, recordCost, type SessionEvent } from '../../src/protocol/index.js';
import type { InMemoryEnd } from '../../src/testing/in-memory.js';
import { ByteWriter, concat, utf8 } from '../../src/util/bytes.js';
import {
  type HandshakeRun,
  openWindows,
  pairFrom,
  pumpReliable,
  RawSender,
  twoRuns,
  waitForReliable,
  withCode,
} from '../helpers/protocol.js';

const u32 = (n: number) => new ByteWriter(4).u32(n).finish();
const u64 = (n: number) => new ByteWriter(8).u64(BigInt(n)).finish();

/** Delivers `from`'s records to `to` one by one, keeping message costs; stops at the first failure. */
async function deliver(from: InMemoryEnd, to: InMemoryEnd): Promise<SessionEvent[]> {
  const out: SessionEvent[] = [];
  for (const r of from.sentReliable.splice(0)) out.push(...(await to.session.receive(r)));
  return out;
}

describe('flow control, bounded reassembly and the close handshake (protocol layer)', () => {
  let run: HandshakeRun;
  before(async () => {
    ({ run } = await twoRuns());
  });

  it('costs: a message costs its bytes plus 16 (plus 4 fragmented or batched); they add up per record', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { recordSize: 1024 });
    await a.session.send(new Uint8Array(100));
    await a.session.send(new Uint8Array(0), utf8('abc'));
    await a.session.send(new Uint8Array(5000));
    const events = (await deliver(a, b)).filter((e) => e.type === 'message');
    assert.deepEqual(
      events.map((e) => e.cost),
      [100 + 16, 4 + 0 + 16, 4 + 3 + 16, 5000 + 4 + 16],
    );
    assert.equal(recordCost(100, 1), 116);
    assert.equal(recordCost(1024, 0), 1024);
    // Nothing was released yet: everything received is buffered credit.
    assert.equal(b.session.bufferedCredit, 116 + 20 + 23 + 5020);
    b.session.release(116);
    assert.equal(b.session.bufferedCredit, 20 + 23 + 5020);
  });

  it('a sender never starts a message beyond the window: send() refuses, sending nothing, until a WINDOW', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { recordSize: 64 * 1024 - 256 });
    const chunk = new Uint8Array(60 * 1024);
    let sent = 0;
    while (a.session.sendCredit >= chunk.length + 16) {
      await a.session.send(chunk);
      sent++;
    }
    assert.equal(sent, Math.floor(INITIAL_WINDOW / (chunk.length + 16)));
    const before = a.sentReliable.length;
    await assert.rejects(a.session.send(chunk), withCode('flow_control'));
    assert.equal(a.sentReliable.length, before, 'nothing sealed for a refused send');
    // The receiver consumes (releases) and opens its window: the sender may go on.
    const events = await deliver(a, b);
    for (const e of events) if (e.type === 'message') b.session.release(e.cost);
    await waitForReliable(b, 1);
    assert.deepEqual(
      (await deliver(b, a)).map((e) => e.type),
      ['window'],
    );
    assert.ok(a.session.sendCredit > 16 * 1024 * 1024 - INITIAL_WINDOW);
    await a.session.send(chunk);
  });

  it('a message larger than the window still completes: only the record that starts it needs credit', async () => {
    const { initiator: a, responder: b } = pairFrom(run, { recordSize: 16 * 1024 });
    const big = new Uint8Array(3 * INITIAL_WINDOW).map((_, i) => i & 0xff);
    await a.session.send(big);
    assert.ok(a.session.sendCredit < 0, 'the message ran past the limit it started within');
    await assert.rejects(a.session.send('next'), withCode('flow_control'));
    const [m] = await deliver(a, b);
    assert.ok(m?.type === 'message');
    assert.deepEqual(m.data, big);
    assert.equal(m.cost, big.length + 4 + 16);
  });

  it('a peer that starts a message beyond the window is refused: flow_control, CLOSE 2, nothing more delivered', async () => {
    const raw = new RawSender(run.initiator.secrets.initiatorTcp);
    const { responder: b } = pairFrom(run);
    const payload = new Uint8Array(60 * 1024);
    let delivered = 0;
    let error = '';
    for (let i = 0; i < 10 && !error; i++) {
      const r = await raw.seal(RecordType.DATA, DataFlag.FIRST | DataFlag.LAST, payload);
      await b.session.receive(r).then(
        (ev) => {
          delivered += ev.length;
        },
        (err: { code: string }) => {
          error = err.code;
        },
      );
    }
    assert.equal(error, 'flow_control');
    assert.equal(delivered, Math.floor(INITIAL_WINDOW / (payload.length + 16)));
    assert.equal(b.session.state, 'failed');
    assert.equal(b.session.closed?.code, CloseCode.PROTOCOL_ERROR);
    await waitForReliable(b, 1);
    assert.equal(b.sentReliable.length, 1, 'the CLOSE that tells the peer');
  });

  it('the WINDOW right after the handshake is sent whatever its size, and an announced limit never goes down', () => {
    const initial = new ReceiveWindow(INITIAL_WINDOW);
    assert.equal(initial.release(0), undefined, 'no growth, no WINDOW on release');
    assert.equal(initial.announce(), INITIAL_WINDOW, 'but one right after the handshake');
    const big = new ReceiveWindow(4 * INITIAL_WINDOW);
    assert.equal(big.announce(), 4 * INITIAL_WINDOW);
    big.accept(1000, true);
    assert.equal(big.release(1000), undefined, 'a release below a quarter window sends none');
    assert.equal(big.announce(), 4 * INITIAL_WINDOW + 1000);
    assert.equal(big.release(INITIAL_WINDOW), 5 * INITIAL_WINDOW + 1000, 'a quarter window more');
    assert.equal(big.announce(), 5 * INITIAL_WINDOW + 1000, 'never lower than what was advertised');
  });

  it('a WINDOW that lowers the limit is refused (flow_control)', async () => {
    const raw = new RawSender(run.responder.secrets.responderTcp);
    const { initiator: a } = pairFrom(run);
    const grant = await raw.seal(
      RecordType.CONTROL,
      0,
      concat(new Uint8Array([ControlType.WINDOW]), u64(1 << 20)),
    );
    assert.deepEqual(await a.session.receive(grant), [{ type: 'window' }]);
    const lower = await raw.seal(
      RecordType.CONTROL,
      0,
      concat(new Uint8Array([ControlType.WINDOW]), u64(INITIAL_WINDOW)),
    );
    await assert.rejects(a.session.receive(lower), withCode('flow_control'));
  });

  it('a 23-byte FIRST record declaring 64 MiB costs what arrived, not 64 MiB', async () => {
    const raw = new RawSender(run.initiator.secrets.initiatorTcp);
    const { responder: b } = pairFrom(run);
    const total = 64 * 1024 * 1024 - 1;
    const first = await raw.seal(RecordType.DATA, DataFlag.FIRST, concat(u32(total), new Uint8Array(1)));
    assert.equal(first.length, 23);
    const before = process.memoryUsage().arrayBuffers;
    assert.deepEqual(await b.session.receive(first), []);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 1024 * 1024, `reassembly allocated ${grown} bytes for 1 byte received`);
    assert.deepEqual(b.session.reassembling, { received: 1, total });
    // The rest arrives as it comes: a continuation grows it, nothing more.
    const next = await raw.seal(RecordType.DATA, 0, new Uint8Array(1000));
    assert.deepEqual(await b.session.receive(next), []);
    assert.deepEqual(b.session.reassembling, { received: 1001, total });
  });

  it('control records are small: a longer CONTROL or KEY_UPDATE is record_overflow, even authenticated', async () => {
    // One byte more than the longest: a CLOSE with a 1,025-byte reason, and a KEY_UPDATE padded to it.
    const body = new Uint8Array(MAX_CONTROL_RECORD_BYTES + 1 - 2 - 16);
    for (const type of [RecordType.CONTROL, RecordType.KEY_UPDATE]) {
      const raw = new RawSender(run.initiator.secrets.initiatorTcp);
      const forged = await raw.seal(type, 0, body);
      assert.equal(forged.length, MAX_CONTROL_RECORD_BYTES + 1);
      const { responder: b } = pairFrom(run);
      await assert.rejects(b.session.receive(forged), withCode('record_overflow'));
    }
    // The longest one allowed is not refused for its size.
    const raw = new RawSender(run.initiator.secrets.initiatorTcp);
    const close = new Uint8Array(MAX_CONTROL_RECORD_BYTES - 2 - 16);
    close.set([ControlType.CLOSE, 0x0f, 0xa1]);
    close.fill(0x61, 3);
    const { responder: c } = pairFrom(run);
    const events = await c.session.receive(await raw.seal(RecordType.CONTROL, 0, close));
    assert.deepEqual(
      events.map((e) => e.type),
      ['close'],
    );
  });

  it('both close at once: each gets the other CLOSE and a CLOSE_ACK, and keeps its own code', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    await openWindows(a, b);
    await a.session.send('from a');
    await a.session.close(4001, 'a closes');
    await b.session.send('from b');
    await b.session.close(4002, 'b closes');
    assert.deepEqual(await pumpReliable(a, b), [
      { type: 'message', data: utf8('from a') },
      { type: 'close', code: 4001, reason: 'a closes' },
    ]);
    await waitForReliable(b, 3);
    assert.deepEqual(await pumpReliable(b, a), [
      { type: 'message', data: utf8('from b') },
      { type: 'close', code: 4002, reason: 'b closes' },
      { type: 'close-ack' },
    ]);
    await waitForReliable(a, 1);
    assert.deepEqual(await pumpReliable(a, b), [{ type: 'close-ack' }]);
    assert.deepEqual(a.session.closed, { code: 4001, reason: 'a closes', byPeer: false });
    assert.deepEqual(b.session.closed, { code: 4002, reason: 'b closes', byPeer: false });
    assert.equal(a.session.state, 'closed');
    assert.equal(b.session.state, 'closed');
  });

  it('CLOSE_ACK before the CLOSE it follows is unexpected_message; after the CLOSE only CLOSE_ACK counts', async () => {
    const raw = new RawSender(run.initiator.secrets.initiatorTcp);
    const { responder: b } = pairFrom(run);
    const ack = await raw.seal(RecordType.CONTROL, 0, new Uint8Array([ControlType.CLOSE_ACK]));
    await assert.rejects(b.session.receive(ack), withCode('unexpected_message'));

    const raw2 = new RawSender(run.initiator.secrets.initiatorTcp);
    const { responder: c } = pairFrom(run);
    const close = await raw2.seal(RecordType.CONTROL, 0, new Uint8Array([ControlType.CLOSE, 0, 0]));
    const data = await raw2.seal(RecordType.DATA, DataFlag.FIRST | DataFlag.LAST, utf8('after close'));
    assert.deepEqual(await c.session.receive(close), [{ type: 'close', code: 0, reason: '' }]);
    await assert.rejects(c.session.receive(data), withCode('unexpected_message'));
    // Refusing it does not undo the clean close.
    assert.equal(c.session.state, 'closed');
    assert.equal(c.session.closed?.error, undefined);
  });

  it('after our CLOSE, the peer data still arrives, and pings and key-update requests get no answer', async () => {
    const { initiator: a, responder: b } = pairFrom(run);
    await a.session.close(0, 'bye');
    await b.session.send('still talking');
    await b.session.ping(new Uint8Array(8));
    await b.session.updateKeys();
    const events = await pumpReliable(b, a);
    assert.deepEqual(
      events.map((e) => e.type),
      ['message', 'key-update'],
    );
    assert.equal(a.session.state, 'closing');
    assert.equal(a.sentReliable.length, 1, 'only our CLOSE: nothing may follow it');
  });

  it('every Promise-returning Session method rejects, never throws, once the session is not open', async () => {
    const { initiator: a } = pairFrom(run);
    await a.session.close(0, '');
    for (const call of [
      () => a.session.send('x'),
      () => a.session.ping(new Uint8Array(8)),
      () => a.session.updateKeys(),
      () => a.session.sendDatagram('x', 0),
      () =>
        a.session.sendRecord({
          type: RecordType.DATA,
          flags: 3,
          plaintext: [new Uint8Array(1)],
          length: 1,
          starts: 1,
        }),
    ]) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = call();
      });
      await assert.rejects(p!, withCode('closed'));
    }
  });

  it('ClientHellos of versions 1–3 are refused with unsupported_version (no downgrade to a version without §5.5, or with record headers in the clear)', async () => {
    assert.equal(run.clientHello[2 + 4], 4);
    for (const version of [1, 2, 3, 5]) {
      const other = run.clientHello.slice();
      other[2 + 4] = version;
      assert.throws(() => parseClientHello(other), withCode('unsupported_version'), `version ${version}`);
    }
  });
});
