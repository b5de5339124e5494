// A dial whose WebRTC link fails on one side only, before it opens, as node-datachannel's initiator does
// when libdatachannel fails to apply the answer (src/host/dial.ts, linkClosed). Here the failure is
// injected: a wrtc RTCPeerConnection that refuses the first answers it is given. The other side must learn
// of it at once (PROTOCOL.md §8: `abort`), not at its handshake timeout. The handshake timeout is 60 s and
// every wait here is bounded by 20 s, so a side left to its timeout fails the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RtcImplementation } from '../../src/transport/rtc.js';
import { autoAccept, type Env, loadRtc, startEnv, within } from '../helpers/hosts.js';

const TIMEOUT_MS = 60_000;
const BOUND_MS = 20_000;

/** wrtc whose RTCPeerConnections refuse the first `failures` answers given to any of them. */
async function answerRefusingRtc(failures: number): Promise<RtcImplementation & { refused: () => number }> {
  const base = await loadRtc('wrtc');
  let refused = 0;
  class Refusing extends base.RTCPeerConnection {
    override setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      if (description.type === 'answer' && refused < failures) {
        refused++;
        return Promise.reject(new Error('injected: the stack refused the answer'));
      }
      return super.setRemoteDescription(description);
    }
  }
  return { ...base, name: 'wrtc+refusing', RTCPeerConnection: Refusing, refused: () => refused };
}

describe('a link that fails on one side before it opens', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(4);
  });
  after(async () => {
    await env?.close();
  });

  it("the responder's dial ends at once with the initiator's abort, not at its timeout", async () => {
    const [a, b] = env.ids as [NonNullable<(typeof env.ids)[0]>, NonNullable<(typeof env.ids)[0]>];
    const rtc = await answerRefusingRtc(1);
    const ha = await env.host(a, { peers: [b], rtc, handshakeTimeoutMs: TIMEOUT_MS });
    const hb = await env.host(b, { peers: [a], handshakeTimeoutMs: TIMEOUT_MS });
    const acceptor = autoAccept(hb);
    try {
      const dialed = ha.connect(b.peerId, { attempts: 1 });
      const err = (await within(
        dialed.catch((e: unknown) => e),
        BOUND_MS,
        'connect fails',
      )) as {
        code?: string;
        message: string;
      };
      assert.equal(rtc.refused(), 1);
      assert.equal(err.code, 'closed', err.message);
      const theirs = (await acceptor.nextError(BOUND_MS)) as { code?: string; message: string };
      assert.equal(theirs.code, 'closed', theirs.message);
      assert.match(theirs.message, /peer aborted the dial/);
      assert.equal(acceptor.accepted.length, 0);
      // Nothing is left pending on either side: a new dial goes through.
      const [mine, other] = await within(
        Promise.all([ha.connect(b.peerId, { attempts: 1 }), acceptor.next(BOUND_MS)]),
        BOUND_MS,
        'the next dial',
      );
      assert.deepEqual(mine.sessionId, other.sessionId);
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });
});
