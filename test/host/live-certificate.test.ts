// The live DTLS certificate check of PROTOCOL.md §8 reads the peer's certificate from the stats that
// simple-peer fetches anyway when the link connects: no second getStats per side (each one blocks the
// JavaScript thread on wrtc's signaling thread during a set-up).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { openLinkPair } from '../helpers/hosts.js';

it('wrtc: the live certificate comes from the stats of the connect, and is the one the SDP names', async () => {
  const { nodeRtc } = await import('../../src/runtime/node-rtc.js');
  const rtc = await nodeRtc('wrtc');
  // Every getStats of each connection, and those simple-peer made (to find the selected candidate pair).
  let calls = new Map<PeerLink, { all: number; simplePeer: number }>();
  const countCalls = (...links: PeerLink[]) => {
    calls = new Map();
    for (const link of links) {
      const count = { all: 0, simplePeer: 0 };
      calls.set(link, count);
      const inner = link as unknown as {
        internals: { _pc: RTCPeerConnection };
        peer: { getStats(cb: (...args: unknown[]) => void): void };
      };
      const pc = inner.internals._pc;
      const getStats = pc.getStats.bind(pc);
      pc.getStats = (() => {
        count.all++;
        return getStats();
      }) as RTCPeerConnection['getStats'];
      const simplePeerGetStats = inner.peer.getStats.bind(inner.peer);
      inner.peer.getStats = (cb) => {
        count.simplePeer++;
        simplePeerGetStats(cb);
      };
    }
  };
  const [a, b] = await openLinkPair(rtc, { prepare: countCalls });
  try {
    for (const count of calls.values()) assert.ok(count.simplePeer >= 1, 'simple-peer read the stats');
    assert.equal(await a.remoteCertificate(), b.fingerprints().local);
    assert.equal(await b.remoteCertificate(), a.fingerprints().local);
    for (const count of calls.values()) {
      assert.equal(count.all, count.simplePeer, "no getStats beyond simple-peer's own");
    }
  } finally {
    a.close();
    b.close();
  }
});
