// The RTCPeerConnection a host makes ahead of its next dial (src/transport/link-factory.ts): one at most,
// used by the next link of either role, made again only when asked, never after close; links over one
// connect like any other; a spare that is due is made before a closing link lets WebRTC's factory go.
// Real @roamhq/wrtc on loopback.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { LinkFactory } from '../../src/transport/link-factory.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly, type RtcImplementation } from '../../src/transport/rtc.js';
import { countingRtc, until, within } from '../helpers/hosts.js';

const opened = (link: PeerLink) => new Promise<void>((resolve) => link.once('open', () => resolve()));

/** Two factories over `rtc`, each with its spare made. */
function preparedPair(rtc: RtcImplementation): [LinkFactory, LinkFactory] {
  const pair: [LinkFactory, LinkFactory] = [
    new LinkFactory({ rtc, candidateFilter: loopbackOnly }),
    new LinkFactory({ rtc, candidateFilter: loopbackOnly }),
  ];
  for (const f of pair) f.prepare();
  return pair;
}

/** Joins two links' signals and waits for both to open. */
async function openPair(a: PeerLink, b: PeerLink, what: string): Promise<void> {
  a.on('signal', (s) => b.signal(s));
  b.on('signal', (s) => a.signal(s));
  await within(Promise.all([opened(a), opened(b)]), 20_000, what);
}

/**
 * Thread ids of @roamhq/wrtc's PeerConnectionFactory threads alive now (Linux names them
 * "PeerConnectionF", truncated): each new factory starts two.
 */
function factoryThreads(): string[] {
  const ids: string[] = [];
  for (const id of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${id}/comm`, 'utf8').startsWith('PeerConnectionF')) ids.push(id);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return ids;
}

describe('LinkFactory', () => {
  it('keeps one spare at most; the next link of either role takes it, the one after makes its own', async () => {
    const rtc = await countingRtc();
    const factory = new LinkFactory({ rtc, candidateFilter: loopbackOnly });
    const links: PeerLink[] = [];
    try {
      factory.prepare();
      factory.prepare();
      assert.equal(rtc.made.length, 1, 'one spare, however often prepared');
      links.push(factory.create(true));
      assert.equal(rtc.made.length, 1, 'the initiator link took the spare');
      links.push(factory.create(false));
      assert.equal(rtc.made.length, 2, 'no spare left: a new RTCPeerConnection');
      factory.prepareSoon();
      factory.prepareSoon();
      assert.equal(rtc.made.length, 2, 'made later, not at once');
      await until(() => rtc.made.length === 3, 10_000, 'the spare made soon after');
      links.push(factory.create(false));
      assert.equal(rtc.made.length, 3, 'the responder link took it');
    } finally {
      for (const l of links) l.close();
      factory.close();
    }
  });

  it('close() closes the spare and makes none after, now or later', async () => {
    const rtc = await countingRtc();
    const factory = new LinkFactory({ rtc, candidateFilter: loopbackOnly });
    factory.prepare();
    const spare = rtc.made[0]!;
    factory.prepareSoon(); // no-op: there is a spare
    factory.close();
    assert.equal(spare.signalingState, 'closed');
    factory.prepare();
    factory.prepareSoon();
    // Another factory's spare made later proves the closed one's timer had its chance to fire.
    const other = new LinkFactory({ rtc, candidateFilter: loopbackOnly });
    other.prepareSoon();
    await until(() => rtc.made.length === 2, 10_000, "the other factory's spare");
    other.close();
    assert.equal(rtc.made.length, 2, 'nothing made by the closed factory');
  });

  it('links over spares connect and carry data, both roles', async () => {
    const rtc = await countingRtc();
    const [fa, fb] = preparedPair(rtc);
    const [spareA, spareB] = rtc.made;
    const a = fa.create(true);
    const b = fb.create(false);
    try {
      assert.equal(rtc.made.length, 2, 'both links are over the spares');
      await openPair(a, b, 'both links open');
      assert.equal(spareA!.connectionState, 'connected');
      assert.equal(spareB!.connectionState, 'connected');
      const got = new Promise<Uint8Array>((resolve) => b.once('reliable', resolve));
      a.sendReliable(new Uint8Array([1, 2, 3]));
      assert.deepEqual(await within(got, 10_000, 'the message'), new Uint8Array([1, 2, 3]));
    } finally {
      a.close();
      b.close();
      fa.close();
      fb.close();
    }
  });

  it('a spare that is due is made as a link closes, while its RTCPeerConnection is still open', async () => {
    const rtc = await countingRtc();
    const factory = new LinkFactory({ rtc, candidateFilter: loopbackOnly });
    try {
      const early = factory.create(true);
      early.close();
      await until(() => rtc.made[0]!.signalingState === 'closed', 10_000, 'the first link closed');
      assert.equal(rtc.made.length, 1, 'no spare is due: closing a link makes none');
      const link = factory.create(true);
      factory.prepareSoon(); // the dial that took it ended: a spare is due in a moment
      link.close();
      await until(
        () => rtc.made[1]!.signalingState === 'closed',
        10_000,
        "the link's RTCPeerConnection closed",
      );
      assert.equal(rtc.made.length, 3, 'the spare was made by then, not after the delay');
      assert.equal(rtc.openWhenMade[2], 1, "while the closing link's RTCPeerConnection was still open");
      const spare = rtc.made[2]!;
      const next = factory.create(false);
      assert.equal(rtc.made.length, 3, 'the next link takes that spare');
      factory.prepareSoon();
      factory.close();
      next.close();
      await until(() => spare.signalingState === 'closed', 10_000, 'the last link closed');
      assert.equal(rtc.made.length, 3, 'none after close(), even with a spare due and a link closing');
    } finally {
      factory.close();
    }
  });

  it('connections closed right after they open keep one WebRTC factory (its threads are not made again)', async () => {
    const rtc = await countingRtc();
    const [fa, fb] = preparedPair(rtc);
    const before = new Set(factoryThreads());
    assert.ok(before.size >= 2, `a live factory has its threads (saw ${before.size})`);
    const seen = new Set(before);
    const links: PeerLink[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const a = fa.create(true);
        const b = fb.create(false);
        links.push(a, b);
        await openPair(a, b, `link pair ${i} open`);
        // As a host does when a dial ends; then both close before the spares are made.
        fa.prepareSoon();
        fb.prepareSoon();
        a.close();
        b.close();
        for (const id of factoryThreads()) seen.add(id);
        await until(() => rtc.made.length === 2 * (i + 2), 10_000, `the spares after pair ${i}`);
        for (const id of factoryThreads()) seen.add(id);
      }
      const added = [...seen].filter((id) => !before.has(id));
      assert.deepEqual(added, [], 'no new factory threads: the spares kept the factory');
    } finally {
      for (const l of links) l.close();
      fa.close();
      fb.close();
    }
  });
});
