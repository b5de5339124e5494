// GlareWaits (src/host/glare.ts) on its own, with stand-in requests whose verify() the test settles: who
// gets which connection, when a failed winning dial leaves the callers waiting and when it ends their wait,
// and that a connection is never handed to a caller whose deadline passed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fail, type P2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import { GlareWaits } from '../../src/host/glare.js';
import type { ConnectionRequest } from '../../src/host/request.js';
import type { PeerId } from '../../src/identity/peer-id.js';

const PEER = 'peer-a' as PeerId;
const OTHER = 'peer-b' as PeerId;

/** A request from `peerId` whose verify() settles when the test says. */
function request(peerId: PeerId = PEER) {
  let settle!: { resolve: (c: Connection) => void; reject: (e: P2PTLSError) => void };
  const verified = new Promise<Connection>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const req = { peerId, verify: () => verified } as unknown as ConnectionRequest;
  return { req, ...settle };
}

const connection = (name: string) => ({ name }) as unknown as Connection;

/** How `p` settled: its value, or its error's code. */
function outcome<T>(p: Promise<T>): Promise<{ value: T } | { code: string }> {
  return p.then(
    (value) => ({ value }),
    (e: P2PTLSError) => ({ code: e.code }),
  );
}

describe('GlareWaits', () => {
  it('a request nobody waits for is not taken', () => {
    const waits = new GlareWaits();
    void waits.wait(OTHER, 60_000).catch(() => {});
    assert.equal(waits.take(request(PEER).req), false);
    waits.close(fail('closed', 'end'));
  });

  it("every caller waiting for the peer gets the connection of the peer's dial", async () => {
    const waits = new GlareWaits();
    const first = waits.wait(PEER, 60_000);
    const second = waits.wait(PEER, 60_000);
    const r = request();
    assert.equal(waits.take(r.req), true);
    const c = connection('one');
    r.resolve(c);
    assert.equal(await first, c);
    assert.equal(await second, c);
    // Used up: the peer's next dial is an ordinary incoming request.
    assert.equal(waits.take(request().req), false);
  });

  it("a winning dial that fails (not a refusal) leaves them waiting for the peer's next dial", async () => {
    const waits = new GlareWaits();
    const waiting = outcome(waits.wait(PEER, 60_000));
    const failed = request();
    assert.equal(waits.take(failed.req), true);
    // A second dial while the first is being answered is not theirs.
    assert.equal(waits.take(request().req), false);
    failed.reject(fail('closed', 'peer aborted the dial: closed'));
    // GlareWaits reacted to that verify() first (it subscribed first), so it is waiting again after this.
    await failed.req.verify().catch(() => {});
    const next = request();
    assert.equal(waits.take(next.req), true);
    const c = connection('retry');
    next.resolve(c);
    assert.deepEqual(await waiting, { value: c });
  });

  it('a dial handed out before anyone waited can be followed: its connection goes to the waiters', async () => {
    const waits = new GlareWaits();
    assert.equal(waits.follow(PEER, Promise.resolve(connection('none'))), false, 'nobody waits yet');
    const waiting = outcome(waits.wait(PEER, 60_000));
    const handedOut = request();
    assert.equal(waits.follow(PEER, handedOut.req.verify()), true);
    // While it is being answered, neither a second follow nor a new dial is theirs.
    assert.equal(waits.follow(PEER, Promise.resolve(connection('other'))), false);
    assert.equal(waits.take(request().req), false);
    const c = connection('handed out');
    handedOut.resolve(c);
    assert.deepEqual(await waiting, { value: c });
  });

  for (const code of ['bad_binder', 'unknown_peer', 'channel_binding_mismatch'] as const) {
    it(`a refusal (${code}) ends their wait with it`, async () => {
      const waits = new GlareWaits();
      const waiting = outcome(waits.wait(PEER, 60_000));
      const r = request();
      waits.take(r.req);
      r.reject(fail(code, 'refused'));
      assert.deepEqual(await waiting, { code });
      assert.equal(waits.take(request().req), false);
    });
  }

  it('a caller whose deadline passes with no dial gets timeout', async () => {
    const waits = new GlareWaits();
    assert.deepEqual(await outcome(waits.wait(PEER, 5)), { code: 'timeout' });
    assert.equal(waits.take(request().req), false);
  });

  it('the deadline does not run while a dial is being answered: its connection is not lost', async () => {
    const waits = new GlareWaits();
    const waiting = outcome(waits.wait(PEER, 1));
    const r = request();
    waits.take(r.req);
    // Well past the 1 ms deadline; the answer then succeeds.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const c = connection('late');
    r.resolve(c);
    assert.deepEqual(await waiting, { value: c });
  });

  it('after a failed dial, the deadline counts from the wait, not from the failure', async () => {
    const waits = new GlareWaits();
    const waiting = outcome(waits.wait(PEER, 1));
    const r = request();
    waits.take(r.req);
    await new Promise((resolve) => setTimeout(resolve, 30));
    r.reject(fail('closed', 'link failed'));
    assert.deepEqual(await waiting, { code: 'timeout' });
  });

  it('close fails the idle waits, a dial being answered settles its own, and later waits fail at once', async () => {
    const waits = new GlareWaits();
    const idle = outcome(waits.wait(OTHER, 60_000));
    const answering = outcome(waits.wait(PEER, 60_000));
    const r = request();
    waits.take(r.req);
    waits.close(fail('closed', 'host closed'));
    assert.deepEqual(await idle, { code: 'closed' });
    // The host fails its dials as it closes; that failure is not waited past.
    r.reject(fail('closed', 'host closed'));
    assert.deepEqual(await answering, { code: 'closed' });
    assert.deepEqual(await outcome(waits.wait(PEER, 60_000)), { code: 'closed' });
  });
});
