// Closing: an authenticated close reason reaches the peer and ends both message iterators, after every
// message sent before it; a peer whose process is killed (SIGKILL, no close record) is detected by the
// heartbeat within its timeout.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Identity } from '../../src/identity/identity.js';
import { toBase64Url, toHex } from '../../src/util/bytes.js';
import type { WorkerConfig } from '../helpers/host-worker.js';
import {
  autoAccept,
  type Backend,
  type Env,
  nextMessage,
  startEnv,
  text,
  withCode,
  within,
} from '../helpers/hosts.js';
import { type ManagedProcess, ROOT, spawnProcess } from '../helpers/processes.js';

const HEARTBEAT = { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1500 };

/** Drains a connection's messages() iterator; resolves with what arrived once it ends. */
function drain(c: Connection): Promise<string[]> {
  return (async () => {
    const out: string[] = [];
    for await (const m of c.messages()) out.push(text(m));
    return out;
  })();
}

describe('close and crash', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(6);
  });
  after(async () => {
    await env?.close();
  });

  for (const [backend, ia, ib] of [
    ['wrtc', 0, 1],
    ['node-datachannel', 2, 3],
  ] as const) {
    it(`${backend}: close(reason, code) reaches the peer; both messages() iterators end`, async () => {
      const a = env.ids[ia]!;
      const b = env.ids[ib]!;
      const ha = await env.host(a, { peers: [b], backend });
      const hb = await env.host(b, { peers: [a], backend });
      try {
        const acceptor = autoAccept(hb);
        const ca = await within(ha.connect(b.peerId), 20_000, 'connect');
        const cb = await acceptor.next();
        const itA = drain(ca);
        const itB = drain(cb);
        const closeEvent = new Promise((resolve) => cb.once('close', resolve));
        await ca.send('last words');
        const info = await ca.close(1234, 'reason text');
        assert.deepEqual(info, { code: 1234, reason: 'reason text', byPeer: false });
        const peer = await within(cb.closed, 5_000, 'peer closed');
        assert.equal(peer.code, 1234);
        assert.equal(peer.reason, 'reason text');
        assert.equal(peer.byPeer, true);
        // Codes ≥ 1000 are the application's: a deliberate close, not a p2ptls error.
        assert.equal(peer.error, undefined);
        assert.deepEqual(await within(closeEvent, 1_000, 'close event'), peer);
        const mine = await ca.closed;
        assert.equal(mine.code, 1234);
        assert.equal(mine.byPeer, false);
        // The message sent before close arrived, then both iterators ended.
        assert.deepEqual(await within(itB, 5_000, "B's iterator"), ['last words']);
        assert.deepEqual(await within(itA, 5_000, "A's iterator"), []);
        assert.equal(ca.isOpen, false);
        assert.equal(cb.isOpen, false);
        await assert.rejects(ca.send('too late'), withCode('closed'));
        await assert.rejects(cb.send('too late'), withCode('closed'));
        await assert.rejects(ca.datagrams.send('too late'), withCode('closed'));
        // Readable streams end too, and the hosts forget the connections.
        const r = await cb.readable().getReader().read();
        assert.equal(r.done, true);
        assert.equal(ha.openConnections.length, 0);
        assert.equal(hb.openConnections.length, 0);
        // Closing again returns the same info.
        assert.deepEqual(await ca.close(7, 'again'), info);
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  }

  it('wrtc: close() right after sends never cuts them off (the close also races ahead on the datagram channel)', async () => {
    const a = env.ids[4]!;
    const b = env.ids[5]!;
    const ha = await env.host(a, { peers: [b] });
    const hb = await env.host(b, { peers: [a] });
    try {
      const acceptor = autoAccept(hb);
      for (let round = 0; round < 8; round++) {
        const ca = await within(ha.connect(b.peerId), 20_000, 'connect');
        const cb = await acceptor.next();
        const got = drain(cb);
        // Not awaited: the close is queued right behind the data, as `cmd | p2ptls connect` does at EOF.
        for (let i = 0; i < 6; i++) void ca.send(`${i}:${'x'.repeat(40_000)}`);
        void ca.send('the end');
        await ca.close(0, 'done');
        const messages = await within(got, 10_000, `round ${round}: B's iterator`);
        assert.deepEqual(
          messages.map((m) => m.split(':')[0]),
          ['0', '1', '2', '3', '4', '5', 'the end'],
          `round ${round}`,
        );
        const peer = await cb.closed;
        assert.equal(peer.reason, 'done', `round ${round}: the peer's own close, not a transport loss`);
      }
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  async function crashTest(backend: Backend, role: WorkerConfig['role'], me: Identity, them: Identity) {
    const host = await env.host(me, { peers: [them], backend, ...HEARTBEAT });
    const acceptor = autoAccept(host);
    const config: WorkerConfig = {
      url: env.url,
      identity: await them.exportSecret(),
      peer: me.exportPublic(),
      psk: toBase64Url(env.psk(me, them)),
      role,
      backend,
      ...HEARTBEAT,
    };
    let worker: ManagedProcess | undefined;
    try {
      worker = spawnProcess(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'test/helpers/host-worker.ts')],
        {
          env: { P2PTLS_WORKER: JSON.stringify(config) },
        },
      );
      await worker.waitForLine(/^ready /, 30_000);
      const conn =
        role === 'dial'
          ? await acceptor.next(30_000)
          : await within(host.connect(them.peerId), 20_000, 'connect');
      const m = await worker.waitForLine(/^connected ([0-9a-f]+)$/, 20_000);
      assert.equal(m[1], toHex(conn.sessionId));
      // The worker is alive and echoing.
      const echo = nextMessage(conn);
      await conn.send('are you there?');
      assert.equal(text(await echo), 'are you there?');
      // Heartbeats keep an idle connection open well past the timeout.
      await new Promise((r) => setTimeout(r, 2 * HEARTBEAT.heartbeatTimeoutMs));
      assert.equal(conn.isOpen, true, 'an idle but live connection was closed');
      assert.ok((await conn.stats()).heartbeatRttMs !== undefined, 'no heartbeat round trip measured');

      const received: string[] = [];
      const iterating = (async () => {
        for await (const m of conn.messages()) received.push(text(m));
      })();
      worker.child.kill('SIGKILL');
      const t0 = performance.now();
      await worker.exited;
      const info = await within(conn.closed, 10_000, 'crash detected');
      const ms = performance.now() - t0;
      console.log(
        `# ${backend} (${role}): crash detected after ${ms.toFixed(0)} ms: ${info.error?.code} ${info.reason}`,
      );
      assert.ok(ms < HEARTBEAT.heartbeatTimeoutMs + 2_000, `detected only after ${ms.toFixed(0)} ms`);
      assert.ok(info.error, 'a crash must carry an error');
      // The heartbeat, or the link's own end first: either way never a clean close.
      withCode('timeout', 'truncated')(info.error);
      assert.equal(conn.isOpen, false);
      // The iterator yields what was queued (the echo, also seen as an event), then throws the error.
      await assert.rejects(within(iterating, 2_000, 'iterator end'), withCode(info.error.code));
      assert.deepEqual(received, ['are you there?']);
      await assert.rejects(conn.send('anyone?'), withCode(info.error.code));
      assert.equal(host.openConnections.length, 0);
    } catch (err) {
      // The worker's side of a failure (run with DEBUG=p2ptls:* to have its traces too).
      console.log(`# the worker printed:\n${(worker?.lines ?? []).map((l) => `#   ${l}`).join('\n')}`);
      throw err;
    } finally {
      await worker?.kill();
      await env.closeHost(host);
    }
  }

  it('wrtc: a dialing peer process killed with SIGKILL is detected within the heartbeat timeout', async () => {
    await crashTest('wrtc', 'dial', env.ids[4]!, env.ids[5]!);
  });

  it('node-datachannel: an accepting peer process killed with SIGKILL is detected in time', async () => {
    await crashTest('node-datachannel', 'accept', env.ids[5]!, env.ids[4]!);
  });
});
