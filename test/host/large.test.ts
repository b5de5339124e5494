// Large transfers between two Node hosts on loopback: a 100 MiB message arrives intact, and a 1 GiB
// stream (WritableStream → ReadableStream, chunks generated on the fly) arrives intact with bounded memory.
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import { autoAccept, type Backend, type Env, startEnv, within } from '../helpers/hosts.js';

const MiB = 1024 * 1024;
/** Size of the streamed transfer. P2PTLS_STREAM_MIB overrides it for local measurements only. */
const STREAM_BYTES = Number(process.env.P2PTLS_STREAM_MIB ?? 1024) * MiB;
const CHUNK = MiB;
/** Peak RSS growth allowed during the stream (both peers live in this process). */
const RSS_BOUND = 400 * MiB;

/** Samples this process's RSS every 25 ms until stopped; reports the peak growth over the start. */
function rssSampler() {
  const start = process.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25);
  return {
    stop(): number {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return peak - start;
    },
  };
}

describe('large transfers', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(6);
  });
  after(async () => {
    await env?.close();
  });

  async function pair(
    backend: Backend,
    i: number,
  ): Promise<{ ha: Host; hb: Host; ca: Connection; cb: Connection }> {
    const a = env.ids[2 * i]!;
    const b = env.ids[2 * i + 1]!;
    // 100 MiB is above the default maxMessageBytes (64 MiB): raise it on both sides.
    const session = { maxMessageBytes: 128 * MiB };
    const ha = await env.host(a, { peers: [b], backend, session });
    const hb = await env.host(b, { peers: [a], backend, session });
    const acceptor = autoAccept(hb);
    const ca = await within(ha.connect(b.peerId), 20_000, 'connect');
    const cb = await acceptor.next();
    return { ha, hb, ca, cb };
  }

  it(`wrtc: a ${STREAM_BYTES / MiB} MiB stream arrives intact with bounded memory`, async () => {
    const { ha, hb, ca, cb } = await pair('wrtc', 2);
    try {
      // Runs first in this file, so the baseline is not inflated by the 100 MiB tests' freed buffers.
      const rss = rssSampler();
      const t0 = performance.now();
      const receiver = (async () => {
        const hash = createHash('sha256');
        let total = 0;
        const reader = cb.readable().getReader();
        while (total < STREAM_BYTES) {
          const r = await reader.read();
          if (r.done) throw new Error(`stream ended after ${total} bytes: ${(await cb.closed).reason}`);
          hash.update(r.value);
          total += r.value.length;
        }
        reader.releaseLock();
        return { total, digest: hash.digest('hex') };
      })();
      const sender = (async () => {
        const hash = createHash('sha256');
        const writer = ca.writable().getWriter();
        const chunk = new Uint8Array(CHUNK);
        for (let sent = 0; sent < STREAM_BYTES; sent += CHUNK) {
          await writer.ready;
          // A fresh buffer per chunk: send() may still hold the previous one until it is sealed.
          const c = randomFillSync(new Uint8Array(chunk.length));
          hash.update(c);
          await writer.write(c);
        }
        await writer.close();
        return hash.digest('hex');
      })();
      const [sentDigest, got] = await within(Promise.all([sender, receiver]), 240_000, 'stream');
      const ms = performance.now() - t0;
      const growth = rss.stop();
      console.log(
        `# wrtc: ${STREAM_BYTES / MiB} MiB stream in ${(ms / 1000).toFixed(1)} s, peak RSS growth ${(growth / MiB).toFixed(0)} MiB`,
      );
      assert.equal(got.total, STREAM_BYTES);
      assert.equal(got.digest, sentDigest);
      assert.ok(
        growth < RSS_BOUND,
        `peak RSS growth ${(growth / MiB).toFixed(0)} MiB ≥ ${RSS_BOUND / MiB} MiB`,
      );
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  (['wrtc', 'node-datachannel'] as const).forEach((backend, i) => {
    it(`${backend}: a 100 MiB message arrives intact (SHA-256)`, async () => {
      const { ha, hb, ca, cb } = await pair(backend, i);
      try {
        const size = 100 * MiB;
        const msg = new Uint8Array(size);
        randomFillSync(msg);
        const sent = createHash('sha256').update(msg).digest('hex');
        const closedEarly = cb.closed.then((c) => {
          throw new Error(`receiver closed during the transfer: ${c.reason} ${c.error?.code ?? ''}`);
        });
        const got = Promise.race([
          new Promise<Uint8Array>((resolve) => cb.once('message', resolve)),
          closedEarly,
        ]);
        const t0 = performance.now();
        await within(ca.send(msg), 120_000, 'send 100 MiB');
        const r = await within(got, 120_000, 'receive 100 MiB');
        const ms = performance.now() - t0;
        assert.equal(r.length, size);
        assert.equal(createHash('sha256').update(r).digest('hex'), sent);
        console.log(`# ${backend}: 100 MiB message in ${ms.toFixed(0)} ms`);
        assert.ok(ca.isOpen && cb.isOpen, 'both ends still open');
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  });
});
