// Issue 17, point 2 in Redis mode: the process holding a recipient's connection charges its budgets, so
// senders connected to other processes share one recipient budget, and a recipient that stops reading
// is noticed wherever its senders are. Three real server processes share one real redis-server; each
// process's own flags decide for the recipients connected to it (s3: a budget of 20 signals/s; s2: no
// budget but a backlog cap of 100 packets), and the senders' processes have no event limits at all.
// Events and counts decide; timeouts only bound the waits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { createSignedSignal } from '../../src/signaling/wire.js';
import {
  type RedisProcess,
  type SignalingProcess,
  startRedis,
  startSignalingProcess,
} from '../helpers/processes.js';
import { ask, errorCode, pausable, rawAuthed, signalUntilRefused, sleep } from './_util.js';

const RECIPIENT_BUDGET = 20;
const MAX_PENDING = 100;

describe('recipient limits across processes (three processes, real redis-server)', () => {
  let redis: RedisProcess;
  let s1: SignalingProcess;
  let s2: SignalingProcess;
  let s3: SignalingProcess;
  const sockets: Socket[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url };
    const unlimited = ['--events-per-second', '0', '--ip-events-per-second', '0'];
    [s1, s2, s3] = await Promise.all([
      startSignalingProcess({ env, args: unlimited }),
      startSignalingProcess({
        env,
        args: [
          ...unlimited,
          '--recipient-signals-per-second',
          '0',
          '--max-pending-packets',
          String(MAX_PENDING),
        ],
      }),
      startSignalingProcess({ env, args: ['--recipient-signals-per-second', String(RECIPIENT_BUDGET)] }),
    ]);
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    await Promise.all([s1?.kill(), s2?.kill(), s3?.kill()]);
    await redis?.kill();
  });

  async function authed(url: string, identity: Identity): Promise<Socket> {
    const s = await rawAuthed(url, identity);
    sockets.push(s);
    return s;
  }

  it('senders on two other processes together get no more than the recipient budget; the rest recipient_busy', async (t) => {
    const [victimId, ...senderIds] = await Promise.all(Array.from({ length: 5 }, () => Identity.generate()));
    const victim = await authed(s3.url, victimId!);
    let delivered = 0;
    victim.on('signal', () => delivered++);
    // Two senders on s1 and two on s2: neither process holds the victim.
    const senders = await Promise.all(senderIds.map((id, i) => authed(i < 2 ? s1.url : s2.url, id!)));
    const envs = await Promise.all(
      senderIds.map((id) =>
        Promise.all(Array.from({ length: 40 }, (_, n) => createSignedSignal(id!, victimId!.peerId, { n }))),
      ),
    );
    const t0 = performance.now();
    const acks = await Promise.all(
      senders.flatMap((s, k) => envs[k]!.map((env) => ask(s, 'signal', { env }))),
    );
    // The owner's one-second windows start at the first signal it saw: within a span of T ms it opened
    // at most floor(T / 1000) + 1 of them.
    const windows = Math.floor((performance.now() - t0) / 1000) + 1;
    const ok = acks.filter((a) => (a as { ok?: boolean }).ok === true).length;
    const busy = acks.filter((a) => errorCode(a) === 'recipient_busy').length;
    assert.equal(ok + busy, acks.length, `every refusal is recipient_busy: ${JSON.stringify(acks)}`);
    assert.ok(busy > 0, 'the budget refused something');
    assert.ok(ok <= RECIPIENT_BUDGET * windows, `${ok} delivered in ${windows} one-second windows`);
    // What was acknowledged reached the victim; deliveries may trail the acknowledgements (the bound
    // only ends a failing wait).
    for (let waited = 0; delivered < ok && waited < 10_000; waited += 20) await sleep(20);
    assert.equal(delivered, ok);
    t.diagnostic(`${ok} of ${acks.length} delivered in ${windows} window(s), ${busy} recipient_busy`);
  });

  it('a recipient on another process that stops reading: its sender is refused recipient_busy', async (t) => {
    const [victimId, senderId] = await Promise.all([Identity.generate(), Identity.generate()]);
    const victim = await authed(s2.url, victimId!);
    const sender = await authed(s1.url, senderId!);
    // Stop reading: what s2 writes to the victim piles up in the kernel's buffers, then in engine.io's
    // queue, which s2 measures before handing it another signal.
    const raw = pausable(victim);
    raw.pause();
    // 16 KB each: a few hundred fill the loopback socket's buffers and the 100-packet cap behind them.
    const env = await createSignedSignal(senderId!, victimId!.peerId, 'x'.repeat(16 * 1024));
    const { refusal, sent } = await signalUntilRefused(sender, env);
    raw.resume();
    assert.equal(errorCode(refusal), 'recipient_busy', `after ${sent} signals: ${JSON.stringify(refusal)}`);
    assert.match((refusal as { error: { message: string } }).error.message, /not reading/);
    t.diagnostic(`refused after ${sent} signals of 16 KB`);
  });
});
