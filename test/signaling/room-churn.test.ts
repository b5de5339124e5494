/**
 * Room churn caps without a lock-out (issue 17, point 4; real server process). Spammers that join and
 * leave a room as fast as their own budgets allow keep the room's churn budget spent, and still a peer
 * that arrives is never refused for their churn, and a member that leaves never is: only a peer's
 * repeated joins are charged to the room (signaling-server/limits.ts RoomChurn). With one bucket for every change, the
 * arriving peers here are refused `rate_limited` (the attack bench's SignalingClient pair could not join
 * its room at all).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { ask, errorCode, rawAuthed, sleep } from './_util.js';

const ROOM = 'busy';
/** Refusals by the room's budget (not the spammer's own): the room is saturated once spammers see these. */
const ROOM_REFUSAL = new RegExp(`room ${ROOM} takes at most`);

describe('room churn (real server process)', () => {
  let server: SignalingProcess;
  const sockets: Socket[] = [];

  before(async () => {
    server = await startSignalingProcess({
      args: ['--room-changes-per-second', '4', '--peer-room-changes-per-second', '2'],
    });
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    await server?.kill();
  });

  it('spammers saturate the room budget, yet arriving peers join and members leave at the first try', async () => {
    const ids = await Promise.all(Array.from({ length: 8 }, () => Identity.generate()));
    const connect = async (id: Identity) => {
      const s = await rawAuthed(server.url, id);
      sockets.push(s);
      return s;
    };
    const spammers = await Promise.all(ids.slice(0, 4).map(connect));
    let roomRefusals = 0;
    let spamming = true;
    /** Resolves once the spammers have been refused by the room `n` times in all. */
    const waiters: { n: number; resolve: () => void }[] = [];
    const refusedByRoom = (n: number) => new Promise<void>((resolve) => waiters.push({ n, resolve }));
    const churn = spammers.map(async (s) => {
      while (spamming) {
        for (const event of ['room:join', 'room:leave']) {
          const ack = (await ask(s, event, { room: ROOM })) as { error?: { message?: string } };
          if (errorCode(ack) === 'rate_limited' && ROOM_REFUSAL.test(ack.error?.message ?? '')) {
            roomRefusals++;
            for (const w of waiters) if (roomRefusals >= w.n) w.resolve();
          }
          // Paces the spammer under its event budget (100/s): a faster one is cut off for flooding.
          await sleep(50);
        }
      }
    });
    try {
      // Bounded by the test runner's timeout; events decide when the room is saturated.
      await refusedByRoom(8);
      const arriving = await Promise.all(ids.slice(4).map(connect));
      const joins = await Promise.all(arriving.map((s) => ask(s, 'room:join', { room: ROOM })));
      assert.deepEqual(
        joins.map((a) => errorCode(a) ?? 'ok'),
        ['ok', 'ok', 'ok', 'ok'],
        `joins while spammers saturate the room: ${JSON.stringify(joins)}`,
      );
      const leave = await ask(arriving[0]!, 'room:leave', { room: ROOM });
      assert.equal(errorCode(leave) ?? 'ok', 'ok', JSON.stringify(leave));
      // The spammers, still going, are still refused by the room: the budget itself is unchanged.
      await refusedByRoom(roomRefusals + 1);
    } finally {
      spamming = false;
      await Promise.all(churn);
    }
  });
});
