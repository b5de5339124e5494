// A link hands the peer's ICE candidates to simple-peer's own steps without asking the connection for its
// remote description each time (a blocking call on @roamhq/wrtc; src/transport/peer-link.ts): those that
// arrive before the remote description is set are kept and added once it is, later ones at once. On both
// Node stacks, with the candidates taken out of the SDP so that only the trickled ones can count, the
// responder's stats must show them as signaled `host` candidates: a candidate that was lost would leave
// only the `prflx` one the peer's connectivity checks reveal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly } from '../../src/transport/rtc.js';

type Sdp = { type: string; sdp: string };

/** The remote candidate types in `link`'s connection stats. */
async function remoteCandidateTypes(link: PeerLink): Promise<string[]> {
  const pc = (link as unknown as { internals: { _pc: RTCPeerConnection } }).internals._pc;
  const types: string[] = [];
  (await pc.getStats()).forEach((v: { type: string; candidateType?: string }) => {
    if (v.type === 'remote-candidate' && v.candidateType) types.push(v.candidateType);
  });
  return types;
}

/** The first signal of `link` that satisfies `match`. */
function nextSignal(link: PeerLink, match: (s: unknown) => boolean): Promise<unknown> {
  return new Promise((resolve) => {
    const off = link.on('signal', (s) => {
      if (!match(s)) return;
      off();
      resolve(s);
    });
  });
}

const isSdp = (s: unknown) => typeof (s as Partial<Sdp>).sdp === 'string';

for (const backend of ['wrtc', 'node-datachannel'] as NodeRtcBackend[]) {
  describe(`${backend}: the peer's ICE candidates`, () => {
    for (const when of ['before', 'after'] as const) {
      it(`arriving ${when} the offer is applied are used`, async () => {
        const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
        const a = new PeerLink({ rtc, initiator: true, candidateFilter: loopbackOnly });
        const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
        try {
          // The initiator's trickled candidates are kept until the step under test, then forwarded.
          const candidates: unknown[] = [];
          let forward = false;
          const offer = nextSignal(a, isSdp);
          const gathered = nextSignal(a, (s) => !isSdp(s));
          a.on('signal', (s) => {
            if (isSdp(s)) return;
            if (forward) b.signal(s);
            else candidates.push(s);
          });
          // The responder's signals wait too, so that no connectivity check reaches it (and reveals the
          // initiator as a `prflx` candidate) before it has the signaled ones.
          const fromB: unknown[] = [];
          b.on('signal', (s) => {
            if (forward) a.signal(s);
            else fromB.push(s);
          });
          const o = (await offer) as Sdp;
          await gathered;
          const bare = { ...o, sdp: o.sdp.replace(/^a=candidate:.*\r\n/gm, '') };
          assert.ok(!/^a=candidate:/m.test(bare.sdp));
          const deliver = () => {
            forward = true;
            for (const c of candidates.splice(0)) b.signal(c);
            for (const s of fromB.splice(0)) a.signal(s);
          };
          if (when === 'before') {
            deliver();
            b.signal(bare);
          } else {
            const answered = nextSignal(b, isSdp); // made once the offer is set as remote description (kept)
            b.signal(bare);
            await answered;
            deliver();
          }
          await Promise.all([new Promise((r) => a.once('open', r)), new Promise((r) => b.once('open', r))]);
          assert.ok((await remoteCandidateTypes(b)).includes('host'), 'the signaled host candidate was used');
        } finally {
          a.close();
          b.close();
        }
      });
    }
  });
}
