// The connection lifecycle, deterministically: two Connections over an in-memory link whose "network"
// the test holds, loses and cuts (src/testing/in-memory-link.ts). A stream that loses its tail ends with
// `truncated`, never cleanly; close() is a handshake; a receiver that does not read holds the sender
// back; forged datagrams keep nobody alive; every Promise-returning method rejects instead of throwing.
// PROTOCOL.md §5.3 and §5.5.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { Connection } from '../../src/host/connection.js';
import type { ConnectionOptions } from '../../src/host/connection-types.js';
import { ControlType, DataFlag, RecordType } from '../../src/protocol/constants.js';
import { InMemoryNetwork } from '../../src/testing/in-memory-link.js';
import { concat } from '../../src/util/bytes.js';
import { withCode, within } from '../helpers/hosts.js';
import { type HandshakeRun, RawSender, twoRuns } from '../helpers/protocol.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Resolves when `check` holds, polled on each macrotask; rejects (saying what) after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Reads a connection's messages until the iterator ends or throws. */
function reader(c: Connection): { got: string[]; done: Promise<{ error?: unknown }> } {
  const got: string[] = [];
  const done = (async () => {
    try {
      for await (const m of c.messages()) got.push(text(m));
      return {};
    } catch (error) {
      return { error };
    }
  })();
  return { got, done };
}

