// Received messages and datagrams are queued for the async iterators only when someone iterates or
// nobody listens yet: an application that only uses events must not accumulate every message in memory,
// and one that iterates later must not lose what arrived before.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import { autoAccept, type Env, startEnv, text, until, within } from '../helpers/hosts.js';

const queued = (c: Connection) => (c as unknown as { inbox: { size: number } }).inbox.size;
const queuedDatagrams = (c: Connection) => (c.datagrams as unknown as { queue: { size: number } }).queue.size;

describe('receive-side buffering', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(2);
  });
  after(async () => {
    await env?.close();
  });

  it('event listeners only: nothing piles up; no listener: messages() later gets everything', async () => {
    const [a, b] = [env.ids[0]!, env.ids[1]!];
    const ha = await env.host(a, { peers: [b] });
    const hb = await env.host(b, { peers: [a] });
    try {
      const acceptor = autoAccept(hb);
      const conn = await within(ha.connect(b.peerId), 20_000, 'connect');
      const remote = await acceptor.next();

      let events = 0;
      let datagrams = 0;
      remote.on('message', () => events++);
      remote.datagrams.on('datagram', () => datagrams++);
      for (let i = 0; i < 200; i++) await conn.send(new Uint8Array(1024));
      for (let i = 0; i < 50; i++) await conn.datagrams.send('d');
      await until(() => events === 200 && datagrams > 0, 10_000, 'delivered as events');
      assert.equal(queued(remote), 0, 'messages were kept for an iterator nobody uses');
      assert.equal(queuedDatagrams(remote), 0, 'datagrams were kept for an iterator nobody uses');

      // The other direction has no listener yet: messages wait for the iterator.
      for (let i = 0; i < 5; i++) await remote.send(`m${i}`);
      await until(() => queued(conn) === 5, 10_000, 'queued for a later iterator');
      const it = conn.messages();
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push(text((await it.next()).value as Uint8Array));
      assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });
});
