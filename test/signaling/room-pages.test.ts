// Room member lists in pages (issue 17, point 4) against real server processes on loopback: a
// `room:join` or `room:members` answer holds at most one page of 64 peerIds, following `next` yields
// every member exactly once in peerId order, SignalingClient follows the pages by itself, a room that
// fits one page is answered as before paging, and a member-list flood is refused and cut off. In one
// process and in Redis mode. Nothing here waits on time: answers and disconnects decide.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Server } from 'socket.io';
import type { Socket } from 'socket.io-client';
import { type BenchIdentity, connectOurs, loadIdentities } from '../../bench/signaling-clients.js';
import { memberPage } from '../../signaling-server/member-pages.js';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { MAX_MEMBERS_PAGE } from '../../src/signaling/messages.js';
import {
  type RedisProcess,
  type SignalingProcess,
  startRedis,
  startSignalingProcess,
} from '../helpers/processes.js';
import { ask, disconnected, errorCode, httpGet, metricValue, withCode } from './_util.js';

interface MembersAck {
  ok: boolean;
  members: string[];
  count?: number;
  next?: string;
}

const MEMBERS = 210;
// Every member joins at once: the per-address connection and per-room churn caps would pace that to
// ~20 s (they have their own tests in limits.test.ts); the member-page budget keeps its default.
const FAST_JOINS = [
  '--ip-connections-per-minute',
  '0',
  '--ip-unauthenticated',
  '0',
  '--room-changes-per-second',
  '0',
];

/** Connects `ids` to `urls` (round robin), each a raw authenticated socket.io client that joins `room`. */
async function joinAll(urls: string[], ids: BenchIdentity[], room: string): Promise<Socket[]> {
  return Promise.all(
    ids.map(async (id, i) => {
      const socket = await connectOurs(urls[i % urls.length]!, id);
      const ack = (await ask(socket, 'room:join', { room })) as MembersAck;
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.ok(ack.members.length <= MAX_MEMBERS_PAGE, `a join answer holds ${ack.members.length}`);
      return socket;
    }),
  );
}

/** Reads every page of `room` with raw `room:members` requests, checking each page's bounds. */
async function readPages(socket: Socket, room: string, limit?: number): Promise<string[]> {
  const all: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const ack = (await ask(socket, 'room:members', {
      room,
      ...(after ? { after } : {}),
      ...(limit ? { limit } : {}),
    })) as MembersAck;
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.ok(ack.members.length <= Math.min(limit ?? MAX_MEMBERS_PAGE, MAX_MEMBERS_PAGE));
    all.push(...ack.members);
    if (ack.next === undefined) return all;
    assert.equal(ack.next, ack.members[ack.members.length - 1], 'next is the last member of its page');
    after = ack.next;
  }
  throw new Error('the pages never ended');
}

/** The checks every mode shares: pages of a room whose sorted members are `expected`. */
async function checkPaging(reader: Socket, room: string, expected: string[]): Promise<void> {
  // Repeating the join of a room already joined answers its first page again.
  const again = (await ask(reader, 'room:join', { room })) as MembersAck;
  assert.deepEqual(again.members, expected.slice(0, MAX_MEMBERS_PAGE));
  assert.equal(again.count, expected.length);
  assert.equal(again.next, expected[MAX_MEMBERS_PAGE - 1]);
  // Following `next`: every member exactly once, in order; the last page has `count` but no `next`.
  assert.deepEqual(await readPages(reader, room), expected);
  assert.deepEqual(await readPages(reader, room, 50), expected);
  // A limit above the cap is capped.
  const big = (await ask(reader, 'room:members', { room, limit: 10_000 })) as MembersAck;
  assert.equal(big.members.length, MAX_MEMBERS_PAGE);
  const last = (await ask(reader, 'room:members', { room, after: expected.at(-3) })) as MembersAck;
  assert.deepEqual(last, { ok: true, members: expected.slice(-2), count: expected.length });
}

