// Hostile input against a real server process: malformed and oversized payloads, unknown events,
// floods, idle unauthenticated connections. Every case must get a clear answer (or a clean disconnect),
// the server must stay up, and well-behaved clients must not notice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { createSignedSignal } from '../../src/signaling/wire.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import {
  ask,
  authedFrom,
  connectFrom,
  disconnected,
  errorCode,
  httpGet,
  metricValue,
  next,
  rawAuthed,
  rawConnect,
  sleep,
} from './_util.js';

/** The value below which `q` of the sorted `values` lie. */
const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? NaN;

describe('hostile input battery (real server process)', () => {
  let server: SignalingProcess;
  let attacker: Identity;
  let carol: SignalingClient;
  let dave: SignalingClient;

  /** The well-behaved pair keeps working: a signal goes through and a lookup answers. */
  async function wellBehavedStillWorks(): Promise<void> {
    const got = next(dave, 'signal');
    await carol.sendSignal(dave.peerId, { ok: Date.now() });
    assert.equal((await got).from, carol.peerId);
    assert.equal((await carol.lookup(dave.peerId)).online, true);
  }

  before(async () => {
    const [s, a, c, d] = await Promise.all([
      startSignalingProcess({ args: ['--auth-timeout-ms', '1500'] }),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ]);
    server = s;
    attacker = a;
    carol = new SignalingClient({ url: server.url, identity: c });
    dave = new SignalingClient({ url: server.url, identity: d });
    await Promise.all([carol.connect(), dave.connect()]);
  });
  after(async () => {
    await Promise.all([carol?.close(), dave?.close()]);
    await server?.kill();
  });

  it('malformed payloads get malformed acks, for every event', async () => {
    let s = await rawAuthed(server.url, attacker);
    const bad: unknown[] = [
      null,
      42,
      'string',
      [],
      [1, 2],
      {},
      { peerId: 'x' },
      { peerId: 123 },
      { room: '' },
      { room: 'a'.repeat(129) },
      { room: 'ok', extra: true },
      { env: { v: 1 } },
      { msg: { kind: 'request' } },
      JSON.parse('{"__proto__":{"polluted":true},"peerId":"a"}'),
      { peerId: { $gt: '' } },
      { env: { v: 2, from: attacker.peerId } },
    ];
    for (const event of ['lookup', 'room:join', 'room:leave', 'room:members', 'signal', 'pairing']) {
      // A fresh connection per event keeps this under the per-connection rate limit.
      s.disconnect();
      s = await rawAuthed(server.url, attacker);
      for (const arg of bad) {
        const code = errorCode(await ask(s, event, arg));
        assert.equal(code, 'malformed', `${event} ${JSON.stringify(arg)}`);
      }
    }
    assert.equal(
      errorCode(await ask(s, 'lookup', { peerId: attacker.peerId }, 'second argument')),
      'malformed',
    );
    assert.equal(errorCode(await ask(s, 'lookup', Buffer.from('binary'))), 'malformed');
    assert.equal(errorCode(await ask(s, 'lookup')), 'malformed');
    // No acknowledgement callback: nothing to answer, but nothing breaks either.
    s.emit('lookup', null);
    s.emit('no-such-event', 1);
    // Deeply nested input.
    let deep: unknown = 1;
    for (let i = 0; i < 2000; i++) deep = [deep];
    assert.equal(errorCode(await ask(s, 'signal', { env: deep })), 'malformed');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    s.disconnect();
    await wellBehavedStillWorks();
  });

  it('signals that lie about their sender or address ourselves are refused', async () => {
    const s = await rawAuthed(server.url, attacker);
    const asCarol = await createSignedSignal(attacker, dave.peerId, { x: 1 });
    assert.equal(
      errorCode(await ask(s, 'signal', { env: { ...asCarol, from: carol.peerId } })),
      'peer_id_mismatch',
    );
    const self = await createSignedSignal(attacker, attacker.peerId, { x: 1 });
    assert.equal(errorCode(await ask(s, 'signal', { env: self })), 'invalid_argument');
    // A garbage signature passes the server (it cannot know) but the receiver drops it.
    const env = await createSignedSignal(attacker, dave.peerId, { x: 1 });
    const rejected = next(dave, 'rejected');
    assert.deepEqual(await ask(s, 'signal', { env: { ...env, sig: `${env.sig.slice(0, -4)}AAAA` } }), {
      ok: true,
    });
    assert.equal((await rejected).error.code, 'bad_signature');
    s.disconnect();
  });

  it('unknown events get unknown_event acks, including prototype names', async () => {
    const s = await rawAuthed(server.url, attacker);
    for (const event of [
      'foo',
      '__proto__',
      'constructor',
      'toString',
      'hasOwnProperty',
      'challenge',
      'x'.repeat(500),
    ]) {
      assert.equal(errorCode(await ask(s, event, {})), 'unknown_event', event);
    }
    const pre = rawConnect(server.url);
    await pre.challenge;
    assert.equal(errorCode(await ask(pre.socket, 'foo', {})), 'unknown_event');
    pre.socket.disconnect();
    s.disconnect();
  });

  it('oversized payloads: payload_too_large ack up to the transport limit, disconnect beyond it', async () => {
    const s = await rawAuthed(server.url, attacker);
    const env = await createSignedSignal(attacker, dave.peerId, 'x'.repeat(70 * 1024));
    assert.equal(errorCode(await ask(s, 'signal', { env })), 'payload_too_large');
    assert.equal(errorCode(await ask(s, 'lookup', { peerId: 'p'.repeat(100_000) })), 'payload_too_large');
    s.emit('signal', { env: { payload: 'x'.repeat(1024 * 1024) } });
    await disconnected(s);
    await wellBehavedStillWorks();
  });

  it('a flood gets one rate_limited answer, then silence, then the door; other clients from the same address keep working', async () => {
    const s = await rawAuthed(server.url, attacker);
    const closed = disconnected(s);
    const acks = await Promise.all(
      Array.from({ length: 1000 }, () => ask(s, 'lookup', { peerId: carol.peerId }).catch(() => null)),
    );
    const limited = acks.filter((a) => errorCode(a) === 'rate_limited').length;
    const answered = acks.filter((a) => (a as { ok?: boolean } | null)?.ok === true).length;
    // The burst (400 events: 4 s of the default 100/s) is served, but answers still being worked on when
    // the door closes are lost; the first refusal is answered, the rest are not.
    assert.equal(limited, 1);
    assert.ok(answered <= 500, `${answered} answered`);
    assert.equal(await closed, 'io server disconnect');
    await wellBehavedStillWorks();
  });

  it('connections that never authenticate are dropped after the auth timeout', async () => {
    const idle = Array.from({ length: 20 }, () => rawConnect(server.url));
    await Promise.all(idle.map((c) => c.challenge));
    await Promise.all(idle.map((c) => disconnected(c.socket, 5000)));
    await wellBehavedStillWorks();
  });

  it('too many connections from one address are refused at the handshake', async () => {
    const limited = await startSignalingProcess({ args: ['--ip-connections-per-minute', '5'] });
    try {
      const results: string[] = [];
      for (let i = 0; i < 7; i++) {
        const socket = io(limited.url, { transports: ['websocket'], reconnection: false, forceNew: true });
        results.push(
          await new Promise<string>((resolve) => {
            socket.once('connect', () => resolve('connected'));
            socket.once('connect_error', (err) => resolve(err.message));
          }),
        );
        socket.disconnect();
      }
      assert.deepEqual(results.slice(0, 5), Array(5).fill('connected'));
      assert.deepEqual(results.slice(5), ['rate_limited', 'rate_limited']);
    } finally {
      await limited.kill();
    }
  });

  it('legitimate clients are not charged for the server backlog: a pair sending 50 signals/s through a pre-auth and flood storm gets every one delivered, none refused', async (t) => {
    // Bounds of the waits below; each says so when it fires.
    const BOUND_MS = 10_000;
    let stop = false;
    const storm = { connections: 0, refusedHandshakes: 0, events: 0 };
    const lookup = { peerId: dave.peerId };
    /** Connects, sends lookups until it is cut off, comes back; until `stop`. */
    const attacker = async (connect: () => Promise<Socket>) => {
      while (!stop) {
        let s: Socket;
        try {
          s = await connect();
        } catch {
          // Refused at the handshake (`rate_limited`: the address's connection budget).
          storm.refusedHandshakes++;
          await sleep(50); // pacing the next attempt, not a wait for anything
          continue;
        }
        storm.connections++;
        while (!stop && s.connected) {
          for (let k = 0; k < 100; k++) s.emit('lookup', lookup);
          storm.events += 100;
          await new Promise((r) => setImmediate(r));
        }
        s.disconnect();
      }
    };
    // 50 strangers from five addresses flooding without authenticating (the first event is answered,
    // then the door); 5 authenticated flooders from a sixth (cut off once over their budget).
    const strangers = Array.from({ length: 50 }, (_, i) =>
      attacker(async () => {
        const c = connectFrom(server.url, `127.0.0.${2 + (i % 5)}`);
        await c.challenge.catch((err: unknown) => {
          c.socket.disconnect();
          throw err;
        });
        return c.socket;
      }),
    );
    const flooderIds = await Promise.all(Array.from({ length: 5 }, () => Identity.generate()));
    const flooders = flooderIds.map((id) => attacker(() => authedFrom(server.url, id, '127.0.0.7')));

    const received = new Set<number>();
    const offDave = dave.on('signal', (e) => {
      const n = (e.data as { backlog?: unknown } | null)?.backlog;
      if (e.from === carol.peerId && typeof n === 'number') received.add(n);
    });
    const latencies: number[] = [];
    const sends: Promise<string>[] = [];
    let health: Promise<string> = Promise.resolve('not asked');
    for (let n = 0; n < 100; n++) {
      const t0 = performance.now();
      sends.push(
        carol.sendSignal(dave.peerId, { backlog: n }).then(
          () => {
            latencies.push(performance.now() - t0);
            return 'ok';
          },
          (err: unknown) => String((err as { code?: unknown }).code ?? err),
        ),
      );
      if (n === 50) {
        health = fetch(new URL('/healthz', server.url), { signal: AbortSignal.timeout(BOUND_MS) }).then(
          async (res) => `${res.status} ${(JSON.parse(await res.text()) as { ok?: boolean }).ok}`,
          (err: unknown) => `no answer within ${BOUND_MS} ms (${String(err)})`,
        );
      }
      await sleep(20); // pacing: 50 signals/s
    }
    // Each send is bounded by the client's request timeout (10 s): a timeout shows up as its code.
    const results = await Promise.all(sends);
    const healthz = await health;
    stop = true;
    await Promise.all([...strangers, ...flooders]);
    const deliveredBy = performance.now() + BOUND_MS;
    while (received.size < 100 && performance.now() < deliveredBy) await sleep(20);
    offDave();

    const codes = new Map<string, number>();
    for (const r of results) codes.set(r, (codes.get(r) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(codes), { ok: 100 }, 'every signal of the pair acknowledged ok');
    assert.equal(received.size, 100, `${received.size} of 100 delivered when the ${BOUND_MS} ms bound fired`);
    assert.equal(healthz, '200 true', '/healthz during the storm');
    assert.ok(storm.connections > 50, `the storm made ${storm.connections} connections`);
    t.diagnostic(
      `storm: ${storm.connections} connections (${storm.refusedHandshakes} handshakes refused), ` +
        `${storm.events} events; pair acks p50 ${quantile(latencies, 0.5).toFixed(1)} ms, ` +
        `p99 ${quantile(latencies, 0.99).toFixed(1)} ms`,
    );
    await wellBehavedStillWorks();
  });

  it('the server is still alive and counted the rejections', async () => {
    assert.equal(server.proc.child.exitCode, null);
    const health = await httpGet(server.url, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.text).peers, 2);
    const m = (await httpGet(server.url, '/metrics')).text;
    assert.ok(metricValue(m, 'p2ptls_signaling_disconnects_total{reason="flood"}') >= 1);
    for (const reason of [
      'malformed',
      'unknown_event',
      'payload_too_large',
      'rate_limited',
      'peer_id_mismatch',
    ]) {
      assert.ok(metricValue(m, `p2ptls_signaling_rejected_messages_total{reason="${reason}"}`) > 0, reason);
    }
    await wellBehavedStillWorks();
  });
});
