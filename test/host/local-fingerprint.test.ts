// A link reports its own DTLS fingerprint from the SDP its stack's createOffer/createAnswer returns,
// before simple-peer has set that SDP as local description and emitted it: the responder's handshake
// signs over it while WebRTC is still busy (PROTOCOL.md §8; src/transport/peer-link.ts). On both Node
// stacks: it comes before the SDP signal, it is the fingerprint that signal names, and a link closed
// before making its SDP rejects with a typed error instead of leaving the dial waiting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import { sdpFingerprint } from '../../src/transport/channel-binding.js';
import { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { openLinkPair } from '../helpers/hosts.js';
import { withCode } from '../helpers/protocol.js';

/** When `link` reported its fingerprint, relative to its SDP signal. */
function watch(link: PeerLink) {
  const order: string[] = [];
  let sdp: string | undefined;
  const reported = link.localFingerprint().then((fp) => {
    order.push('reported');
    return fp;
  });
  link.on('signal', (s) => {
    const d = s as { sdp?: string };
    if (typeof d.sdp === 'string' && sdp === undefined) {
      sdp = d.sdp;
      order.push('signaled');
    }
  });
  return { order, reported, sdp: () => sdp };
}

for (const backend of ['wrtc', 'node-datachannel'] as NodeRtcBackend[]) {
  describe(`${backend}: a link's own fingerprint`, () => {
    it('is reported before its offer or answer is signaled, and is the one that SDP names', async () => {
      const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
      let seen: [ReturnType<typeof watch>, ReturnType<typeof watch>] | undefined;
      const [a, b] = await openLinkPair(rtc, {
        prepare: (a, b) => {
          seen = [watch(a), watch(b)];
        },
      });
      try {
        for (const [link, w] of [
          [a, seen![0]],
          [b, seen![1]],
        ] as const) {
          const fp = await w.reported;
          assert.deepEqual(w.order, ['reported', 'signaled']);
          assert.equal(fp, sdpFingerprint(w.sdp()!));
          assert.equal(fp, link.fingerprints().local);
        }
      } finally {
        a.close();
        b.close();
      }
    });

    it('rejects with closed when the link closes before making its SDP', async () => {
      const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
      const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
      const reported = b.localFingerprint();
      b.close();
      await assert.rejects(reported, withCode('closed'));
    });
  });
}
