// PeerLink.sendFirst, on both Node stacks: what the dialer gives it before its reliable channel opens
// leaves in that channel's `open` event, before the link reports `open` (which waits for the datagram
// channel and simple-peer's stats read), and reaches the peer ahead of everything sent after it, in
// order. That is how a dial's InitiatorAuth leaves (PROTOCOL.md §8 step 4). The answering side's leave as
// its link opens; a closed link refuses them.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { openLinkPair, withCode, within } from '../helpers/hosts.js';

const bytes = (...values: number[]) => new Uint8Array(values);

/** Collects what `link` receives; `until(n)` resolves once n records have arrived. */
function collector(link: PeerLink) {
  const records: number[][] = [];
  let wanted = Number.POSITIVE_INFINITY;
  let reached: () => void = () => {};
  link.on('reliable', (r) => {
    records.push([...r]);
    if (records.length >= wanted) reached();
  });
  return {
    records,
    until(n: number): Promise<void> {
      if (records.length >= n) return Promise.resolve();
      wanted = n;
      return new Promise((resolve) => {
        reached = resolve;
      });
    },
  };
}

for (const backend of ['wrtc', 'node-datachannel'] as NodeRtcBackend[]) {
  it(`${backend}: records given to sendFirst before the link opens leave first, the dialer's before its link reports open`, async () => {
    const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
    // The dialer's channel sends, simple-peer's stats reads and the link's `open`, in the order they
    // happened (per attempt: the helper makes the pair again if one fails to open).
    let order: string[] = [];
    let seen: { atA: ReturnType<typeof collector>; atB: ReturnType<typeof collector> } | undefined;
    const [a, b] = await openLinkPair(rtc, {
      prepare(a, b) {
        order = [];
        const ch = (a as unknown as { internals: { _channel: RTCDataChannel } }).internals._channel;
        const send = ch.send.bind(ch);
        ch.send = ((data: Uint8Array<ArrayBuffer>) => {
          order.push('send');
          send(data);
        }) as RTCDataChannel['send'];
        const peer = (a as unknown as { peer: { getStats(cb: (...args: unknown[]) => void): void } }).peer;
        const getStats = peer.getStats.bind(peer);
        peer.getStats = (cb) => {
          order.push('stats');
          getStats(cb);
        };
        a.on('open', () => order.push('open'));
        seen = { atA: collector(a), atB: collector(b) };
        a.sendFirst([bytes(1, 1, 1), bytes(2, 2)]);
        b.sendFirst([bytes(9)]);
      },
    });
    const { atA, atB } = seen!;
    try {
      assert.deepEqual(
        order.filter((e) => e !== 'stats').slice(0, 3),
        ['send', 'send', 'open'],
        'both records left before the link opened',
      );
      assert.deepEqual(order.slice(0, 3), ['send', 'send', 'stats'], "before simple-peer's stats read");
      assert.ok(
        a.timeline.reliableOpen !== undefined && a.timeline.reliableOpen <= a.timeline.open!,
        'the reliable channel opened, then the link',
      );
      a.sendReliable(bytes(3));
      await within(atB.until(3), 10_000, 'three records at the answerer');
      assert.deepEqual(atB.records, [[1, 1, 1], [2, 2], [3]]);
      await within(atA.until(1), 10_000, "the answerer's record at the dialer");
      assert.deepEqual(atA.records, [[9]]);
      a.sendFirst([bytes(4)]); // the channel is open: at once
      await within(atB.until(4), 10_000, 'a fourth record at the answerer');
      assert.deepEqual(atB.records.at(-1), [4]);
    } finally {
      a.close();
      b.close();
    }
    assert.throws(() => a.sendFirst([bytes(5)]), withCode('closed'));
  });
}
