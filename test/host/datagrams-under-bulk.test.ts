// Datagrams next to a bulk transfer on the same connection (issue #14): the scheduling rules, checked by
// what happens rather than by timing, over the in-memory link of src/testing/in-memory-link.ts.
//   - The receiver decrypts a bounded number of reliable records at once, so a datagram's decryption does
//     not queue behind a backlog of them (WebCrypto runs its calls in order on a thread pool).
//   - The sender holds reliable records to one at a time while datagrams it sent wait in the link (a
//     WebRTC stack that gives the reliable channel the transport's free space first), and only then.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Connection } from '../../src/host/connection.js';
import type { ConnectionOptions } from '../../src/host/connection-types.js';
import { webCryptoAead } from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { InMemoryNetwork } from '../../src/testing/in-memory-link.js';
import { type HandshakeRun, twoRuns } from '../helpers/protocol.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Resolves when `check` holds, polled on each macrotask; rejects (saying what) after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

let run: HandshakeRun;
before(async () => {
  ({ run } = await twoRuns());
});

/** A connected pair over an in-memory link, both WINDOWs exchanged and both links idle. */
async function pair(options: ConnectionOptions) {
  const net = new InMemoryNetwork();
  const early = { reliable: [], datagramsDropped: 0 };
  net.open();
  const a = new Connection(net.a, run.initiator, options, early);
  const b = new Connection(net.b, run.responder, options, early);
  // Both WINDOWs exchanged (the initial window is only 256 KiB), and the initiator has heard the
  // responder, so its datagrams are no longer held (§5.5).
  await until(async () => (await a.stats()).flowControl.sendCredit > 8 * MiB, 'windows exchanged');
  await until(() => net.recordsInFlight('ab') === 0 && net.recordsInFlight('ba') === 0, 'links idle');
  return { net, a, b };
}

describe('datagrams under bulk traffic (in-memory link)', () => {
  it('a datagram sent behind megabytes of queued reliable records is delivered before they are all processed', async () => {
    // WebCrypto on both ends: decryption is asynchronous, on Node's thread pool, in call order.
    const { net, a, b } = await pair({ session: { aead: webCryptoAead }, highWaterMark: 8 * MiB });
    const count = 64;
    let messages = 0;
    let messagesAtDatagram = -1;
    b.on('message', () => {
      messages++;
    });
    b.datagrams.on('datagram', () => {
      messagesAtDatagram = messages;
    });
    net.hold('ab');
    const sent = Array.from({ length: count }, () => a.send(new Uint8Array(64 * KiB)));
    await until(() => net.bytesInFlight('ab') >= count * 64 * KiB, 'every record sealed and in flight');
    // Every record reaches B within this turn of the event loop; the datagram is sealed after that.
    net.release('ab');
    const seq = await a.datagrams.send(new Uint8Array(1000));
    assert.ok(seq >= 0, 'the datagram was sent');
    await Promise.all(sent);
    await until(() => messages === count && messagesAtDatagram >= 0, 'all messages and the datagram');
    assert.ok(
      messagesAtDatagram < count / 2,
      `the datagram came after ${messagesAtDatagram} of ${count} queued messages`,
    );
    await Promise.all([a.close(), b.closed]);
  });
});

describe('reliable records beside datagrams queued in the link (in-memory link)', () => {
  /**
   * {@link pair} with node:crypto, which seals within the sender's pump, so what one pump seals is in
   * flight when it returns; `looks()` counts A's looks at its datagram backlog. The tests send messages
   * of 100 KiB: one record each (two would share a record of the default 128 KiB).
   */
  async function watchedPair() {
    const ends = await pair({ session: { aead: nodeCryptoAead } });
    const link = ends.net.a;
    const getter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(link), 'datagramsBuffered')!.get!;
    let looks = 0;
    Object.defineProperty(link, 'datagramsBuffered', {
      get() {
        looks++;
        return getter.call(link);
      },
    });
    return { ...ends, looks: () => looks };
  }

  it('while datagrams flow and wait in the link, records go one at a time, and all of them arrive', async () => {
    const { net, a, b, looks } = await watchedPair();
    let messages = 0;
    b.on('message', () => {
      messages++;
    });
    assert.ok((await a.datagrams.send(new Uint8Array(1000))) >= 0, 'a datagram was sent');
    net.datagramsQueued.ab = 100 * KiB;
    net.hold('ab');
    const seen = looks();
    const sent = Array.from({ length: 4 }, () => a.send(new Uint8Array(100 * KiB)));
    // The sender looked at the backlog when it pumped for these sends, and sealed what it would then.
    await until(() => looks() > seen, 'the sender to look at the datagram backlog');
    assert.equal(net.recordsInFlight('ab'), 1, 'one record at a time behind queued datagrams');
    // The backlog stays: TCP mode still moves, a record each time the reliable channel empties.
    net.release('ab');
    await Promise.all(sent);
    await until(() => messages === 4, 'all four messages');
    await Promise.all([a.close(), b.closed]);
  });

  it('a datagram backlog holds nothing back when no datagram was sent', async () => {
    const { net, a, b } = await watchedPair();
    let messages = 0;
    b.on('message', () => {
      messages++;
    });
    net.datagramsQueued.ab = 100 * KiB;
    net.hold('ab');
    const sent = Array.from({ length: 4 }, () => a.send(new Uint8Array(100 * KiB)));
    await until(() => net.recordsInFlight('ab') === 4, 'all four records sealed at once');
    net.release('ab');
    await Promise.all(sent);
    await until(() => messages === 4, 'all four messages');
    await Promise.all([a.close(), b.closed]);
  });
});
