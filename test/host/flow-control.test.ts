// Receiver flow control over real WebRTC stacks (PROTOCOL.md §5.5): a peer sends 192 MiB to a receiver
// whose application does not read. Its send() stops once the receive window (16 MiB) is full, the
// receiver buffers at most the window plus one message, and reading resumes the flow with every byte
// intact. Before flow control, every send() resolved and the receiver held all 192 MiB.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { autoAccept, type Backend, type Env, startEnv, until, within } from '../helpers/hosts.js';

const MiB = 1024 * 1024;
const MESSAGE = MiB;
const TOTAL = 192;
const WINDOW = 16 * MiB;

describe('flow control between real WebRTC stacks', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(4);
  });
  after(async () => {
    await env?.close();
  });

  for (const [backend, ia, ib] of [
    ['wrtc', 0, 1],
    ['node-datachannel', 2, 3],
  ] as [Backend, number, number][]) {
    it(`${backend}: a non-reading receiver holds a 192 MiB sender at its window; reading resumes it intact`, async (t) => {
      const [a, b] = [env.ids[ia]!, env.ids[ib]!];
      const ha = await env.host(a, { peers: [b], backend });
      const hb = await env.host(b, { peers: [a], backend });
      try {
        const acceptor = autoAccept(hb);
        const sender = await within(ha.connect(b.peerId), 20_000, 'connect');
        const receiver = await acceptor.next();
        const rss0 = process.memoryUsage().rss;
        let resolved = 0;
        const sending = (async () => {
          for (let i = 0; i < TOTAL; i++) {
            const m = new Uint8Array(MESSAGE).fill(i & 0xff);
            new DataView(m.buffer).setUint32(0, i);
            await sender.send(m);
            resolved++;
          }
        })();
        // The receiver's application reads nothing: the window fills and the sender runs out of credit.
        await until(
          async () => (await sender.stats()).flowControl.sendCredit < MESSAGE + 20,
          30_000,
          'the sender is out of credit',
        );
        // What was in flight lands; then the receiver holds at most the window plus one message.
        let peak = 0;
        await until(
          async () => {
            const buffered = (await receiver.stats()).flowControl.buffered;
            peak = Math.max(peak, buffered);
            return buffered >= WINDOW - MESSAGE;
          },
          30_000,
          'the window is full',
        );
        const held = resolved;
        const rss = process.memoryUsage().rss - rss0;
        t.diagnostic(
          `${backend}: sender stalled after ${held} of ${TOTAL} MiB; receiver holds ${(peak / MiB).toFixed(1)} MiB; RSS +${(rss / MiB).toFixed(0)} MiB`,
        );
        assert.ok(peak <= WINDOW + MESSAGE + 64, `receiver buffered ${peak} bytes`);
        assert.ok(held < TOTAL / 4, `${held} MiB of sends resolved with nothing read`);
        // Both hosts live in this process: the bound covers both sides' buffers, not 192 MiB.
        assert.ok(rss < WINDOW + 96 * MiB, `RSS grew ${(rss / MiB).toFixed(0)} MiB`);

        // Reading resumes the flow: every message arrives, in order, byte for byte.
        let n = 0;
        for await (const m of receiver.messages()) {
          assert.equal(m.length, MESSAGE);
          assert.equal(new DataView(m.buffer, m.byteOffset).getUint32(0), n);
          assert.equal(m[MESSAGE - 1], n & 0xff);
          if (++n === TOTAL) break;
        }
        await within(sending, 60_000, 'every send resolves');
        assert.equal(resolved, TOTAL);
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  }
});
