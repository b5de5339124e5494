// Liveness (src/host/liveness.ts) on its own, with a stand-in connection: when the heartbeat judges the
// peer gone and when it does not, what a probe resolves with, and the round trip a PONG measures. Each
// heartbeat sends a PING, so the tests count beats by PINGs instead of sleeping; every wait is bounded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { P2PTLSError } from '../../src/errors.js';
import { Liveness, type LivenessHost, type LivenessOptions } from '../../src/host/liveness.js';
import type { PeerId } from '../../src/identity/peer-id.js';
import type { ReassemblyProgress } from '../../src/protocol/index.js';
import { logger } from '../../src/util/log.js';

const BOUND_MS = 10_000;

/** A stand-in connection: counts PINGs, records timeouts, and says what the test sets. */
function standIn() {
  const state = {
    pings: [] as Uint8Array[],
    timeouts: [] as { reason: string; error: P2PTLSError }[],
    inProcess: 0,
    reassembling: undefined as ReassemblyProgress | undefined,
    waiters: [] as (() => void)[],
  };
  const wake = () => {
    for (const w of state.waiters.splice(0)) w();
  };
  const host: LivenessHost = {
    peerId: 'peer-a' as PeerId,
    recordsInProcess: () => state.inProcess,
    reassembling: () => state.reassembling,
    sendPing: async (data) => {
      state.pings.push(data);
      wake();
    },
    timedOut: (reason, error) => {
      state.timeouts.push({ reason, error });
      wake();
    },
  };
  /** Resolves once `ready()` holds, checked after each PING or timeout; fails the test after BOUND_MS. */
  const until = (what: string, ready: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not within ${BOUND_MS} ms: ${what}`)), BOUND_MS);
      const check = () => {
        if (ready()) {
          clearTimeout(timer);
          resolve();
        } else state.waiters.push(check);
      };
      check();
    });
  return { host, state, until };
}

const log = logger('test:liveness');

type StandIn = ReturnType<typeof standIn>;

/**
 * Runs `body` on a Liveness over a new stand-in (as `setUp` leaves it; its host is what the Liveness
 * gets), with `options` over defaults under which nothing fires within a test; stops it after.
 */
async function watched(
  options: Partial<LivenessOptions>,
  body: (l: Liveness, s: StandIn) => Promise<void>,
  setUp: (s: StandIn) => LivenessHost = (s) => s.host,
): Promise<void> {
  const s = standIn();
  const host = setUp(s);
  const l = new Liveness(
    host,
    { intervalMs: 60_000, timeoutMs: 60_000, reassemblyTimeoutMs: 60_000, ...options },
    log,
  );
  try {
    await body(l, s);
  } finally {
    l.stop();
  }
}

describe('Liveness', () => {
  it('judges a silent peer gone after the timeout, with a `timeout` error', () =>
    watched({ intervalMs: 10, timeoutMs: 50 }, async (_, { state, until }) => {
      await until('a heartbeat timeout', () => state.timeouts.length > 0);
      assert.equal(state.timeouts[0]!.reason, 'heartbeat timeout');
      assert.equal(state.timeouts[0]!.error.code, 'timeout');
    }));

  it('does not judge a peer silent while its records are still being processed', () =>
    watched(
      { intervalMs: 10, timeoutMs: 20 },
      async (_, { state, until }) => {
        // Well past the timeout, counted in beats: each beat that does not time out pings.
        const start = Date.now();
        await until('beats past the timeout', () => state.pings.length >= 5 && Date.now() - start > 60);
        assert.equal(state.timeouts.length, 0);
        state.inProcess = 0;
        await until('the timeout once nothing is in process', () => state.timeouts.length > 0);
        assert.equal(state.timeouts[0]!.reason, 'heartbeat timeout');
      },
      (s) => {
        s.state.inProcess = 3;
        return s.host;
      },
    ));

  it('ends a fragmented message that makes no progress, not one that does', async () => {
    await watched(
      { intervalMs: 10, reassemblyTimeoutMs: 30 },
      async (_, { state, until }) => {
        const start = Date.now();
        await until('beats past the stall timeout', () => state.pings.length >= 6 && Date.now() - start > 90);
        assert.equal(state.timeouts.length, 0);
      },
      ({ host, state }) => {
        state.reassembling = { received: 1000, total: 5000 };
        // Progress between every two beats (each beat pings): the stall clock restarts each time.
        return {
          ...host,
          sendPing: async (data) => {
            state.reassembling = { received: state.reassembling!.received + 1, total: 5000 };
            await host.sendPing(data);
          },
        };
      },
    );
    await watched(
      { intervalMs: 10, reassemblyTimeoutMs: 30 },
      async (_, { state, until }) => {
        await until('the stalled message', () => state.timeouts.length > 0);
        assert.equal(state.timeouts[0]!.reason, 'message stalled');
        assert.match(state.timeouts[0]!.error.message, /5000-byte message stalled at 1000 bytes/);
      },
      (s) => {
        s.state.reassembling = { received: 1000, total: 5000 };
        return s.host;
      },
    );
  });

  it('resolves a probe true once the peer is heard, false when stopped, and times out a silent one', async () => {
    await watched({}, async (l, { state, until }) => {
      const first = l.probe(60_000);
      assert.equal(l.probe(), first, 'one probe at a time');
      await until('the probe ping', () => state.pings.length === 1);
      l.heard();
      assert.equal(await first, true);

      const second = l.probe(60_000);
      l.stop();
      assert.equal(await second, false);
    });
    await watched({}, async (l, { state, until }) => {
      void l.probe(20);
      await until('the probe timeout', () => state.timeouts.length > 0);
      assert.equal(state.timeouts[0]!.reason, 'probe timeout');
      assert.match(state.timeouts[0]!.error.message, /did not answer a probe within 20 ms/);
    });
  });

  it('does not count its own stalled event loop as the peer going silent', async () => {
    /** Our event loop does not run for `ms`, as in a long synchronous step. */
    const stall = (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until);
    };
    // A live peer answers every PING; after a stall three timeouts long its answer is read only once the
    // loop runs again, after the timers that came due meanwhile.
    let liveness: Liveness | undefined;
    let answering = true;
    await watched(
      { intervalMs: 20, timeoutMs: 200 },
      async (l, { state, until }) => {
        liveness = l;
        await until('a first beat', () => state.pings.length >= 1);
        stall(600);
        const after = state.pings.length;
        await until('beats after the stall', () => state.pings.length >= after + 5);
        assert.equal(state.timeouts.length, 0, 'a stall of our own is not a silent peer');
        // The same clock still catches a peer that really went silent.
        answering = false;
        await until('the timeout once the peer is silent', () => state.timeouts.length > 0);
        assert.equal(state.timeouts[0]!.reason, 'heartbeat timeout');
      },
      ({ host }) => ({
        ...host,
        sendPing: async (data) => {
          if (answering) setImmediate(() => liveness?.heard());
          await host.sendPing(data);
        },
      }),
    );
    // A probe's window counts only the time we were listening: the answer read after the stall settles it.
    await watched({}, async (l, { state }) => {
      const probe = l.probe(50);
      stall(300);
      setImmediate(() => l.heard());
      assert.equal(await probe, true);
      assert.equal(state.timeouts.length, 0);
    });
    // ...and after a stall a silent peer still times out: the window is extended once per stall, not
    // again and again. (The extension was measured from the old deadline, so each expiry read as late by
    // the stall's length and extended once more: the probe never ended.)
    await watched({}, async (l, { state, until }) => {
      const started = Date.now();
      void l.probe(50);
      stall(300);
      await until('the probe timeout after the stall', () => state.timeouts.length > 0);
      assert.equal(state.timeouts[0]!.reason, 'probe timeout');
      // 300 ms of stall, then 300 ms more of listening, and the timer's own lateness under load.
      assert.ok(Date.now() - started < 5_000, `timed out ${Date.now() - started} ms after the probe began`);
    });
  });

  it('measures the round trip from the clock its PING carried', () =>
    watched({}, async (l, { state, until }) => {
      const before = performance.now();
      await l.ping();
      await until('the ping', () => state.pings.length === 1);
      const rtt = l.pong(state.pings[0]!);
      assert.ok(rtt >= 0 && rtt <= performance.now() - before, `rtt ${rtt}`);
      assert.equal(l.rttMs, rtt);
    }));
});