describe('room member lists are paged (real server process, issue 17 point 4)', () => {
  let server: SignalingProcess;
  let ids: BenchIdentity[];
  let members: Socket[] = [];
  let client: SignalingClient | undefined;

  before(async () => {
    [server, ids] = await Promise.all([
      startSignalingProcess({ args: FAST_JOINS }),
      loadIdentities(MEMBERS + 2),
    ]);
    members = await joinAll([server.url], ids.slice(0, MEMBERS), 'big');
  });
  after(async () => {
    for (const s of members) s.disconnect();
    await client?.close();
    await server?.kill();
  });

  it(`a ${MEMBERS}-member room: each answer holds one page, the pages hold every member once, in order`, async () => {
    const expected = ids
      .slice(0, MEMBERS)
      .map((id) => id.peerId)
      .sort();
    const newcomer = await connectOurs(server.url, ids[MEMBERS]!);
    members.push(newcomer);
    const joined = (await ask(newcomer, 'room:join', { room: 'big' })) as MembersAck;
    const withNewcomer = [...expected, ids[MEMBERS]!.peerId].sort();
    assert.deepEqual(joined, {
      ok: true,
      members: withNewcomer.slice(0, MAX_MEMBERS_PAGE),
      count: MEMBERS + 1,
      next: withNewcomer[MAX_MEMBERS_PAGE - 1],
    });
    await checkPaging(newcomer, 'big', withNewcomer);
  });

  it('SignalingClient.joinRoom and roomMembers follow every page', async () => {
    client = new SignalingClient({ url: server.url, identity: await Identity.generate() });
    await client.connect();
    const everyone = [...members.map((_, i) => ids[i]!.peerId), client.peerId].sort();
    assert.deepEqual(await client.joinRoom('big'), everyone);
    assert.deepEqual(await client.roomMembers('big'), everyone);
  });

  it('a room that fits one page is answered as before paging: {ok, members} and nothing else', async () => {
    const a = members[0]!;
    const b = members[1]!;
    assert.deepEqual(await ask(a, 'room:join', { room: 'small' }), { ok: true, members: [ids[0]!.peerId] });
    const both = [ids[0]!.peerId, ids[1]!.peerId].sort();
    assert.deepEqual(await ask(b, 'room:join', { room: 'small' }), { ok: true, members: both });
    assert.deepEqual(await ask(a, 'room:members', { room: 'small' }), { ok: true, members: both });
  });

  it('a member-list flood is refused rate_limited, then unanswered, then cut off; other connections are served', async () => {
    const metric = 'p2ptls_signaling_disconnects_total{reason="flood"}';
    const floodsBefore = metricValue((await httpGet(server.url, '/metrics')).text, metric);
    const flooder = await connectOurs(server.url, ids[MEMBERS + 1]!);
    members.push(flooder);
    assert.equal(((await ask(flooder, 'room:join', { room: 'big' })) as MembersAck).ok, true);
    const closed = disconnected(flooder);
    // 200 requests for pages (a repeated join is one): within the event budget (burst 400), far over
    // the member-page burst (64).
    const t0 = Date.now();
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        ask(flooder, i % 2 ? 'room:members' : 'room:join', { room: 'big' }).catch(() => null),
      ),
    );
    assert.equal(await closed, 'io server disconnect');
    const seconds = (Date.now() - t0) / 1000;
    const answered = acks.filter((a) => a !== null);
    const served = answered.filter((a) => (a as MembersAck).ok === true).length;
    assert.ok(served <= 64 + Math.ceil(8 * seconds), `${served} member pages in ${seconds} s`);
    assert.deepEqual(
      answered.filter((a) => (a as MembersAck).ok !== true).map(errorCode),
      ['rate_limited'],
      'one refusal is answered, the rest are not',
    );
    const floods = metricValue((await httpGet(server.url, '/metrics')).text, metric);
    assert.equal(floods - floodsBefore, 1);
    // Someone else's member list is still served at once.
    const page = (await ask(members[2]!, 'room:members', { room: 'big' })) as MembersAck;
    assert.equal(page.members.length, MAX_MEMBERS_PAGE);
  });
});

