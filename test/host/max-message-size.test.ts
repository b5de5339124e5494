// A link's max message size comes from the two SDPs' `a=max-message-size` (RFC 8841), not from the
// stack's `sctp.maxMessageSize` getter, which blocks the event loop on @roamhq/wrtc
// (src/transport/peer-link.ts). On both Node stacks, whatever the peer's SDP says (its stack's value,
// less, nothing at all), the link must report what the stack itself computes: records sized from it
// must never be larger than the transport accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { openLinkPair } from '../helpers/hosts.js';

/** The answer as `a` sees it: its `a=max-message-size` line replaced by `line` (or removed for ''). */
function munge(signal: unknown, line: string | undefined): unknown {
  const d = signal as { type?: string; sdp?: string };
  if (line === undefined || d.type !== 'answer' || typeof d.sdp !== 'string') return signal;
  const sdp = d.sdp.replace(/^a=max-message-size:\d+\r?\n/m, line ? `${line}\r\n` : '');
  assert.notEqual(sdp, d.sdp, 'the answer had a max-message-size line to replace');
  return { ...d, sdp };
}

/** What the stack itself says, for comparison (the getter the link no longer calls). */
function stackValue(link: PeerLink): number | undefined {
  const pc = (link as unknown as { internals: { _pc?: { sctp?: { maxMessageSize?: number } } } }).internals
    ._pc;
  return pc?.sctp?.maxMessageSize;
}

for (const backend of ['wrtc', 'node-datachannel'] as NodeRtcBackend[]) {
  describe(`${backend}: a link's max message size`, () => {
    for (const [label, line, expected] of [
      ["the peer's own", undefined, 262_144],
      ['lowered by the peer', 'a=max-message-size:100000', 100_000],
      ['absent: 64 KiB', '', 65_536],
    ] as const) {
      it(`${label} → ${expected}, as the stack computes it`, async () => {
        const rtc = await nodeRtc(backend, { bindAddress: '127.0.0.1' });
        const [a, b] = await openLinkPair(rtc, { toInitiator: (s) => munge(s, line) });
        try {
          assert.equal(a.maxMessageSize, expected);
          // The responder's limit is what the initiator's offer says, untouched.
          assert.equal(b.maxMessageSize, 262_144);
          assert.equal(a.maxMessageSize, stackValue(a), 'the stack computes the same');
        } finally {
          a.close();
          b.close();
        }
      });
    }
  });
}
