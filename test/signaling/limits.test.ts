// Abuse limits of issue 17 (points 1, 2, 4, 5) against a real server process on loopback: flooders and
// strangers are cut off, a recipient is delivered at most its budget, room churn is capped and
// coalesced, never-reading clients are dropped, and meanwhile /healthz and a well-behaved pair work.
// Attackers connect from other 127.x addresses, the pair from 127.0.0.1. Nothing here waits on time:
// events and counts decide; timeouts only bound the waits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { createSignedSignal } from '../../src/signaling/wire.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import {
  ask,
  authedFrom,
  authRequest,
  connectFrom,
  disconnected,
  errorCode,
  httpGet,
  metricValue,
  next,
  pausable,
  signalUntilRefused,
} from './_util.js';

/** Joins `room`, retrying while the room's churn budget refuses (`rate_limited`); returns the ack. */
async function joinWhenAllowed(socket: Socket, room: string): Promise<unknown> {
  let ack: unknown;
  for (let tries = 0; tries < 100; tries++) {
    ack = await ask(socket, 'room:join', { room });
    if (errorCode(ack) !== 'rate_limited') return ack;
    await new Promise((r) => setTimeout(r, 100));
  }
  return ack;
}

/** The TCP socket under a websocket socket.io connection: `pause()` stops reading it. */
async function disconnectCount(url: string, reason: string): Promise<number> {
  const text = (await httpGet(url, '/metrics')).text;
  return metricValue(text, `p2ptls_signaling_disconnects_total{reason="${reason}"}`);
}

