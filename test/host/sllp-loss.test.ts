// SLLP mode under a hostile network: the WebRTC implementation is wrapped so that messages arriving on
// the negotiated SLLP channel (id 1000) are dropped, delayed (reordered) and duplicated by a seeded random
// schedule, and garbage is injected. Datagrams must be delivered at most once, authentic, never fatally:
// the connection stays open, TCP mode keeps working, and stats().datagrams counts the replays exactly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/host/connection.js';
import type { Datagram } from '../../src/host/connection-types.js';
import type { Identity } from '../../src/identity/identity.js';
import { SLLP_CHANNEL_ID } from '../../src/transport/peer-link.js';
import type { RtcImplementation } from '../../src/transport/rtc.js';
import {
  autoAccept,
  type Backend,
  type Env,
  loadRtc,
  nextMessage,
  sleep,
  startEnv,
  text,
  until,
  within,
} from '../helpers/hosts.js';
import { prng } from '../helpers/protocol.js';

/** What the lossy network did to the SLLP messages arriving at one peer. */
class LossyNetwork {
  readonly random: () => number;
  arrived = 0;
  dropped = 0;
  /** Handler calls, i.e. copies handed to the transport's receiver (originals + duplicates). */
  delivered = 0;
  duplicated = 0;
  delayed = 0;
  /** Distinct arrived messages delivered at least once, by content. */
  readonly distinct = new Set<string>();
  private handler: ((e: MessageEvent) => void) | null = null;

  constructor(seed: number) {
    this.random = prng(seed);
  }

  /** Hand-crafted bytes, as if they arrived on the channel. */
  inject(bytes: Uint8Array): void {
    this.handler?.({ data: bytes.slice().buffer } as MessageEvent);
  }

  /** Wraps the channel's `onmessage` property (both backends call `this.onmessage(event)`). */
  intercept(channel: RTCDataChannel): void {
    const deliver = (e: MessageEvent) => {
      this.delivered++;
      this.distinct.add(Buffer.from(e.data as ArrayBuffer).toString('base64'));
      this.handler?.(e);
    };
    const wrapped = (e: MessageEvent) => {
      this.arrived++;
      const r = this.random();
      if (r < 0.2) {
        this.dropped++;
      } else if (r < 0.35) {
        // Duplicate: now, and again later (possibly after newer ones).
        this.duplicated++;
        deliver(e);
        setTimeout(() => deliver(e), Math.floor(this.random() * 40));
      } else if (r < 0.55) {
        this.delayed++;
        setTimeout(() => deliver(e), 1 + Math.floor(this.random() * 40));
      } else {
        deliver(e);
      }
    };
    Object.defineProperty(channel, 'onmessage', {
      configurable: true,
      get: () => (this.handler ? wrapped : null),
      set: (h: ((e: MessageEvent) => void) | null) => {
        this.handler = h;
      },
    });
  }
}

/** `base` with every SLLP channel's incoming messages going through `network`. */
function lossyRtc(base: RtcImplementation, network: LossyNetwork): RtcImplementation {
  class LossyPeerConnection extends base.RTCPeerConnection {
    override createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel {
      const channel = super.createDataChannel(label, init);
      if (init?.negotiated && init.id === SLLP_CHANNEL_ID) network.intercept(channel);
      return channel;
    }
  }
  return { ...base, name: `${base.name}+lossy`, RTCPeerConnection: LossyPeerConnection };
}

/** Sends `count` datagrams "<tag> <i>", paced; returns their sequence numbers. */
async function sendBurst(c: Connection, tag: string, count: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < count; i++) {
    const seq = await c.datagrams.send(`${tag} ${i}`);
    assert.ok(seq >= 0, `datagram ${i} dropped locally`);
    seqs.push(seq);
    if (i % 20 === 19) await sleep(5);
  }
  return seqs;
}

