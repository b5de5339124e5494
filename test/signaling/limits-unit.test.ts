// The signaling server's budgets on their own, with time passed in (the real-process behaviour is in
// limits.test.ts): a flooding connection is answered once, then dropped, then disconnected; a
// recipient's budget is split fairly among strangers and keeps room for its conversations; room
// changes that undo each other within a tick are never sent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EVENT_BURST_SECONDS,
  EventBudget,
  KeyedBuckets,
  RecipientBudget,
} from '../../signaling-server/limits.js';
import { type RoomChange, RoomChanges } from '../../signaling-server/rooms.js';

describe('signaling budgets', () => {
  it('EventBudget: serves the burst, answers the first refusal, drops the next, disconnects past maxStrikes', () => {
    const b = new EventBudget(10, 3, 10_000, 0);
    const burst = 10 * EVENT_BURST_SECONDS;
    const verdicts = Array.from({ length: burst + 6 }, () => b.take(0));
    assert.deepEqual(verdicts, [
      ...Array(burst).fill('serve'),
      'refuse',
      'drop',
      'drop',
      'disconnect',
      'disconnect',
      'disconnect',
    ]);
    // A new strike window starts over, and the bucket refilled meanwhile.
    const later = new EventBudget(10, 3, 10_000, 0);
    for (let i = 0; i < burst + 1; i++) later.take(0);
    assert.equal(later.take(20_000), 'serve');
    assert.equal(later.strike(20_000), 'refuse');
  });

  it('KeyedBuckets: per key, refilled over time, full ones forgotten', () => {
    const k = new KeyedBuckets(2, 2);
    assert.deepEqual(
      [k.take('a', 0), k.take('a', 0), k.take('a', 0), k.take('b', 0)],
      [true, true, false, true],
    );
    assert.equal(k.take('a', 500), true); // one token back after half a second at 2/s
    k.sweep(10_000);
    assert.equal(k.size, 0);
  });

  it('RecipientBudget: strangers share 3/4 of the budget fairly; a conversation partner gets the rest', () => {
    const r = new RecipientBudget(40); // strangers: 30 per window
    const victim = 'V';
    // Window 1: 10 flooders learn who is active.
    for (let i = 0; i < 10; i++) for (let k = 0; k < 40; k++) r.take(victim, `f${i}`, 0);
    // Window 2: the share is 30 / 10 flooders = 3 each.
    const got = Array.from({ length: 10 }, (_, i) => {
      let n = 0;
      for (let k = 0; k < 40; k++) if (r.take(victim, `f${i}`, 1000)) n++;
      return n;
    });
    assert.deepEqual(got, Array(10).fill(3));
    // The strangers' part is spent: a new stranger waits, the victim's conversation partner does not.
    assert.equal(r.take(victim, 'stranger', 1000), false);
    assert.equal(r.take('P', victim, 1000), true); // the victim signals P ...
    let partner = 0;
    while (r.take(victim, 'P', 1000)) partner++;
    assert.equal(partner, 10); // ... and P's answers use the quarter the strangers could not take.
    // Window 3: a new stranger gets a fair share beside the 10 flooders.
    let newcomer = 0;
    for (let k = 0; k < 10; k++) if (r.take(victim, 'new', 2000)) newcomer++;
    assert.ok(newcomer >= 2, `newcomer got ${newcomer}`);
    r.sweep(100_000);
    assert.equal(r.size, 0);
  });

  it('RecipientBudget: a conversation recorded with talked() (the sender on another process) counts as one', () => {
    const r = new RecipientBudget(4); // strangers: 3 per window
    const taken = (sender: string) => Array.from({ length: 4 }, () => r.take('V', sender, 0)).filter(Boolean);
    assert.equal(taken('stranger').length, 3);
    assert.equal(r.take('V', 'P', 0), false); // P is a stranger too: the strangers' part is spent
    r.talked('V', 'P', 0); // V's signal to P was delivered (charged on P's process)
    assert.equal(r.take('V', 'P', 0), true); // P's answer gets the rest of V's budget
    assert.equal(r.take('V', 'P', 0), false); // but not more than the whole budget
  });

  it('RoomChanges: a join and a leave within a tick cancel; what remains is sent once per tick', async () => {
    const sent: string[] = [];
    let flushedTick: () => void = () => {};
    const flushed = new Promise<void>((resolve) => {
      flushedTick = resolve;
    });
    const rooms = new RoomChanges(10, (room, peerId, change: RoomChange) => {
      sent.push(`${room} ${peerId} ${change}`);
      if (sent.length === 2) flushedTick();
    });
    for (let i = 0; i < 100; i++) {
      rooms.add('r', 'spammer', 'joined');
      rooms.add('r', 'spammer', 'left');
    }
    rooms.add('r', 'alice', 'joined');
    rooms.add('s', 'bob', 'left');
    await flushed;
    assert.deepEqual(sent.sort(), ['r alice joined', 's bob left']);
    rooms.close();
  });
});