describe('connection lifecycle over an in-memory link', () => {
  let run: HandshakeRun;
  before(async () => {
    ({ run } = await twoRuns());
  });

  function pair(options: ConnectionOptions = {}) {
    const net = new InMemoryNetwork();
    const early = { reliable: [], datagramsDropped: 0 };
    net.open();
    const a = new Connection(net.a, run.initiator, options, early);
    const b = new Connection(net.b, run.responder, options, early);
    return { net, a, b };
  }

  it("a responder whose receive window is the initial 256 KiB still sends its WINDOW at once: the initiator's first message is not held (§5.5, §8 step 4)", async () => {
    // No heartbeat within the test: only the responder's WINDOW right after the handshake lets the
    // initiator's records follow InitiatorAuth. Before, a window that had not grown sent none, and the
    // initiator's first message waited for the first heartbeat ping (2 s by default).
    const { net, a, b } = pair({
      session: { receiveWindow: 256 * 1024, maxRecordBytes: 128 * 1024 },
      heartbeatIntervalMs: 600_000,
    });
    const r = reader(b);
    try {
      const sent = a.send('first'); // resolves once sealed and handed over: not while it is held
      await until(() => r.got.length === 1, "the initiator's first message");
      assert.deepEqual(r.got, ['first']);
      await sent;
      await a.close(0, 'done');
      await r.done;
      await b.closed;
    } finally {
      net.cut(); // a failed run ends both connections (their heartbeat timers with them)
    }
  });

  it('a link that dies with records in flight: the receiver ends with truncated, never a clean end', async () => {
    const { net, a, b } = pair();
    const r = reader(b);
    await until(
      () => net.recordsInFlight('ab') === 0 && net.recordsInFlight('ba') === 0,
      'windows exchanged',
    );
    net.hold('ab');
    for (let i = 0; i < 10; i++) await a.send(`m${i}`);
    const closing = a.close(0, 'done');
    await until(() => a.state === 'closing', 'A sealed its CLOSE');
    // The network dies with every record still in flight (as SCTP does when the connection is destroyed).
    net.cut();
    const outcome = await r.done;
    assert.ok(isP2PTLSError(outcome.error, 'truncated'), `iterator: ${String(outcome.error)}`);
    assert.deepEqual(r.got, []);
    const info = await b.closed;
    assert.equal(info.error?.code, 'truncated');
    assert.equal(info.byPeer, true);
    // The closer cannot claim a clean close either.
    assert.equal((await closing).error?.code, 'truncated');
  });

  it('the tail is lost only up to where the link died: a prefix arrives, then truncated', async () => {
    const { net, a, b } = pair();
    const r = reader(b);
    for (let i = 0; i < 5; i++) await a.send(`m${i}`);
    await until(() => r.got.length === 5, 'first five');
    net.hold('ab');
    for (let i = 5; i < 10; i++) await a.send(`m${i}`);
    net.cut();
    const outcome = await r.done;
    assert.ok(isP2PTLSError(outcome.error, 'truncated'));
    assert.deepEqual(r.got, ['m0', 'm1', 'm2', 'm3', 'm4']);
    // A readable() stream errors the same way.
    const { b: b2, net: net2 } = pair();
    const stream = b2.readable().getReader();
    net2.cut();
    await assert.rejects(stream.read(), withCode('truncated'));
  });

  it('close() resolves only when the peer CLOSE comes back; everything sent before it arrives', async () => {
    const { net, a, b } = pair();
    const ra = reader(a);
    const rb = reader(b);
    // The initiator sends records only once it has heard the responder (PROTOCOL.md §8 step 4).
    assert.equal(await a.probe(5_000), true);
    for (let i = 0; i < 20; i++) void a.send(`a${i}`);
    net.hold('ba');
    let closed = false;
    const closing = a.close(4000, 'bye').then((info) => {
      closed = true;
      return info;
    });
    assert.equal(a.state, 'draining');
    await a.send('too late').then(
      () => assert.fail('send after close() must reject'),
      (err: unknown) => assert.ok(isP2PTLSError(err, 'closed')),
    );
    const peer = await b.closed;
    assert.deepEqual(peer, { code: 4000, reason: 'bye', byPeer: true });
    // B's reader ends cleanly after the last message (it may still be reading when `closed` resolves).
    assert.deepEqual(await rb.done, {});
    assert.deepEqual(
      rb.got,
      Array.from({ length: 20 }, (_, i) => `a${i}`),
    );
    // B's CLOSE is held in the network: A is still waiting for it.
    assert.equal(a.state, 'closing');
    assert.equal(closed, false);
    net.release('ba');
    assert.deepEqual(await closing, { code: 4000, reason: 'bye', byPeer: false });
    assert.equal(a.state, 'closed');
    assert.deepEqual(await ra.done, {});
    // A tears the link down once B's CLOSE_ACK is in; B sees that, and both links are closed.
    await until(() => !net.a.isOpen && !net.b.isOpen, 'link torn down after CLOSE_ACK');
  });

  it('a close nobody answers within flushMs reports close_unacknowledged, not a clean close', async () => {
    const { net, a } = pair();
    net.hold('ab');
    const info = await a.close(0, 'anyone?', { flushMs: 100 });
    assert.equal(info.error?.code, 'close_unacknowledged');
    assert.equal(info.byPeer, false);
    assert.equal(a.state, 'closed');
  });

  it('the peer keeps sending while we close: what its send() resolved arrives; the rest rejects; all settle', async () => {
    const { a, b } = pair();
    const ra = reader(a);
    const resolved: string[] = [];
    const rejected: string[] = [];
    let i = 0;
    const pump = (async () => {
      while (b.state === 'open') {
        const m = `b${i++}`;
        await b.send(m).then(
          () => resolved.push(m),
          (err: unknown) => {
            assert.ok(isP2PTLSError(err), 'a rejection without a p2ptls code');
            rejected.push(m);
          },
        );
      }
    })();
    await until(() => resolved.length >= 50, 'b is sending');
    const info = await a.close(1001, 'enough');
    await pump;
    assert.deepEqual(info, { code: 1001, reason: 'enough', byPeer: false });
    assert.deepEqual(await b.closed, { code: 1001, reason: 'enough', byPeer: true });
    // A reads on until B's CLOSE: exactly what B's send() resolved, in order.
    assert.deepEqual(await ra.done, {});
    assert.deepEqual(ra.got, resolved);
    assert.ok(rejected.length <= 1);
  });

  it('a receiver that does not read holds the sender back; reading lets every byte through intact', async () => {
    const window = 1024 * 1024;
    const { net, a, b } = pair({ session: { receiveWindow: window } });
    const size = 256 * 1024;
    const total = 24; // 6 MiB: six times the window
    const settled: number[] = [];
    const sends = Array.from({ length: total }, (_, n) =>
      a.send(new Uint8Array(size).fill(n)).then(() => settled.push(n)),
    );
    // The sender stops: the receiver holds a window's worth and the rest of the sends wait.
    await until(
      async () => (await b.stats()).flowControl.buffered > window - size,
      'the receiver buffers a full window',
    );
    await until(
      async () => (await a.stats()).flowControl.sendCredit < size + 16,
      'the sender is out of credit',
    );
    // Whatever is still in flight lands, and then nothing more comes: the bound holds throughout.
    let peak = 0;
    await until(async () => {
      peak = Math.max(peak, (await b.stats()).flowControl.buffered);
      return net.recordsInFlight('ab') === 0;
    }, 'the network drained');
    peak = Math.max(peak, (await b.stats()).flowControl.buffered);
    assert.ok(peak <= window + size + 64, `receiver held ${peak} bytes (window ${window})`);
    assert.ok(settled.length < total, 'every send resolved although nothing was read');
    // Reading resumes the flow; every message arrives intact and in order.
    let n = 0;
    for await (const m of b.messages()) {
      assert.equal(m.length, size);
      assert.ok(m.every((x) => x === n));
      n++;
      if (n === total) break;
    }
    await Promise.all(sends);
    assert.equal(settled.length, total);
    // Closed, or their heartbeats would hold the test process open.
    await a.close();
    await b.closed;
  });

  it('forged datagrams do not keep a silent peer alive: the heartbeat still times out', async () => {
    const { net, a } = pair({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 400 });
    // The initiator sends records only once it has heard the responder (PROTOCOL.md §8 step 4).
    assert.equal(await a.probe(5_000), true);
    // The peer goes silent: nothing of it reaches A any more.
    net.hold('ba');
    net.datagramFate = (_r, direction) => (direction === 'ba' ? 'drop' : 'deliver');
    const forged = new Uint8Array(64);
    forged[0] = RecordType.DATA;
    const flood = setInterval(() => net.a.receiveDatagram(forged), 10);
    try {
      const info = await Promise.race([
        a.closed,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('kept alive by forgeries')), 3_000),
        ),
      ]);
      assert.equal(info.error?.code, 'timeout');
      assert.ok((await a.stats()).datagrams.dropped.invalid > 0, 'the forgeries were seen and dropped');
    } finally {
      clearInterval(flood);
    }
  });

  it('probe(): a live peer answers and the connection stays; a silent one is closed with timeout long before the heartbeat', async () => {
    // A heartbeat timeout of 60 s: only the probe can end the connection within this test.
    const { net, a, b } = pair({ heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 60_000 });
    const pong = new Promise((resolve) => a.once('rtt', resolve));
    assert.equal(await a.probe(2_000), true, 'a live peer answers the probe');
    assert.equal(a.state, 'open');
    // The probe is settled by the first record heard, which may be the peer's WINDOW with the pong still
    // on its way: silencing the peer before the pong is processed would let it answer the next probe.
    await within(pong, 5_000, 'the pong');
    // The peer goes silent (a killed process): the probe's window, not the heartbeat, ends it.
    net.hold('ba');
    net.datagramFate = (_r, direction) => (direction === 'ba' ? 'drop' : 'deliver');
    const started = Date.now();
    const [heard, info] = await Promise.all([a.probe(300), a.closed]);
    assert.equal(heard, false);
    assert.equal(info.error?.code, 'timeout');
    assert.match(info.error?.message ?? '', /probe/);
    assert.ok(Date.now() - started < 30_000, 'ended by the probe, not by the heartbeat');
    assert.equal(await a.probe(), false, 'a closed connection answers no probe');
    b.close().catch(() => {});
  });

  it('a message that stops arriving halfway ends the connection with timeout (reassembly budget in time)', async () => {
    const net = new InMemoryNetwork();
    net.open();
    const b = new Connection(
      net.b,
      run.responder,
      { heartbeatIntervalMs: 50, reassemblyTimeoutMs: 300 },
      {
        reliable: [],
        datagramsDropped: 0,
      },
    );
    // An authenticated peer (a raw sender with the initiator's keys) starts a 64 MiB message, sends 1 byte
    // of it and then only pings, which keep the connection alive.
    const raw = new RawSender(run.initiator.secrets.initiatorTcp);
    const u32 = new Uint8Array([0x03, 0xff, 0xff, 0xff]);
    net.b.receiveReliable(await raw.seal(RecordType.DATA, DataFlag.FIRST, concat(u32, new Uint8Array(1))));
    const pinger = setInterval(() => {
      void raw
        .seal(RecordType.CONTROL, 0, concat(new Uint8Array([ControlType.PING]), new Uint8Array(8)))
        .then((r) => net.b.receiveReliable(r));
    }, 40);
    try {
      const info = await b.closed;
      assert.equal(info.error?.code, 'timeout');
      assert.match(info.error?.message ?? '', /stalled/);
    } finally {
      clearInterval(pinger);
    }
  });

  it('every Promise-returning method rejects, never throws, in every state', async () => {
    const { net, a, b } = pair();
    const calls = (c: Connection) => [
      () => c.send('x'),
      () => c.ping(),
      () => c.updateKeys(),
      () => c.datagrams.send('x'),
      () => c.stats(),
      () => c.close(0, 'x'),
      () => c.close('reason first' as unknown as number),
    ];
    const check = async (c: Connection, state: string) => {
      for (const [i, call] of calls(c).entries()) {
        let p: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          p = call();
        }, `a call threw in state ${state}`);
        const typed = p!.catch((err: unknown) =>
          assert.ok(isP2PTLSError(err), `untyped rejection in ${state}`),
        );
        // close(0, 'x') settles with the close itself (later); the others settle now.
        if (i !== 5) await typed;
      }
    };
    // The initiator sends records only once it has heard the responder (PROTOCOL.md §8 step 4).
    assert.equal(await a.probe(5_000), true);
    net.hold('ba');
    void a.close(0, 'bye');
    assert.equal(a.state, 'draining');
    await check(a, 'draining');
    await until(() => a.state === 'closing', 'closing');
    await check(a, 'closing');
    net.release('ba');
    await a.closed;
    await check(a, 'closed');
    await check(b, 'closed');
    await assert.rejects(a.close('reason first' as unknown as number), withCode('invalid_argument'));
    // A ping from the heartbeat on a closing connection is just a rejected promise.
    assert.ok(isP2PTLSError(await a.ping().catch((e: unknown) => e), 'closed'));
  });
});
