// The pre-admission hold of incoming dials (PROTOCOL.md §8): everything in it comes from peers not yet
// known to be paired, so it must stay bounded by count, size and time, whatever they send.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdmissionHold, DEFAULT_HOLD } from '../../src/host/admission-hold.js';
import type { PeerId } from '../../src/identity/peer-id.js';
import { until } from '../helpers/hosts.js';

const mallory = 'm'.repeat(52) as PeerId;
const alice = 'a'.repeat(52) as PeerId;
const candidate = (n: number) => ({
  type: 'candidate',
  candidate: {
    candidate: `candidate:${n} 1 udp 2122260223 127.0.0.1 ${50000 + n} typ host`,
    sdpMLineIndex: 0,
    sdpMid: '0',
  },
});
const offer = { signal: { type: 'offer', sdp: 'v=0' }, handshake: [new Uint8Array(8)] };

describe('admission hold', () => {
  it('holds candidates only, each bounded, at most maxPerDial per dial and maxCandidates in all', () => {
    const hold = new AdmissionHold({ ...DEFAULT_HOLD, maxPerDial: 4, maxCandidates: 10 });
    try {
      // A first signal that is neither an offer nor a candidate, or a candidate too large, starts nothing.
      assert.equal(hold.start('dial-junk-1', mallory, { signal: { renegotiate: true } }), 'ignored');
      const huge = { type: 'candidate', candidate: { candidate: 'x'.repeat(60_000) } };
      assert.equal(hold.start('dial-huge-1', mallory, { signal: huge }), 'ignored');
      assert.deepEqual(hold.size, { dials: 0, candidates: 0 });

      // What is held is the bounded form: fields beside simple-peer's are not kept.
      const padded = { ...candidate(0), extra: 'y'.repeat(1000) };
      padded.candidate = { ...padded.candidate, ...{ pad: 'z'.repeat(1000) } };
      assert.equal(hold.start('dial-one-1', mallory, { signal: padded }), 'held');
      const one = hold.get('dial-one-1')!;
      assert.deepEqual(one.candidates, [candidate(0)]);
      for (let i = 1; i < 10; i++) hold.add(one, { signal: candidate(i) });
      hold.add(one, { signal: huge });
      hold.add(one, { signal: { type: 'offer', sdp: 'v=0' } });
      assert.equal(one.candidates.length, 4, 'per-dial bound');

      for (let d = 0; d < 5; d++) {
        assert.equal(hold.start(`dial-many-${d}`, mallory, { signal: candidate(d) }), 'held');
        const dial = hold.get(`dial-many-${d}`)!;
        for (let i = 0; i < 10; i++) hold.add(dial, { signal: candidate(i) });
      }
      assert.equal(hold.size.candidates, 10, 'bound across dials');
      // Taking a dial gives its candidates' room back.
      assert.equal(hold.take('dial-one-1')?.candidates.length, 4);
      assert.equal(hold.size.candidates, 6);
    } finally {
      hold.close();
    }
  });

  it('a dial without its offer makes room for a new one; dials with offers do not, and busy is said', () => {
    const hold = new AdmissionHold({ ...DEFAULT_HOLD, maxDials: 3 });
    try {
      assert.equal(hold.start('dial-orphan', mallory, { signal: candidate(1) }), 'held');
      assert.equal(hold.start('dial-offer-1', alice, offer), 'held');
      assert.equal(hold.start('dial-offer-2', alice, offer), 'held');
      assert.equal(hold.start('dial-offer-3', alice, offer), 'held');
      assert.equal(hold.get('dial-orphan'), undefined, 'the orphan made room');
      assert.equal(hold.size.candidates, 0);
      assert.equal(hold.start('dial-offer-4', alice, offer), 'busy');
      assert.equal(hold.start('dial-orphan-2', mallory, { signal: candidate(2) }), 'busy');
      assert.deepEqual(hold.size, { dials: 3, candidates: 0 });
    } finally {
      hold.close();
    }
  });

  it('forgets a dial whose offer has not come within orphanMs, and keeps one whose offer came', async () => {
    const hold = new AdmissionHold({ ...DEFAULT_HOLD, orphanMs: 50 });
    try {
      const t0 = performance.now();
      hold.start('dial-orphan', mallory, { signal: candidate(1) });
      hold.start('dial-late-offer', alice, { signal: candidate(2) });
      assert.equal(hold.add(hold.get('dial-late-offer')!, offer), 'offer');
      hold.start('dial-offer', alice, offer);
      assert.equal(hold.size.dials, 3);
      await until(() => hold.get('dial-orphan') === undefined, 5_000, 'the orphan expires');
      assert.ok(performance.now() - t0 >= 50, 'not before orphanMs');
      assert.deepEqual(hold.size, { dials: 2, candidates: 1 });
      // A later orphan gets its own deadline (the timer is re-armed).
      hold.start('dial-orphan-2', mallory, { signal: candidate(3) });
      await until(() => hold.get('dial-orphan-2') === undefined, 5_000, 'the second orphan expires');
      assert.ok(hold.get('dial-offer') && hold.get('dial-late-offer'));
    } finally {
      hold.close();
    }
  });
});