describe('SLLP under loss, reordering, duplication and garbage', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(4);
  });
  after(async () => {
    await env?.close();
  });

  (['wrtc', 'node-datachannel'] as Backend[]).forEach((backend, k) => {
    it(`${backend}: at most once, never fatal, replays counted exactly`, async () => {
      const seed = 0x5eed + k;
      const a = env.ids[2 * k] as Identity;
      const b = env.ids[2 * k + 1] as Identity;
      const netA = new LossyNetwork(seed);
      const netB = new LossyNetwork(seed + 100);
      const base = await loadRtc(backend);
      const ha = await env.host(a, { peers: [b], rtc: lossyRtc(base, netA) });
      const hb = await env.host(b, { peers: [a], rtc: lossyRtc(base, netB) });
      try {
        const acceptor = autoAccept(hb);
        const ca = await within(ha.connect(b.peerId), 20_000, 'connect');
        const cb = await acceptor.next();
        const gotB: Datagram[] = [];
        const gotA: Datagram[] = [];
        cb.datagrams.on('datagram', (d) => gotB.push(d));
        ca.datagrams.on('datagram', (d) => gotA.push(d));

        const N = 400;
        const seqsA = await sendBurst(ca, 'A', N);
        const seqsB = await sendBurst(cb, 'B', N);
        // Garbage on the SLLP channel: random bytes, a truncated and a bit-flipped copy of nothing real.
        const rand = prng(seed + 7);
        for (let i = 0; i < 20; i++) {
          const junk = new Uint8Array(1 + Math.floor(rand() * 200));
          for (let j = 0; j < junk.length; j++) junk[j] = Math.floor(rand() * 256);
          netB.inject(junk);
        }
        netB.inject(new Uint8Array(0));
        // Let delayed copies land.
        await sleep(300);
        await until(() => netB.arrived >= N * 0.9 && netA.arrived >= N * 0.9, 10_000, 'datagrams arrived');
        await sleep(200);
        console.log(
          `# ${backend} seed ${seed}: B's network: ${JSON.stringify({ ...netB, distinct: netB.distinct.size, random: undefined })}`,
        );

        for (const [got, net, seqs, tag] of [
          [gotB, netB, seqsA, 'A'],
          [gotA, netA, seqsB, 'B'],
        ] as const) {
          const payloads = got.map((d) => text(d.data));
          // At most once, and only what was sent, each with the sender's sequence number.
          assert.equal(new Set(payloads).size, payloads.length, `${tag}'s datagrams delivered twice`);
          assert.equal(new Set(got.map((d) => d.seq)).size, got.length);
          for (const d of got) {
            const m = /^([AB]) (\d+)$/.exec(text(d.data));
            assert.ok(m && m[1] === tag, `unexpected datagram ${text(d.data)}`);
            assert.equal(d.seq, seqs[Number(m[2])]);
          }
          // Everything the network delivered at least once reached the application, exactly once.
          assert.equal(got.length, net.distinct.size, `${tag}: delivered ≠ distinct arrivals`);
          assert.ok(net.dropped > 0 && net.duplicated > 0 && net.delayed > 0, 'the schedule did nothing');
          assert.ok(got.length < N, 'nothing was lost?');
        }

        const sb = (await cb.stats()).datagrams;
        const sa = (await ca.stats()).datagrams;
        assert.equal(sb.received, gotB.length);
        assert.equal(sb.dropped.replay, netB.delivered - netB.distinct.size, "B's replay count");
        assert.equal(sb.dropped.invalid, 21, "B's invalid count (the injected garbage)");
        assert.equal(sb.dropped.stale, 0);
        assert.ok(sb.reordered > 0, 'reordering not counted');
        assert.equal(sa.received, gotA.length);
        assert.equal(sa.dropped.replay, netA.delivered - netA.distinct.size, "A's replay count");
        assert.equal(sa.dropped.invalid, 0);
        assert.equal(sa.sent, N);

        // Never fatal: both ends open, TCP mode works both ways.
        assert.ok(ca.isOpen && cb.isOpen);
        const toB = nextMessage(cb);
        await ca.send('still here');
        assert.equal(text(await toB), 'still here');
        const toA = nextMessage(ca);
        await cb.send('me too');
        assert.equal(text(await toA), 'me too');
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  });
});