describe('room member lists are paged in Redis mode (two processes, real redis-server)', () => {
  let redis: RedisProcess;
  let s1: SignalingProcess;
  let s2: SignalingProcess;
  let ids: BenchIdentity[];
  let members: Socket[] = [];

  before(async () => {
    [redis, ids] = await Promise.all([startRedis(), loadIdentities(MEMBERS)]);
    const env = { REDIS_URL: redis.url };
    [s1, s2] = await Promise.all([
      startSignalingProcess({ env, args: FAST_JOINS }),
      startSignalingProcess({ env, args: FAST_JOINS }),
    ]);
    members = await joinAll([s1.url, s2.url], ids, 'big');
  });
  after(async () => {
    for (const s of members) s.disconnect();
    await Promise.all([s1?.kill(), s2?.kill()]);
    await redis?.kill();
  });

  it(`a ${MEMBERS}-member room across two processes: pages from either hold every member once, in order`, async () => {
    const expected = ids.map((id) => id.peerId).sort();
    await checkPaging(members[0]!, 'big', expected);
    await checkPaging(members[1]!, 'big', expected);
  });
});

describe('SignalingClient against a server that pages wrongly (in-process fake, in addition)', () => {
  const http = createServer();
  const fake = new Server(http);
  /** What the fake answers to `room:join` and to `room:members` (given the request). */
  let answers: { join: unknown; members: (req: { after?: string }) => unknown };
  let client: SignalingClient;
  let ids: string[];

  before(async () => {
    fake.on('connection', (socket) => {
      socket.emit('challenge', { v: 1, nonce: 'A'.repeat(43) });
      socket.on('auth', (req: { identity: { peerId: string } }, ack: (a: unknown) => void) =>
        ack({ ok: true, peerId: req.identity.peerId }),
      );
      socket.on('room:join', (_req: unknown, ack: (a: unknown) => void) => ack(answers.join));
      socket.on('room:members', (req: { after?: string }, ack: (a: unknown) => void) =>
        ack(answers.members(req)),
      );
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const [identity, bench] = await Promise.all([Identity.generate(), loadIdentities(3)]);
    ids = bench.map((b) => b.peerId).sort();
    client = new SignalingClient({ url, identity });
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await fake.close();
  });

  it('a server from before paging: the whole list in one answer is the list', async () => {
    answers = { join: { ok: true, members: ids }, members: () => ({ ok: true, members: ids }) };
    assert.deepEqual(await client.joinRoom('r'), ids);
    assert.deepEqual(await client.roomMembers('r'), ids);
  });

  it('a cursor that does not move forward fails malformed instead of looping', async () => {
    const [a, b, c] = ids as [string, string, string];
    // `next` is not the last member of its page.
    answers = {
      join: { ok: true, members: [a, b], count: 3, next: a },
      members: () => ({ ok: true, members: [] }),
    };
    await assert.rejects(client.joinRoom('r'), withCode('malformed'));
    // The following page starts at or before the cursor, again and again.
    answers = {
      join: { ok: true, members: [a], count: 3, next: a },
      members: () => ({ ok: true, members: [a], count: 3, next: a }),
    };
    await assert.rejects(client.roomMembers('r'), withCode('malformed'));
    // A well-formed paging is followed to its end.
    answers = {
      join: { ok: true, members: [a], count: 3, next: a },
      members: (req) => {
        if (req.after === undefined) return { ok: true, members: [a], count: 3, next: a };
        if (req.after === a) return { ok: true, members: [b], count: 3, next: b };
        return { ok: true, members: [c], count: 3 };
      },
    };
    assert.deepEqual(await client.joinRoom('r'), [a, b, c]);
    assert.deepEqual(await client.roomMembers('r'), [a, b, c]);
  });
});

describe('memberPage (unit, in addition)', () => {
  const sorted = Array.from({ length: 130 }, (_, i) => `m${String(i).padStart(3, '0')}`);

  it('a cursor whose member left meanwhile continues after where it would be; past the end: empty, no next', () => {
    const first = memberPage(sorted, undefined);
    assert.equal(first.next, 'm063');
    // m063 left between two pages: the cursor still works, nothing is skipped or repeated.
    const gone = sorted.filter((m) => m !== 'm063');
    assert.deepEqual(memberPage(gone, 'm063'), { members: gone.slice(63, 127), count: 129, next: 'm127' });
    assert.deepEqual(memberPage(sorted, 'm129'), { members: [], count: 130 });
    assert.deepEqual(memberPage(sorted, 'a'), { members: sorted.slice(0, 64), count: 130, next: 'm063' });
    assert.deepEqual(memberPage(sorted, undefined, 1), { members: ['m000'], count: 130, next: 'm000' });
    assert.deepEqual(memberPage(sorted.slice(0, 64), undefined), { members: sorted.slice(0, 64) });
  });
});
