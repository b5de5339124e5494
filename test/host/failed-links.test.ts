// A dial whose WebRTC link fails on one side only, before it opens, as node-datachannel's initiator does
// when libdatachannel fails to apply the answer (src/host/dial.ts, linkClosed). Here the failure is
// injected: a wrtc RTCPeerConnection that refuses the first answers it is given. The other side must learn
// of it at once (PROTOCOL.md §8: `abort`), not at its handshake timeout, and a glare whose winning dial
// fails this way must still end in one connection each side (§3.7): the losing caller takes the winner's
// next dial. The handshake timeout is 60 s and every wait here is bounded by 20 s, so a side left to its
// timeout fails the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { glareWinner } from '../../src/protocol/index.js';
import type { RtcImplementation } from '../../src/transport/rtc.js';
import {
  autoAccept,
  type Env,
  loadRtc,
  nextMessage,
  sleep,
  startEnv,
  text,
  until,
  within,
} from '../helpers/hosts.js';

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

  it("glare whose winning dial fails before its link opens: the winner's next dial serves both callers", async () => {
    const [x, y] = env.ids.slice(2) as [NonNullable<(typeof env.ids)[0]>, NonNullable<(typeof env.ids)[0]>];
    const winnerId = glareWinner(x.peerId, y.peerId) === x.peerId ? x : y;
    const loserId = winnerId === x ? y : x;
    const rtc = await answerRefusingRtc(1);
    const winner = await env.host(winnerId, { peers: [loserId], rtc, handshakeTimeoutMs: TIMEOUT_MS });
    const loser = await env.host(loserId, { peers: [winnerId], handshakeTimeoutMs: TIMEOUT_MS });
    // Neither side expects incoming requests: anything in incoming() is an extra connection.
    const extraW = autoAccept(winner);
    const extraL = autoAccept(loser);
    try {
      // The losing caller makes one attempt: the failure is not its own, so it must not use one up.
      const [cw, cl] = await within(
        Promise.all([winner.connect(loserId.peerId), loser.connect(winnerId.peerId, { attempts: 1 })]),
        BOUND_MS,
        'both connects',
      );
      // The injected failure happened: the winner's first dial never opened its link.
      assert.equal(rtc.refused(), 1);
      assert.deepEqual(cw.sessionId, cl.sessionId, 'both callers hold the two ends of one connection');
      const heard = nextMessage(cl, BOUND_MS);
      await cw.send('after the retry');
      assert.equal(text(await heard), 'after the retry');
      await sleep(300); // any stray dial would have arrived by now
      assert.equal(winner.openConnections.length, 1);
      assert.equal(loser.openConnections.length, 1);
      assert.equal(extraW.accepted.length + extraW.errors.length, 0, 'the winner saw an incoming request');
      assert.equal(extraL.accepted.length + extraL.errors.length, 0, 'the loser saw an incoming request');
      await cw.close(0, 'done');
      await until(
        () => winner.openConnections.length === 0 && loser.openConnections.length === 0,
        5_000,
        'closed',
      );
    } finally {
      await env.closeHost(winner);
      await env.closeHost(loser);
    }
  });
});
