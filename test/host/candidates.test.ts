// A link adds the peer's ICE candidates itself, not through simple-peer, which asked the connection for
// its remote description each time (a blocking call on @roamhq/wrtc; src/transport/peer-link.ts): those
// that arrive before the remote description is set are kept and added once it is, later ones at once. With
// either Node stack on either side, with the candidates taken out of the SDP so that only the trickled ones can count, the
// responder's stats must show them as signaled `host` candidates: a candidate that was lost would leave
// only the `prflx` one the peer's connectivity checks reveal. A candidate the stack refuses (the link
// closed meanwhile) is traced (`DEBUG=p2ptls:link`), not printed to the console as simple-peer does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { until, within } from '../helpers/hosts.js';

type Sdp = { type: string; sdp: string };

/** The RTCPeerConnection under `link` (private to it: reached through a narrow cast). */
function pcOf(link: PeerLink): RTCPeerConnection {
  return (link as unknown as { internals: { _pc: RTCPeerConnection } }).internals._pc;
}

/** The remote candidate types in `link`'s connection stats. */
async function remoteCandidateTypes(link: PeerLink): Promise<string[]> {
  const pc = pcOf(link);
  const types: string[] = [];
  (await pc.getStats()).forEach((v: { type: string; candidateType?: string }) => {
    if (v.type === 'remote-candidate' && v.candidateType) types.push(v.candidateType);
  });
  return types;
}

/** How many candidates `link`'s stack has finished adding (either way), from now on. */
function countAdded(link: PeerLink): () => number {
  const pc = pcOf(link);
  const add = pc.addIceCandidate.bind(pc);
  let settled = 0;
  pc.addIceCandidate = ((candidate: RTCIceCandidateInit) =>
    add(candidate).finally(() => {
      settled++;
    })) as RTCPeerConnection['addIceCandidate'];
  return () => settled;
}

/** Rejects with the error of `link` if it closes (with one) before it opens. */
function closedFirst(link: PeerLink): Promise<never> {
  return new Promise((_, reject) => {
    link.on('close', ({ error }) => {
      if (error && !link.wasOpened) reject(error);
    });
  });
}

/** Both links open. */
function opened(a: PeerLink, b: PeerLink): Promise<unknown> {
  return Promise.all([new Promise((r) => a.once('open', r)), new Promise((r) => b.once('open', r))]);
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

const BACKENDS: NodeRtcBackend[] = ['wrtc', 'node-datachannel'];

for (const backend of BACKENDS) {
  describe(`${backend}: the peer's ICE candidates`, () => {
    // From a peer on either stack: each makes its candidates its own way (node-datachannel's, as plain
    // objects, @roamhq/wrtc refuses unless made its own RTCIceCandidate first).
    for (const [peerBackend, when] of BACKENDS.flatMap((p) =>
      (['before', 'after'] as const).map((w) => [p, w] as const),
    )) {
      /** One set-up; rejects with the error of a link that closed before opening. */
      const setUp = async () => {
        // Both stacks first: the initiator's first signals may come before an await would return.
        const [rtcA, rtcB] = await Promise.all([
          nodeRtc(peerBackend, { bindAddress: '127.0.0.1' }),
          nodeRtc(backend, { bindAddress: '127.0.0.1' }),
        ]);
        const a = new PeerLink({ rtc: rtcA, initiator: true, candidateFilter: loopbackOnly });
        const b = new PeerLink({ rtc: rtcB, initiator: false, candidateFilter: loopbackOnly });
        try {
          // The initiator's trickled candidates are kept until the step under test, then forwarded.
          const candidates: unknown[] = [];
          let toB = false;
          const offer = within(nextSignal(a, isSdp), 10_000, 'the offer');
          const gathered = within(
            nextSignal(a, (s) => !isSdp(s)),
            10_000,
            'a trickled candidate',
          );
          a.on('signal', (s) => {
            if (isSdp(s)) return;
            if (toB) b.signal(s);
            else candidates.push(s);
          });
          // The responder's signals wait until its stack has taken those candidates, so that no
          // connectivity check reaches it (and reveals the initiator as a `prflx` candidate) before.
          const fromB: unknown[] = [];
          let toA = false;
          b.on('signal', (s) => {
            if (toA) a.signal(s);
            else fromB.push(s);
          });
          const added = countAdded(b);
          const o = (await offer) as Sdp;
          await gathered;
          const bare = { ...o, sdp: o.sdp.replace(/^a=candidate:.*\r\n/gm, '') };
          assert.ok(!/^a=candidate:/m.test(bare.sdp));
          const sendCandidates = () => {
            toB = true;
            const n = candidates.length;
            for (const c of candidates.splice(0)) b.signal(c);
            return n;
          };
          let sent: number;
          if (when === 'before') {
            sent = sendCandidates();
            b.signal(bare);
          } else {
            // The answer is made once the offer is set as remote description (it is kept, above).
            const answered = within(nextSignal(b, isSdp), 10_000, 'the answer');
            b.signal(bare);
            await answered;
            sent = sendCandidates();
          }
          await until(() => added() >= sent, 5_000, `${sent} candidates added`);
          toA = true;
          for (const s of fromB.splice(0)) a.signal(s);
          await within(
            Promise.race([opened(a, b), closedFirst(a), closedFirst(b)]),
            10_000,
            'both ends open',
          );
          assert.ok((await remoteCandidateTypes(b)).includes('host'), 'the signaled host candidate was used');
        } finally {
          a.close();
          b.close();
        }
      };
      it(`from a ${peerBackend} peer, arriving ${when} the offer is applied, are used`, async () => {
        // A node-datachannel initiator sometimes fails to apply the answer under load, a libdatachannel
        // race (src/host/dial.ts, linkClosed): that set-up, and only that failure, is tried again.
        for (let attempt = 1; ; attempt++) {
          try {
            return await setUp();
          } catch (err) {
            if (attempt >= 3 || !/without ICE transport/.test(String((err as Error).cause))) throw err;
          }
        }
      });
    }

    it('one the stack refuses because the link closed meanwhile is traced, not printed', async () => {
      const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
      const a = new PeerLink({ rtc, initiator: true, candidateFilter: loopbackOnly });
      const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
      const late = within(
        nextSignal(a, (s) => !isSdp(s)),
        10_000,
        'a trickled candidate',
      );
      a.on('signal', (s) => b.signal(s));
      b.on('signal', (s) => a.signal(s));
      const warnings: unknown[] = [];
      const warn = console.warn;
      console.warn = (...args: unknown[]) => warnings.push(args);
      try {
        await within(opened(a, b), 10_000, 'both ends open');
        // A candidate still in flight as the link closes (bench:transport's set-ups printed 11–21 such
        // warnings per run through simple-peer): added, then the connection is gone before the stack
        // answers.
        b.signal(await late);
        b.close();
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(warnings, []);
      } finally {
        console.warn = warn;
        a.close();
        b.close();
      }
    });
  });
}