describe('abuse limits (real server process, issue 17)', () => {
  let server: SignalingProcess;
  /** Without event budgets and recipient budget; at most 200 packets queued for a connection. */
  let unlimited: SignalingProcess;
  let carol: SignalingClient;
  let dave: SignalingClient;
  const ids: Identity[] = [];

  async function pairStillWorks(): Promise<void> {
    const got = next(dave, 'signal');
    await carol.sendSignal(dave.peerId, { ok: Date.now() });
    assert.equal((await got).from, carol.peerId);
  }

  before(async () => {
    [server, unlimited] = await Promise.all([
      startSignalingProcess({
        args: [
          '--recipient-signals-per-second',
          '20',
          '--max-room-members',
          '4',
          '--ip-unauthenticated',
          '8',
        ],
      }),
      startSignalingProcess({
        args: [
          ...[
            '--events-per-second',
            '0',
            '--ip-events-per-second',
            '0',
            '--recipient-signals-per-second',
            '0',
          ],
          ...['--max-pending-packets', '200'],
        ],
      }),
    ]);
    ids.push(...(await Promise.all(Array.from({ length: 8 }, () => Identity.generate()))));
    carol = new SignalingClient({ url: server.url, identity: ids[0]! });
    dave = new SignalingClient({ url: server.url, identity: ids[1]! });
    await Promise.all([carol.connect(), dave.connect()]);
  });
  after(async () => {
    await Promise.all([carol?.close(), dave?.close()]);
    await Promise.all([server?.kill(), unlimited?.kill()]);
  });

  it('pre-auth: an event other than auth gets one answer and a disconnect; /healthz answers throughout', async () => {
    const before = await disconnectCount(server.url, 'not_authenticated');
    const attackers = Array.from({ length: 6 }, () => connectFrom(server.url, '127.0.0.2'));
    await Promise.all(attackers.map((a) => a.challenge));
    const answers = await Promise.all(
      attackers.map(async ({ socket }) => {
        const closed = disconnected(socket);
        const acks = await Promise.all(
          Array.from({ length: 200 }, () => ask(socket, 'lookup', { peerId: dave.peerId }).catch(() => null)),
        );
        assert.equal(await closed, 'io server disconnect');
        return acks.filter((a) => a !== null);
      }),
    );
    for (const got of answers) assert.deepEqual(got.map(errorCode), ['not_authenticated']);
    const health = await httpGet(server.url, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.text).ok, true);
    assert.equal((await disconnectCount(server.url, 'not_authenticated')) - before, 6);
    await pairStillWorks();
  });

  it('pre-auth: a second event while auth is being checked closes the connection', async () => {
    const c = connectFrom(server.url, '127.0.0.2');
    const req = await authRequest(ids[2]!, server.url, await c.challenge);
    const closed = disconnected(c.socket);
    c.socket.emit('auth', req, () => {});
    c.socket.emit('auth', req, () => {});
    assert.equal(await closed, 'io server disconnect');
  });

  it('per-address cap on unauthenticated connections; authenticating frees a place', async () => {
    const idle = Array.from({ length: 8 }, () => connectFrom(server.url, '127.0.0.3'));
    await Promise.all(idle.map((c) => c.challenge));
    const refused = connectFrom(server.url, '127.0.0.3');
    await assert.rejects(refused.challenge, (err: Error) => err.message === 'rate_limited');
    // Another address is not affected.
    const elsewhere = connectFrom(server.url, '127.0.0.4');
    await elsewhere.challenge;
    elsewhere.socket.disconnect();
    // One of the eight authenticates: that makes room for one more stranger.
    const first = idle[0]!;
    const ack = await ask(
      first.socket,
      'auth',
      await authRequest(ids[3]!, server.url, await first.challenge),
    );
    assert.equal((ack as { ok?: boolean }).ok, true);
    const admitted = connectFrom(server.url, '127.0.0.3');
    await admitted.challenge;
    for (const c of [...idle, admitted]) c.socket.disconnect();
    await pairStillWorks();
  });

  it('a recipient is delivered at most its budget per second, and a sender flooding it does not crowd out another', async () => {
    const victim = await authedFrom(server.url, ids[4]!, '127.0.0.5');
    let delivered = 0;
    victim.on('signal', () => delivered++);
    const flooders = await Promise.all([5, 6].map((i) => authedFrom(server.url, ids[i]!, '127.0.0.6')));
    const envs = await Promise.all(
      [5, 6].map((i) =>
        Promise.all(Array.from({ length: 40 }, () => createSignedSignal(ids[i]!, ids[4]!.peerId, { x: 1 }))),
      ),
    );
    const t0 = Date.now();
    const acks = await Promise.all(
      flooders.flatMap((s, k) => envs[k]!.map((env) => ask(s, 'signal', { env }))),
    );
    const elapsedWindows = Math.ceil((Date.now() - t0) / 1000) + 1;
    const ok = acks.filter((a) => (a as { ok?: boolean }).ok === true).length;
    const busy = acks.filter((a) => errorCode(a) === 'recipient_busy').length;
    assert.equal(ok + busy, acks.length, 'every refusal is recipient_busy');
    assert.ok(busy > 0, 'the budget refused something');
    assert.ok(ok <= 20 * elapsedWindows, `${ok} delivered in ${elapsedWindows} windows`);
    // A third sender still gets through while both flooders keep going: its fair share is its own.
    const third = await authedFrom(server.url, ids[7]!, '127.0.0.7');
    let stop = false;
    const keepFlooding = flooders.map(async (s, k) => {
      while (!stop) {
        const env = await createSignedSignal(ids[k + 5]!, ids[4]!.peerId, { again: true });
        await ask(s, 'signal', { env });
        // 50/s each: within the sender's own budget (100/s), far over its share of the victim's 20/s.
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    let thirdOk = 0;
    for (let tries = 0; tries < 200 && thirdOk < 3; tries++) {
      const env = await createSignedSignal(ids[7]!, ids[4]!.peerId, { third: tries });
      if (((await ask(third, 'signal', { env })) as { ok?: boolean }).ok) thirdOk++;
      else await new Promise((r) => setTimeout(r, 20));
    }
    stop = true;
    await Promise.all(keepFlooding);
    assert.equal(thirdOk, 3);
    // Everything acknowledged reaches the victim (flooders' and the third sender's); deliveries may trail
    // the acknowledgements, so wait for them (the bound only ends a failing wait).
    for (let waited = 0; delivered < ok + 3 && waited < 10_000; waited += 20) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(delivered >= ok + 3, `${delivered} delivered, ${ok + 3} acknowledged`);
    for (const s of [victim, third, ...flooders]) s.disconnect();
  });

  it('room size is capped (room_full), churn is capped and coalesced: a join/leave spammer costs members ~nothing', async () => {
    const member = await authedFrom(server.url, ids[4]!, '127.0.0.8');
    const events: string[] = [];
    member.on('room:joined', (e: { peerId: string }) => events.push(`joined ${e.peerId}`));
    member.on('room:left', (e: { peerId: string }) => events.push(`left ${e.peerId}`));
    assert.equal(((await ask(member, 'room:join', { room: 'churn' })) as { ok?: boolean }).ok, true);
    const spammer = await authedFrom(server.url, ids[5]!, '127.0.0.9');
    // 50 join/leave pairs back to back, then one last join that stays. Sent at once, every join is
    // checked before the first takes effect, so each is charged and each leave finds nothing to leave:
    // 50 joins and the member's are within the connection's own burst (64), over the room's (40).
    const acks = await Promise.all(
      Array.from({ length: 50 }, () => [
        ask(spammer, 'room:join', { room: 'churn' }),
        ask(spammer, 'room:leave', { room: 'churn' }),
      ]).flat(),
    );
    const accepted = acks.filter((a) => (a as { ok?: boolean }).ok === true).length;
    const refused = acks.filter((a) => errorCode(a) === 'rate_limited').length;
    assert.equal(accepted + refused, acks.length);
    assert.ok(refused > 0, `the room's churn cap refused none of ${acks.length} changes`);
    const last = `joined ${ids[5]!.peerId}`;
    const joinedAtLast = new Promise<void>((resolve) => {
      const check = () => {
        if (events.includes(last)) resolve();
      };
      member.on('room:joined', check);
    });
    const stay = await joinWhenAllowed(spammer, 'churn');
    assert.equal((stay as { ok?: boolean }).ok, true, JSON.stringify(stay));
    await joinedAtLast;
    const before = events.slice(0, events.indexOf(last));
    // Without coalescing every accepted change reaches the member: here the pairs cancel out.
    assert.ok(before.length < accepted / 2, `${before.length} events for ${accepted} accepted changes`);
    // Two more fill the room to its cap of 4; the fifth is refused.
    const more = await Promise.all([6, 7].map((i) => authedFrom(server.url, ids[i]!, '127.0.0.10')));
    for (const s of more) assert.equal(((await joinWhenAllowed(s, 'churn')) as { ok?: boolean }).ok, true);
    const fifth = await authedFrom(server.url, ids[3]!, '127.0.0.10');
    assert.equal(errorCode(await ask(fifth, 'room:join', { room: 'churn' })), 'room_full');
    for (const s of [member, spammer, fifth, ...more]) s.disconnect();
  });

  it('a client that floods lookups without reading the answers is disconnected (slow_consumer)', async () => {
    {
      const s = await authedFrom(unlimited.url, ids[2]!, '127.0.0.11');
      // Stop reading: the server's answers pile up in the kernel's buffers, then in engine.io's queue.
      const raw = pausable(s);
      raw.pause();
      for (let i = 0; i < 20_000 && unlimited.proc.child.exitCode === null; i++) {
        s.emit('lookup', { peerId: ids[2]!.peerId }, () => {});
        if (i % 500 === 499) {
          await new Promise((r) => setImmediate(r));
          if ((await disconnectCount(unlimited.url, 'slow_consumer')) > 0) break;
        }
      }
      assert.equal(await disconnectCount(unlimited.url, 'slow_consumer'), 1);
      raw.resume();
      assert.equal((await httpGet(unlimited.url, '/healthz')).status, 200);
      s.disconnect();
    }
  });

  it('a recipient that stops reading: its sender is refused recipient_busy, not queued more', async () => {
    const victim = await authedFrom(unlimited.url, ids[3]!, '127.0.0.12');
    const sender = await authedFrom(unlimited.url, ids[4]!, '127.0.0.13');
    // The victim stops reading: what the server writes to it piles up in the kernel's buffers, then in
    // engine.io's queue, which the server measures before handing it another signal.
    const raw = pausable(victim);
    raw.pause();
    // 16 KB each: a few hundred fill the loopback socket's buffers and the 200-packet cap behind them.
    const env = await createSignedSignal(ids[4]!, ids[3]!.peerId, 'x'.repeat(16 * 1024));
    const { refusal, sent } = await signalUntilRefused(sender, env);
    raw.resume();
    assert.equal(errorCode(refusal), 'recipient_busy', `after ${sent} signals: ${JSON.stringify(refusal)}`);
    assert.match((refusal as { error: { message: string } }).error.message, /not reading/);
    for (const s of [victim, sender]) s.disconnect();
  });

  it('an address over its event budget: each of its connections is answered rate_limited once, then closed (flood); another address is not affected', async () => {
    const limited = await startSignalingProcess({
      args: ['--events-per-second', '0', '--ip-events-per-second', '20'],
    });
    try {
      const before = await disconnectCount(limited.url, 'flood');
      const flooders = await Promise.all(
        [2, 3, 4].map((i) => authedFrom(limited.url, ids[i]!, '127.0.0.14')),
      );
      const other = await authedFrom(limited.url, ids[5]!, '127.0.0.15');
      const lookup = (s: Socket) => ask(s, 'lookup', { peerId: ids[5]!.peerId }).catch(() => null);
      const [flooded, otherAcks] = await Promise.all([
        // 3 × 200 events against the address's 20/s: each connection's own budget is unlimited.
        Promise.all(
          flooders.map(async (s) => {
            const closed = disconnected(s);
            const acks = await Promise.all(Array.from({ length: 200 }, () => lookup(s)));
            return { reason: await closed, acks };
          }),
        ),
        Promise.all(Array.from({ length: 10 }, () => lookup(other))),
      ]);
      for (const { reason, acks } of flooded) {
        assert.equal(reason, 'io server disconnect');
        assert.equal(acks.filter((a) => errorCode(a) === 'rate_limited').length, 1);
      }
      assert.equal((await disconnectCount(limited.url, 'flood')) - before, 3);
      assert.deepEqual(
        otherAcks.map((a) => (a as { ok?: boolean } | null)?.ok),
        Array(10).fill(true),
      );
      other.disconnect();
    } finally {
      await limited.kill();
    }
  });

  it('the server is up and counted what it refused', async () => {
    assert.equal(server.proc.child.exitCode, null);
    const m = (await httpGet(server.url, '/metrics')).text;
    for (const reason of ['recipient_busy', 'room_full', 'not_authenticated']) {
      assert.ok(metricValue(m, `p2ptls_signaling_rejected_messages_total{reason="${reason}"}`) > 0, reason);
    }
    await pairStillWorks();
  });
});
