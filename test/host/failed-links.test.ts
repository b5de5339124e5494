// A dial whose WebRTC link fails on one side only, before it opens, as node-datachannel's initiator does
// when libdatachannel fails to apply the answer (src/host/dial.ts, linkClosed). Here the failure is
// injected (descriptionRefusingRtc). The other side must learn of it at once (PROTOCOL.md §8: `abort`),
// not at its handshake timeout: that is 60 s here and every wait is bounded by 20 s, so a side left to
// its timeout fails the test. (A glare whose winning dial fails this way: glare.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Host } from '../../src/host/host.js';
import type { Identity } from '../../src/identity/identity.js';
import {
  autoAccept,
  descriptionRefusingRtc,
  type Env,
  startEnv,
  withCode,
  within,
} from '../helpers/hosts.js';

const TIMEOUT_MS = 60_000;
const BOUND_MS = 20_000;

/** A peer list whose every read fails, as on a broken disk. */
const unreadable = { lookup: () => Promise.reject(new Error('disk on fire')) };

/** What a dial against {@link unreadable} fails with: store_failed, carrying the list's own message. */
function storeFailed(err: unknown): true {
  withCode('store_failed')(err);
  assert.match((err as Error).message, /disk on fire/);
  return true;
}

describe('a link that fails on one side before it opens', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(6);
  });
  after(async () => {
    await env?.close();
  });

  it("the responder's dial ends at once with the initiator's abort, not at its timeout", async () => {
    const [a, b] = env.ids as [Identity, Identity];
    const rtc = await descriptionRefusingRtc('answer', 1);
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

  it("the initiator's dial ends at once with the responder's abort, and connect's retry gets through", async () => {
    const [a, b] = env.ids.slice(2) as [Identity, Identity];
    const rtc = await descriptionRefusingRtc('offer', 1);
    const ha = await env.host(a, { peers: [b], handshakeTimeoutMs: TIMEOUT_MS });
    const hb = await env.host(b, { peers: [a], rtc, handshakeTimeoutMs: TIMEOUT_MS });
    const acceptor = autoAccept(hb);
    try {
      // The first attempt fails on the responder's side only; told so, the dialer tries again at once
      // (after its backoff), not after its 60 s handshake timeout.
      const [mine, other] = await within(
        Promise.all([ha.connect(b.peerId, { attempts: 2 }), acceptor.next(BOUND_MS)]),
        BOUND_MS,
        'connect, retried',
      );
      assert.equal(rtc.refused(), 1);
      assert.deepEqual(mine.sessionId, other.sessionId);
      const theirs = (await acceptor.nextError(BOUND_MS)) as { code?: string; message: string };
      assert.equal(theirs.code, 'closed', theirs.message);
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  /**
   * A dial to a host whose peer list cannot be read, taken by `take` (called before the dial starts):
   * `take` rejects with store_failed carrying the list's own message, and the dialer learns it at once.
   */
  async function dialUnreadable(label: string, take: (host: Host) => Promise<unknown>): Promise<void> {
    const [a, b] = env.ids.slice(4) as [Identity, Identity];
    const ha = await env.host(a, { peers: [b], handshakeTimeoutMs: TIMEOUT_MS });
    const hb = await env.host(b, { peers: [a], handshakeTimeoutMs: TIMEOUT_MS });
    try {
      const taken = assert.rejects(within(take(hb), BOUND_MS, label), storeFailed);
      const dialed = ha.connect(b.peerId, { attempts: 1 }).catch((e: unknown) => e);
      await taken;
      const err = (await within(dialed, BOUND_MS, 'connect fails')) as { code?: string; message: string };
      assert.equal(err.code, 'store_failed', err.message);
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  }

  it('a peer list that cannot be read fails verify() with store_failed, and the dialer learns at once', async () => {
    await dialUnreadable('the request, verified', async (hb) => {
      for await (const request of hb.incoming()) return request.verify(unreadable);
      throw new Error('no request');
    });
  });

  it('host.accept() rejects with store_failed when its peer list cannot be read, instead of waiting on', async () => {
    await dialUnreadable('accept', (hb) => hb.accept(unreadable));
  });

  it("host.accept() passes over the failed attempt and returns the connection of connect's retry", async () => {
    const [a, b] = env.ids.slice(4) as [Identity, Identity];
    // The dialer's first link fails before it opens (node-datachannel's dialer does this under load).
    const rtc = await descriptionRefusingRtc('answer', 1);
    const ha = await env.host(a, { peers: [b], rtc, handshakeTimeoutMs: TIMEOUT_MS });
    const hb = await env.host(b, { peers: [a], handshakeTimeoutMs: TIMEOUT_MS });
    try {
      const accepted = hb.accept();
      accepted.catch(() => {}); // awaited below; a test that fails earlier must not add an unhandled one
      const [mine, other] = await within(
        Promise.all([ha.connect(b.peerId, { attempts: 2 }), accepted]),
        BOUND_MS,
        'connect, retried, and accept',
      );
      assert.equal(rtc.refused(), 1, 'the first attempt failed');
      assert.deepEqual(mine.sessionId, other.sessionId);
      // A pending accept() ends with the host.
      const pending = assert.rejects(
        within(hb.accept(), BOUND_MS, 'accept, host closed'),
        withCode('closed'),
      );
      await env.closeHost(hb);
      await pending;
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });
});
