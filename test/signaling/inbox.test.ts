// The client's inbound queue on its own (issue 17, point 3): bounded lanes, O(1) ring operations, and
// the strangers' share while paired signals wait.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingQueue, SignalInbox } from '../../src/signaling/inbox.js';

describe('signal inbox', () => {
  it('a ring keeps FIFO order across wrap-around and refuses beyond its capacity', () => {
    const q = new RingQueue<number>(3);
    const out: (number | undefined)[] = [];
    assert.equal(q.push(1) && q.push(2) && q.push(3), true);
    assert.equal(q.push(4), false, 'full');
    out.push(q.shift(), q.shift());
    assert.equal(q.push(5) && q.push(6), true);
    assert.equal(q.length, 3);
    out.push(q.shift(), q.shift(), q.shift(), q.shift());
    assert.deepEqual(out, [1, 2, 3, 5, 6, undefined]);
  });

  it('paired signals go first; strangers get one take in `strangerShare` while both wait', () => {
    const inbox = new SignalInbox<string>({ maxPaired: 100, maxStrangers: 4, strangerShare: 4 });
    for (let i = 0; i < 12; i++) assert.equal(inbox.offer(`p${i}`, 'paired'), true);
    for (let i = 0; i < 6; i++) assert.equal(inbox.offer(`s${i}`, 'stranger'), i < 4, `stranger ${i}`);
    assert.deepEqual([inbox.queuedPaired, inbox.queuedStrangers], [12, 4]);
    const order: string[] = [];
    for (let next = inbox.take(); next; next = inbox.take()) order.push(next.item);
    assert.deepEqual(order, [
      'p0',
      'p1',
      'p2',
      's0',
      'p3',
      'p4',
      'p5',
      's1',
      'p6',
      'p7',
      'p8',
      's2',
      'p9',
      'p10',
      'p11',
      's3',
    ]);
  });
});
