/**
 * InOrder: work that completes out of order is finished, and its promises settle, in the order it was
 * added; failures go through their own step; a step's promise holds the ones after it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InOrder } from '../../src/protocol/in-order.js';

/** A promise settled from outside. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('InOrder', () => {
  it('finishes work in the order it was added, whatever order it completes in', async () => {
    const steps: string[] = [];
    const q = new InOrder<string, string>({
      done: (v) => {
        steps.push(v);
        return v.toUpperCase();
      },
      failed: (e) => {
        throw e;
      },
    });
    const work = ['a', 'b', 'c', 'd'].map(() => deferred<string>());
    const settled: string[] = [];
    const results = work.map((w) => q.add(w.promise).then((r) => settled.push(r)));
    assert.equal(q.idle, false);
    work[3]!.resolve('d');
    work[1]!.resolve('b');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(steps, [], 'nothing finishes before the first');
    work[0]!.resolve('a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(steps, ['a', 'b']);
    work[2]!.resolve('c');
    await Promise.all(results);
    assert.deepEqual(steps, ['a', 'b', 'c', 'd']);
    assert.deepEqual(settled, ['A', 'B', 'C', 'D']);
    assert.equal(q.idle, true);
  });

  it('a failure goes through its own step, in turn; a throwing step rejects only its own promise', async () => {
    const q = new InOrder<number, number>({
      done: (v) => {
        if (v === 3) throw new Error('step refused 3');
        return v;
      },
      failed: () => -1,
    });
    const out = await Promise.allSettled([
      q.add(Promise.resolve(1)),
      q.add(Promise.reject(new Error('work failed'))),
      q.add(Promise.resolve(3)),
      q.add(Promise.resolve(4)),
    ]);
    assert.deepEqual(
      out.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
      [1, -1, 'step refused 3', 4],
    );
  });

  it('a step that returns a promise holds the next until its own promise has settled', async () => {
    const reply = deferred<string>();
    const q = new InOrder<string, string>({
      done: (v) => (v === 'slow' ? reply.promise : v),
      failed: (e) => {
        throw e;
      },
    });
    const order: string[] = [];
    const all = ['slow', 'fast', 'faster'].map((v) => q.add(Promise.resolve(v)).then((r) => order.push(r)));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], 'the records behind the slow one wait for it');
    assert.equal(q.idle, false);
    reply.resolve('slow');
    await Promise.all(all);
    assert.deepEqual(order, ['slow', 'fast', 'faster']);
  });

  it('hold(): work finished outside the queue keeps what is added next behind it', async () => {
    const q = new InOrder<string, string>({ done: (v) => v, failed: (e) => Promise.reject(e) });
    const outside = deferred<string>();
    const order: string[] = [];
    const first = outside.promise.then((r) => order.push(r));
    q.hold(outside.promise);
    assert.equal(q.idle, false);
    const second = q.add(Promise.resolve('queued')).then((r) => order.push(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, []);
    outside.resolve('outside');
    await Promise.all([first, second]);
    assert.deepEqual(order, ['outside', 'queued']);
  });

  it('settled() waits for everything added so far and never rejects', async () => {
    const q = new InOrder<number, number>({
      done: (v) => v,
      failed: (e) => {
        throw e;
      },
    });
    await q.settled();
    const late = deferred<number>();
    const failing = q.add(Promise.reject(new Error('x')));
    failing.catch(() => {});
    const last = q.add(late.promise);
    let done = false;
    const all = q.settled().then(() => {
      done = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    late.resolve(7);
    await all;
    assert.equal(await last, 7);
  });
});
